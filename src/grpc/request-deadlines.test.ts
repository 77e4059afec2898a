import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { DeadlineQueue } from './request-deadlines.js';

describe('request deadlines', () => {
  beforeEach(() => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'performance'] });
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it('times a call out once its duration has passed, not before', () => {
    const queue = new DeadlineQueue(100);
    const timedOut = vi.fn();
    queue.add(timedOut);
    vi.advanceTimersByTime(99);
    expect(timedOut).not.toHaveBeenCalled();
    vi.advanceTimersByTime(2);
    expect(timedOut).toHaveBeenCalledTimes(1);
    vi.advanceTimersByTime(1000);
    expect(timedOut).toHaveBeenCalledTimes(1);
  });

  it('never times out a settled call, and stops its timer when no call is left', () => {
    const queue = new DeadlineQueue(100);
    const timedOut = vi.fn();
    const first = queue.add(timedOut);
    const second = queue.add(timedOut);
    first.settle();
    second.settle();
    expect(queue.length).toBe(0);
    expect(vi.getTimerCount()).toBe(0);
    vi.advanceTimersByTime(1000);
    expect(timedOut).not.toHaveBeenCalled();
  });

  it('times out the unsettled calls of an out-of-order finish, each at its own deadline', () => {
    const queue = new DeadlineQueue(100);
    const fired: string[] = [];
    queue.add(() => fired.push('a'));
    vi.advanceTimersByTime(30);
    const b = queue.add(() => fired.push('b'));
    vi.advanceTimersByTime(30);
    queue.add(() => fired.push('c'));
    b.settle();
    expect(queue.length).toBe(3); // b waits behind a
    vi.advanceTimersByTime(41);
    expect(fired).toEqual(['a']);
    vi.advanceTimersByTime(59);
    expect(fired).toEqual(['a', 'c']);
    expect(queue.length).toBe(0);
    expect(vi.getTimerCount()).toBe(0);
  });

  it('lets a timeout handler start a new call, which gets a full duration', () => {
    const queue = new DeadlineQueue(100);
    const fired: string[] = [];
    queue.add(() => {
      fired.push('first');
      queue.add(() => fired.push('second'));
    });
    vi.advanceTimersByTime(101);
    expect(fired).toEqual(['first']);
    vi.advanceTimersByTime(98); // the second started at 100: due at 200
    expect(fired).toEqual(['first']);
    vi.advanceTimersByTime(2);
    expect(fired).toEqual(['first', 'second']);
  });

  it('keeps working across many calls that finish in order', () => {
    const queue = new DeadlineQueue(100);
    const timedOut = vi.fn();
    for (let i = 0; i < 5000; i++) queue.add(timedOut).settle();
    const last = queue.add(timedOut);
    expect(queue.length).toBe(1);
    vi.advanceTimersByTime(101);
    expect(timedOut).toHaveBeenCalledTimes(1);
    last.settle();
    expect(queue.length).toBe(0);
  });
});
