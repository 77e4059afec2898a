import { describe, expect, it } from 'vitest';
import { AutoCompactor, timerIntervalMs, type CompactTarget } from './auto-compactor.js';

class FakeStore implements CompactTarget {
  revision = 1;
  compacted = 0;
  calls: number[] = [];
  currentRevision(): number {
    return this.revision;
  }
  async compact(revision: number): Promise<void> {
    this.calls.push(revision);
    if (revision <= this.compacted) throw new Error('compacted');
    this.compacted = revision;
  }
  isCompactedError(error: unknown): boolean {
    return error instanceof Error && error.message === 'compacted';
  }
}

describe('auto compaction on etcd 3.4 schedule', () => {
  it('periodic: fires every retention/10, compacts to the revision seen one retention ago', async () => {
    const store = new FakeStore();
    const schedule = { mode: 'periodic' as const, retentionMs: 10_000 };
    expect(timerIntervalMs(schedule)).toBe(1000);
    const compactor = new AutoCompactor(schedule, store, 0);
    // One put per second; the timer fires every second.
    for (let second = 1; second <= 25; second++) {
      store.revision++;
      await compactor.onTimer(second * 1000);
    }
    // First compaction once 10 s have passed, to the revision sampled at start; then every
    // 10 s, to the oldest of the last 11 samples (etcd 3.4 periodic.go).
    expect(store.calls).toEqual([1, 10]);
  });

  it('periodic retention over an hour: checks every 6 minutes, compacts hourly after the first', async () => {
    const schedule = { mode: 'periodic' as const, retentionMs: 3 * 3_600_000 };
    expect(timerIntervalMs(schedule)).toBe(360_000);
  });

  it('revision: every 5 minutes compacts to current - retention, skipping repeats', async () => {
    const store = new FakeStore();
    const schedule = { mode: 'revision' as const, retentionRevisions: 100 };
    expect(timerIntervalMs(schedule)).toBe(300_000);
    const compactor = new AutoCompactor(schedule, store, 0);
    store.revision = 50;
    expect(await compactor.onTimer(300_000)).toBeUndefined();
    store.revision = 250;
    expect(await compactor.onTimer(600_000)).toBe(150);
    expect(await compactor.onTimer(900_000)).toBeUndefined(); // unchanged target
    store.revision = 300;
    expect(await compactor.onTimer(1_200_000)).toBe(200);
    expect(store.calls).toEqual([150, 200]);
  });

  it('a target already compacted by someone else counts as done', async () => {
    const store = new FakeStore();
    store.compacted = 500;
    const results: Array<[number, unknown]> = [];
    const compactor = new AutoCompactor({ mode: 'revision', retentionRevisions: 10 }, store, 0, (r, e) => results.push([r, e]));
    store.revision = 400;
    await compactor.onTimer(1);
    expect(results).toEqual([[390, undefined]]);
  });
});
