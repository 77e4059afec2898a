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
// - With a journal (sync-journal.ts, the database holding the Raft log), the Raft log's
//   frequent writes are `journaled`: a merged batch holding them goes to LevelDB unsynced
//   (unless another write in it asked for sync) and their ops go to the journal as one record,
//   written in-line at issue time and fdatasync'd when any of them asked for sync (in-line when
//   the record is small, else on libuv's pool beside the LevelDB write: one pool job). The journal's invariant is kept
//   here: a `checkpointed` write (the log's rare other writes) is preceded by a checkpoint (a
//   synced LevelDB write that lands, then the journal's reset) and written synced on its own,
//   so no journal record ever replays over it; a record that does not fit is preceded by a
//   checkpoint too; `drain()` ends with one, leaving the journal empty.
// - A checkpoint resets the journal only when, after its synced write has landed, the
//   database's directory holds no older LevelDB log than the current one (`olderLogPending`).
//   LevelDB 1.20 does not sync a log when a full memtable makes it move to a new one
//   (DBImpl::MakeRoomForWrite); the old log's writes become durable when the background
//   CompactMemTable has written the memtable to a table (BuildTable syncs it), synced the
//   MANIFEST edit that moves the log number past the old log (LogAndApply; the directory is
//   synced first), and only then does DeleteObsoleteFiles delete the old log. So "one log left"
//   after the synced write landed means everything before that write is durable; a synced
//   write alone proves it only for the log it landed in. While an older log is pending: a
//   landed checkpoint keeps the journal (its records still replay: the invariant above holds
//   with more records than needed), a timed checkpoint is not issued (re-armed), and what
//   needs an empty journal before it (a checkpointed write, a record that does not fit, the
//   end of `drain()`) waits, polling every OLDER_LOG_POLL_MS, until the old log is gone, then
//   takes its checkpoint. That stall lasts one memtable compaction (a table of
//   write_buffer_size, 16 MiB by default: tens to hundreds of ms), and only writes behind it
//   wait.
// - With a sync marker (the backend's, once its journal file exists), EVERY synced write
//   carries it and is a checkpoint (the journal is reset once it lands), so the marker's last
//   value in LevelDB tells which synced write came last: the witness leveldb-files-check.ts
//   needs to cut a power loss's torn tail. A reset skipped above leaves two synced writes
//   with the same marker: see leveldb-files-check.ts's header for what the witness still proves.
// - A journaled write resolves as soon as its journal record is written (and fdatasync'd when
//   it asked for sync): it is as durable then as a synced LevelDB write would make it, and
//   waiting for the LevelDB write too would put a pool-thread round trip on every put's path.
//   Its `landed` callback tells it when LevelDB holds it (readers of the database itself need
//   that). Waiters still resolve in the order their writes were requested. After an in-line,
//   fdatasync'd record with no write queued behind it (a lone put's) the LevelDB write is
//   handed to the pool from a setImmediate, once the waiters' continuations (apply, watch
//   fan-out, answers) have run: the hand-off is off their path.

import { readdirSync } from 'node:fs';
import type { ClassicLevel } from 'classic-level';
import { assert } from '../util/assert.js';
import type { StorageError } from './storage-error.js';
import { type BatchOp, SyncJournal } from './sync-journal.js';

export type { BatchOp } from './sync-journal.js';

/** How long an unsynced write may wait for a synced one to share its LevelDB write. */
const LAZY_FLUSH_MS = 2;
/**
 * How long the journal may hold records before a checkpoint syncs LevelDB behind them, as etcd
 * commits its backend every 100 ms. It bounds LevelDB's unsynced tail, which a power loss may
 * tear (leveldb-files-check.ts cuts a torn tail after the last synced write, refuses other
 * damage), and the replay at the next start; it costs one synced LevelDB write per interval
 * while writes come, off the puts' path.
 */
export const CHECKPOINT_INTERVAL_MS = 100;
/**
 * A journal record of at most this many ops (one or two Readies' entries and hard state: a
 * lightly loaded member) is fdatasync'd in-line on the main thread, which is the shortest path
 * for a lone put (no pool hand-off, no wake-up); a larger one's (a busy member, where the main
 * thread has requests to serve meanwhile) goes through libuv's pool. Every record is written
 * in-line (a copy into the page cache).
 */
const INLINE_JOURNAL_OPS = 4;
/** How often a write that needs the journal reset polls for LevelDB's older log to be gone. */
const OLDER_LOG_POLL_MS = 10;

/**
 * Whether LevelDB's directory `dir` holds more than one write-ahead log (*.log): an older log
 * than the current one is not yet durable in tables (see the header), or is about to be deleted.
 */
