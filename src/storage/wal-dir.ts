// The Raft log's own LevelDB when the member is given a wal dir (etcd's --wal-dir, usually on
// a separate, faster device): the directory is the database, holding the same raft-log key
// space RaftLogStore writes into the backend's database otherwise. Which of the two a member
// uses is fixed by its history: a data dir and a wal dir are used together or not at all, so
// a member never starts from its state without its log, nor from a log without its state.

import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { ClassicLevel } from 'classic-level';
import { PRIVATE_DIR_MODE, StorageFormatError } from './backend.js';
import { openCheckedLevelDb } from './leveldb-files-check.js';
import type { StorageFailureSink } from './storage-error.js';

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

/** Opens (creating if needed) the Raft log's database in `walDir`. */
export async function openWalDb(
  walDir: string,
  options: { cacheSizeBytes?: number; writeBufferSizeBytes?: number; onFailure?: StorageFailureSink } = {},
): Promise<RaftLogDb> {
  mkdirSync(walDir, { recursive: true, mode: PRIVATE_DIR_MODE });
  const db = new ClassicLevel<Buffer, Buffer>(walDir, {
    keyEncoding: 'buffer',
    valueEncoding: 'buffer',
    cacheSize: options.cacheSizeBytes ?? 8 * 1024 * 1024,
    writeBufferSize: options.writeBufferSizeBytes ?? 16 * 1024 * 1024,
  });
  await openCheckedLevelDb(db, walDir, options.onFailure);
  return db;
}
