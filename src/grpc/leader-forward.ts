// Forwards a unary call to the current leader when only the leader can answer it (etcd's
// followers forward MemberPromote and lease keep-alives to the leader over the peer network;
// MetaStore forwards over the leader's client gRPC port, which every member knows from the
// member list).

import * as grpc from '@grpc/grpc-js';
import type { KvServer } from '../server/member/kv-server.js';
import { ServerError } from '../server/apply/errors.js';
import { clients, type ServiceName } from './proto.js';

const stubs = new Map<string, grpc.Client>();

export function stubFor(service: ServiceName, address: string): any {
  const key = `${service}@${address}`;
  let stub = stubs.get(key);
  if (stub === undefined) {
    stub = new clients[service](address, grpc.credentials.createInsecure());
    stubs.set(key, stub);
  }
  return stub;
}

/** The leader's client address (host:port), or throws etcd's "no leader". */
export function leaderAddress(kv: KvServer): string {
  const leader = kv.raft?.leader ?? 0n;
  const url = leader === 0n ? undefined : kv.membership.get(leader)?.clientUrls[0];
  if (url === undefined) throw new ServerError('NoLeader');
  return url.replace(/^https?:\/\//, '').replace(/\/$/, '');
}

export function forwardToLeader<T>(
  kv: KvServer,
  service: ServiceName,
  method: string,
  request: object,
  timeoutMs = 10_000,
  metadata: grpc.Metadata = new grpc.Metadata(),
): Promise<T> {
  const stub = stubFor(service, leaderAddress(kv));
  return new Promise((resolve, reject) => {
    stub[method](request, metadata, { deadline: Date.now() + timeoutMs }, (error: grpc.ServiceError | null, response: T) => {
      if (error) reject(new ForwardedError(error.code, error.details));
      else resolve(response);
    });
  });
}

/** The leader's answer was an error: pass its status through unchanged. */
export class ForwardedError extends Error {
  constructor(
    readonly code: grpc.status,
    readonly details: string,
  ) {
    super(details);
  }
}

export function closeForwarders(): void {
  for (const stub of stubs.values()) stub.close();
  stubs.clear();
}
