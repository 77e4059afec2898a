// etcd's "hasleader" request metadata (clientv3.WithRequireLeader; etcdctl watch and the
// Kubernetes API server send it): the client would rather fail over to another member than be
// served by one that has lost its leader.
//
// What etcd 3.4 does (v3rpc interceptor.go), and so what this does:
// - A unary call carrying `hasleader: true` fails at once with "etcdserver: no leader"
//   (UNAVAILABLE) while the member knows no leader; without the metadata it is served as usual.
// - A stream carrying it is refused the same way when it starts without a leader. Once open, it
//   is checked once per election timeout: after MAX_LEADERLESS_CHECKS checks in a row without a
//   leader, it ends with the same status. Ending open streams is the costlier choice for the
//   client (they reconnect and resume), hence the patience.
// - Only streams whose handlers stop their work on the call's 'error' event are ended by the
//   monitor (Watch, LeaseKeepAlive); the others (Snapshot, Observe) get the check at start.

import type * as grpc from '@grpc/grpc-js';
import { etcdStatus } from './errors.js';

/** etcd's rpctypes.MetadataRequireLeaderKey and the one value that turns the check on. */
export const REQUIRE_LEADER_KEY = 'hasleader';
const REQUIRE_LEADER_VALUE = 'true';
/** Consecutive leaderless checks before open streams are ended (etcd's maxNoLeaderCnt). */
export const MAX_LEADERLESS_CHECKS = 3;
/** Streams the monitor may end: their handlers release everything on the call's 'error'. */
const ENDABLE_STREAMS: ReadonlySet<string> = new Set(['Watch', 'LeaseKeepAlive']);

export function requiresLeader(metadata: grpc.Metadata): boolean {
  const values = metadata.get(REQUIRE_LEADER_KEY);
  return values.length > 0 && values[0] === REQUIRE_LEADER_VALUE;
}

export interface LeaderGuardOptions {
  /** Whether this member currently knows a leader. */
  hasLeader: () => boolean;
  /** How often open streams are checked: etcd uses the election timeout. */
  checkIntervalMs: number;
}

type StreamCall = grpc.ServerWritableStream<unknown, unknown> | grpc.ServerDuplexStream<unknown, unknown>;

/** Applies the hasleader rules to every method of one gRPC server. */
export class LeaderGuard {
  private readonly open = new Set<StreamCall>();
  private leaderlessChecks = 0;
  private readonly timer: ReturnType<typeof setInterval>;

  constructor(private readonly options: LeaderGuardOptions) {
    this.timer = setInterval(() => this.check(), options.checkIntervalMs);
    this.timer.unref();
  }

  /** The handler of `method`, refusing leaderless service to callers that asked for a leader. */
  wrap(method: string, definition: grpc.MethodDefinition<unknown, unknown>, handler: grpc.UntypedHandleCall): grpc.UntypedHandleCall {
    if (!definition.responseStream && !definition.requestStream) return this.wrapUnary(handler as grpc.handleUnaryCall<unknown, unknown>);
    if (!definition.responseStream) return handler; // etcd has no client-streaming methods
    const endable = ENDABLE_STREAMS.has(method);
    const stream = handler as (call: StreamCall) => void;
    return ((call: StreamCall) => {
      if (requiresLeader(call.metadata)) {
        if (!this.options.hasLeader()) {
          call.emit('error', etcdStatus('NoLeader'));
          return;
        }
        if (endable) this.track(call);
      }
      stream(call);
    }) as grpc.UntypedHandleCall;
  }

  /** Stops the periodic check (the server is shutting down). */
  close(): void {
    clearInterval(this.timer);
    this.open.clear();
  }

  private wrapUnary(handler: grpc.handleUnaryCall<unknown, unknown>): grpc.UntypedHandleCall {
    return ((call: grpc.ServerUnaryCall<unknown, unknown>, callback: grpc.sendUnaryData<unknown>) => {
      // The leader first: while there is one the metadata is not read (nor, by
      // h2/grpc-calls.ts, built).
      if (!this.options.hasLeader() && requiresLeader(call.metadata)) {
        callback(etcdStatus('NoLeader'));
        return;
      }
      handler(call, callback);
    }) as grpc.UntypedHandleCall;
  }

  private track(call: StreamCall): void {
    this.open.add(call);
    const forget = (): void => void this.open.delete(call);
    call.once('finish', forget);
    call.once('close', forget);
    call.once('cancelled', forget);
    call.once('error', forget);
  }

  private check(): void {
    this.leaderlessChecks = this.options.hasLeader() ? 0 : this.leaderlessChecks + 1;
    if (this.leaderlessChecks < MAX_LEADERLESS_CHECKS) return;
    const ending = [...this.open];
    this.open.clear();
    for (const call of ending) call.emit('error', etcdStatus('NoLeader'));
  }
}
