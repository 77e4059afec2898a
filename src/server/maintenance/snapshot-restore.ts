// Building a member's database from a snapshot file of either kind (snapshot-file.ts): for
// `metastore snapshot restore`, `metastore migrate --from-etcd-data-dir` and the one-time
// import when MetaStore starts on a data dir etcd wrote.
//
// Invariants:
// - Nothing is written unless the whole file goes in: the database is built in a scratch
//   directory beside its destination and renamed into place at the end; on any failure the
//   scratch directory is removed and the destination is as it was.
// - Restore writes only into a data dir that does not exist or is empty. The result holds the
//   replicated key spaces (MVCC records with their revisions, leases, auth, the compacted
//   revision) and a Raft log that starts after them, as etcd's restore leaves it: a Raft
//   snapshot at index N (the N members of --initial-cluster, term 1, all of them voters), a
//   hard state committed up to N and the applied index N. The restored state is therefore the
//   state "at index N": a member added later is behind the log's first index and is sent a
//   dump of the whole state, never a replay of a log that does not hold it. No member list or
//   identity: at first start the member derives its IDs from the same flags and seeds the
//   member list from them (restoreSnapshot checks the flags give the IDs the snapshot names).
// - An etcd data dir is only read: its member/ directory stays as etcd left it (and an etcd
//   wal dir given as --wal-dir only gains the Raft log database's files beside etcd's).

