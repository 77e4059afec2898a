// Starting on a data dir etcd wrote (an `etcdctl snapshot restore` output, or a stopped etcd
// member's dir with etcd swapped for MetaStore in its unit file): etcd's database is imported
// once into MetaStore's own `<data-dir>/db`, next to etcd's member/ directory, which is left
// exactly as it was so that going back to etcd stays possible. Later starts find `db` and
// import nothing. The member's identity and peers come from the flags, as after a restore, and
// so do the voters of the Raft log that starts after the imported state.

import type { Logger } from 'pino';
import { SnapshotFileError } from '../server/maintenance/backup-format.js';
import { importEtcdDataDirInPlace } from '../server/maintenance/snapshot-restore.js';
import { StorageFormatError } from '../storage/backend.js';

export async function importEtcdDataDirOnce(dirs: { dataDir: string; walDir: string }, voters: readonly bigint[], logger: Logger): Promise<void> {
  const { dataDir, walDir } = dirs;
  let imported: Awaited<ReturnType<typeof importEtcdDataDirInPlace>>;
  try {
    imported = await importEtcdDataDirInPlace(dataDir, voters, walDir);
  } catch (error) {
    // A damaged etcd database is a data dir MetaStore cannot use: the start-up refusal path.
    if (error instanceof SnapshotFileError) throw new StorageFormatError(`data dir ${dataDir}: cannot import etcd's database: ${error.message}`);
    throw error;
  }
  if (imported === undefined) return;
  const { revision, compactedRevision } = imported.summary;
  logger.info(
    { dataDir, revision, compactedRevision, entries: imported.entries },
    "imported etcd's data dir (member/snap/db) into MetaStore's database; etcd's files are left untouched",
  );
}
