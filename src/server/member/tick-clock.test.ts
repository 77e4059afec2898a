import { describe, expect, it } from 'vitest';
import { TickClock } from './tick-clock.js';

describe('TickClock', () => {
  it('counts the ticks that passed on the clock, so late wake-ups do not stretch Raft time', () => {
    const clock = new TickClock(10, 10, 0);
    // Wake-ups 3 ms late each: a count of wake-ups would say 3 ticks, the clock says 3 too, and
    // the 9 ms of lateness carry over instead of being lost.
    expect([13, 26, 39].map((now) => clock.due(now))).toEqual([1, 1, 1]);
    expect(clock.due(41)).toBe(1);
    // A wake-up 45 ms late catches up on every tick it missed.
    expect(clock.due(95)).toBe(5);
    expect(clock.due(99)).toBe(0);
  });

  it('moves at most maxTicksPerWake after a stall and drops the rest', () => {
    const clock = new TickClock(10, 10, 0);
    expect(clock.due(1000)).toBe(10);
    expect(clock.due(1010)).toBe(1);
  });

  it('handles ticks that are not whole milliseconds', () => {
    const clock = new TickClock(2.5, 40, 0);
    expect(clock.due(100)).toBe(40);
    expect(clock.due(101)).toBe(0);
    expect(clock.due(102.5)).toBe(1);
  });
});
