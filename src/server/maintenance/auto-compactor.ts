// etcd's automatic compaction (--auto-compaction-mode / --auto-compaction-retention), with
// etcd 3.4's schedule:
// - periodic, retention P: every P/10 (P capped at 1h for this purpose) remember the current
//   revision; once P has passed since the last success, compact to the revision remembered
//   P ago; after the first compaction, compact every min(P, 1h).
// - revision, retention N: every 5 minutes, compact to current - N (if positive and changed).
// The schedule logic is a pure class driven by `onTimer(nowMs)`, so tests run it on a fake
// clock; `startAutoCompactor` is the thin timer around it.

export interface CompactTarget {
  currentRevision(): number;
  /** Resolves when compacted; rejects with the store's error (compacted, future, ...). */
  compact(revision: number): Promise<void>;
  isCompactedError(error: unknown): boolean;
}

export type CompactionSchedule = { mode: 'periodic'; retentionMs: number } | { mode: 'revision'; retentionRevisions: number };

const HOUR_MS = 3_600_000;
const REVISION_MODE_INTERVAL_MS = 5 * 60_000;
const RETRY_DIVISOR = 10;

export function timerIntervalMs(schedule: CompactionSchedule): number {
  if (schedule.mode === 'revision') return REVISION_MODE_INTERVAL_MS;
  return Math.max(1, Math.floor(Math.min(schedule.retentionMs, HOUR_MS) / RETRY_DIVISOR));
}

export class AutoCompactor {
  private readonly revisions: number[] = [];
  private lastSuccessMs: number;
  private baseIntervalMs: number;
  private previousTarget = 0;
  private running = false;

  constructor(
    private readonly schedule: CompactionSchedule,
    private readonly target: CompactTarget,
    startMs: number,
    private readonly onResult: (revision: number, error?: unknown) => void = () => {},
  ) {
    this.lastSuccessMs = startMs;
    this.baseIntervalMs = schedule.mode === 'periodic' ? schedule.retentionMs : 0;
    if (schedule.mode === 'periodic') this.remember(schedule.retentionMs);
  }

  /** etcd samples the revision at the top of each round, before waiting for the timer. */
  private remember(periodMs: number): void {
    const keep = Math.floor(periodMs / timerIntervalMs(this.schedule)) + 1;
    this.revisions.push(this.target.currentRevision());
    if (this.revisions.length > keep) this.revisions.shift();
  }

  /** One timer firing; returns the revision it compacted to, if it started one. */
  async onTimer(nowMs: number): Promise<number | undefined> {
    if (this.running) return undefined;
    return this.schedule.mode === 'periodic' ? this.periodic(nowMs, this.schedule.retentionMs) : this.byRevision(this.schedule.retentionRevisions);
  }

  private async periodic(nowMs: number, periodMs: number): Promise<number | undefined> {
    try {
      if (nowMs - this.lastSuccessMs < this.baseIntervalMs) return undefined;
      if (this.baseIntervalMs === periodMs) this.baseIntervalMs = Math.min(periodMs, HOUR_MS);
      const revision = this.revisions[0]!;
      if (await this.run(revision)) this.lastSuccessMs = nowMs;
      return revision;
    } finally {
      this.remember(periodMs);
    }
  }

  private async byRevision(retention: number): Promise<number | undefined> {
    const revision = this.target.currentRevision() - retention;
    if (revision <= 0 || revision === this.previousTarget) return undefined;
    if (await this.run(revision)) this.previousTarget = revision;
    return revision;
  }

  private async run(revision: number): Promise<boolean> {
    this.running = true;
    try {
      await this.target.compact(revision);
      this.onResult(revision);
      return true;
    } catch (error) {
      // Someone compacted past this point already: etcd counts that as done.
      if (this.target.isCompactedError(error)) {
        this.onResult(revision);
        return true;
      }
      this.onResult(revision, error);
      return false;
    } finally {
      this.running = false;
    }
  }
}

/** Runs the compactor on a real timer; returns a stop function. */
export function startAutoCompactor(compactor: AutoCompactor, schedule: CompactionSchedule): () => void {
  const timer = setInterval(() => void compactor.onTimer(Date.now()), timerIntervalMs(schedule));
  timer.unref();
  return () => clearInterval(timer);
}
