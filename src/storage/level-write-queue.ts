// The one ordered write queue of a LevelDB database: the backend's (its state and, without a
// wal dir, the Raft log) and the wal dir's (the Raft log alone) each have one, and nothing
// else writes to either database.
//
// Invariants:
// - At most one LevelDB batch is in flight; whatever queues up meanwhile is merged into the
//   next one (group commit). classic-level runs each write on a libuv thread, so two writes
//   issued together could reach LevelDB in either order: here writes land in exactly the order
//   they were requested, which both the apply path (MVCC records before the consistent index
//   that covers them) and the Raft log (a later batch may overwrite what an earlier one wrote)
//   rely on.
// - A merged batch is synced when any of the writes merged into it asked for sync, and every
//   caller's promise resolves only after the batch holding its ops has been written.
// - An unsynced, non-prompt write waits up to LAZY_FLUSH_MS for a synced or prompt one to
//   carry it (the apply batch of one Ready rides on the log write of the next).
// - After a failed write nothing else is written: what was queued with or behind it, and every
//   later write, fails with the same error (storage-error.ts).

import type { ClassicLevel } from 'classic-level';
import { assert } from '../util/assert.js';
import type { StorageError } from './storage-error.js';

export type BatchOp = { type: 'put'; key: Buffer; value: Buffer } | { type: 'del'; key: Buffer };

/** How long an unsynced write may wait for a synced one to share its LevelDB write. */
const LAZY_FLUSH_MS = 2;

type Waiter = { resolve: () => void; reject: (error: Error) => void };

/** The writes merged into one LevelDB batch. */
export interface MergedWrite {
  ops: BatchOp[];
  /** The callers' own per-op tags, when they gave them (the backend: each op's key as text). */
  keys: string[];
  sync: boolean;
  /** Start the write without waiting for a synced one (see write()). */
  prompt: boolean;
  waiters: Waiter[];
}

export interface LevelWriteQueueOptions {
  /** Turns a failed LevelDB write into the error every waiter gets (and tells the failure sink). */
  failed: (cause: unknown) => StorageError;
  /** Called with each merged batch as it is issued, before LevelDB sees it. */
  onIssue?: (write: MergedWrite) => void;
  /** Called as each merged batch lands, before its waiters resolve; `more`: writes queued behind it. */
  onLanded?: (write: MergedWrite, more: boolean) => void;
  /** Called after every LevelDB batch lands: its duration and whether it was synced. */
  onWrite?: (seconds: number, synced: boolean) => void;
}

export class LevelWriteQueue {
  private queued: MergedWrite | undefined;
  private writing = false;
  private draining = false;
  private lazyTimer: NodeJS.Timeout | undefined;
  private failure: StorageError | undefined;

  constructor(
    private readonly db: ClassicLevel<Buffer, Buffer>,
    private readonly options: LevelWriteQueueOptions,
  ) {}

  /**
   * Queues ops to be written after every earlier write; resolves once they are on disk
   * (synced to the device when `sync` is true). A `prompt` write starts at once, carrying what
   * waits; an unsynced one otherwise waits up to LAZY_FLUSH_MS for one that does.
   */
  write(ops: readonly BatchOp[], options: { sync: boolean; prompt?: boolean; keys?: readonly string[] }): Promise<void> {
    if (this.failure !== undefined) return Promise.reject(this.failure);
    return new Promise((resolve, reject) => {
      const queued = this.queue();
      for (const op of ops) queued.ops.push(op);
      if (options.keys !== undefined) for (const key of options.keys) queued.keys.push(key);
      queued.sync ||= options.sync;
      queued.prompt ||= options.prompt === true;
      queued.waiters.push({ resolve, reject });
      if (this.writing) return;
      if (queued.sync || queued.prompt) this.flush();
      else this.scheduleLazyFlush();
    });
  }

  /** The first failed write, if any. */
  get failed(): StorageError | undefined {
    return this.failure;
  }

  /** Lands everything queued, synced (closing the database): resolves once nothing is left. */
  async drain(): Promise<void> {
    this.draining = true;
    while (this.failure === undefined && (this.writing || this.queued !== undefined)) {
      await new Promise<void>((resolve, reject) => {
        const queued = this.queue();
        queued.sync = true;
        queued.waiters.push({ resolve, reject });
        if (!this.writing) this.flush();
      });
    }
  }

  private queue(): MergedWrite {
    this.queued ??= { ops: [], keys: [], sync: false, prompt: false, waiters: [] };
    return this.queued;
  }

  private scheduleLazyFlush(): void {
    if (this.lazyTimer !== undefined) return;
    this.lazyTimer = setTimeout(() => {
      this.lazyTimer = undefined;
      if (!this.writing) this.flush();
    }, LAZY_FLUSH_MS);
  }

  private flush(): void {
    const queued = this.queued;
    if (queued === undefined) return;
    assert(!this.writing, 'a second LevelDB write issued while one is in flight');
    if (this.lazyTimer !== undefined) {
      clearTimeout(this.lazyTimer);
      this.lazyTimer = undefined;
    }
    this.queued = undefined;
    this.writing = true;
    const started = this.options.onWrite ? performance.now() : 0;
    this.options.onIssue?.(queued);
    this.writeBatch(queued).then(
      () => {
        this.writing = false;
        this.options.onWrite?.((performance.now() - started) / 1000, queued.sync);
        this.options.onLanded?.(queued, this.queued !== undefined);
        for (const waiter of queued.waiters) waiter.resolve();
        this.afterWrite();
      },
      (error: unknown) => {
        this.writing = false;
        // The sink (fail-stop) hears of it before any waiter; no later write may land after a
        // failed one, so what queued meanwhile fails with it.
        const failure = this.options.failed(error);
        this.failure ??= failure;
        const next = this.queued;
        this.queued = undefined;
        for (const waiter of [...queued.waiters, ...(next?.waiters ?? [])]) waiter.reject(failure);
      },
    );
  }

  /** One LevelDB write of the merged ops; a closed or failed database may throw at once. */
  private writeBatch(queued: MergedWrite): Promise<void> {
    try {
      // A chained batch costs well under a microsecond per op on this thread; the array form
      // of db.batch() validates and transcodes every op and costs several.
      const batch = this.db.batch();
      for (const op of queued.ops) {
        if (op.type === 'put') batch.put(op.key, op.value);
        else batch.del(op.key);
      }
      return batch.write({ sync: queued.sync });
    } catch (error) {
      return Promise.reject(error);
    }
  }

  private afterWrite(): void {
    const next = this.queued;
    if (next === undefined) return;
    if (next.sync || next.prompt || this.draining) this.flush();
    else this.scheduleLazyFlush();
  }
}
