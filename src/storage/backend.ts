// The LevelDB backend: one classic-level database per member, split into key spaces by a
// one-byte prefix, with a format version checked at open and a single ordered write queue.
//
// Invariants:
// - Every write goes through `write()`, that is through the database's one ordered write
//   queue (level-write-queue.ts: group commit, writes land in the order requested, a merged
//   batch synced when any of its writes asked, the Raft log's writes in it when there is no wal
//   dir). The apply path relies on the order: the MVCC records of an entry and the consistent
//   index that covers them are never overtaken by a later write.
// - Reads see every write already requested, landed or not (`pending`); the Raft log's keys,
//   which its store reads from the database itself, are not tracked there.
// - A data directory of another format (or an etcd data directory) is refused, never
//   reinterpreted.
// - The Raft log kept in this database writes its frequent batches through the sync journal
//   `<data dir>/raft.journal` (sync-journal.ts, its invariant kept by the write queue); at open
//   the journal's records are replayed into LevelDB in one synced write, then it is reset, so
//   the log is whole before anyone reads it; `close()` leaves the journal empty.
// - Once the journal file exists, every synced write carries the sync marker (SYNC_MARKER_KEY,
//   the journal's epoch) and the journal starts a new epoch once it lands (unless LevelDB's
//   older log is pending: level-write-queue.ts); the open makes one such write first and resets
//   the journal unconditionally (LevelDB's open writes the logs it recovers to a synced table
//   and syncs the MANIFEST before it deletes them: one log is left). The marker is the witness
//   that lets the open cut the newest LevelDB log when a power loss tore it after its last
//   synced write (leveldb-files-check.ts).

import { existsSync, mkdirSync, readdirSync, rmSync } from 'node:fs';
import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { ClassicLevel } from 'classic-level';
import { assert } from '../util/assert.js';
import type { Logger } from 'pino';
import { openCheckedLevelDb, type TornTailWitness } from './leveldb-files-check.js';
import { type BatchOp, type JournalKind, LevelWriteQueue, type LevelWriteQueueOptions, type MergedWrite } from './level-write-queue.js';
import { StorageError, levelErrorDetail, type StorageFailureSink } from './storage-error.js';
import { JOURNAL_FILE, JournalDamagedError, SyncJournal } from './sync-journal.js';

/** Key spaces: the first byte of every LevelDB key. */

/** etcd's fileutil.PrivateDirMode: data and WAL directories are created owner-only. */
export const PRIVATE_DIR_MODE = 0o700;
export const KeySpace = {
  meta: 0x01,
  mvcc: 0x02,
  raftLog: 0x03,
  lease: 0x04,
  auth: 0x05,
  members: 0x06,
} as const;
export type KeySpace = (typeof KeySpace)[keyof typeof KeySpace];

/** The data format this build reads and writes; stored under meta/"format". */
export const FORMAT_VERSION = 'metastore-1';

export class StorageFormatError extends Error {
  override name = 'StorageFormatError';
}

export type { BatchOp } from './level-write-queue.js';

/**
 * LevelDB's open file limit. LevelDB memory-maps every table file it holds open (up to 1000),
 * and a scan of the whole store (a snapshot stream, Hash, HashKV, the corruption check)
 * touches every page of every table: with LevelDB's default of 1000 the process's resident
 * memory grows by the size of the store (clean file pages, but counted in RSS). With 74
 * (LevelDB's floor: 64 tables plus 10 files of its own) the table cache closes, and unmaps,
 * all but the 64 most recent tables, so a scan adds at most 64 x 2 MiB (the table size)
 * whatever the store's size.
 */
export const DEFAULT_MAX_OPEN_FILES = 74;

