// Per-member request rate limiting (server.grpc.enable_rate_limit): a token bucket holding up
// to `burst` tokens, refilled at `qps` tokens per second; each unary request takes one token,
// and a request finding the bucket empty is refused with RESOURCE_EXHAUSTED at once, before
// any work (see handler.ts `unary`).
//
// Invariants:
// - 0 <= tokens <= burst at all times; refill is computed lazily from a monotonic clock, so
//   an idle member costs nothing and a check is a few arithmetic operations.
// - The clock is injected (milliseconds, monotonic) so tests are exact.
// - Streams (Watch, LeaseKeepAlive) are not limited: they are long-lived and their messages
//   are not requests in this sense.

import { assert } from '../util/assert.js';

export interface TokenBucketOptions {
  qps: number;
  burst: number;
  /** Monotonic milliseconds; defaults to performance.now. */
  nowMs?: () => number;
}

export class TokenBucket {
  private tokens: number;
  private lastMs: number;
  private readonly perMs: number;
  private readonly nowMs: () => number;

  constructor(readonly options: TokenBucketOptions) {
    assert(options.qps > 0 && Number.isFinite(options.qps), 'rate limit qps must be positive');
    assert(options.burst >= 1 && Number.isFinite(options.burst), 'rate limit burst must be at least 1');
    this.nowMs = options.nowMs ?? (() => performance.now());
    this.perMs = options.qps / 1000;
    this.tokens = options.burst;
    this.lastMs = this.nowMs();
  }

  /** Takes one token if there is one. */
  tryTake(): boolean {
    const now = this.nowMs();
    if (now > this.lastMs) {
      this.tokens = Math.min(this.options.burst, this.tokens + (now - this.lastMs) * this.perMs);
      this.lastMs = now;
    }
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }
}

/** The refusal text: says what was exceeded and which settings govern it. */
export function rateLimitMessage(options: { qps: number; burst: number }): string {
  return (
    `etcdserver: too many requests: rate limit of ${options.qps} requests/s (burst ${options.burst}) exceeded; ` +
    'retry later (server.grpc.rate_limit_qps, server.grpc.rate_limit_burst)'
  );
}
