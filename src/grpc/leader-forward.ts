// Forwards a unary call to the current leader when only the leader can answer it (etcd's
// followers forward MemberPromote and lease keep-alives to the leader over the peer network;
// MetaStore forwards over the leader's client gRPC port, which every member knows from the
// member list, through the member's dialer: TLS with the member's client certificate when the
// client port has TLS). The caller's identity travels in `metadata` (auth-check.ts
// forwardedCredentials).

import * as grpc from '@grpc/grpc-js';
import type { KvServer } from '../server/member/kv-server.js';
import { ServerError } from '../server/apply/errors.js';
import { dialAddress } from '../server/membership/member-address.js';
import type { MemberDialer } from './member-dialer.js';
import type { ServiceName } from './proto.js';

/** The leader's client address (host:port), or throws etcd's "no leader". */
export function leaderAddress(kv: KvServer): string {
  const leader = kv.raft?.leader ?? 0n;
  const url = leader === 0n ? undefined : kv.membership.get(leader)?.clientUrls[0];
  if (url === undefined) throw new ServerError('NoLeader');
  return dialAddress(url);
}

export interface ForwardedCall {
  readonly service: ServiceName;
  readonly method: string;
  readonly request: object;
  readonly metadata?: grpc.Metadata;
  readonly timeoutMs?: number;
}

export function forwardToLeader<T>(kv: KvServer, dialer: MemberDialer, forwarded: ForwardedCall): Promise<T> {
  const stub = dialer.stub(forwarded.service, leaderAddress(kv));
  const deadline = Date.now() + (forwarded.timeoutMs ?? 10_000);
  return new Promise((resolve, reject) => {
    stub[forwarded.method](forwarded.request, forwarded.metadata ?? new grpc.Metadata(), { deadline }, (error: grpc.ServiceError | null, response: T) => {
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
