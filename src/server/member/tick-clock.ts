// Raft time from a monotonic clock. The driver's interval timer only wakes the node; how many
// ticks passed is read off the clock. With ten ticks per heartbeat, a timer that fires a few ms
// late on a busy machine would otherwise stretch every election timeout by its lateness times
// the hundred-odd ticks it counts.

export class TickClock {
  private tickedUntilMs: number;

  /**
   * `maxTicksPerWake` caps how far one wake-up moves Raft time. Past a longer stall the rest is
   * dropped (as Go's ticker drops ticks for etcd), so a member whose loop stalled reads the
   * heartbeats that queued meanwhile before its election timer can run out.
   */
  constructor(
    private readonly tickMs: number,
    private readonly maxTicksPerWake: number,
    startMs: number,
  ) {
    this.tickedUntilMs = startMs;
  }

  /** The ticks due at `nowMs` since the last call, at most `maxTicks` (maxTicksPerWake by default). */
  due(nowMs: number, maxTicks = this.maxTicksPerWake): number {
    const due = Math.floor((nowMs - this.tickedUntilMs) / this.tickMs);
    if (due <= 0) return 0;
    if (due > maxTicks) {
      this.tickedUntilMs = nowMs;
      return maxTicks;
    }
    this.tickedUntilMs += due * this.tickMs;
    return due;
  }
}