export interface BackendOptions {
  /** LevelDB block cache, bytes. */
  cacheSizeBytes?: number;
  /** LevelDB memtable size, bytes. */
  writeBufferSizeBytes?: number;
  /** LevelDB's open file limit (default DEFAULT_MAX_OPEN_FILES). */
  maxOpenFiles?: number;
  compression?: boolean;
  /** Called after every LevelDB batch lands: its duration and whether it was synced. */
  onWrite?: (seconds: number, synced: boolean) => void;
  /** Told of a failed write or read (disk full, I/O error, damaged file) before it is thrown. */
  onFailure?: StorageFailureSink;
  /** The sync journal's size when it is created (default DEFAULT_JOURNAL_BYTES, 64 MiB). */
  journalBytes?: number;
  /** Called after each fdatasync'd journal append (the WAL fsync metric): its duration. */
  onJournalSync?: (seconds: number) => void;
  /** At most how long the journal holds a record before a checkpoint (tests; default 100 ms). */
  journalCheckpointMs?: number;
  /** Where the open's one warning goes when it cuts a log torn by a power loss (leveldb-files-check.ts). */
  logger?: Pick<Logger, 'warn'>;
}

export function spaceKey(space: KeySpace, key: Buffer | string): Buffer {
  const body = typeof key === 'string' ? Buffer.from(key, 'latin1') : key;
  const out = Buffer.allocUnsafe(body.length + 1);
  out[0] = space;
  body.copy(out, 1);
  return out;
}

const FORMAT_KEY = spaceKey(KeySpace.meta, 'format');
/**
 * The sync marker: what every synced write puts once the sync journal's file exists, the
 * journal's epoch it ends (the journal is reset after it lands), and so also what a checkpoint
 * with nothing else to write puts. It witnesses, at open, that a power loss's damage to the
 * newest LevelDB log follows every synced write (leveldb-files-check.ts). In the Raft log's key
 * space, which no snapshot or hash covers (the log store reads none but its own tags); a new
 * key ('w'), not the 'j' earlier versions put in checkpoints only, whose last value proves
 * nothing about the synced writes that did not carry it.
 */
export const SYNC_MARKER_KEY = spaceKey(KeySpace.raftLog, 'w');

/** What a write op adds to the replicated state, for the quota's estimate between measurements. */
function stateBytes(op: BatchOp): number {
  return op.type === 'put' ? op.key.length + op.value.length : op.key.length;
}

function syncMarkerOp(epoch: number): BatchOp {
  const value = Buffer.alloc(4);
  value.writeUInt32BE(epoch);
  return { type: 'put', key: SYNC_MARKER_KEY, value };
}

/** The epoch before `epoch` (SyncJournal.reset skips 0 when it wraps). */
function previousEpoch(epoch: number): number {
  return epoch === 1 ? 0xffffffff : epoch - 1;
}

export class Backend {
  private readonly writes: LevelWriteQueue;
  private closed = false;
  /** Ops requested but not yet landed, by key (latin1): value, or null for a delete. */
  private readonly pending = new Map<string, Buffer | null>();
  /**
   * Bytes of replicated state requested since open (queued, in flight or landed); a cheap
   * stand-in for growth between size samples.
   */
  private writtenBytes = 0;
  /** The part of `writtenBytes` that has landed in LevelDB. */
  private landedBytes = 0;
  /** The first failed write: no LevelDB write may follow it (see storage-error.ts). */
  private failure: StorageError | undefined;
  /** The flush and measurement under way for the quota (flushedStateSizeBytes). */
  private flushedSize: Promise<number> | undefined;
  /** `writtenBytes` when the last quota flush began: what was written since may be unflushed. */
  private writtenAtFlush = 0;

  private constructor(
    readonly dir: string,
    private readonly db: ClassicLevel<Buffer, Buffer>,
    /** The most LevelDB's memtables hold: a memtable filling and a full one being flushed. */
    private readonly memtablesBytes: number,
    onWrite: ((seconds: number, synced: boolean) => void) | undefined,
    private readonly onFailure: StorageFailureSink | undefined,
    private readonly journal: SyncJournal,
    journalOptions: Pick<BackendOptions, 'onJournalSync' | 'journalCheckpointMs'>,
  ) {
    this.writes = new LevelWriteQueue(db, {
      failed: (cause) => this.failed('write', cause),
      onLanded: (write, more) => {
        this.countLanded(write);
        this.forgetLanded(write, more);
      },
      onWrite,
      ...journalQueueOptions(journal, journalOptions),
    });
  }

  /** Records a storage failure, tells the sink, and returns the error to throw. */
  private failed(kind: 'write' | 'damaged', cause: unknown): StorageError {
    const error = new StorageError(kind, this.dir, levelErrorDetail(cause));
    if (kind === 'write') this.failure ??= error;
    this.onFailure?.(error);
    return error;
  }

