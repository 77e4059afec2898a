// Building a member's database from a snapshot file of either kind (snapshot-file.ts): for
// `metastore snapshot restore`, `metastore migrate --from-etcd-data-dir` and the one-time
// import when MetaStore starts on a data dir etcd wrote.
//
// Invariants:
// - Nothing is written unless the whole file goes in: the database is built in a scratch
//   directory beside its destination and renamed into place at the end; on any failure the
//   scratch directory is removed and the destination is as it was.
// - Restore writes only into a data dir that does not exist or is empty. The result looks
//   like the data dir of a brand-new member that already holds the state: the replicated key
//   spaces (MVCC records with their revisions, leases, auth, the compacted revision) and
//   nothing else. No raft log, no applied index, no member list or identity: at first start
//   the member derives its member and cluster IDs from its --initial-cluster flags, Raft
//   bootstraps the new membership at log indexes 1..N, and the applier (applied index 0)
//   applies them on top of the restored MVCC state, which carries its own revisions.
// - An etcd data dir is only read: its member/ directory stays as etcd left it.

import { existsSync, mkdirSync, readdirSync, renameSync, rmSync, rmdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { Backend, spaceKey, type BatchOp } from '../../storage/backend.js';
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
  const ids = membershipIds(options);
  const entries = await buildDatabase(options.snapshotFile, options, resolve(options.dataDir), (scratch) => {
    if (existsSync(options.dataDir)) rmdirSync(options.dataDir); // empty, checked above
    renameSync(scratch, options.dataDir);
  });
  return { ...entries, ...ids };
}

/** `metastore migrate`: a stopped etcd member's database into a new member's data dir. */
export async function migrateEtcdDataDir(options: MembershipOptions & { etcdDataDir: string; dataDir: string }): Promise<RestoreResult> {
  const database = etcdMemberDatabase(options.etcdDataDir);
  if (!existsSync(database)) throw new SnapshotFileError(`${options.etcdDataDir} is not an etcd data dir (no member/snap/db)`);
  return restoreSnapshot({ ...options, snapshotFile: database, skipHashCheck: true });
}

/**
 * The one-time import when MetaStore starts on a data dir etcd wrote: etcd's database becomes
 * `<dataDir>/db`, next to etcd's untouched member/ directory. Undefined when there is nothing
 * to import (no etcd database, or imported already).
 */
export async function importEtcdDataDirInPlace(dataDir: string): Promise<Omit<RestoreResult, 'memberId' | 'clusterId'> | undefined> {
  const database = etcdMemberDatabase(dataDir);
  if (!existsSync(database) || existsSync(join(dataDir, 'db'))) return undefined;
  return buildDatabase(database, { skipHashCheck: true }, join(dataDir, 'db'), (scratch) => {
    renameSync(join(scratch, 'db'), join(dataDir, 'db'));
    rmSync(scratch, { recursive: true, force: true });
  });
}

function refuseOccupied(dataDir: string): void {
  if (existsSync(dataDir) && readdirSync(dataDir).length > 0) throw new SnapshotFileError(`data-dir "${dataDir}" exists`);
}

function membershipIds(options: MembershipOptions): { memberId: bigint; clusterId: bigint } {
  const self = options.initialCluster.find((m) => m.name === options.name);
  if (self === undefined) throw new SnapshotFileError(`member "${options.name}" is not in --initial-cluster`);
  const sameUrls = (a: readonly string[], b: readonly string[]): boolean => [...a].sort().join(',') === [...b].sort().join(',');
  if (options.advertisePeerUrls.length > 0 && !sameUrls(self.peerUrls, options.advertisePeerUrls)) {
    throw new SnapshotFileError(
      `--initial-cluster has ${options.name}=${self.peerUrls.join(',')} but --initial-advertise-peer-urls is ${options.advertisePeerUrls.join(',')}`,
    );
  }
  const ids = options.initialCluster.map((m) => deriveMemberId([...m.peerUrls], options.initialClusterToken));
  return { memberId: deriveMemberId([...self.peerUrls], options.initialClusterToken), clusterId: deriveClusterId(ids) };
}

/** Bytes per LevelDB batch while restoring: bounds memory, not correctness (nothing reads yet). */
const RESTORE_BATCH_BYTES = 4 * 1024 * 1024;

/**
 * Writes the snapshot's entries into a scratch data dir beside `destination`, then hands it to
 * `place`; the scratch dir is gone afterwards whatever happens.
 */
async function buildDatabase(
  file: string,
  options: { skipHashCheck: boolean },
  destination: string,
  place: (scratch: string) => void,
): Promise<{ summary: SnapshotSummary; entries: number }> {
  const snapshot = await openSnapshotFile(file, options);
  const scratch = `${destination}.restoring-${process.pid}`;
  try {
    mkdirSync(dirname(scratch), { recursive: true });
    rmSync(scratch, { recursive: true, force: true });
    const entries = await writeEntries(snapshot, scratch);
    place(scratch);
    return { summary: snapshot.summary, entries };
  } finally {
    snapshot.close();
    rmSync(scratch, { recursive: true, force: true });
  }
}

async function writeEntries(snapshot: OpenedSnapshot, dataDir: string): Promise<number> {
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
  } finally {
    await backend.close();
  }
  return written;
}
