// Opens the member's database and fixes its identity. The member and cluster IDs are found at
// first start (derived from the configuration, or asked of the running cluster by a member
// joining it: node/join-cluster.ts), stored, and read back on every later start (as etcd
// does), so a later change of flags cannot silently re-identify a member and a restart asks no
// one. A member configured with explicit IDs that joins an existing cluster learns the cluster
// ID from its first peer frame and stores it then.
//
// The Raft log lives in the backend's database, or with a wal dir in its own database there
// (storage/wal-dir.ts); a data dir and a wal dir that do not belong together are refused
// before anything is written, the identity included.

import type { Config } from '../config/schema.js';
import { META_APPLIED_INDEX } from '../server/apply/applier.js';
import type { Logger } from 'pino';
import { Backend, KeySpace, spaceKey } from '../storage/backend.js';
import type { StorageError, StorageFailureSink } from '../storage/storage-error.js';
import { WalDb, checkLogLocation } from '../storage/wal-dir.js';

export interface Identity {
  memberId: bigint;
  clusterId: bigint;
}

export interface StorageOptions {
  dataDir: string;
  /** Where the Raft log's own database goes; empty = inside the data dir's database. */
  walDir: string;
  storage: Config['storage'];
  /**
   * The identity a first start stores, called only when the data dir holds none; when it
   * throws, nothing is stored (the next start finds it again) and the error is the open's.
   */
  firstStart(): Promise<Identity>;
  /** Every backend write with its duration, and whether it was synced (for the disk metrics). */
  onWrite(seconds: number, synced: boolean): void;
  /**
   * Every fdatasync'd append of the Raft log's sync journal (storage/sync-journal.ts) with its
   * duration: what makes a Ready's entries durable, etcd's WAL fsync.
   */
  onJournalSync?(seconds: number): void;
  /** A failed write or read of either database: the member's fail-stop (storageFailStop). */
  onFailure: StorageFailureSink;
  /** Where the open's warning goes when it cuts a LevelDB log torn by a power loss. */
  logger?: Pick<Logger, 'warn'>;
}

export interface NodeStorage {
  readonly backend: Backend;
  /** The Raft log's own database (--wal-dir) with its journal; undefined when the log is in the backend's. */
  readonly raftLogDb: WalDb | undefined;
  /** This member's identity: one object, read live by whoever holds it (the cluster ID may be learnt). */
  readonly identity: Identity;
  /** Whether the data dir already held an identity (a restart rather than a first start). */
  readonly identityWasStored: boolean;
  /** Where the raft log store reports its failed writes and reads (the same fail-stop). */
  readonly onFailure: StorageFailureSink;
  /** Records the cluster ID a joining member learnt from its peers. */
  adoptClusterId(clusterId: bigint): Promise<void>;
  close(): Promise<void>;
}

const IDENTITY_KEY = 'local';

export async function openStorage(options: StorageOptions): Promise<NodeStorage> {
  const backend = await Backend.open(options.dataDir, {
    cacheSizeBytes: options.storage.blockCacheSize,
    writeBufferSizeBytes: options.storage.writeBufferSize,
    maxOpenFiles: options.storage.maxOpenFiles,
    compression: options.storage.compression,
    onWrite: (seconds, synced) => options.onWrite(seconds, synced),
    onJournalSync: options.onJournalSync === undefined ? undefined : (seconds) => options.onJournalSync?.(seconds),
    onFailure: options.onFailure,
    logger: options.logger,
  });
  const stored = backend.get(KeySpace.members, IDENTITY_KEY);
  let raftLogDb: WalDb | undefined;
  let identity: Identity;
  try {
    identity = stored !== undefined ? { memberId: stored.readBigUInt64BE(0), clusterId: stored.readBigUInt64BE(8) } : { ...(await options.firstStart()) };
    raftLogDb = await openRaftLogDb(backend, options, stored !== undefined);
    if (raftLogDb === undefined) backend.createJournalFile();
  } catch (error) {
    await backend.close();
    throw error;
  }
  if (stored === undefined) await storeIdentity(backend, identity);
  return {
    backend,
    raftLogDb,
    identity,
    identityWasStored: stored !== undefined,
    onFailure: options.onFailure,
    adoptClusterId: (clusterId) => {
      identity.clusterId = clusterId;
      return storeIdentity(backend, identity);
    },
    close: async () => {
      await backend.close();
      await raftLogDb?.close();
    },
  };
}

/** The wal dir's database after checking it belongs to this data dir; undefined without one. */
async function openRaftLogDb(backend: Backend, options: StorageOptions, identityStored: boolean): Promise<WalDb | undefined> {
  const applied = backend.get(KeySpace.meta, META_APPLIED_INDEX);
  const hasApplied = applied !== undefined && applied.readBigUInt64BE(0) > 0n;
  const hasLogInside = await backend.hasKeysIn(KeySpace.raftLog);
  checkLogLocation(options.dataDir, options.walDir, { hasHistory: identityStored || hasApplied, hasApplied, hasLogInside });
  if (options.walDir === '') return undefined;
  // Its writes and its journal's fdatasyncs count as the backend's do (the disk metrics).
  return WalDb.open(options.walDir, {
    writeBufferSizeBytes: options.storage.writeBufferSize,
    onWrite: (seconds, synced) => options.onWrite(seconds, synced),
    onJournalSync: options.onJournalSync === undefined ? undefined : (seconds) => options.onJournalSync?.(seconds),
    onFailure: options.onFailure,
  });
}

async function storeIdentity(backend: Backend, identity: Identity): Promise<void> {
  const value = Buffer.alloc(16);
  value.writeBigUInt64BE(identity.memberId, 0);
  value.writeBigUInt64BE(identity.clusterId, 8);
  await backend.write([{ type: 'put', key: spaceKey(KeySpace.members, Buffer.from(IDENTITY_KEY)), value }], { sync: true });
}

/**
 * The member's answer to a storage failure: one fatal line naming the directory, LevelDB's
 * message and what to do, then exit: 1 after a failed write (free space, restart), 2 for a
 * damaged file (the member must not serve it; restore or re-add the member).
 */
export function storageFailStop(logger: Pick<Logger, 'fatal'>, exit: (code: number) => never): (error: StorageError) => never {
  return (error) => {
    logger.fatal({ dir: error.dir, detail: error.detail, kind: error.kind }, error.message);
    return exit(error.kind === 'write' ? 1 : 2);
  };
}