  /** Opens (creating if needed) the database under `dataDir/db`, checking its format. */
  static async open(dataDir: string, options: BackendOptions = {}): Promise<Backend> {
    // etcd's member/ beside our db is an imported etcd data dir (node/etcd-data-dir-import.ts);
    // without our db, nothing has imported it and opening would hide etcd's data.
    if (existsSync(join(dataDir, 'member')) && !existsSync(join(dataDir, 'db'))) {
      throw new StorageFormatError(
        `data dir ${dataDir} holds an etcd data directory (member/) that was not imported. ` +
          'Start `metastore` on it to import it, or use `metastore migrate --from-etcd-data-dir`.',
      );
    }
    // Private, as etcd makes its data dir (0700): it holds every value and the auth database.
    mkdirSync(dataDir, { recursive: true, mode: PRIVATE_DIR_MODE });
    const dir = join(dataDir, 'db');
    const isNew = !existsSync(dir) || readdirSync(dir).length === 0;
    const writeBufferSize = options.writeBufferSizeBytes ?? 16 * 1024 * 1024;
    const journalPath = join(dataDir, JOURNAL_FILE);
    // A journal beside a database created just now belongs to a database that is gone.
    if (isNew) rmSync(journalPath, { force: true });
    // Read before LevelDB opens: its epoch is the witness of a torn log's cut (leveldb-files-check.ts).
    const opened = openJournal(journalPath, options);
    const db = new ClassicLevel<Buffer, Buffer>(dir, {
      keyEncoding: 'buffer',
      valueEncoding: 'buffer',
      cacheSize: options.cacheSizeBytes ?? 64 * 1024 * 1024,
      writeBufferSize,
      maxOpenFiles: options.maxOpenFiles ?? DEFAULT_MAX_OPEN_FILES,
      compression: options.compression ?? true,
    });
    try {
      await openCheckedLevelDb(db, dir, options.onFailure, {
        witness: opened.fileExists ? syncWitness(opened.journal.currentEpoch) : undefined,
        logger: options.logger,
      });
    } catch (error) {
      opened.journal.close();
      throw error;
    }
    let format: Buffer | undefined;
    try {
      format = db.getSync(FORMAT_KEY);
    } catch (error) {
      // A point read of a Buffer key fails only when LevelDB cannot read its files.
      const damaged = new StorageError('damaged', dir, levelErrorDetail(error));
      options.onFailure?.(damaged);
      opened.journal.close();
      await db.close();
      throw damaged;
    }
    if (format === undefined) {
      if (!isNew) {
        opened.journal.close();
        await db.close();
        throw new StorageFormatError(`data dir ${dataDir} holds a database without a MetaStore format marker; refusing to use it`);
      }
      // No marker: a new database has no journal file yet (see syncMarkerOp in the constructor).
      await db.batch([{ type: 'put', key: FORMAT_KEY, value: Buffer.from(FORMAT_VERSION) }], { sync: true });
    } else if (format.toString() !== FORMAT_VERSION) {
      opened.journal.close();
      await db.close();
      throw new StorageFormatError(`data dir ${dataDir} has format "${format.toString()}", this MetaStore reads "${FORMAT_VERSION}"`);
    }
    const journal = await replayJournal(db, opened, options);
    return new Backend(dir, db, 2 * writeBufferSize, options.onWrite, options.onFailure, journal, options);
  }

  /**
   * Synchronous point read that sees every write already requested, landed or not: queued and
   * in-flight ops are consulted first, then LevelDB (memtable or block cache in steady state).
   */
  get(space: KeySpace, key: Buffer | string): Buffer | undefined {
    return this.getRaw(spaceKey(space, key));
  }

  getRaw(fullKey: Buffer): Buffer | undefined {
    if (this.pending.size > 0) {
      const pending = this.pending.get(fullKey.toString('latin1'));
      if (pending !== undefined) return pending === null ? undefined : pending;
    }
    try {
      return this.db.getSync(fullKey);
    } catch (error) {
      // A point read of a Buffer key fails only when LevelDB cannot read its files.
      throw this.failed('damaged', error);
    }
  }