export function levelDbOlderLogPending(dir: string): boolean {
  let logs = 0;
  for (const name of readdirSync(dir)) if (/^\d+\.log$/.test(name) && ++logs > 1) return true;
  return false;
}

type Waiter = {
  resolve: () => void;
  reject: (error: Error) => void;
  /** A journaled write's: resolved once its journal record is written (see write()). */
  journaled: boolean;
  /** Told when the LevelDB write holding its ops has landed. */
  landed: (() => void) | undefined;
};

/** The writes merged into one LevelDB batch. */
export interface MergedWrite {
  ops: BatchOp[];
  /** The callers' own per-op tags, when they gave them (the backend: each op's key as text). */
  keys: string[];
  sync: boolean;
  /** Start the write without waiting for a synced one (see write()). */
  prompt: boolean;
  waiters: Waiter[];
  /** The journaled ops among `ops`, in order (they also go to the journal). */
  journalOps: BatchOp[];
  /** Whether a journaled write merged here asked for sync (the journal is fdatasync'd). */
  journalSync: boolean;
  /** A checkpoint: once this synced write lands, the journal is reset. */
  resetAfter: boolean;
  /** Nothing more may be merged into it (a checkpoint, or a checkpointed write). */
  closed: boolean;
  /** A checkpointed write: it goes out only with the journal empty (see the header). */
  checkpointed: boolean;
}

/**
 * How a write relates to the journal: `journaled` ops go to it (the Raft log's frequent
 * writes); a `checkpointed` write (the log's other writes) is written synced right after a
 * checkpoint. Without a journal both are plain writes (`checkpointed` ones synced).
 */
export type JournalKind = 'journaled' | 'checkpointed';

export interface LevelWriteQueueOptions {
  /** Turns a failed LevelDB write into the error every waiter gets (and tells the failure sink). */
  failed: (cause: unknown) => StorageError;
  /** Called with each merged batch as it is issued, before LevelDB sees it. */
  onIssue?: (write: MergedWrite) => void;
  /** Called as each merged batch lands, before its waiters resolve; `more`: writes queued behind it. */
  onLanded?: (write: MergedWrite, more: boolean) => void;
  /** Called after every LevelDB batch lands: its duration and whether it was synced. */
  onWrite?: (seconds: number, synced: boolean) => void;
  /** The journal of the Raft log kept in this database (sync-journal.ts), if any. */
  journal?: SyncJournal;
  /**
   * The sync marker (leveldb-files-check.ts, the torn-tail witness): the op EVERY synced write
   * carries while it gives one (with a journal: once its file exists), each then followed by the
   * journal's reset (a new epoch, the marker's next value) once it lands. It is also what a
   * checkpoint with nothing else to write puts: LevelDB skips an empty batch.
   */
  syncMarkerOp?: () => BatchOp | undefined;
  /** Called after each fdatasync'd journal append: its duration (write and fdatasync). */
  onJournalSync?: (seconds: number) => void;
  /** At most how long the journal holds a record before a checkpoint (default CHECKPOINT_INTERVAL_MS). */
  checkpointIntervalMs?: number;
  /**
   * Whether LevelDB's directory holds an older log than the current one, which the journal's
   * reset must wait for (see the header). Asked only with a journal; default
   * levelDbOlderLogPending(db.location).
   */
  olderLogPending?: () => boolean;
}

export class LevelWriteQueue {
  /** Merged writes waiting, oldest first; only the last one, unless closed, takes more ops. */
  private queued: MergedWrite[] = [];
  private writing = false;
  private draining = false;
  private lazyTimer: NodeJS.Timeout | undefined;
  /** Armed by the first journal record after a checkpoint: the next checkpoint's time. */
  private checkpointTimer: NodeJS.Timeout | undefined;
  /** Set while a write that needs the journal empty waits for LevelDB's older log to go. */
  private olderLogTimer: NodeJS.Timeout | undefined;
  private failure: StorageError | undefined;

  constructor(
    private readonly db: ClassicLevel<Buffer, Buffer>,
    private readonly options: LevelWriteQueueOptions,
  ) {
    assert(options.journal === undefined || options.syncMarkerOp !== undefined, 'a journal needs the op its checkpoints write');
  }