import { existsSync, mkdirSync, readdirSync, renameSync, rmSync, rmdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { NONE } from '../../raft/types.js';
import { Backend, KeySpace, spaceKey, type BatchOp } from '../../storage/backend.js';
import { RaftLogStore } from '../../storage/raft-log-store.js';
import { WalDb, walDirHasLog } from '../../storage/wal-dir.js';
import { META_APPLIED_INDEX } from '../apply/applier.js';
import { SnapshotFileError } from './backup-format.js';
import { deriveClusterId, deriveMemberId } from '../membership/member-id.js';
import { openSnapshotFile, type OpenedSnapshot, type SnapshotSummary } from './snapshot-file.js';

export interface MembershipOptions {
  name: string;
  /** The new cluster: every member's name and peer URLs (as given, etcd hashes them verbatim). */
  initialCluster: ReadonlyArray<{ name: string; peerUrls: readonly string[] }>;
  initialClusterToken: string;
  /** This member's advertised peer URLs; must equal its --initial-cluster entry. */
  advertisePeerUrls: readonly string[];
}

export interface RestoreOptions extends MembershipOptions {
  snapshotFile: string;
  dataDir: string;
  /** The member's --wal-dir: its Raft log is written there; empty or absent = inside dataDir. */
  walDir?: string;
  skipHashCheck: boolean;
}

export interface RestoreResult {
  summary: SnapshotSummary;
  /** The member and cluster IDs the restored member will derive from the same flags. */
  memberId: bigint;
  clusterId: bigint;
  /** Entries written. */
  entries: number;
}

/** Where a stopped etcd member keeps its backend inside its data dir. */
export function etcdMemberDatabase(etcdDataDir: string): string {
  return join(etcdDataDir, 'member', 'snap', 'db');
}

/** Builds a new member's data dir from a snapshot file; see the file header. */
export async function restoreSnapshot(options: RestoreOptions): Promise<RestoreResult> {
  refuseOccupied(options.dataDir);
  const walDir = options.walDir === undefined || options.walDir === '' ? undefined : resolve(options.walDir);
  if (walDir !== undefined) refuseOccupied(walDir);
  const ids = membershipIds(options);
  const entries = await buildDatabase(options.snapshotFile, { ...options, voters: ids.voters, walDir }, resolve(options.dataDir), (scratch) => {
    moveInto(scratch.dataDir, options.dataDir);
    if (walDir !== undefined) moveInto(scratch.walDir, walDir);
  });
  return { ...entries, memberId: ids.memberId, clusterId: ids.clusterId };
}

/** `metastore migrate`: a stopped etcd member's database into a new member's data dir. */
export async function migrateEtcdDataDir(options: MembershipOptions & { etcdDataDir: string; dataDir: string; walDir?: string }): Promise<RestoreResult> {
  const database = etcdMemberDatabase(options.etcdDataDir);
  if (!existsSync(database)) throw new SnapshotFileError(`${options.etcdDataDir} is not an etcd data dir (no member/snap/db)`);
  return restoreSnapshot({ ...options, snapshotFile: database, skipHashCheck: true });
}

/**
 * The one-time import when MetaStore starts on a data dir etcd wrote: etcd's database becomes
 * `<dataDir>/db`, next to etcd's untouched member/ directory, its log starting after the
 * `voters` (the member IDs of the flags' initial cluster) as a restore's does. Undefined when
 * there is nothing to import (no etcd database, or imported already).
 */
export async function importEtcdDataDirInPlace(
  dataDir: string,
  voters: readonly bigint[],
  walDir = '',
): Promise<Omit<RestoreResult, 'memberId' | 'clusterId'> | undefined> {
  const database = etcdMemberDatabase(dataDir);
  if (!existsSync(database) || existsSync(join(dataDir, 'db'))) return undefined;
  if (walDir !== '' && walDirHasLog(walDir)) throw new SnapshotFileError(`wal dir ${walDir} already holds a MetaStore Raft log`);
  const wal = walDir === '' ? undefined : resolve(walDir);
  return buildDatabase(database, { skipHashCheck: true, voters, walDir: wal }, join(dataDir, 'db'), (scratch) => {
    if (wal !== undefined) moveInto(scratch.walDir, wal);
    renameSync(join(scratch.dataDir, 'db'), join(dataDir, 'db'));
    rmSync(scratch.dataDir, { recursive: true, force: true });
  });
}

function refuseOccupied(dataDir: string): void {
  if (existsSync(dataDir) && readdirSync(dataDir).length > 0) throw new SnapshotFileError(`data-dir "${dataDir}" exists`);
}

/**
 * Renames a finished scratch dir to its destination; into an existing destination (empty, or
 * an etcd wal dir whose files LevelDB's names never collide with) file by file.
 */
function moveInto(scratch: string, destination: string): void {
  if (!existsSync(destination)) {
    renameSync(scratch, destination);
    return;
  }
  for (const name of readdirSync(scratch)) renameSync(join(scratch, name), join(destination, name));
  rmdirSync(scratch);
}

function membershipIds(options: MembershipOptions): { memberId: bigint; clusterId: bigint; voters: bigint[] } {
  const self = options.initialCluster.find((m) => m.name === options.name);
  if (self === undefined) throw new SnapshotFileError(`member "${options.name}" is not in --initial-cluster`);
  const sameUrls = (a: readonly string[], b: readonly string[]): boolean => [...a].sort().join(',') === [...b].sort().join(',');
  if (options.advertisePeerUrls.length > 0 && !sameUrls(self.peerUrls, options.advertisePeerUrls)) {
    throw new SnapshotFileError(
      `--initial-cluster has ${options.name}=${self.peerUrls.join(',')} but --initial-advertise-peer-urls is ${options.advertisePeerUrls.join(',')}`,
    );
  }
  const ids = options.initialCluster.map((m) => deriveMemberId([...m.peerUrls], options.initialClusterToken));
  return { memberId: deriveMemberId([...self.peerUrls], options.initialClusterToken), clusterId: deriveClusterId(ids), voters: ids };
}

/** Bytes per LevelDB batch while restoring: bounds memory, not correctness (nothing reads yet). */
const RESTORE_BATCH_BYTES = 4 * 1024 * 1024;

/**
 * Writes the snapshot's entries into a scratch data dir beside `destination` (and the Raft
 * log into a scratch wal dir beside `walDir`, if given), then hands them to `place`; the
 * scratch dirs are gone afterwards whatever happens.
 */
async function buildDatabase(
  file: string,
  options: { skipHashCheck: boolean; voters: readonly bigint[]; walDir?: string },
  destination: string,
  place: (scratch: { dataDir: string; walDir: string }) => void,
): Promise<{ summary: SnapshotSummary; entries: number }> {
  const snapshot = await openSnapshotFile(file, options);
  const scratch = { dataDir: `${destination}.restoring-${process.pid}`, walDir: `${options.walDir ?? destination}.restoring-wal-${process.pid}` };
  try {
    for (const dir of [scratch.dataDir, scratch.walDir]) {
      mkdirSync(dirname(dir), { recursive: true });
      rmSync(dir, { recursive: true, force: true });
    }
    const entries = await writeEntries(snapshot, scratch.dataDir, options.voters, options.walDir === undefined ? undefined : scratch.walDir);
    place(scratch);
    return { summary: snapshot.summary, entries };
  } finally {
    snapshot.close();
    rmSync(scratch.dataDir, { recursive: true, force: true });
    rmSync(scratch.walDir, { recursive: true, force: true });
  }
}

async function writeEntries(snapshot: OpenedSnapshot, dataDir: string, voters: readonly bigint[], walDir: string | undefined): Promise<number> {
  const backend = await Backend.open(dataDir);
  let written = 0;
  try {
    let batch: BatchOp[] = [];
    let batchBytes = 0;
    for (const entry of snapshot.entries()) {
      batch.push({ type: 'put', key: spaceKey(entry.space, entry.key), value: entry.value });
      batchBytes += entry.key.length + entry.value.length;
      written++;
      if (batchBytes >= RESTORE_BATCH_BYTES) {
        await backend.write(batch, { sync: false });
        batch = [];
        batchBytes = 0;
      }
    }
    await backend.write(batch, { sync: true });
    await startLogAfterState(backend, voters, walDir);
  } finally {
    await backend.close();
  }
  return written;
}

/**
 * Makes the restored state the state at Raft index N = the number of voters: the applied index
 * N (replacing whatever index the file came with: an etcd snapshot carries its old cluster's
 * consistent index, meaningless in the new log), and a log whose snapshot is at N, term 1,
 * with every voter in its configuration, committed up to N. Raft then starts from the
 * snapshot (no bootstrap entries) and elects at term 2.
 */
async function startLogAfterState(backend: Backend, voters: readonly bigint[], walDir: string | undefined): Promise<void> {
  const index = voters.length;
  const applied = Buffer.alloc(8);
  applied.writeBigUInt64BE(BigInt(index));
  await backend.write([{ type: 'put', key: spaceKey(KeySpace.meta, META_APPLIED_INDEX), value: applied }], { sync: true });
  const walDb = walDir === undefined ? undefined : await WalDb.open(walDir);
  try {
    const log = await RaftLogStore.open(walDb?.level ?? backend.level, KeySpace.raftLog, { writer: walDb?.raftLogWriter ?? backend.raftLogWriter });
    const confState = { voters: [...voters].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0)), learners: [] };
    const snapshot = { metadata: { index, term: 1, confState }, data: new Uint8Array(0) };
    await log.save({ term: 1, vote: NONE, commit: index }, [], snapshot, { sync: true });
  } finally {
    await walDb?.close();
  }
}
