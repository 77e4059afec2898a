// Unit tests of the pure lessor: grant rules, TTL floor and ceiling, expiry order, renewals,
// checkpoints and what a promotion derives from them, persistence and restore.

import { describe, expect, it } from 'vitest';
import { LeaseError } from './errors.js';
import { Lessor, MAX_LEASE_TTL_SECONDS, minLeaseTtlSeconds, REVOKE_RETRY_MS } from './lessor.js';

const key = (text: string): Buffer => Buffer.from(text);

function leaseErrorCode(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (error) {
    if (error instanceof LeaseError) return error.etcdCode;
    throw error;
  }
  return undefined;
}

function primaryLessor(nowMs = 0): Lessor {
  const lessor = new Lessor({ dirtyCheckpointMs: 500 });
  lessor.promote(nowMs, 0);
  return lessor;
}

describe('lessor: grant', () => {
  it('minimum TTL is ceil(1.5 x election timeout) in seconds', () => {
    expect(minLeaseTtlSeconds(1000)).toBe(2);
    expect(minLeaseTtlSeconds(100)).toBe(1);
    expect(minLeaseTtlSeconds(5000)).toBe(8);
  });

  it('refuses ID 0, a TTL over 9e9 s and an existing ID, in etcd order, changing nothing', () => {
    const lessor = primaryLessor();
    expect(leaseErrorCode(() => lessor.grant(0n, 10, 0))).toBe('LeaseNotFound');
    expect(leaseErrorCode(() => lessor.grant(5n, MAX_LEASE_TTL_SECONDS + 1, 0))).toBe('LeaseTTLTooLarge');
    expect(lessor.size).toBe(0);
    lessor.grant(5n, MAX_LEASE_TTL_SECONDS, 0);
    expect(leaseErrorCode(() => lessor.grant(5n, 10, 0))).toBe('LeaseExist');
    // Too large wins over "exists", as in etcd's Grant.
    expect(leaseErrorCode(() => lessor.grant(5n, MAX_LEASE_TTL_SECONDS + 1, 0))).toBe('LeaseTTLTooLarge');
    expect(lessor.timeToLive(5n, 0, false)?.grantedTtlSeconds).toBe(MAX_LEASE_TTL_SECONDS);
  });

  it('accepts negative IDs (int64 on the wire) and tracks attached keys in byte order', () => {
    const lessor = primaryLessor();
    lessor.grant(-7n, 10, 0);
    lessor.attach(-7n, key('b'));
    lessor.attach(-7n, key('a'));
    lessor.attach(-7n, key('b'));
    expect(lessor.timeToLive(-7n, 0, true)?.keys.map(String)).toEqual(['a', 'b']);
    lessor.detach(-7n, key('a'));
    expect(lessor.timeToLive(-7n, 0, true)?.keys.map(String)).toEqual(['b']);
    expect(lessor.timeToLive(-7n, 0, false)?.keys).toEqual([]);
  });
});

describe('lessor: expiry (leader)', () => {
  it('hands out expired leases earliest first, ties by ID, and retries after the retry interval', () => {
    const lessor = primaryLessor();
    lessor.grant(3n, 5, 0);
    lessor.grant(2n, 5, 0);
    lessor.grant(1n, 10, 0);
    expect(lessor.expired(4999, 10)).toEqual([]);
    expect(lessor.nextDeadlineMs()).toBe(5000);
    expect(lessor.expired(5000, 10)).toEqual([2n, 3n]);
    // Not again until the retry interval passed (the revoke may still be on its way).
    expect(lessor.expired(5000 + REVOKE_RETRY_MS - 1, 10)).toEqual([]);
    expect(lessor.expired(5000 + REVOKE_RETRY_MS, 10)).toEqual([2n, 3n]);
    expect(lessor.expired(10_000, 10)).toEqual([1n]);
    lessor.revoke(2n);
    expect(lessor.expired(20_000, 10)).toEqual([3n, 1n]);
  });

  it('respects the limit per call', () => {
    const lessor = primaryLessor();
    for (let i = 1n; i <= 5n; i++) lessor.grant(i, 1, 0);
    expect(lessor.expired(1000, 2)).toEqual([1n, 2n]);
    expect(lessor.expired(1000, 10)).toEqual([3n, 4n, 5n]);
  });

  it('renew pushes the deadline to now + granted TTL and answers the granted TTL', () => {
    const lessor = primaryLessor();
    lessor.grant(1n, 10, 0);
    expect(lessor.renew(1n, 8000)).toBe(10);
    expect(lessor.expired(10_000, 10)).toEqual([]);
    expect(lessor.timeToLive(1n, 9000, false)).toEqual({ ttlSeconds: 9, grantedTtlSeconds: 10, keys: [] });
    expect(lessor.expired(18_000, 10)).toEqual([1n]);
    expect(lessor.renew(99n, 0)).toBeUndefined();
    // Past its deadline: not renewable (its revoke is coming).
    expect(lessor.renew(1n, 18_001)).toBeUndefined();
  });

  it('a follower never expires anything; demote forgets deadlines', () => {
    const follower = new Lessor({ dirtyCheckpointMs: 500 });
    follower.grant(1n, 1, 0);
    expect(follower.expired(1e9, 10)).toEqual([]);
    expect(follower.nextDeadlineMs()).toBe(Infinity);
    const leader = primaryLessor();
    leader.grant(1n, 1, 0);
    leader.demote();
    expect(leader.expired(1e9, 10)).toEqual([]);
  });

  it('revoke returns the keys in byte order and forgets the lease; unknown = LeaseNotFound', () => {
    const lessor = primaryLessor();
    lessor.grant(1n, 10, 0);
    for (const k of ['zeta', 'alpha', 'mid']) lessor.attach(1n, key(k));
    expect(lessor.revoke(1n).map(String)).toEqual(['alpha', 'mid', 'zeta']);
    expect(lessor.exists(1n)).toBe(false);
    expect(leaseErrorCode(() => lessor.revoke(1n))).toBe('LeaseNotFound');
    // Detach after the revoke (MVCC deleting the keys) is harmless.
    lessor.detach(1n, key('alpha'));
  });

  it('lists leases soonest deadline first', () => {
    const lessor = primaryLessor();
    lessor.grant(1n, 30, 0);
    lessor.grant(2n, 15, 0);
    lessor.grant(3n, 20, 0);
    expect(lessor.list()).toEqual([2n, 3n, 1n]);
    lessor.renew(2n, 14_000);
    expect(lessor.list()).toEqual([3n, 2n, 1n]);
  });
});