  /**
   * Queues ops to be written after every earlier write; resolves once they are on disk
   * (synced to the device when `sync` is true; a journaled write: in the journal, fdatasync'd
   * when `sync`, and in LevelDB). A `prompt` write starts at once, carrying what waits; an
   * unsynced one otherwise waits up to LAZY_FLUSH_MS for one that does.
   */
  write(
    ops: readonly BatchOp[],
    options: { sync: boolean; prompt?: boolean; keys?: readonly string[]; journal?: JournalKind; landed?: () => void },
  ): Promise<void> {
    if (this.failure !== undefined) return Promise.reject(this.failure);
    return new Promise((resolve, reject) => {
      const journaled = options.journal === 'journaled' && this.options.journal !== undefined;
      if (options.journal === 'checkpointed' && this.needsCheckpoint()) this.checkpoint();
      const queued = this.open();
      for (const op of ops) queued.ops.push(op);
      if (options.keys !== undefined) for (const key of options.keys) queued.keys.push(key);
      if (journaled) {
        for (const op of ops) queued.journalOps.push(op);
        queued.journalSync ||= options.sync;
      } else {
        queued.sync ||= options.sync || options.journal === 'checkpointed';
      }
      queued.prompt ||= options.prompt === true;
      queued.waiters.push({ resolve, reject, journaled, landed: options.landed });
      // A checkpointed write goes out alone, right after its checkpoint.
      if (options.journal === 'checkpointed') {
        queued.closed = true;
        queued.checkpointed = true;
      }
      if (this.writing) return;
      if (this.urgent(this.queued[0] as MergedWrite)) this.flush();
      else this.scheduleLazyFlush();
    });
  }

  /** The first failed write, if any. */
  get failed(): StorageError | undefined {
    return this.failure;
  }

  /**
   * Lands everything queued, synced (closing the database): resolves once nothing is left,
   * with the journal checkpointed (empty).
   */
  async drain(): Promise<void> {
    this.draining = true;
    const journal = this.options.journal;
    while (this.failure === undefined && (this.writing || this.queued.length > 0 || (journal !== undefined && !journal.empty))) {
      if (!this.writing && this.queued.length === 0 && this.olderLogPending()) {
        // Only the journal's reset is left, and it must wait for LevelDB's older log (header).
        await new Promise((resolve) => setTimeout(resolve, OLDER_LOG_POLL_MS));
        continue;
      }
      await new Promise<void>((resolve, reject) => {
        const queued = this.needsCheckpoint() ? this.checkpoint() : this.open();
        queued.sync = true;
        queued.waiters.push({ resolve, reject, journaled: false, landed: undefined });
        if (!this.writing) this.flush();
      });
    }
  }

  /** The merged write that takes the next ops (a new one behind a closed one). */
  private open(): MergedWrite {
    const last = this.queued[this.queued.length - 1];
    if (last !== undefined && !last.closed) return last;
    const fresh = emptyWrite(false);
    this.queued.push(fresh);
    return fresh;
  }

  /**
   * Makes the merged write taking ops now a checkpoint: synced, the journal reset once it lands,
   * nothing merged behind it. It carries what waits (and a marker op should nothing).
   */
  private checkpoint(): MergedWrite {
    const write = this.open();
    write.sync = true;
    write.resetAfter = true;
    write.closed = true;
    return write;
  }

  /**
   * Whether a checkpointed write needs a checkpoint before it: not when the journal holds no
   * record and none waits to go in (then nothing can replay over it).
   */
  private needsCheckpoint(): boolean {
    const journal = this.options.journal;
    if (journal === undefined) return false;
    return !journal.empty || this.queued.some((write) => write.journalOps.length > 0);
  }

  /** Whether LevelDB's directory holds an older log, which a journal reset must wait for (header). */
  private olderLogPending(): boolean {
    if (this.options.journal === undefined) return false;
    return this.options.olderLogPending ? this.options.olderLogPending() : levelDbOlderLogPending(this.db.location);
  }

  /** Flushes again once OLDER_LOG_POLL_MS have passed (a write waits for the journal's reset). */
  private retryAfterOlderLog(): void {
    if (this.olderLogTimer !== undefined) return;
    this.olderLogTimer = setTimeout(() => {
      this.olderLogTimer = undefined;
      if (this.failure === undefined && !this.writing) this.flush();
    }, OLDER_LOG_POLL_MS);
  }

  /** Whether a merged write goes out now rather than waiting for one to carry it. */
  private urgent(write: MergedWrite): boolean {
    return write.sync || write.prompt || write.journalSync || write.closed || this.draining;
  }

  private scheduleLazyFlush(): void {
    if (this.lazyTimer !== undefined) return;
    this.lazyTimer = setTimeout(() => {
      this.lazyTimer = undefined;
      if (!this.writing) this.flush();
    }, LAZY_FLUSH_MS);
  }

