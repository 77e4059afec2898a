// A Scheduler whose time passes only when a test says so: timers fire in due-time order (ties
// in creation order) during advance(), and loop turns queued with setImmediate run in
// settle(). Between turns it lets the event loop run once, so promise chains (an in-memory
// log write, an apply) complete before the next turn: the same run gives the same order.

import type { Scheduler, TimerHandle } from '../../src/server/member/scheduler.js';

interface Timer {
  dueMs: number;
  /** Set for intervals. */
  periodMs?: number;
  callback: () => void;
  order: number;
}

/** Turns allowed in one settle(): far above any test's need; a loop spinning forever fails. */
const MAX_TURNS_PER_SETTLE = 100_000;

export class ManualScheduler implements Scheduler {
  nowMs = 0;
  private readonly timers = new Map<TimerHandle, Timer>();
  private immediates: Array<() => void> = [];
  private created = 0;

  setTimeout(callback: () => void, ms: number): TimerHandle {
    const handle = {};
    this.timers.set(handle, { dueMs: this.nowMs + ms, callback, order: this.created++ });
    return handle;
  }

  setInterval(callback: () => void, ms: number): TimerHandle {
    const periodMs = Math.max(1, ms);
    const handle = {};
    this.timers.set(handle, { dueMs: this.nowMs + periodMs, periodMs, callback, order: this.created++ });
    return handle;
  }

  clear(timer: TimerHandle): void {
    this.timers.delete(timer);
  }

  setImmediate(callback: () => void): void {
    this.immediates.push(callback);
  }

  now(): number {
    return this.nowMs;
  }

  /** Runs queued turns, and the promise callbacks they start, until nothing is queued. */
  async settle(): Promise<void> {
    for (let turns = 0; ; ) {
      await new Promise((resolve) => setImmediate(resolve));
      if (this.immediates.length === 0) return;
      const queued = this.immediates;
      this.immediates = [];
      for (const callback of queued) callback();
      turns += queued.length;
      if (turns > MAX_TURNS_PER_SETTLE) throw new Error(`still busy after ${turns} turns: a loop that never idles`);
    }
  }

  /** Moves time forward by `ms`, firing due timers in order and settling after each. */
  async advance(ms: number): Promise<void> {
    const endMs = this.nowMs + ms;
    await this.settle();
    for (;;) {
      const next = this.nextDue(endMs);
      if (next === undefined) break;
      const [handle, timer] = next;
      this.nowMs = timer.dueMs;
      if (timer.periodMs === undefined) this.timers.delete(handle);
      else timer.dueMs += timer.periodMs;
      timer.callback();
      await this.settle();
    }
    this.nowMs = endMs;
  }

  /** Advances in `stepMs` steps until `condition` holds; fails after `limitMs`. */
  async advanceUntil(condition: () => boolean, options: { stepMs: number; limitMs: number }): Promise<void> {
    const startMs = this.nowMs;
    await this.settle();
    while (!condition()) {
      if (this.nowMs - startMs >= options.limitMs) throw new Error(`condition not met after ${options.limitMs} ms of scheduler time`);
      await this.advance(options.stepMs);
    }
  }

  private nextDue(endMs: number): [TimerHandle, Timer] | undefined {
    let best: [TimerHandle, Timer] | undefined;
    for (const entry of this.timers) {
      const timer = entry[1];
      if (timer.dueMs > endMs) continue;
      if (best === undefined || timer.dueMs < best[1].dueMs || (timer.dueMs === best[1].dueMs && timer.order < best[1].order)) best = entry;
    }
    return best;
  }
}
