// `metastore snapshot restore FILE ...` (etcdctl's snapshot restore) and `metastore migrate
// --from-etcd-data-dir DIR ...`: build a new member's data dir from an etcd or MetaStore
// snapshot file, or from a stopped etcd member's data dir, and say what was made. A bad file,
// an existing data dir, a failing disk or flags that do not fit end the command with its
// message and exit code 1, having written nothing; anything else is a bug and propagates.

import { formatUrl, type Url } from '../config/values.js';
import { SnapshotFileError } from '../server/maintenance/backup-format.js';
import { migrateEtcdDataDir, restoreSnapshot, type MembershipOptions, type RestoreResult } from '../server/maintenance/snapshot-restore.js';
import { StorageFormatError } from '../storage/backend.js';
import { StorageError } from '../storage/storage-error.js';

/** The parsed command line's membership flags (cli.ts's commands fit it). */
export interface MembershipFlags {
  readonly dataDir: string;
  /** Empty = the Raft log inside the data dir. */
  readonly walDir: string;
  readonly name: string;
  readonly initialCluster: ReadonlyArray<{ readonly name: string; readonly peerUrls: readonly Url[] }>;
  readonly initialClusterToken: string;
  readonly initialAdvertisePeerUrls: readonly Url[];
}

export interface RestoreCommand extends MembershipFlags {
  readonly snapshotFile: string;
  readonly skipHashCheck: boolean;
}

export interface MigrateCommand extends MembershipFlags {
  readonly etcdDataDir: string;
}

function membership(command: MembershipFlags): MembershipOptions {
  return {
    name: command.name,
    initialCluster: command.initialCluster.map((m) => ({ name: m.name, peerUrls: m.peerUrls.map(formatUrl) })),
    initialClusterToken: command.initialClusterToken,
    advertisePeerUrls: command.initialAdvertisePeerUrls.map(formatUrl),
  };
}

export function runSnapshotRestore(command: RestoreCommand): Promise<void> {
  return reportRestore(`snapshot restore`, `snapshot ${command.snapshotFile}`, command.dataDir, () =>
    restoreSnapshot({
      ...membership(command),
      snapshotFile: command.snapshotFile,
      dataDir: command.dataDir,
      walDir: command.walDir,
      skipHashCheck: command.skipHashCheck,
    }),
  );
}

export function runMigrate(command: MigrateCommand): Promise<void> {
  return reportRestore('migrate', `etcd data dir ${command.etcdDataDir}`, command.dataDir, () =>
    migrateEtcdDataDir({ ...membership(command), etcdDataDir: command.etcdDataDir, dataDir: command.dataDir, walDir: command.walDir }),
  );
}

async function reportRestore(what: string, source: string, dataDir: string, restore: () => Promise<RestoreResult>): Promise<void> {
  try {
    const restored = await restore();
    const { kind, revision, compactedRevision } = restored.summary;
    process.stdout.write(
      `restored ${kind} ${source} (revision ${revision}, compacted at ${compactedRevision}, ${restored.entries} entries) into ${dataDir}: ` +
        `member ${restored.memberId.toString(16)} of new cluster ${restored.clusterId.toString(16)}\n`,
    );
  } catch (error) {
    // A disk that fails under the new data dir (full, I/O error) is the operator's to fix, not a bug.
    if (error instanceof SnapshotFileError || error instanceof StorageFormatError || error instanceof StorageError) {
      process.stderr.write(`${what} failed: ${error.message}\n`);
      process.exit(1);
    }
    throw error;
  }
}
