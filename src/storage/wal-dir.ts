// The Raft log's own LevelDB when the member is given a wal dir (etcd's --wal-dir, usually on
// a separate, faster device): the directory is the database, holding the same raft-log key
// space RaftLogStore writes into the backend's database otherwise. Which of the two a member
// uses is fixed by its history: a data dir and a wal dir are used together or not at all, so
// a member never starts from its state without its log, nor from a log without its state.
//
// The wal dir's database is written as the backend's is when it holds the log: through its
// one ordered write queue (level-write-queue.ts), owned here with the database, and with the
// sync journal `<wal dir>/raft.journal` (sync-journal.ts): the log's frequent writes go to
// LevelDB unsynced and to the journal, fdatasync'd; at open the journal is replayed into
// LevelDB (backend.ts replayJournal, the one replay path) before the log is read; `close()`
// drains the queue (a checkpoint: the journal is left empty) before the database closes.

import { existsSync, mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { ClassicLevel } from 'classic-level';
import { type BackendOptions, createJournalFile, PRIVATE_DIR_MODE, StorageFormatError, journalQueueOptions, openJournal, replayJournal } from './backend.js';
import { LevelWriteQueue } from './level-write-queue.js';
import { openCheckedLevelDb } from './leveldb-files-check.js';
import type { RaftLogWriter } from './raft-log-store.js';
import { StorageError, levelErrorDetail } from './storage-error.js';
import { JOURNAL_FILE, type SyncJournal } from './sync-journal.js';

export type RaftLogDb = ClassicLevel<Buffer, Buffer>;

/** A data dir and a wal dir that do not belong together, or a log where it should not be. */
export class WalDirMismatchError extends StorageFormatError {
  override name = 'WalDirMismatchError';
}

/**
 * Whether `walDir` holds a Raft log database. Only LevelDB's own files count: an etcd wal dir
 * being taken over holds etcd's *.wal files, which LevelDB leaves alone beside its own.
 */
export function walDirHasLog(walDir: string): boolean {
  return existsSync(join(walDir, 'CURRENT'));
}

/** What the data dir's own database says about the member's past. */
export interface DataDirHistory {
  /** Identity stored or entries applied: the member has run (or was restored) here. */
  hasHistory: boolean;
  /** Entries applied: the state came out of a Raft log, which must still exist. */
  hasApplied: boolean;
  /** The backend's database holds raft-log keys (the log lives inside the data dir). */
  hasLogInside: boolean;
}

/**
 * Refuses a pairing of data dir and wal dir (or of a data dir and no wal dir) that cannot be
 * the member's own: each case is one line naming both directories.
 */
export function checkLogLocation(dataDir: string, walDir: string, history: DataDirHistory): void {
  if (walDir === '') {
    if (history.hasApplied && !history.hasLogInside) {
      throw new WalDirMismatchError(
        `data dir ${dataDir} has applied entries but no Raft log in it: it was used with a --wal-dir, start it with that --wal-dir`,
      );
    }
    return;
  }
  if (history.hasLogInside) {
    throw new WalDirMismatchError(`data dir ${dataDir} keeps its Raft log inside; refusing --wal-dir ${walDir} (start without --wal-dir)`);
  }
  const walHasLog = walDirHasLog(walDir);
  if (!walHasLog && history.hasHistory) {
    throw new WalDirMismatchError(`wal dir ${walDir} is missing or empty but data dir ${dataDir} has history; refusing to start without its Raft log`);
  }
  if (walHasLog && !history.hasHistory) {
    throw new WalDirMismatchError(`wal dir ${walDir} holds a Raft log but data dir ${dataDir} has no history; refusing to start a log without its state`);
  }
}

export interface WalDbOptions extends Pick<BackendOptions, 'onFailure' | 'journalBytes' | 'onJournalSync' | 'journalCheckpointMs'> {
  cacheSizeBytes?: number;
  writeBufferSizeBytes?: number;
  /** Called after every LevelDB batch lands: its duration and whether it was synced. */
  onWrite?: (seconds: number, synced: boolean) => void;
}

/** The wal dir's database, its write queue and the Raft log's sync journal there. */
export class WalDb {
  private closed = false;

  private constructor(
    readonly dir: string,
    /** The database, for the log store's reads (its writes go through raftLogWriter). */
    readonly level: RaftLogDb,
    private readonly writes: LevelWriteQueue,
    private readonly journal: SyncJournal,
  ) {}

  /** Opens (creating if needed) the Raft log's database in `walDir`, its journal replayed. */
  static async open(walDir: string, options: WalDbOptions = {}): Promise<WalDb> {
    mkdirSync(walDir, { recursive: true, mode: PRIVATE_DIR_MODE });
    const journalPath = join(walDir, JOURNAL_FILE);
    // A journal beside a database not created yet belongs to a database that is gone.
    if (!walDirHasLog(walDir)) rmSync(journalPath, { force: true });
    const opened = openJournal(journalPath, options);
    const db = new ClassicLevel<Buffer, Buffer>(walDir, {
      keyEncoding: 'buffer',
      valueEncoding: 'buffer',
      cacheSize: options.cacheSizeBytes ?? 8 * 1024 * 1024,
      writeBufferSize: options.writeBufferSizeBytes ?? 16 * 1024 * 1024,
    });
    try {
      // No torn-tail witness here: any damage in the wal dir's logs is refused (leveldb-files-check.ts).
      await openCheckedLevelDb(db, walDir, options.onFailure);
    } catch (error) {
      opened.journal.close();
      throw error;
    }
    const journal = await replayJournal(db, opened, options);
    // The log is always here: the journal's file is made now, not at the first log write.
    try {
      createJournalFile(journal, options.onFailure);
    } catch (error) {
      journal.close();
      await db.close();
      throw error;
    }
    const writes = new LevelWriteQueue(db, {
      failed: (cause) => {
        const error = new StorageError('write', walDir, levelErrorDetail(cause));
        options.onFailure?.(error);
        return error;
      },
      onWrite: options.onWrite,
      ...journalQueueOptions(journal, options),
    });
    return new WalDb(walDir, db, writes, journal);
  }

  /**
   * The log store's writer (RaftLogStore's `writer` option), as the backend's raftLogWriter:
   * every log write is waited for, so none waits for another to carry it (prompt).
   */
  readonly raftLogWriter: RaftLogWriter = (ops, sync, journal, landed) => this.writes.write(ops, { sync, prompt: true, journal, landed });

  /** Lands what is queued, synced (the journal checkpointed, left empty), then closes. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.writes.drain();
    this.journal.close();
    if (this.level.status === 'open') await this.level.close();
  }
}