  /** Iterates one key space in key order; yields keys without the space prefix. */
  async *scan(space: KeySpace, range: { gte?: Buffer; lt?: Buffer } = {}): AsyncGenerator<[Buffer, Buffer]> {
    const gte = spaceKey(space, range.gte ?? Buffer.alloc(0));
    const lt = range.lt ? spaceKey(space, range.lt) : Buffer.from([space + 1]);
    const iterator = this.db.iterator({ gte, lt });
    try {
      while (true) {
        let next: [Buffer, Buffer] | undefined;
        try {
          next = await iterator.next();
        } catch (error) {
          throw this.failed('damaged', error);
        }
        if (next === undefined) return;
        yield [next[0].subarray(1), next[1]];
      }
    } finally {
      await iterator.close();
    }
  }

  /**
   * Queues ops to be written after every earlier write; resolves once they are on disk
   * (synced to the device when `sync` is true).
   *
   * An unsynced write does not start a LevelDB write of its own right away: it waits a little
   * (level-write-queue.ts) for the next synced write to carry it, so that under load the apply
   * batch of one turn and the log entries of the next share a single LevelDB write (and fsync).
   * A `prompt` one starts at once (the Raft log's writes, which the Raft driver waits for),
   * carrying what waits.
   */
  write(ops: BatchOp[], options: { sync: boolean; prompt?: boolean; journal?: JournalKind; landed?: () => void }): Promise<void> {
    assert(!this.closed, 'write after close');
    if (this.failure !== undefined) return Promise.reject(this.failure);
    const keys: string[] = [];
    for (const op of ops) {
      // The Raft log store reads its own keys from the database and its cache, never through
      // get(): its entries (most ops of a busy member) skip the pending map ('' matches none).
      if (op.key[0] === KeySpace.raftLog) {
        keys.push('');
        continue;
      }
      const key = op.key.toString('latin1');
      keys.push(key);
      this.pending.set(key, op.type === 'put' ? op.value : null);
      this.writtenBytes += stateBytes(op);
    }
    return this.writes.write(ops, { ...options, keys });
  }

  /**
   * A synced write that changes nothing (the member-local format marker, written again): once it
   * resolves, every write requested before it is durable. A log kept in a wal dir needs it before
   * it drops entries whose apply batches are here (server/member/replication.ts).
   */
  sync(): Promise<void> {
    return this.write([{ type: 'put', key: FORMAT_KEY, value: Buffer.from(FORMAT_VERSION) }], { sync: true });
  }

  /**
   * The writer of a Raft log kept in this database (RaftLogStore's `writer` option), so the
   * database keeps one write queue: every log write is waited for, so none waits for a synced
   * one to carry it (prompt), and the apply batch waiting in the queue rides on it.
   */
  readonly raftLogWriter = (ops: BatchOp[], sync: boolean, journal: JournalKind, landed: () => void): Promise<void> =>
    this.write(ops, { sync, prompt: true, journal, landed });

  /** Landed: LevelDB answers for these keys now, unless a later write is pending for them. */
  private forgetLanded(landed: MergedWrite, more: boolean): void {
    // One write is in flight at a time: with none queued behind it, every pending op was its.
    if (!more) {
      this.pending.clear();
      return;
    }
    for (let i = 0; i < landed.ops.length; i++) {
      const op = landed.ops[i] as BatchOp;
      const key = landed.keys[i] as string;
      if (this.pending.get(key) === (op.type === 'put' ? op.value : null)) this.pending.delete(key);
    }
  }

  /** Counts the bytes of replicated state a batch carried into LevelDB. */
  private countLanded(write: MergedWrite): void {
    for (const op of write.ops) {
      // The Raft log (written through this queue, replication.ts) is not replicated state.
      if (op.key[0] !== KeySpace.raftLog) this.landedBytes += stateBytes(op);
    }
  }

  /** Size on disk of the database's files, bytes (etcd's dbSize is its file size). */
  async sizeBytes(): Promise<number> {
    let total = 0;
    for (const name of await readdir(this.dir)) {
      try {
        total += (await stat(join(this.dir, name))).size;
      } catch {
        // LevelDB may delete a table file between the listing and the stat: it no longer counts.
      }
    }
    return total;
  }

