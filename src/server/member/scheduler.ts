// The clock of the member's Raft driver: its tick, request timeouts and loop turns. Node's
// timers in production; a test or a simulator passes its own to make time pass on demand.

/** Whatever a Scheduler hands out for a timer; only that scheduler's clear() understands it. */
export type TimerHandle = object;

export interface Scheduler {
  /** Calls back once, after `ms`. */
  setTimeout(callback: () => void, ms: number): TimerHandle;
  /** Calls back every `ms` until cleared. */
  setInterval(callback: () => void, ms: number): TimerHandle;
  clear(timer: TimerHandle): void;
  /** Calls back once pending I/O callbacks have run (a loop turn). */
  setImmediate(callback: () => void): void;
  /** Milliseconds on a monotonic clock (the Raft tick counts them, tick-clock.ts). */
  now(): number;
}

export const nodeScheduler: Scheduler = {
  setTimeout: (callback, ms) => setTimeout(callback, ms),
  setInterval: (callback, ms) => setInterval(callback, ms),
  clear: (timer) => clearTimeout(timer as NodeJS.Timeout),
  setImmediate: (callback) => void setImmediate(callback),
  now: () => performance.now(),
};
