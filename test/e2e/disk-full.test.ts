// A member's data dir on a small tmpfs that fills up under writes: the member stops with one
// fatal line naming its database directory and the error (exit 1), nothing acknowledged is
// lost, and once space is freed a restart serves again with the same data. A follower that
// stops this way leaves the other two serving, and catches up after its restart.
// Needs root (it mounts tmpfs); every mount is unmounted in afterAll whatever happened.

import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, mkdtempSync, openSync, readdirSync, rmSync, rmdirSync, statfsSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { afterAll, describe, expect, it } from 'vitest';
import { clients } from '../../src/grpc/proto.js';
import { leaderIndex, memberStatuses } from '../support/cluster-status.js';
import { REPO_ROOT, startMetaStore, startMetaStoreCluster, type MetaStoreHandle } from '../support/servers.js';
import { etcdctl, run } from '../support/tools.js';
import { waitFor } from '../support/wait.js';

const mounts: string[] = [];
const kvClients: grpc.Client[] = [];

afterAll(() => {
  for (const client of kvClients.splice(0)) client.close();
  for (const mount of mounts.splice(0)) {
    execFileSync('umount', ['--lazy', mount]);
    rmdirSync(mount);
  }
});

function mountTmpfs(sizeMiB: number): string {
  const mount = mkdtempSync(join(tmpdir(), 'metastore-disk-full-'));
  execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${sizeMiB}m`, 'tmpfs', mount]);
  mounts.push(mount);
  return mount;
}

/** Fills the file system at `mount` with a file until about `leaveBytes` are free; returns its path. */
function fillUpTo(mount: string, leaveBytes: number): string {
  const { bavail, bsize } = statfsSync(mount);
  const path = join(mount, 'filler');
  const fd = openSync(path, 'w');
  const chunk = Buffer.alloc(1024 * 1024, 0x5a);
  for (let left = bavail * bsize - leaveBytes; left > 0; left -= chunk.length) writeSync(fd, chunk, 0, Math.min(left, chunk.length));
  closeSync(fd);
  return path;
}

interface KvStub {
  Put(request: { key: Buffer; value: Buffer }, options: { deadline: number }, callback: (error: Error | null) => void): void;
  Range(request: { key: Buffer }, options: { deadline: number }, callback: (error: Error | null, response?: { kvs: Array<{ value: Buffer }> }) => void): void;
}

function kvStub(member: MetaStoreHandle): KvStub {
  // Its own subchannel: a shared one to a member that died may sit in reconnect backoff.
  const client = new clients.KV(member.endpoint.replace('http://', ''), grpc.credentials.createInsecure(), { 'grpc.use_local_subchannel_pool': 1 });
  kvClients.push(client);
  return client as unknown as KvStub;
}

const put = (kv: KvStub, key: string, value: Buffer) =>
  new Promise<boolean>((resolve) => kv.Put({ key: Buffer.from(key), value }, { deadline: Date.now() + 5000 }, (error) => resolve(error === null)));

const get = (kv: KvStub, key: string) =>
  new Promise<Buffer | undefined>((resolve, reject) =>
    kv.Range({ key: Buffer.from(key) }, { deadline: Date.now() + 5000 }, (error, response) => (error ? reject(error) : resolve(response?.kvs[0]?.value))),
  );

/**
 * Writers putting 256 KiB incompressible values (so the disk fills as the data grows) until
 * `victim` exits; returns every acknowledged key with its value and the victim's exit.
 */
async function writeUntilExit(kv: KvStub, victim: MetaStoreHandle): Promise<{ acked: Map<string, Buffer>; code: number | null }> {
  const acked = new Map<string, Buffer>();
  let exited = false;
  const exit = victim.exited().then((info) => {
    exited = true;
    return info;
  });
  const writers = Array.from({ length: 4 }, async (_, w) => {
    for (let seq = 0; !exited; seq++) {
      const key = `fill/${w}/${seq}`;
      const value = randomBytes(256 * 1024);
      if (await put(kv, key, value)) acked.set(key, value);
    }
  });
  const { code } = await exit;
  await Promise.all(writers);
  return { acked, code };
}

function storageFailureLines(member: MetaStoreHandle): string[] {
  return member
    .logs()
    .split('\n')
    .filter((line) => line.includes('storage write failed'));
}

async function expectAllReadable(kv: KvStub, acked: Map<string, Buffer>): Promise<void> {
  let missing = 0;
  for (const [key, value] of acked) if (!(await get(kv, key))?.equals(value)) missing++;
  expect(missing, `acknowledged keys not read back, of ${acked.size}`).toBe(0);
}

describe('disk full', () => {
  it('a lone member stops with one clear line and exit 1, then serves every acknowledged key after space is freed', async () => {
    const mount = mountTmpfs(64);
    const server = await startMetaStore({ dataDir: join(mount, 'data') });
    try {
      const kv = kvStub(server);
      expect(await put(kv, 'before', Buffer.from('v'))).toBe(true);
      const filler = fillUpTo(mount, 12 * 1024 * 1024);
      const { acked, code } = await writeUntilExit(kv, server);
      acked.set('before', Buffer.from('v'));
      expect(code).toBe(1);
      const lines = storageFailureLines(server);
      expect(lines, server.logs()).toHaveLength(1);
      expect(lines[0]).toContain(join(mount, 'data', 'db'));
      expect(lines[0]).toMatch(/No space left on device/);
      expect(acked.size).toBeGreaterThan(1);

      rmSync(filler);
      await server.restart();
      await expectAllReadable(kvStub(server), acked);
    } finally {
      await server.destroy();
    }
  }, 120_000);

  it('a follower whose disk fills stops; the other two keep serving; after freeing space it restarts and catches up (equal HashKV)', async () => {
    const mount = mountTmpfs(64);
    const cluster = await startMetaStoreCluster(3, { dataDirs: [undefined, undefined, join(mount, 'data')] });
    try {
      const victim = cluster.members[2]!;
      if ((await leaderIndex(cluster)) === 2) {
        const [target] = await memberStatuses(cluster.members[0]!.endpoint);
        expect(target).toBeDefined();
        const moved = await etcdctl(victim.endpoint, ['move-leader', BigInt(target!.memberId).toString(16)]);
        expect(moved.code, moved.stderr).toBe(0);
      }
      const leader = cluster.members[await leaderIndex(cluster)]!;
      expect(leader).not.toBe(victim);
      const kv = kvStub(leader);
      const filler = fillUpTo(mount, 12 * 1024 * 1024);
      const { acked, code } = await writeUntilExit(kv, victim);
      expect(code).toBe(1);
      expect(storageFailureLines(victim), victim.logs()).toHaveLength(1);
      expect(storageFailureLines(victim)[0]).toContain(join(mount, 'data', 'db'));
      // The cluster goes on without it.
      expect(await put(kv, 'after-follower-stopped', Buffer.from('v'))).toBe(true);
      await expectAllReadable(kv, acked);

      rmSync(filler);
      await victim.restart();
      const hashes = await waitFor(() => etcdctl(cluster.endpoints, ['endpoint', 'hashkv', '-w', 'json']), {
        what: 'equal HashKV on all three members',
        timeoutMs: 60_000,
        until: (r) => {
          if (r.code !== 0) return false;
          const entries = JSON.parse(r.stdout) as Array<{ HashKV: { hash: number; header: { revision: number } } }>;
          return (
            entries.length === 3 &&
            entries.every((e) => e.HashKV.hash === entries[0]!.HashKV.hash && e.HashKV.header.revision === entries[0]!.HashKV.header.revision)
          );
        },
      });
      expect(hashes.code).toBe(0);
    } finally {
      await cluster.destroy();
    }
  }, 180_000);

  it('snapshot restore into a disk that fills up fails with one line and exit 1, leaving nothing behind', async () => {
    const source = await startMetaStore();
    const scratch = mkdtempSync(join(tmpdir(), 'metastore-restore-full-'));
    try {
      const kv = kvStub(source);
      for (let i = 0; i < 40; i++) expect(await put(kv, `big/${i}`, randomBytes(100 * 1024))).toBe(true);
      const file = join(scratch, 'snap.db');
      const saved = await etcdctl(source.endpoint, ['snapshot', 'save', file]);
      expect(saved.code, saved.stderr).toBe(0);
      const mount = mountTmpfs(2);
      const restored = await run(process.execPath, [join(REPO_ROOT, 'bin', 'metastore'), 'snapshot', 'restore', file, '--data-dir', join(mount, 'restored')]);
      expect(restored.code, restored.stderr).toBe(1);
      const lines = restored.stderr.trim().split('\n');
      expect(lines, restored.stderr).toHaveLength(1);
      expect(lines[0]).toMatch(/^snapshot restore failed: .*No space left on device/);
      expect(readdirSync(mount)).toEqual([]);
    } finally {
      await source.destroy();
      rmSync(scratch, { recursive: true, force: true });
    }
  }, 120_000);
});
