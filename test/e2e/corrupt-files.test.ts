// A LevelDB file of a stopped member is damaged (a table truncated, bytes of the MANIFEST or of
// the write-ahead log overwritten, CURRENT removed): the member refuses to start with one line
// naming the file (or its directory and LevelDB's message) and how to recover, exit 2, and
// never serves. The one exception, a newest log torn by a power loss after its last synced
// write, is cut there: the member starts and every acknowledged write is there. A table damaged while the member runs is found by the read that needs it: the
// member stops the same way instead of answering INTERNAL to that read forever.

import { closeSync, openSync, readdirSync, readFileSync, rmSync, statSync, truncateSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { afterEach, describe, expect, it } from 'vitest';
import { clients } from '../../src/grpc/proto.js';
import { SYNC_MARKER_KEY } from '../../src/storage/backend.js';
import { lastValueOf, readLog } from '../../src/storage/leveldb-files-check.js';
import { startMetaStore, type MetaStoreHandle } from '../support/servers.js';
import { etcdctl } from '../support/tools.js';

const servers: MetaStoreHandle[] = [];
afterEach(async () => {
  for (const server of servers.splice(0)) await server.destroy();
});

// Compressible values: LevelDB stores blocks snappy-compressed, and a damaged compressed block
// fails to decompress (LevelDB does not verify block checksums on reads by default).
const value = (i: number) => `value ${i} `.repeat(100);

/**
 * A stopped member whose data went through one restart: LevelDB turned its write-ahead log into
 * a table then, so the db holds a table (*.ldb), a MANIFEST, CURRENT and a fresh log.
 */
async function memberWithTables(env: Record<string, string> = {}): Promise<MetaStoreHandle> {
  const server = await startMetaStore({ env });
  servers.push(server);
  for (let i = 0; i < 3; i++) expect((await etcdctl(server.endpoint, ['put', 'k', value(i)])).code).toBe(0);
  await server.restart();
  for (let i = 0; i < 40; i++) expect((await etcdctl(server.endpoint, ['put', `later/${i}`, value(i)])).code).toBe(0);
  await server.stop();
  return server;
}

const dbDir = (server: MetaStoreHandle) => join(server.dataDir, 'db');
/** The oldest file of the db whose name matches. */
const dbFile = (server: MetaStoreHandle, pattern: RegExp) => {
  const name = readdirSync(dbDir(server))
    .sort()
    .find((n) => pattern.test(n));
  if (name === undefined) throw new Error(`no file ${pattern} in ${dbDir(server)}: ${readdirSync(dbDir(server)).join(' ')}`);
  return join(dbDir(server), name);
};

function overwrite(path: string, offset: number, bytes: string): void {
  const fd = openSync(path, 'r+');
  writeSync(fd, Buffer.from(bytes), 0, bytes.length, offset);
  closeSync(fd);
}

/** Starts the damaged member: it must exit 2 with exactly one "damaged" line containing `names`. */
async function expectRefused(server: MetaStoreHandle, names: string): Promise<void> {
  await expect(server.restart({ readyTimeoutMs: 20_000 })).rejects.toThrow();
  const { code } = await server.exited();
  expect(code, server.logs()).toBe(2);
  const lastStart = server.logs().split('[harness] start #').at(-1) ?? '';
  const lines = lastStart.split('\n').filter((line) => line.includes('is damaged'));
  expect(lines, lastStart).toHaveLength(1);
  expect(lines[0]).toContain(names);
  expect(lines[0]).toContain('metastore snapshot restore');
  expect(lines[0]).toContain('member remove');
  expect(lastStart).not.toContain('ready to serve');
}

describe('damaged LevelDB files found at start', () => {
  it('a truncated table (*.ldb)', async () => {
    const server = await memberWithTables();
    const table = dbFile(server, /\.ldb$/);
    truncateSync(table, Math.floor(statSync(table).size / 2));
    await expectRefused(server, dbDir(server));
  }, 60_000);

  it('overwritten bytes in the MANIFEST', async () => {
    const server = await memberWithTables();
    const manifest = dbFile(server, /^MANIFEST-/);
    overwrite(manifest, 10, 'XXXXXXXX');
    await expectRefused(server, manifest);
  }, 60_000);

  it('a missing CURRENT', async () => {
    const server = await memberWithTables();
    rmSync(join(dbDir(server), 'CURRENT'));
    await expectRefused(server, join(dbDir(server), 'CURRENT'));
  }, 60_000);

  it('overwritten bytes inside the write-ahead log (LevelDB itself would skip them silently)', async () => {
    const server = await memberWithTables();
    const log = dbFile(server, /\.log$/);
    expect(statSync(log).size).toBeGreaterThan(40_000);
    overwrite(log, 20_000, 'garbage!garbage!');
    await expectRefused(server, log);
  }, 60_000);
});

describe('a table damaged while the member runs', () => {
  it('the read that hits it stops the member with one line, exit 2', async () => {
    // Without a block cache every read goes to the file (else the start-up scan caches it).
    const server = await memberWithTables({ METASTORE_SERVER_STORAGE_BLOCK_CACHE_SIZE: '0' });
    await server.restart();
    expect((await etcdctl(server.endpoint, ['get', 'k'])).stdout).toContain(value(2));
    // Old revisions are read from LevelDB on demand: damage the table's first data blocks,
    // then ask for the first revision.
    overwrite(dbFile(server, /\.ldb$/), 50, 'X'.repeat(64));
    const read = await etcdctl(server.endpoint, ['get', 'k', '--rev', '2']);
    expect(read.stdout).not.toContain(value(0));
    const { code } = await server.exited();
    expect(code, server.logs()).toBe(2);
    const lines = server
      .logs()
      .split('\n')
      .filter((line) => line.includes('is damaged'));
    expect(lines, server.logs()).toHaveLength(1);
    expect(lines[0]).toContain(dbDir(server));
  }, 60_000);
});

/** A put over gRPC (etcdctl's process start per put is too slow to fill a checkpoint interval). */
function putter(endpoint: string): { put(key: string, value: string): Promise<void>; get(key: string): Promise<string | undefined>; close(): void } {
  const client = new clients.KV(endpoint.replace('http://', ''), grpc.credentials.createInsecure()) as any;
  return {
    put: (key, value) =>
      new Promise((resolve, reject) =>
        client.Put({ key: Buffer.from(key), value: Buffer.from(value) }, (error: Error | null) => (error ? reject(error) : resolve())),
      ),
    get: (key) =>
      new Promise((resolve, reject) =>
        client.Range({ key: Buffer.from(key) }, (error: Error | null, response: any) => (error ? reject(error) : resolve(response.kvs[0]?.value.toString()))),
      ),
    close: () => client.close(),
  };
}

describe('a write-ahead log torn by a power loss', () => {
  it('damage after the last synced write: the member cuts the log there, warns once, starts, and every acknowledged put is there', async () => {
    const server = await startMetaStore();
    servers.push(server);
    const acked = new Map<string, string>();
    let torn: { log: string; offset: number } | undefined;
    // kill -9 during a burst of puts leaves the log as the page cache held it: records after
    // the last synced write (the checkpoint every 100 ms) unless the kill fell just after one.
    for (let attempt = 0; attempt < 5 && torn === undefined; attempt++) {
      const kv = putter(server.endpoint);
      let stop = false;
      let enough!: () => void;
      const burst = new Promise<void>((resolve) => (enough = resolve));
      const writers = Array.from({ length: 8 }, async (_, w) => {
        for (let i = 0; !stop; i++) {
          const key = `a${attempt}/w${w}/${i}`;
          try {
            await kv.put(key, value(i));
            acked.set(key, value(i));
            if (i >= 40) enough();
          } catch {
            return; // the member is gone: not acknowledged
          }
        }
      });
      await burst;
      await server.kill9();
      stop = true;
      await Promise.all(writers);
      kv.close();
      const db = dbDir(server);
      const logs = readdirSync(db)
        .filter((f) => /^\d+\.log$/.test(f))
        .sort((a, b) => Number.parseInt(a, 10) - Number.parseInt(b, 10));
      const log = join(db, logs.at(-1) as string);
      const { records } = readLog(readFileSync(log));
      let marker = -1;
      for (const [i, r] of records.entries()) if (lastValueOf([r.data], SYNC_MARKER_KEY) !== undefined) marker = i;
      expect(marker, 'the log holds a synced write (the open writes one first)').toBeGreaterThanOrEqual(0);
      const target = records[marker + 1];
      if (target !== undefined && marker + 2 < records.length && target.data.length >= 20) {
        // A page of the unsynced tail not written back: its record damaged, intact ones after it.
        const bytes = readFileSync(log);
        for (let i = 0; i < 4; i++) bytes[target.offset + 19 + i] = (bytes[target.offset + 19 + i] as number) ^ 0xff;
        writeFileSync(log, bytes);
        torn = { log, offset: target.offset };
      }
      await server.restart();
    }
    expect(torn, 'a kill -9 with records after the last synced write').toBeDefined();
    const lastStart = server.logs().split('[harness] start #').at(-1) ?? '';
    const warnings = lastStart.split('\n').filter((line) => line.includes('was torn after its last synced write'));
    expect(warnings, lastStart).toHaveLength(1);
    expect(warnings[0]).toContain(torn?.log);
    expect(warnings[0]).toContain(`offset ${torn?.offset}`);
    expect(lastStart).not.toContain('is damaged');
    const kv = putter(server.endpoint);
    expect(acked.size).toBeGreaterThan(300);
    for (const [key, v] of acked) expect(await kv.get(key), key).toBe(v);
    kv.close();
  }, 120_000);
});
