import { mkdirSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ClassicLevel } from 'classic-level';
import { afterEach, describe, expect, it } from 'vitest';
import { Backend, KeySpace, StorageFormatError, spaceKey } from './backend.js';

const dirs: string[] = [];
function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'metastore-backend-'));
  dirs.push(dir);
  return dir;
}
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

const put = (key: string, value: string) => ({ type: 'put' as const, key: spaceKey(KeySpace.mvcc, key), value: Buffer.from(value) });

describe('Backend', () => {
  it('creates its data dir owner-only (0700), as etcd does', async () => {
    const dataDir = join(tempDir(), 'new', 'data');
    const backend = await Backend.open(dataDir);
    await backend.close();
    expect(statSync(dataDir).mode & 0o777).toBe(0o700);
  });

  it('state size counts every key space but the Raft log (what the quota limits)', async () => {
    const backend = await Backend.open(tempDir());
    // Random bytes: LevelDB compresses, and only flushed tables count.
    const value = (): Buffer => Buffer.from(Array.from({ length: 4096 }, () => Math.floor(Math.random() * 256)));
    const spaces = [KeySpace.mvcc, KeySpace.raftLog, KeySpace.members];
    const ops = spaces.flatMap((space) => Array.from({ length: 200 }, (_, i) => ({ type: 'put' as const, key: spaceKey(space, `k${i}`), value: value() })));
    await backend.write(ops, { sync: true });
    await backend.compactAll();
    const [mvcc, raftLog, members] = await Promise.all(spaces.map((space) => backend.spaceSizeBytes(space)));
    expect(raftLog).toBeGreaterThan(500_000);
    // Approximate sizes go by table blocks: ranges drawn differently differ by a block or so.
    const state = await backend.stateSizeBytes();
    expect(Math.abs(state - (mvcc! + members!))).toBeLessThan(16 * 1024);
    await backend.close();
  });

  it('the quota measurement counts what the memtable holds (flushedStateSizeBytes)', async () => {
    const backend = await Backend.open(tempDir(), { writeBufferSizeBytes: 32 * 1024 * 1024 });
    const value = (): Buffer => Buffer.from(Array.from({ length: 4096 }, () => Math.floor(Math.random() * 256)));
    await backend.write(
      Array.from({ length: 500 }, (_, i) => put(`k${i}`, '')).map((op) => ({ ...op, value: value() })),
      { sync: true },
    );
    // 2 MB of incompressible state, all of it still in the 32 MiB memtable: no table holds it.
    expect(await backend.stateSizeBytes()).toBeLessThan(100_000);
    const [first, second] = await Promise.all([backend.flushedStateSizeBytes(), backend.flushedStateSizeBytes()]);
    expect(first).toBeGreaterThan(1_900_000);
    expect(second).toBe(first);
    expect(await backend.get(KeySpace.mvcc, 'k499')).toHaveLength(4096);
    await backend.close();
  });

  it('counts a write as written when requested, and as flushed only once it has landed', async () => {
    const backend = await Backend.open(tempDir());
    await backend.write([put('a', '1')], { sync: true });
    const landed = backend.bytesWritten;
    // An unsynced write waits in the queue (a member's apply batch): the quota's estimate
    // counts it before it goes out.
    const queued = backend.write([put('q', 'y'.repeat(1000))], { sync: false });
    expect(backend.bytesWritten).toBeGreaterThan(landed + 1000);
    // Issued at once (prompt), carrying the queued one: in flight when the flush starts, so it
    // may reach LevelDB after the flush, which must not take it as flushed.
    const inFlight = backend.write([put('b', 'x'.repeat(1000))], { sync: false, prompt: true });
    expect(backend.bytesWritten).toBeGreaterThan(landed + 2000);
    await Promise.all([queued, inFlight, backend.flushedStateSizeBytes()]);
    expect(backend.bytesWrittenAtFlush).toBe(landed);
    await backend.close();
  });

  it('keeps what was written across close and reopen', async () => {
    const dir = tempDir();
    const backend = await Backend.open(dir);
    await backend.write([put('a', '1'), put('b', '2')], { sync: true });
    await backend.write([{ type: 'del', key: spaceKey(KeySpace.mvcc, 'a') }], { sync: false });
    await backend.close();
    const reopened = await Backend.open(dir);
    expect(reopened.get(KeySpace.mvcc, 'a')).toBeUndefined();
    expect(reopened.get(KeySpace.mvcc, 'b')?.toString()).toBe('2');
    await reopened.close();
  });

  it('a read sees a write that was requested but has not landed yet', async () => {
    const backend = await Backend.open(tempDir());
    const landed = backend.write([put('k', 'v1')], { sync: false });
    // Not awaited: the write is still queued or in flight.
    expect(backend.get(KeySpace.mvcc, 'k')?.toString()).toBe('v1');
    const deleted = backend.write([{ type: 'del', key: spaceKey(KeySpace.mvcc, 'k') }], { sync: false });
    expect(backend.get(KeySpace.mvcc, 'k')).toBeUndefined();
    await Promise.all([landed, deleted]);
    expect(backend.get(KeySpace.mvcc, 'k')).toBeUndefined();
    await backend.close();
  });

  it('a write queued behind one in flight stays visible when the first lands', async () => {
    const backend = await Backend.open(tempDir());
    const first = backend.write([put('a', '1'), put('b', '1')], { sync: true });
    // Queued while the first is in flight; unsynced, it waits for a later flush.
    const second = backend.write([put('b', '2'), put('c', '2')], { sync: false });
    await first;
    expect(['a', 'b', 'c'].map((k) => backend.get(KeySpace.mvcc, k)?.toString())).toEqual(['1', '2', '2']);
    await second;
    expect(['a', 'b', 'c'].map((k) => backend.get(KeySpace.mvcc, k)?.toString())).toEqual(['1', '2', '2']);
    await backend.close();
  });

  it('writes land in the order they were requested, even when merged', async () => {
    const backend = await Backend.open(tempDir());
    const writes = [];
    for (let i = 0; i < 100; i++) writes.push(backend.write([put('x', String(i))], { sync: i % 10 === 0 }));
    await Promise.all(writes);
    expect(backend.get(KeySpace.mvcc, 'x')?.toString()).toBe('99');
    await backend.close();
  });

  it('scans one key space in key order without the prefix', async () => {
    const backend = await Backend.open(tempDir());
    await backend.write([put('b', '2'), put('a', '1'), { type: 'put', key: spaceKey(KeySpace.meta, 'z'), value: Buffer.from('m') }], { sync: true });
    const seen: string[] = [];
    for await (const [key, value] of backend.scan(KeySpace.mvcc)) seen.push(`${key.toString()}=${value.toString()}`);
    expect(seen).toEqual(['a=1', 'b=2']);
    await backend.close();
  });

  it('refuses a LevelDB database of another format', async () => {
    const dir = tempDir();
    const foreign = new ClassicLevel(join(dir, 'db'));
    await foreign.open();
    await foreign.put('hello', 'world');
    await foreign.close();
    await expect(Backend.open(dir)).rejects.toThrow(StorageFormatError);
  });

  it('refuses an etcd data directory', async () => {
    const dir = tempDir();
    mkdirSync(join(dir, 'member', 'snap'), { recursive: true });
    await expect(Backend.open(dir)).rejects.toThrow(/etcd data directory/);
  });
});
