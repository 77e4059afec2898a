// Damaged LevelDB files found at open, and failed writes and reads, reach the failure sink as
// one typed StorageError naming the directory; the member never goes on past them.

import { mkdtempSync, openSync, readdirSync, rmSync, statSync, truncateSync, writeSync, closeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { Backend, KeySpace, spaceKey } from './backend.js';
import { checkLevelDbFiles } from './leveldb-files-check.js';
import { StorageError } from './storage-error.js';

const dirs: string[] = [];
function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'metastore-storage-failure-'));
  dirs.push(dir);
  return dir;
}
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

const key = (i: number) => spaceKey(KeySpace.mvcc, `key-${String(i).padStart(4, '0')}`);

/** A data dir whose db holds `count` 1 KiB values, all still in LevelDB's write-ahead log. */
async function dataDirWithLog(count: number): Promise<{ dataDir: string; db: string; log: string }> {
  const dataDir = tempDir();
  const backend = await Backend.open(dataDir);
  for (let i = 0; i < count; i++) await backend.write([{ type: 'put', key: key(i), value: Buffer.alloc(1024, i) }], { sync: true });
  await backend.close();
  const db = join(dataDir, 'db');
  const log = readdirSync(db).find((name) => name.endsWith('.log'));
  if (log === undefined) throw new Error('no LevelDB log file');
  return { dataDir, db, log: join(db, log) };
}

function overwrite(path: string, offset: number, bytes: string): void {
  const fd = openSync(path, 'r+');
  writeSync(fd, Buffer.from(bytes), 0, bytes.length, offset);
  closeSync(fd);
}

async function openFailure(dataDir: string): Promise<{ thrown: unknown; told: StorageError[] }> {
  const told: StorageError[] = [];
  const thrown = await Backend.open(dataDir, { onFailure: (error) => told.push(error) }).then(
    async (backend) => {
      await backend.close();
      return undefined;
    },
    (error: unknown) => error,
  );
  return { thrown, told };
}

describe('damaged LevelDB files at open', () => {
  it('a damaged record inside the write-ahead log is refused, naming the file, instead of silently dropped', async () => {
    const { dataDir, log } = await dataDirWithLog(100);
    overwrite(log, 50_000, 'garbage!');
    expect(checkLevelDbFiles(join(dataDir, 'db'))).toMatch(/\.log is damaged: checksum mismatch/);
    const { thrown, told } = await openFailure(dataDir);
    expect(thrown).toBeInstanceOf(StorageError);
    expect((thrown as StorageError).kind).toBe('damaged');
    expect((thrown as StorageError).message).toContain(log);
    expect((thrown as StorageError).message).toContain('metastore snapshot restore');
    expect(told).toEqual([thrown]);
    // Refused before LevelDB opened it: the damaged log is still there (not replayed and deleted).
    expect(checkLevelDbFiles(join(dataDir, 'db'))).toMatch(/checksum mismatch/);
  });

  it('a write cut short at the end of the log (crash, full disk) is not damage: everything before it reads back', async () => {
    const { dataDir, log } = await dataDirWithLog(50);
    truncateSync(log, statSync(log).size - 100);
    expect(checkLevelDbFiles(join(dataDir, 'db'))).toBeUndefined();
    const backend = await Backend.open(dataDir);
    for (let i = 0; i < 49; i++) expect(backend.getRaw(key(i))?.length).toBe(1024);
    expect(backend.getRaw(key(49))).toBeUndefined();
    await backend.close();
  });

  it('a missing CURRENT is refused (LevelDB would start an empty database over the old files)', async () => {
    const { dataDir, db } = await dataDirWithLog(5);
    rmSync(join(db, 'CURRENT'));
    const { thrown } = await openFailure(dataDir);
    expect((thrown as StorageError).detail).toMatch(/CURRENT is missing/);
  });

  it('a damaged MANIFEST is refused, naming it', async () => {
    const { dataDir, db } = await dataDirWithLog(5);
    const manifest = readdirSync(db).find((name) => name.startsWith('MANIFEST-')) as string;
    overwrite(join(db, manifest), 10, 'XXXXXXXX');
    const { thrown } = await openFailure(dataDir);
    expect((thrown as StorageError).detail).toContain(`${manifest} is damaged`);
  });
});

describe('failed writes', () => {
  it('a failed write reaches the sink once, fails what queued behind it, and no write is attempted after it', async () => {
    const told: StorageError[] = [];
    const backend = await Backend.open(tempDir(), { onFailure: (error) => told.push(error) });
    await backend.write([{ type: 'put', key: key(1), value: Buffer.from('v') }], { sync: true });
    // The database going away underneath stands in for the device failing.
    await backend.level.close();
    const first = backend.write([{ type: 'put', key: key(2), value: Buffer.from('v') }], { sync: true });
    const queued = backend.write([{ type: 'put', key: key(3), value: Buffer.from('v') }], { sync: true });
    await expect(first).rejects.toBeInstanceOf(StorageError);
    await expect(queued).rejects.toBe(await first.catch((error: unknown) => error));
    await expect(backend.write([], { sync: false })).rejects.toBe(backend.writeFailure);
    expect(told).toHaveLength(1);
    expect(told[0]?.kind).toBe('write');
    expect(told[0]?.message).toContain(backend.dir);
  });
});
