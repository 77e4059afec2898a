import { describe, expect, it } from 'vitest';
import { PendingReads, type PendingRead } from './pending-reads.js';

function read(deadline: number): PendingRead {
  return { resolve: () => {}, reject: () => {}, deadline, settled: false };
}

const context = (n: number): Uint8Array => Uint8Array.of(n);

describe('PendingReads: deadlines without a timer per read', () => {
  it('expires reads in arrival order up to now, each once, and skips the released ones', () => {
    const reads = new PendingReads();
    const [a, b, c] = [read(100), read(200), read(300)];
    for (const r of [a, b, c]) reads.add(r);
    reads.groupQueued(context(1));
    expect(reads.nextDeadline()).toBe(100);

    // The group is answered at index 5: released once this member has applied 5.
    reads.answered(context(1), 5);
    expect(reads.takeReleasable(4)).toEqual([]);
    expect(reads.takeReleasable(5)).toEqual([a, b, c]);
    expect(reads.nextDeadline()).toBeUndefined();

    const [d, e] = [read(400), read(500)];
    reads.add(d);
    reads.add(e);
    expect(reads.takeExpired(399)).toEqual([]);
    expect(reads.takeExpired(450)).toEqual([d]);
    expect(d.settled).toBe(true);
    expect(reads.nextDeadline()).toBe(500);
    // An expired read is not released later, and its group still goes out for the others.
    reads.groupQueued(context(2));
    reads.answered(context(2), 6);
    expect(reads.takeReleasable(6)).toEqual([e]);
    expect(reads.takeExpired(1000)).toEqual([]);
  });

  it('forgets released reads as they go (the arrival list does not grow under a steady load)', () => {
    const reads = new PendingReads();
    for (let round = 0; round < 100; round++) {
      for (let i = 0; i < 50; i++) reads.add(read(1_000_000 + round));
      reads.groupQueued(context(round % 256));
      reads.answered(context(round % 256), round);
      expect(reads.takeReleasable(round)).toHaveLength(50);
    }
    expect(reads.nextDeadline()).toBeUndefined();
    expect((reads as unknown as { byArrival: unknown[] }).byArrival.length).toBe(0);
  });

  it('takeAll settles every read still waiting, in any stage, once', () => {
    const reads = new PendingReads();
    const [a, b, c] = [read(1), read(2), read(3)];
    reads.add(a);
    reads.groupQueued(context(1));
    reads.answered(context(1), 9);
    reads.add(b);
    reads.groupQueued(context(2));
    reads.add(c);
    expect(reads.takeAll()).toEqual([a, b, c]);
    expect(reads.takeAll()).toEqual([]);
    expect(reads.takeExpired(10)).toEqual([]);
  });
});
