// A LevelDB file of a stopped member is damaged (a table truncated, bytes of the MANIFEST or of
// the write-ahead log overwritten, CURRENT removed): the member refuses to start with one line
// naming the file (or its directory and LevelDB's message) and how to recover, exit 2, and
// never serves. A table damaged while the member runs is found by the read that needs it: the
// member stops the same way instead of answering INTERNAL to that read forever.

import { closeSync, openSync, readdirSync, rmSync, statSync, truncateSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
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
