// --wal-dir: the Raft log lives in its own LevelDB in the wal dir. A member started with one
// keeps its writes across a restart, the wal dir holds the log and the data dir's database
// holds no raft-log key; the data dir without its wal dir (or the wal dir without its data
// dir) is refused with one line and exit code 2.

import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ClassicLevel } from 'classic-level';
import { afterAll, describe, expect, it } from 'vitest';
import * as grpc from '@grpc/grpc-js';
import { clients } from '../../src/grpc/proto.js';
import { Backend, KeySpace } from '../../src/storage/backend.js';
import { JOURNAL_FILE, SyncJournal } from '../../src/storage/sync-journal.js';
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

/** How many ops the journal at `path` would replay at the next start. */
function journalOps(path: string): number {
  const { journal, replay } = SyncJournal.open(path);
  journal.close();
  return replay.length;
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
    // The log's sync journal is the wal dir's, left empty by the graceful stop; the data dir has none.
    expect(readdirSync(walDir)).toContain(JOURNAL_FILE);
    expect(journalOps(join(walDir, JOURNAL_FILE))).toBe(0);
    expect(readdirSync(member.dataDir)).not.toContain(JOURNAL_FILE);
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

  it('loses no acknowledged write to kill -9 under load (the log made durable by the journal in the wal dir, compacted meanwhile)', async () => {
    const walDir = join(scratch, 'wal-kill9');
    // A snapshot every 100 entries: the log is compacted several times during the load (each
    // compaction after a synced write of the data dir's apply batches).
    const member = await startMetaStore({ extraArgs: ['--wal-dir', walDir, '--snapshot-count', '100'] });
    const client = new clients.KV(member.endpoint.replace('http://', ''), grpc.credentials.createInsecure()) as any;
    const put = (key: string, value: string): Promise<number> =>
      new Promise((resolve, reject) =>
        client.Put({ key: Buffer.from(key), value: Buffer.from(value) }, (error: Error | null, response: any) =>
          error ? reject(error) : resolve(Number(response.header.revision)),
        ),
      );
    try {
      const acked = new Map<string, string>();
      let killed!: () => void;
      const enough = new Promise<void>((resolve) => (killed = resolve));
      // 16 writers keep writing (Readies of several entries: journal records past the in-line
      // size too); the member is killed once 800 writes were acknowledged.
      const writers = Array.from({ length: 16 }, async (_, w) => {
        for (let i = 0; ; i++) {
          const key = `k${w}/${i % 40}`;
          const value = `${w}-${i}`;
          try {
            await put(key, value);
          } catch {
            return; // the member is gone: unacknowledged, so it may or may not have happened
          }
          acked.set(key, value);
          if (acked.size >= 600 || i >= 50) killed();
        }
      });
      await enough;
      await member.kill9();
      await Promise.all(writers);
      client.close();
      expect(acked.size).toBeGreaterThan(100);
      expect(readdirSync(member.dataDir)).not.toContain(JOURNAL_FILE);

      await member.restart();
      const endpoint = member.endpoint.replace('http://', '');
      const status = JSON.parse(await ok(endpoint, ['endpoint', 'status', '-w', 'json'])) as Array<{ Status: { raftIndex: number } }>;
      expect(status[0]?.Status.raftIndex, 'past several snapshots').toBeGreaterThan(300);
      const lines = (await ok(endpoint, ['get', 'k', '--prefix'])).trim().split('\n');
      const found = new Map<string, string>();
      for (let i = 0; i + 1 < lines.length; i += 2) found.set(lines[i] as string, lines[i + 1] as string);
      const counter = (value: string): number => Number(value.split('-')[1]);
      for (const [key, value] of acked) {
        // A later write of the key (by the same writer) may have landed unacknowledged: a higher counter.
        const got = found.get(key);
        expect(got, `${key} lost ${value}`).toBeDefined();
        expect(counter(got as string), `${key} lost ${value}`).toBeGreaterThanOrEqual(counter(value));
      }
      await ok(endpoint, ['put', 'after', 'kill']);
    } finally {
      await member.destroy();
    }
  }, 120_000);
});