describe('lessor: checkpoints and promotion', () => {
  it('a renewed lease is due for a checkpoint after dirtyCheckpointMs; others after the long interval', () => {
    const lessor = new Lessor({ dirtyCheckpointMs: 500, checkpointIntervalMs: 60_000 });
    lessor.promote(0, 0);
    lessor.grant(1n, 100, 0);
    lessor.grant(2n, 100, 0);
    expect(lessor.dueCheckpoints(400, 10)).toEqual([]);
    lessor.renew(1n, 400);
    expect(lessor.dueCheckpoints(450, 10)).toEqual([]);
    expect(lessor.dueCheckpoints(600, 10)).toEqual([{ id: 1n, remainingMs: 99_800 }]);
    expect(lessor.dueCheckpoints(700, 10)).toEqual([]);
    expect(lessor.dueCheckpoints(60_000, 10)).toEqual([{ id: 2n, remainingMs: 40_000 }]);
  });

  it('a new leader keeps the old deadline (from when it applied the checkpoint) plus the extension', () => {
    // Member B follows: applies the grant at its time 1000, a checkpoint at 5000.
    const b = new Lessor({ dirtyCheckpointMs: 500 });
    b.grant(1n, 10, 1000);
    b.grant(2n, 10, 1000);
    expect(b.checkpoint(1n, 8000, 5000)).toBe(true);
    expect(b.checkpoint(99n, 8000, 5000)).toBe(false);
    // B becomes leader at 7000 with a 1000 ms extension.
    b.promote(7000, 1000);
    // Lease 1: 5000 + 8000 + 1000 = 14000; lease 2 (never checkpointed): 1000 + 10000 + 1000.
    expect(b.timeToLive(1n, 7000, false)?.ttlSeconds).toBe(7);
    expect(b.expired(11_999, 10)).toEqual([]);
    expect(b.expired(12_000, 10)).toEqual([2n]);
    expect(b.expired(13_999, 10)).toEqual([]);
    expect(b.expired(14_000, 10)).toEqual([1n]);
  });

  it('promotion long after the deadline expires the lease at once, never resets it', () => {
    const b = new Lessor({ dirtyCheckpointMs: 500 });
    b.grant(1n, 10, 0);
    b.promote(60_000, 1000);
    expect(b.expired(60_000, 10)).toEqual([1n]);
  });
});

describe('lessor: persistence', () => {
  it('a record restores TTL and checkpointed remaining; the restored clock starts at restore time', () => {
    const a = primaryLessor();
    a.grant(42n, 60, 0);
    a.checkpoint(42n, 30_000, 1000);
    const record = a.record(42n)!;
    expect(a.record(7n)).toBeUndefined();

    const b = new Lessor({ dirtyCheckpointMs: 500 });
    b.restore(42n, record, 500);
    b.attach(42n, key('k'));
    expect(b.timeToLive(42n, 500, true)).toEqual({ ttlSeconds: 30, grantedTtlSeconds: 60, keys: [key('k')] });
    b.promote(500, 1000);
    expect(b.expired(31_499, 10)).toEqual([]);
    expect(b.expired(31_500, 10)).toEqual([42n]);
  });

  it('a never-checkpointed lease restores with its full TTL; reset forgets everything', () => {
    const a = primaryLessor();
    a.grant(1n, 20, 0);
    const b = new Lessor({ dirtyCheckpointMs: 500 });
    b.restore(1n, a.record(1n)!, 0);
    expect(b.timeToLive(1n, 0, false)?.ttlSeconds).toBe(20);
    b.reset();
    expect(b.size).toBe(0);
    expect(b.isPrimary).toBe(false);
  });
});
