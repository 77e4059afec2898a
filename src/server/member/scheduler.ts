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

/**
 * One timer for many deadlines (a timer per request was a Timeout and a closure per call):
 * armed while anything waits, it calls `expire(now)`, which fails what is due and returns the
 * next deadline, if any; a timer that fired a little early by the clock is armed again for it.
 */
export class DeadlineSweep {
  private timer: TimerHandle | undefined;
  private closed = false;

  constructor(
    private readonly scheduler: Scheduler,
    private readonly expire: (now: number) => number | undefined,
  ) {}

  /** Makes sure a sweep comes within `ms` (the newest deadline is never the earliest). */
  armWithin(ms: number): void {
    if (this.timer === undefined && !this.closed) this.timer = this.scheduler.setTimeout(() => this.sweep(), ms);
  }

  close(): void {
    this.closed = true;
    if (this.timer !== undefined) this.scheduler.clear(this.timer);
    this.timer = undefined;
  }

  private sweep(): void {
    this.timer = undefined;
    const now = this.scheduler.now();
    const next = this.expire(now);
    if (next !== undefined) this.armWithin(Math.max(1, next - now));
  }
}
