import { PerformanceObserver, constants } from 'node:perf_hooks';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { IDLE_DELAY_MS, IdleScavenger, minorCollector, youngGenerationFill } from './watch-scavenge.js';

afterEach(() => {
  vi.useRealTimers();
});

/** A scavenger over a young generation the test fills, counting the collections asked for. */
function scavengerAt(fill: { value: number }) {
  const collected: number[] = [];
  const scavenger = new IdleScavenger({
    youngFill: () => fill.value,
    scavenge: () => {
      collected.push(Date.now());
      fill.value = 0;
    },
  });
  return { scavenger, collected };
}

describe('IdleScavenger', () => {
  it('collects once the member has been idle for the delay after a fan-out, when the young generation is half full', () => {
    vi.useFakeTimers();
    const fill = { value: 0.6 };
    const { scavenger, collected } = scavengerAt(fill);
    scavenger.afterFanOut();
    vi.advanceTimersByTime(IDLE_DELAY_MS - 1);
    expect(collected).toHaveLength(0);
    vi.advanceTimersByTime(1);
    expect(collected).toHaveLength(1);
    // Nothing more without another fan-out.
    fill.value = 0.9;
    vi.advanceTimersByTime(100);
    expect(collected).toHaveLength(1);
    expect(scavenger.scavenges).toBe(1);
    scavenger.stop();
  });

  it('does not collect a young generation under half full', () => {
    vi.useFakeTimers();
    const { scavenger, collected } = scavengerAt({ value: 0.4 });
    scavenger.afterFanOut();
    vi.advanceTimersByTime(10 * IDLE_DELAY_MS);
    expect(collected).toHaveLength(0);
    scavenger.stop();
  });

  it('never collects while fan-outs follow each other closer than the delay, then once after the last', () => {
    vi.useFakeTimers();
    const start = Date.now();
    const { scavenger, collected } = scavengerAt({ value: 0.9 });
    for (let i = 0; i < 50; i++) {
      scavenger.afterFanOut();
      vi.advanceTimersByTime(IDLE_DELAY_MS - 1);
    }
    expect(collected).toHaveLength(0);
    vi.advanceTimersByTime(1);
    expect(collected).toEqual([start + 50 * (IDLE_DELAY_MS - 1) + 1]);
    scavenger.stop();
  });
});

describe("V8's minor collector", () => {
  it('runs a young-generation collection, and leaves no gc global behind', async () => {
    const collect = minorCollector();
    expect(collect).toBeTypeOf('function');
    const kinds: number[] = [];
    let heardMinor!: () => void;
    const minorHeard = new Promise<void>((resolve) => {
      heardMinor = resolve;
    });
    const observer = new PerformanceObserver((list) => {
      for (const entry of list.getEntries()) kinds.push((entry as unknown as { detail: { kind: number } }).detail.kind);
      if (kinds.includes(constants.NODE_PERFORMANCE_GC_MINOR)) heardMinor();
    });
    observer.observe({ entryTypes: ['gc'] });
    try {
      const garbage: object[] = [];
      for (let i = 0; i < 10_000; i++) garbage.push({ i });
      const before = youngGenerationFill();
      collect!();
      expect(youngGenerationFill()).toBeLessThan(before);
      // The observer hears of it on a later turn.
      await minorHeard;
      expect(kinds).not.toContain(constants.NODE_PERFORMANCE_GC_MAJOR);
    } finally {
      observer.disconnect();
    }
    expect((globalThis as { gc?: unknown }).gc).toBeUndefined();
  });

  it('the young generation fill is a fraction', () => {
    const fill = youngGenerationFill();
    expect(fill).toBeGreaterThanOrEqual(0);
    expect(fill).toBeLessThanOrEqual(1);
  });
});