  /**
   * Approximate size of the replicated state on disk (every key space but the Raft log),
   * what --quota-backend-bytes limits: etcd's quota counts its backend, not its WAL. LevelDB
   * only counts flushed tables here; callers add what they wrote since.
   */
  async stateSizeBytes(): Promise<number> {
    // Two ranges around the Raft log instead of one call per key space: the quota sampler runs
    // this every second, and each approximateSize call costs main-thread time (2% of a member's
    // profile during a 300k-key fill with one call per space).
    const spaces = Object.values(KeySpace);
    const low = Buffer.from([Math.min(...spaces)]);
    const high = Buffer.from([Math.max(...spaces) + 1]);
    const [below, above] = await Promise.all([
      this.db.approximateSize(low, Buffer.from([KeySpace.raftLog])),
      this.db.approximateSize(Buffer.from([KeySpace.raftLog + 1]), high),
    ]);
    return below + above;
  }

  /**
   * stateSizeBytes() with what the memtables hold counted: LevelDB's sizes see flushed tables
   * only, and a memtable (`server.storage.write_buffer_size`, 16 MiB by default) can hold far
   * more than a small quota. Flushing costs a level-0 table, so this is for the quota's
   * decision to refuse a write, not for the once-a-second sample.
   */
  flushedStateSizeBytes(): Promise<number> {
    // Writes near the quota all ask at once: they share one flush and measurement.
    this.flushedSize ??= this.flushAndMeasure().finally(() => (this.flushedSize = undefined));
    return this.flushedSize;
  }

  private async flushAndMeasure(): Promise<number> {
    // Landed before the flush starts, so flushed by it: a write queued or in flight now (a
    // member's last apply batch, say, or a write its journal has acknowledged) may reach
    // LevelDB after the flush, and still counts on top of the measurement (counting it as
    // flushed once let a member admit values past a small quota).
    const written = this.landedBytes;
    // A manual compaction first flushes the memtable; over a range that holds no key (below
    // every key space) it compacts nothing else.
    await this.db.compactRange(Buffer.from([0x00]), Buffer.from([0x00, 0x00]));
    this.writtenAtFlush = written;
    return this.stateSizeBytes();
  }

  /**
   * What the bytes written since the last quota flush (`flushedStateSizeBytes`) began count
   * in `writtenBytes`: the written-since of the exact measurement that flush made.
   */
  get bytesWrittenAtFlush(): number {
    return this.writtenAtFlush;
  }

  /**
   * At most how many bytes of replicated state the memtables may hold unflushed, which
   * `stateSizeBytes()` does not see: what was written since the last quota flush, but never
   * more than the memtables hold (LevelDB flushes a full one on its own).
   */
  get unflushedBytesBound(): number {
    return Math.min(this.writtenBytes - this.writtenAtFlush, this.memtablesBytes);
  }

  /** Whether one key space holds any key on disk (queued writes are not looked at). */
  async hasKeysIn(space: KeySpace): Promise<boolean> {
    try {
      for await (const _ of this.db.keys({ gte: Buffer.from([space]), lt: Buffer.from([space + 1]), limit: 1 })) return true;
      return false;
    } catch (error) {
      throw this.failed('damaged', error);
    }
  }

  /**
   * For readers of this database outside the backend (snapshot views): a LevelDB read that
   * failed means a damaged file, which reaches the failure sink like the backend's own reads.
   */
  readFailed(error: unknown): StorageError {
    return this.failed('damaged', error);
  }

  /** Approximate size of one key space, bytes (what is "in use" for etcd's dbSizeInUse). */
  async spaceSizeBytes(space: KeySpace): Promise<number> {
    return this.db.approximateSize(Buffer.from([space]), Buffer.from([space + 1]));
  }

  /** Compacts the whole key range: LevelDB's equivalent of etcd's defragment. */
  async compactAll(): Promise<void> {
    await this.db.compactRange(Buffer.from([0x00]), Buffer.from([0xff]));
  }

  get bytesWritten(): number {
    return this.writtenBytes;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    // Let queued writes land, synced, before closing: they may carry acknowledged state.
    await this.writes.drain();
    this.closed = true;
    this.journal.close();
    await this.db.close();
  }

