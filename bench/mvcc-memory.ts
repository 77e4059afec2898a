// Memory of the MVCC core per key and per revision: JS heap + ArrayBuffers held after N puts.
//
//   npm run bench -- mvcc-memory [--keys 200000] [--value-bytes 1024] [--revisions 200000]
//        [--hot-keys 1000] [--hot-value-bytes 256]
//
// The store's history is a real LevelDB backend in a temp dir (as on a member), so records live
// in native memory and on disk and what is measured is what the JS side keeps: the key index,
// plus whatever values the store holds. Measured with --expose-gc after a full GC: heapUsed +
// arrayBuffers, before and after the puts; the difference divided by the keys (workload 1: N
// distinct keys written once) or by the revisions (workload 2: many puts over few keys, no
// compaction). Run it with `node --expose-gc --import tsx bench/mvcc-memory.ts` (the npm
// runner passes no V8 flags; the script re-executes itself with --expose-gc when needed).
//
// Estimate before measuring: with values in the heap, a key of 1 KiB costs its value plus a
// KeyValue, two Buffer views, the KeyIndex, a generation, a {main, sub} object and map entries:
// ~1.4 KiB. Without values, ~300-350 B. A revision: the {main, sub} object and its array slot
// ~48 B before, one array slot (8 B, plus growth slack) after.

import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { MvccStore, type WriteSink } from '../src/mvcc/mvcc-store.js';
import { encodeRevisionKey } from '../src/mvcc/revision.js';
import type { PutRequest, Revision } from '../src/mvcc/types.js';
import { Backend, KeySpace, spaceKey } from '../src/storage/backend.js';
import { numberFlag } from './flags.js';

const gc = (globalThis as { gc?: () => void }).gc;
if (gc === undefined) {
  const script = fileURLToPath(import.meta.url);
  const result = spawnSync(process.execPath, ['--expose-gc', '--import', 'tsx', script, ...process.argv.slice(2)], { stdio: 'inherit' });
  process.exit(result.status ?? 1);
}

function retained(): number {
  gc!();
  gc!();
  const m = process.memoryUsage();
  return m.heapUsed + m.arrayBuffers;
}

/** Puts `total` values over `keys` keys into a fresh store backed by LevelDB; returns the bytes
 * the JS side retains afterwards (the store is still referenced). */
async function measure(keys: number, total: number, valueBytes: number): Promise<{ bytes: number; store: MvccStore }> {
  const dir = mkdtempSync(join(tmpdir(), 'mvcc-memory-'));
  const backend = await Backend.open(dir, { cacheSizeBytes: 8 * 1024 * 1024 });
  const store = new MvccStore({ history: { readRecord: (rev) => backend.get(KeySpace.mvcc, encodeRevisionKey(rev)) } });
  const value = Buffer.alloc(valueBytes, 0x61);
  let writes: Promise<void>[] = [];
  const sink: WriteSink = {
    record(rev: Revision, record: Buffer): void {
      // Handed to the backend at once: its queue serves reads until the write lands.
      writes.push(backend.write([{ type: 'put', key: spaceKey(KeySpace.mvcc, encodeRevisionKey(rev)), value: record }], { sync: false }));
    },
    event(): void {},
  };
  const before = retained();
  for (let i = 0; i < total; i++) {
    const key = Buffer.from(`key-${String((i * 7919) % keys).padStart(8, '0')}`);
    const req: PutRequest = { key, value, lease: 0n, prevKv: false, ignoreValue: false, ignoreLease: false };
    store.put(req, sink);
    if (writes.length >= 1000) {
      await Promise.all(writes);
      writes = [];
    }
  }
  await Promise.all(writes);
  writes = [];
  const bytes = retained() - before;
  await backend.close();
  rmSync(dir, { recursive: true, force: true });
  return { bytes, store };
}

const keys = numberFlag('keys', 200_000);
const valueBytes = numberFlag('value-bytes', 1024);
const revisions = numberFlag('revisions', 200_000);
const hotKeys = numberFlag('hot-keys', 1000);
const hotValueBytes = numberFlag('hot-value-bytes', 256);

const distinct = await measure(keys, keys, valueBytes);
console.log(
  `${keys} keys x ${valueBytes} B, one revision each: ${(distinct.bytes / 2 ** 20).toFixed(1)} MB retained, ${(distinct.bytes / keys).toFixed(0)} B per key`,
);
const base = await measure(hotKeys, hotKeys, hotValueBytes);
const hot = await measure(hotKeys, revisions, hotValueBytes);
const perRevision = (hot.bytes - base.bytes) / (revisions - hotKeys);
console.log(
  `${revisions} puts x ${hotValueBytes} B over ${hotKeys} keys: ${(hot.bytes / 2 ** 20).toFixed(1)} MB retained, ${perRevision.toFixed(1)} B per revision beyond the first of each key`,
);
console.log(
  `node ${process.version}, ${new Date().toISOString()}; stores kept alive until here: ${distinct.store.currentRevision + hot.store.currentRevision}`,
);
