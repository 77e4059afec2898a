// Token bucket arithmetic with an injected clock: burst, refill, cap, and the refusal text.

import { describe, expect, it } from 'vitest';
import { TokenBucket, rateLimitMessage } from './rate-limit.js';

describe('TokenBucket', () => {
  it('admits a burst, then refills at qps, never above burst', () => {
    let now = 1000;
    const bucket = new TokenBucket({ qps: 10, burst: 3, nowMs: () => now });
    expect([bucket.tryTake(), bucket.tryTake(), bucket.tryTake(), bucket.tryTake()]).toEqual([true, true, true, false]);
    now += 99; // 0.99 of a token
    expect(bucket.tryTake()).toBe(false);
    now += 1; // the token completes
    expect(bucket.tryTake()).toBe(true);
    expect(bucket.tryTake()).toBe(false);
    now += 60_000; // a long idle time refills to the burst only
    const admitted = Array.from({ length: 10 }, () => bucket.tryTake()).filter(Boolean).length;
    expect(admitted).toBe(3);
  });

  it('ignores a clock that steps back', () => {
    let now = 500;
    const bucket = new TokenBucket({ qps: 1, burst: 1, nowMs: () => now });
    expect(bucket.tryTake()).toBe(true);
    now = 100;
    expect(bucket.tryTake()).toBe(false);
  });

  it('says what was exceeded and which settings govern it', () => {
    expect(rateLimitMessage({ qps: 50_000, burst: 100_000 })).toBe(
      'etcdserver: too many requests: rate limit of 50000 requests/s (burst 100000) exceeded; ' +
        'retry later (server.grpc.rate_limit_qps, server.grpc.rate_limit_burst)',
    );
  });

  it('rejects nonsense limits', () => {
    expect(() => new TokenBucket({ qps: 0, burst: 1 })).toThrow();
    expect(() => new TokenBucket({ qps: 1, burst: 0 })).toThrow();
  });
});
