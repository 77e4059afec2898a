import { describe, expect, it } from 'vitest';
import { progressPeriodMs } from './watch-service.js';

describe('progressPeriodMs (etcd watch progress period per stream)', () => {
  it("uses etcd's 10 minutes when unset or 0", () => {
    expect(progressPeriodMs(undefined, () => 0)).toBe(600_000);
    expect(progressPeriodMs(0, () => 0)).toBe(600_000);
  });

  it('raises intervals under 100 ms to 100 ms, as etcd does', () => {
    expect(progressPeriodMs(10, () => 0)).toBe(100);
  });

  it('adds a jitter below a tenth of the interval', () => {
    expect(progressPeriodMs(500, () => 0)).toBe(500);
    expect(progressPeriodMs(500, () => 0.999_999)).toBe(549);
  });
});
