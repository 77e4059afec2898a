// --wal-dir: the Raft log lives in its own LevelDB in the wal dir. A member started with one
// keeps its writes across a restart, the wal dir holds the log and the data dir's database
// holds no raft-log key; the data dir without its wal dir (or the wal dir without its data
// dir) is refused with one line and exit code 2.

import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ClassicLevel } from 'classic-level';
import { afterAll, describe, expect, it } from 'vitest';
import { Backend, KeySpace } from '../../src/storage/backend.js';
import { freePorts } from '../support/ports.js';
import { REPO_ROOT, etcdStyleFlags, startMetaStore } from '../support/servers.js';
import { etcdctl, run } from '../support/tools.js';

const scratch = mkdtempSync(join(tmpdir(), 'metastore-wal-dir-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

async function ok(endpoint: string, args: string[]): Promise<string> {
  const result = await etcdctl(endpoint, args);
  expect(result.code, `etcdctl ${args.join(' ')}: ${result.stderr}`).toBe(0);
  return result.stdout;
}

/** Starts bin/metastore expecting it to refuse: its exit code and stderr. */
async function refusedStart(dataDir: string, extraArgs: string[]): Promise<{ code: number | null; stderr: string }> {
  const [clientPort, peerPort] = await freePorts(2);
  const flags = etcdStyleFlags({ name: 'default', clientPort: clientPort!, peerPort: peerPort!, dataDir });
  return run(process.execPath, [join(REPO_ROOT, 'bin', 'metastore'), ...flags, ...extraArgs], { timeoutMs: 30_000 });
}

async function raftLogKeys(db: ClassicLevel<Buffer, Buffer>): Promise<number> {
  let count = 0;
  for await (const _ of db.keys({ gte: Buffer.from([KeySpace.raftLog]), lt: Buffer.from([KeySpace.raftLog + 1]) })) count++;
  return count;
}

describe('--wal-dir', () => {
  it('keeps the Raft log in its own database there; the data and the log go together or not at all', async () => {
    const walDir = join(scratch, 'wal');
    const member = await startMetaStore({ extraArgs: ['--wal-dir', walDir] });
    const endpoint = member.endpoint.replace('http://', '');
    for (let i = 0; i < 20; i++) await ok(endpoint, ['put', `w/${i}`, `v${i}`]);
    await member.restart();
    expect((await ok(endpoint, ['get', 'w/7', '--print-value-only'])).trim()).toBe('v7');
    await ok(endpoint, ['put', 'w/after', 'restart']);
    await member.stop();

    expect(readdirSync(walDir)).toContain('CURRENT');
    const wal = new ClassicLevel<Buffer, Buffer>(walDir, { keyEncoding: 'buffer', valueEncoding: 'buffer' });
    await wal.open();
    try {
      expect(await raftLogKeys(wal), 'the log is in the wal dir').toBeGreaterThan(20);
    } finally {
      await wal.close();
    }
    const backend = await Backend.open(member.dataDir);
    try {
      expect(await backend.hasKeysIn(KeySpace.raftLog), 'no raft-log key in the data dir').toBe(false);
      expect(await backend.hasKeysIn(KeySpace.mvcc)).toBe(true);
    } finally {
      await backend.close();
    }

    const withoutWal = await refusedStart(member.dataDir, []);
    expect(withoutWal.code).toBe(2);
    expect(withoutWal.stderr.trim()).toMatch(
      /^data dir .* has applied entries but no Raft log in it: it was used with a --wal-dir, start it with that --wal-dir$/,
    );
    const missingWal = await refusedStart(member.dataDir, ['--wal-dir', join(scratch, 'elsewhere')]);
    expect(missingWal.code).toBe(2);
    expect(missingWal.stderr.trim()).toMatch(/^wal dir .*elsewhere is missing or empty but data dir .* has history; refusing to start without its Raft log$/);
    const newDataDir = await refusedStart(join(scratch, 'new-data'), ['--wal-dir', walDir]);
    expect(newDataDir.code).toBe(2);
    expect(newDataDir.stderr.trim()).toMatch(/^wal dir .* holds a Raft log but data dir .*new-data has no history/);
  }, 120_000);
});
