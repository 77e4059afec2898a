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

/** How long one attempt waits for a connection to the leader before looking again who leads. */
const CONNECT_ATTEMPT_MS = 500;

/**
 * Sends the call to whoever leads, within the call's deadline. The leader may be gone (killed,
 * cut off) while this member still names it: the call is sent only once a connection to the
 * named leader is up, and until then the leader is looked up again every CONNECT_ATTEMPT_MS, so
 * a newly elected one is used as soon as this member knows it. Nothing is sent twice. At the
 * deadline: etcd's "no leader" if none is known, else its "request timed out".
 */
export async function forwardToLeader<T>(kv: KvServer, dialer: MemberDialer, forwarded: ForwardedCall): Promise<T> {
  const deadline = Date.now() + (forwarded.timeoutMs ?? 10_000);
  for (;;) {
    const leader = kv.raft?.leader ?? 0n;
    const attemptEnd = Math.min(deadline, Date.now() + CONNECT_ATTEMPT_MS);
    if (leader === 0n) {
      await leaderOrTimeout(kv, attemptEnd - Date.now());
    } else {
      const stub = dialer.stub(forwarded.service, leaderAddress(kv));
      if (await connectedBy(stub, attemptEnd)) return callOnce<T>(stub, forwarded, deadline);
    }
    if (Date.now() >= deadline) throw new ServerError((kv.raft?.leader ?? 0n) === 0n ? 'NoLeader' : 'Timeout');
  }
}

function leaderOrTimeout(kv: KvServer, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const known = kv.raft?.leaderKnown().catch(() => undefined) ?? Promise.resolve();
  return Promise.race([known, new Promise<void>((resolve) => (timer = setTimeout(resolve, Math.max(0, ms))))]).finally(() => clearTimeout(timer));
}

function connectedBy(stub: grpc.Client, deadline: number): Promise<boolean> {
  return new Promise((resolve) => stub.waitForReady(deadline, (error) => resolve(error === undefined || error === null)));
}

// biome-ignore lint/suspicious/noExplicitAny: grpc-js stubs are built from the proto at run time; methods are looked up by name
function callOnce<T>(stub: any, forwarded: ForwardedCall, deadline: number): Promise<T> {
  return new Promise((resolve, reject) => {
    stub[forwarded.method](forwarded.request, forwarded.metadata ?? new grpc.Metadata(), { deadline }, (error: grpc.ServiceError | null, response: T) => {
      if (error) reject(relayError(error, stub as grpc.Client));
      else resolve(response);
    });
  });
}

/**
 * A relayed call's failure as the client should see it. The leader's own answers pass through
 * unchanged; a failure of the connection (grpc-js reports those as UNAVAILABLE, with its own
 * text) is etcd's "leader changed", which clients retry; our deadline is etcd's timeout.
 */
export function relayError(error: grpc.ServiceError, stub: grpc.Client): Error {
  const connectionLost = error.code === grpc.status.UNAVAILABLE && stub.getChannel().getConnectivityState(false) !== grpc.connectivityState.READY;
  if (connectionLost || error.code === grpc.status.CANCELLED) return new ServerError('LeaderChanged');
  if (error.code === grpc.status.DEADLINE_EXCEEDED) return new ServerError('Timeout');
  return new ForwardedError(error.code, error.details);
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