  /**
   * Creates the sync journal's file now if it is not there: called at start by a member whose
   * Raft log lives in this database. Creating it zero-fills and syncs 64 MiB on the main thread
   * (60-400 ms), which would otherwise stall a new member's first log write.
   */
  createJournalFile(): void {
    createJournalFile(this.journal, this.onFailure);
  }

  /** The first failed write, if any: the member is failing stop. */
  get writeFailure(): StorageError | undefined {
    return this.failure;
  }

  /** The underlying database, for stores that manage their own key space (the raft log). */
  get level(): ClassicLevel<Buffer, Buffer> {
    return this.db;
  }
}

/**
 * The journal part of the write queue of a database holding a Raft log: the backend's, or a
 * wal dir's (wal-dir.ts). Once the journal's file exists (it is never removed while the
 * database is open), every synced write carries the sync marker: the journal's epoch.
 */
export function journalQueueOptions(
  journal: SyncJournal,
  options: Pick<BackendOptions, 'onJournalSync' | 'journalCheckpointMs'>,
): Pick<LevelWriteQueueOptions, 'journal' | 'syncMarkerOp' | 'onJournalSync' | 'checkpointIntervalMs'> {
  let journalFileExists = false;
  return {
    journal,
    syncMarkerOp: () => {
      journalFileExists ||= existsSync(journal.path);
      return journalFileExists ? syncMarkerOp(journal.currentEpoch) : undefined;
    },
    onJournalSync: options.onJournalSync,
    checkpointIntervalMs: options.journalCheckpointMs,
  };
}

/** The witness that a damaged newest LevelDB log was torn after every synced write (leveldb-files-check.ts). */
function syncWitness(epoch: number): TornTailWitness {
  // The last synced write that landed put the epoch the journal's reset then ended, or this
  // one when the power went before the reset was durable.
  const kept = [epoch, previousEpoch(epoch)];
  return {
    markerKey: SYNC_MARKER_KEY,
    keeps: (value) => value.length === 4 && kept.includes(value.readUInt32BE(0)),
    expected: kept.map((e) => e.toString(16).padStart(8, '0')).join(' or '),
  };
}

export type OpenedJournal = ReturnType<typeof SyncJournal.open> & { fileExists: boolean };

/** Opens the sync journal (reads its records); a journal that cannot be read is a damaged file. */
export function openJournal(path: string, options: Pick<BackendOptions, 'journalBytes' | 'onFailure'>): OpenedJournal {
  const fileExists = existsSync(path);
  try {
    return { ...SyncJournal.open(path, { sizeBytes: options.journalBytes }), fileExists };
  } catch (error) {
    const failure = new StorageError(error instanceof JournalDamagedError ? 'damaged' : 'write', path, levelErrorDetail(error));
    options.onFailure?.(failure);
    throw failure;
  }
}

/** Creates `journal`'s file if it is not there (SyncJournal.prepare); a failure is a write failure. */
export function createJournalFile(journal: SyncJournal, onFailure: StorageFailureSink | undefined): void {
  try {
    journal.prepare();
  } catch (error) {
    const failure = new StorageError('write', journal.path, levelErrorDetail(error));
    onFailure?.(failure);
    throw failure;
  }
}

/**
 * Brings the Raft log kept in `db` up to date from its sync journal: the journal's records
 * (writes that may be missing from LevelDB after a power loss) are written to LevelDB in one
 * synced write with the sync marker, then the journal starts a new epoch (a checkpoint). Every
 * open with a journal file makes that write, even with nothing to replay, so the log LevelDB
 * has just started holds a marker from its first write on. A failure closes the database.
 */
export async function replayJournal(db: ClassicLevel<Buffer, Buffer>, opened: OpenedJournal, options: Pick<BackendOptions, 'onFailure'>): Promise<SyncJournal> {
  const { journal, replay } = opened;
  try {
    if (opened.fileExists) {
      await db.batch([...replay, syncMarkerOp(journal.currentEpoch)], { sync: true });
      journal.reset();
    }
    return journal;
  } catch (error) {
    journal.close();
    await db.close();
    const failure = new StorageError('write', journal.path, levelErrorDetail(error));
    options.onFailure?.(failure);
    throw failure;
  }
}