  private flush(): void {
    let queued = this.queued[0];
    if (queued === undefined) return;
    assert(!this.writing, 'a second LevelDB write issued while one is in flight');
    if (this.lazyTimer !== undefined) {
      clearTimeout(this.lazyTimer);
      this.lazyTimer = undefined;
    }
    const journal = this.options.journal;
    const recordBytes = journal !== undefined && queued.journalOps.length > 0 ? SyncJournal.recordBytes(queued.journalOps) : 0;
    const needsEmptyJournal = queued.checkpointed || (journal !== undefined && recordBytes > 0 && !journal.fits(recordBytes));
    if (journal !== undefined && needsEmptyJournal && !journal.empty) {
      // A checkpointed write whose checkpoint could not reset the journal, or no room: a
      // checkpoint first empties the journal, then this write goes out (next flush); while
      // LevelDB's older log is pending the checkpoint could not reset it, so wait (header).
      if (this.olderLogPending()) {
        this.retryAfterOlderLog();
        return;
      }
      queued = this.emptyCheckpoint();
    }
    this.queued.shift();
    if (queued.ops.length === 0 && !queued.resetAfter) {
      // Nothing to write (a caller waiting for every earlier write to land): done already.
      for (const waiter of queued.waiters) waiter.resolve();
      this.afterWrite();
      return;
    }
    this.writing = true;
    const write = queued;
    let journaled = false;
    let journalWritten: Promise<void> | undefined;
    try {
      // The marker checkpoint put ahead above has no journaled ops: only the write measured has.
      if (journal !== undefined && write.journalOps.length > 0) {
        journal.prepare();
        journaled = journal.fits(recordBytes);
        if (journaled && write.journalOps.length <= INLINE_JOURNAL_OPS) this.append(journal, write);
        else if (journaled) journalWritten = this.appendOffThread(journal, write);
        // Larger than the whole journal: after the checkpoint above the journal is empty, so
        // this write, synced, is a checkpointed write.
        else write.sync = true;
      }
    } catch (error) {
      this.writeFailed(write, error);
      return;
    }
    if (write.sync) this.markSynced(write);
    assert(write.ops.length > 0, 'a checkpoint without its marker (a journal record waits, yet no journal file)');
    this.options.onIssue?.(write);
    this.issue(write, journaled, journalWritten);
  }

  /**
   * Hands a merged write to LevelDB (beside its off-thread journal write, if any: the next write
   * waits for both) and resolves its journaled waiters once its record is in the journal.
   */
  private issue(write: MergedWrite, journaled: boolean, journalWritten: Promise<void> | undefined): void {
    // In the journal: its journaled writes are done (earlier writes have all landed).
    const journalDone = (): void => {
      for (const waiter of write.waiters) if (waiter.journaled) waiter.resolve();
      this.armCheckpoint();
    };
    const inline = journaled && journalWritten === undefined;
    const handOff = (): void => {
      // The LevelDB write's duration (onWrite) counts from its hand-off, not the journal's work.
      const started = this.options.onWrite ? performance.now() : 0;
      Promise.all([this.writeBatch(write), journalWritten?.then(journalDone)]).then(
        () => this.landed(write, started),
        (error: unknown) => {
          this.writing = false;
          this.writeFailed(write, error);
        },
      );
    };
    if (inline) journalDone();
    if (inline && write.journalSync && this.queued.length === 0) {
      // Synced in the journal, nothing waiting behind it (a lone put's record): its waiters (the
      // Raft driver's persisted(), then the apply, the watch fan-out and the answers, promise
      // continuations and ticks) run first, and the LevelDB write (a chained batch built, a pool
      // job queued, a pool thread woken that may take this core) is handed over from the
      // immediate after them, off the first event's path. Nothing else is issued meanwhile
      // (`writing`), readers of LevelDB itself wait for `landed` as before, and the backend
      // counted the write's bytes when it was requested. With writes queued behind it (a busy
      // member) the hand-off goes at once: they wait for it to land.
      setImmediate(handOff);
    } else {
      handOff();
    }
  }

  /**
   * A synced write carries the sync marker, when there is one, and so becomes a checkpoint: the
   * journal is reset once it lands (everything before it is then durable in LevelDB), so each
   * synced write's marker is one more than the last one's.
   */
  private markSynced(write: MergedWrite): void {
    const marker = this.options.syncMarkerOp?.();
    if (marker === undefined) return;
    write.ops.push(marker);
    write.keys.push('');
    if (this.options.journal !== undefined) write.resetAfter = true;
  }

