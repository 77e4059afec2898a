// `metastore snapshot restore FILE ...` (etcdctl's snapshot restore): builds a new member's data
// dir from a snapshot file and says what it made. A bad file, an existing data dir or flags
// that do not fit the snapshot end the command with its message and exit code 1; anything
// else is a bug and propagates.

import { formatUrl, type Url } from '../config/values.js';
import { SnapshotFileError } from '../server/maintenance/backup-format.js';
import { restoreSnapshot } from '../server/maintenance/backup.js';
import { StorageFormatError } from '../storage/backend.js';

/** The parsed command line's restore request (cli.ts's SnapshotRestoreCommand fits it). */
export interface RestoreCommand {
  readonly snapshotFile: string;
  readonly dataDir: string;
  readonly name: string;
  readonly initialCluster: ReadonlyArray<{ readonly name: string; readonly peerUrls: readonly Url[] }>;
  readonly initialClusterToken: string;
  readonly initialAdvertisePeerUrls: readonly Url[];
  readonly skipHashCheck: boolean;
}

export async function runSnapshotRestore(command: RestoreCommand): Promise<void> {
  try {
    const restored = await restoreSnapshot({
      snapshotFile: command.snapshotFile,
      dataDir: command.dataDir,
      name: command.name,
      initialCluster: command.initialCluster.map((m) => ({ name: m.name, peerUrls: m.peerUrls.map(formatUrl) })),
      initialClusterToken: command.initialClusterToken,
      advertisePeerUrls: command.initialAdvertisePeerUrls.map(formatUrl),
      skipHashCheck: command.skipHashCheck,
    });
    process.stdout.write(
      `restored snapshot ${command.snapshotFile} (revision ${restored.header.revision}, ${restored.entries} entries) into ${command.dataDir}: ` +
        `member ${restored.memberId.toString(16)} of new cluster ${restored.clusterId.toString(16)}\n`,
    );
  } catch (error) {
    if (error instanceof SnapshotFileError || error instanceof StorageFormatError) {
      process.stderr.write(`snapshot restore failed: ${error.message}\n`);
      process.exit(1);
    }
    throw error;
  }
}
