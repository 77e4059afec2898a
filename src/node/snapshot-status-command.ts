// `metastore snapshot status FILE [-w simple|table|json]`: what `etcdctl snapshot status` prints
// (hash, revision, total keys, total size), for an etcd snapshot or a MetaStore one. A file that
// is neither, or a damaged one, ends the command with its message and exit code 1.

import { SnapshotFileError } from '../server/maintenance/backup-format.js';
import { formatSnapshotStatus, type StatusFormat } from '../server/maintenance/etcd-status-print.js';
import { snapshotFileStatus } from '../server/maintenance/snapshot-file.js';

export async function runSnapshotStatus(command: { snapshotFile: string; format: StatusFormat }): Promise<void> {
  try {
    process.stdout.write(formatSnapshotStatus(await snapshotFileStatus(command.snapshotFile), command.format));
  } catch (error) {
    if (!(error instanceof SnapshotFileError)) throw error;
    process.stderr.write(`snapshot status failed: ${error.message}\n`);
    process.exit(1);
  }
}