  /** A merged write is in LevelDB (and its record in the journal): a checkpoint resets the journal, then its waiters go. */
  private landed(write: MergedWrite, started: number): void {
    this.writing = false;
    this.options.onWrite?.((performance.now() - started) / 1000, write.sync);
    if (write.resetAfter) {
      const journal = this.options.journal;
      assert(write.sync && journal !== undefined, 'a checkpoint that was not synced, or without a journal');
      // An empty journal is reset whatever the logs (it drops no record; the marker's next
      // synced write then carries a new epoch).
      if (!journal.empty && this.olderLogPending()) {
        // Writes before this one may sit in LevelDB's older, unsynced log: the journal keeps
        // them, and a timed checkpoint retries (what needs the reset waits in flush()).
        this.armCheckpoint();
      } else {
        try {
          journal.reset();
        } catch (error) {
          this.writeFailed(write, journalError(journal, error));
          return;
        }
      }
    }
    this.options.onLanded?.(write, this.queued.length > 0);
    for (const waiter of write.waiters) {
      waiter.landed?.();
      // Resolving twice is harmless: a journaled waiter resolved at issue.
      waiter.resolve();
    }
    this.afterWrite();
  }

  /** A checkpoint within the interval of the first record since the last one (see CHECKPOINT_INTERVAL_MS). */
  private armCheckpoint(): void {
    if (this.checkpointTimer !== undefined) return;
    this.checkpointTimer = setTimeout(() => {
      this.checkpointTimer = undefined;
      if (this.failure !== undefined || this.draining || !this.needsCheckpoint()) return;
      // It could not reset the journal now (header): the next interval tries again.
      if (this.olderLogPending()) {
        this.armCheckpoint();
        return;
      }
      this.checkpoint();
      if (!this.writing) this.flush();
    }, this.options.checkpointIntervalMs ?? CHECKPOINT_INTERVAL_MS);
    // A closing member drains (and checkpoints) first; the timer keeps no process alive.
    this.checkpointTimer.unref();
  }

  /** Puts a marker checkpoint at the head of the queue, ahead of what waits there. */
  private emptyCheckpoint(): MergedWrite {
    const marker = emptyWrite(true);
    this.queued.unshift(marker);
    return marker;
  }

  /** The merged write's journaled ops to the journal, in-line, before LevelDB sees them. */
  private append(journal: SyncJournal, write: MergedWrite): void {
    const started = write.journalSync && this.options.onJournalSync ? performance.now() : 0;
    try {
      journal.append(write.journalOps, write.journalSync);
    } catch (error) {
      throw journalError(journal, error);
    }
    if (write.journalSync) this.options.onJournalSync?.((performance.now() - started) / 1000);
  }

  /**
   * appendAsync(): the record written in-line (a failure throws here, before LevelDB sees the
   * write), its fdatasync through libuv's pool; a failure names the journal file.
   */
  private appendOffThread(journal: SyncJournal, write: MergedWrite): Promise<void> {
    const started = performance.now();
    let synced: Promise<void>;
    try {
      synced = journal.appendAsync(write.journalOps, write.journalSync);
    } catch (error) {
      throw journalError(journal, error);
    }
    return synced.then(
      () => {
        if (write.journalSync) this.options.onJournalSync?.((performance.now() - started) / 1000);
      },
      (error: unknown) => {
        throw journalError(journal, error);
      },
    );
  }

  /**
   * A failed LevelDB write or journal write: the sink (fail-stop) hears of it before any
   * waiter; no later write may land after a failed one, so what queued meanwhile fails with it.
   */
  private writeFailed(write: MergedWrite, error: unknown): void {
    this.writing = false;
    const failure = this.options.failed(error);
    this.failure ??= failure;
    const waiting = this.queued;
    this.queued = [];
    for (const waiter of [...write.waiters, ...waiting.flatMap((w) => w.waiters)]) waiter.reject(failure);
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
    const next = this.queued[0];
    if (next === undefined) return;
    if (this.urgent(next)) this.flush();
    else this.scheduleLazyFlush();
  }
}

/** A merged write with nothing in it yet; a checkpoint is synced, starts at once and takes nothing more. */
function emptyWrite(checkpoint: boolean): MergedWrite {
  return {
    ops: [],
    keys: [],
    sync: checkpoint,
    prompt: checkpoint,
    waiters: [],
    journalOps: [],
    journalSync: false,
    resetAfter: checkpoint,
    closed: checkpoint,
    checkpointed: false,
  };
}

/** A failed journal write, fdatasync or reset: the file system's error names no file, so say which. */
function journalError(journal: SyncJournal, error: unknown): Error {
  return new Error(`${journal.path}: ${error instanceof Error ? error.message : String(error)}`);
}
