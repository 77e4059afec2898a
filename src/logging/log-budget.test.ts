import { describe, expect, it } from 'vitest';
import { LogBudget } from './log-budget.js';

describe('LogBudget', () => {
  it('writes up to the budget per interval, then counts, and the next line written carries the count', () => {
    let now = 5_000;
    const budget = new LogBudget({ linesPerInterval: 2, intervalMs: 1000, nowMs: () => now });
    expect([budget.take(), budget.take(), budget.take(), budget.take()]).toEqual([0, 0, undefined, undefined]);
    now += 999;
    expect(budget.take()).toBeUndefined();
    now += 1;
    expect([budget.take(), budget.take(), budget.take()]).toEqual([3, 0, undefined]);
    now += 1000;
    expect(budget.take()).toBe(1);
  });
});
