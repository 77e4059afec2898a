// scripts/metastore-backup.sh against real clusters: it takes a snapshot through the API while
// writes go on (trying the next endpoint when one is down), writes a checksum sha256sum
// verifies, and keeps retention without ever dropping below the newest few; the snapshot
// restores (`bin/metastore snapshot restore`) into a fresh 3-member cluster whose HashKV equals
// the original's at the snapshot revision.
import { existsSync, mkdtempSync, readdirSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { endpointStatuses, hashKvs, settledOn, startWriter, until } from '../support/ops.js';
import { REPO_ROOT, planMetaStoreCluster, startMetaStore, startMetaStoreCluster, type MetaStoreCluster } from '../support/servers.js';
import { requireTool, run } from '../support/tools.js';

const SCRIPT = join(REPO_ROOT, 'scripts', 'metastore-backup.sh');
const scratch = mkdtempSync(join(tmpdir(), 'metastore-backup-e2e-'));
const clusters: MetaStoreCluster[] = [];

afterAll(async () => {
  await Promise.all(clusters.map((c) => c.destroy()));
  rmSync(scratch, { recursive: true, force: true });
});

async function backup(env: Record<string, string>) {
  const etcdctl = await requireTool('etcdctl', 'etcd-client');
  return run('bash', [SCRIPT], { env: { PATH: process.env.PATH ?? '', ETCDCTL: etcdctl, ...env }, timeoutMs: 120_000 });
}

describe('metastore-backup.sh', () => {
  it('snapshots a 3-member cluster under writes; the restored cluster has the same HashKV at the snapshot revision', async () => {
    const cluster = await startMetaStoreCluster(3);
    clusters.push(cluster);
    await until('a leader', () => endpointStatuses(cluster.endpoints), settledOn(3));
    const writer = startWriter(cluster.members.map((m) => m.endpoint.replace('http://', '')));
    await until(
      'writes flowing',
      async () => writer.count(),
      (n) => n >= 50,
    );

    const backupDir = join(scratch, 'backups');
    const before = writer.count();
    let result: Awaited<ReturnType<typeof backup>>;
    try {
      // A dead endpoint first: the script moves on to a live member.
      result = await backup({ BACKUP_DIR: backupDir, METASTORE_ENDPOINTS: `127.0.0.1:9,${cluster.endpoints}` });
      const mark = writer.count();
      await until(
        'writes after the backup',
        async () => writer.count(),
        (n) => n >= mark + 20,
      );
    } finally {
      await writer.stop();
    }
    expect(result.code, result.stderr).toBe(0);

    const file = result.stdout.trim().split('\n').at(-1)!;
    expect(basename(file)).toMatch(/^snapshot_\d{8}_\d{6}\.db$/);
    expect(
      readdirSync(backupDir)
        .filter((f) => !f.startsWith('.'))
        .sort(),
    ).toEqual([basename(file), `${basename(file)}.sha256`]);
    expect(statSync(file).mode & 0o077).toBe(0);
    const verified = await run('bash', ['-c', 'cd "$1" && sha256sum -c "$2"', '-', backupDir, `${basename(file)}.sha256`], { timeoutMs: 10_000 });
    expect(verified.code, verified.stderr).toBe(0);
    expect(result.stderr).toContain('trying the next endpoint');

    const plan = await planMetaStoreCluster(3);
    const dataDirs = plan.names.map((name) => join(scratch, `${name}.restored`));
    for (let i = 0; i < 3; i++) {
      const restore = await run(process.execPath, [
        join(REPO_ROOT, 'bin', 'metastore'),
        'snapshot',
        'restore',
        file,
        '--data-dir',
        dataDirs[i]!,
        '--name',
        plan.names[i]!,
        '--initial-cluster',
        plan.initialCluster,
        '--initial-advertise-peer-urls',
        plan.peerUrls[i]!,
      ]);
      expect(restore.code, restore.stderr).toBe(0);
    }
    const restored = await startMetaStoreCluster(3, { plan, dataDirs });
    clusters.push(restored);
    const status = await until('a leader in the restored cluster', () => endpointStatuses(restored.endpoints), settledOn(3));
    const snapshotRevision = status[0]!.revision;
    const original = await endpointStatuses(cluster.endpoints);
    // The snapshot fell inside the write load: writes before it, writes after it.
    expect(snapshotRevision).toBeGreaterThan(before);
    expect(original[0]!.revision).toBeGreaterThan(snapshotRevision);

    const restoredHashes = await until(
      'equal hashes on the restored members',
      () => hashKvs(restored.endpoints),
      (h) => h.length === 3 && h.every((x) => x.hash === h[0]!.hash && x.revision === snapshotRevision),
    );
    const originalHashes = await hashKvs(cluster.endpoints, snapshotRevision);
    expect(originalHashes.map((h) => h.hash)).toEqual([0, 1, 2].map(() => restoredHashes[0]!.hash));
  }, 180_000);

  it('keeps the newest KEEP_MIN snapshots, deletes the rest older than RETENTION_DAYS, and fails when no member answers', async () => {
    const member = await startMetaStore();
    clusters.push({ members: [member], endpoints: member.endpoint, destroy: () => member.destroy() });
    const backupDir = join(scratch, 'retention');
    await backup({ BACKUP_DIR: backupDir, METASTORE_ENDPOINTS: member.endpoint }); // creates the dir
    for (const f of readdirSync(backupDir)) if (f.startsWith('snapshot_')) rmSync(join(backupDir, f));
    const aged = (name: string, days: number) => {
      for (const file of [name, `${name}.sha256`]) {
        writeFileSync(join(backupDir, file), 'old');
        const when = Date.now() / 1000 - days * 86_400;
        utimesSync(join(backupDir, file), when, when);
      }
    };
    aged('snapshot_20200101_000000.db', 1);
    for (let i = 0; i < 4; i++) aged(`snapshot_2019010${i}_000000.db`, 10 + i);

    const result = await backup({ BACKUP_DIR: backupDir, METASTORE_ENDPOINTS: member.endpoint, RETENTION_DAYS: '7', KEEP_MIN: '3' });
    expect(result.code, result.stderr).toBe(0);
    const kept = readdirSync(backupDir).filter((f) => f.endsWith('.db'));
    // Newest three: today's, the one-day-old, and the youngest of the ten-plus-day-old ones.
    expect(kept.sort()).toEqual(['snapshot_20190100_000000.db', 'snapshot_20200101_000000.db', basename(result.stdout.trim())].sort());
    for (const f of kept) expect(existsSync(join(backupDir, `${f}.sha256`))).toBe(true);

    await member.stop();
    const failed = await backup({ BACKUP_DIR: backupDir, METASTORE_ENDPOINTS: member.endpoint });
    expect(failed.code).toBe(1);
    expect(failed.stderr).toContain('no snapshot taken');
    expect(readdirSync(backupDir).filter((f) => f.endsWith('.db'))).toHaveLength(3);
  }, 120_000);
});
