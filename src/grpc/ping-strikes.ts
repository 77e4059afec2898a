// grpc-go's keepalive enforcement for one client connection, as etcd configures it
// (keepalive.EnforcementPolicy{MinTime: --grpc-keepalive-min-time, PermitWithoutStream: false}):
// a PING that comes sooner than allowed after the previous one is a strike; the third strike
// closes the connection with GOAWAY ENHANCE_YOUR_CALM "too_many_pings". Allowed is MinTime
// while the client has a call open, two hours while it has none (it should not ping at all
// then). A ping after the server has sent headers or data is never a strike and clears the
// count. Pure: the caller supplies the time and what happened on the connection.

/** grpc-go's maxPingStrikes: more strikes than this close the connection. */
export const MAX_PING_STRIKES = 2;
/** grpc-go's defaultPingTimeout: the least spacing of pings while no call is open. */
export const PING_WITHOUT_CALLS_MS = 2 * 60 * 60 * 1000;
/** grpc-go's defaultKeepalivePolicyMinTime, used when MinTime is 0. */
export const DEFAULT_MIN_TIME_MS = 5 * 60 * 1000;

export interface PingContext {
  readonly nowMs: number;
  /** Streams (calls) open on the connection right now. */
  readonly openStreams: number;
  /** The server has sent headers or data since the previous ping (grpc-go's resetPingStrikes). */
  readonly serverWrote: boolean;
}

export class PingStrikes {
  private lastPingAtMs: number | undefined;
  private strikes = 0;
  private readonly minTimeMs: number;

  constructor(minTimeMs: number) {
    this.minTimeMs = minTimeMs > 0 ? minTimeMs : DEFAULT_MIN_TIME_MS;
  }

  /** Judges one received PING; true when the connection must now be closed. */
  ping(context: PingContext): boolean {
    const previous = this.lastPingAtMs;
    this.lastPingAtMs = context.nowMs;
    if (context.serverWrote) {
      this.strikes = 0;
      return false;
    }
    const allowedMs = context.openStreams < 1 ? PING_WITHOUT_CALLS_MS : this.minTimeMs;
    if (previous !== undefined && context.nowMs - previous < allowedMs) this.strikes++;
    return this.strikes > MAX_PING_STRIKES;
  }
}

/** The client port's keepalive enforcement (etcd's --grpc-keepalive-min-time), per connection. */
export interface PingPolicy {
  /** etcd --grpc-keepalive-min-time; 0 = grpc-go's default (5 minutes). */
  minTimeMs: number;
  /** Told about each connection closed for pinging too often. */
  onTooManyPings?: (remoteAddress: string | undefined) => void;
}
