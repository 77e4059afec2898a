import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { AssertionError } from '../util/assert.js';
import { BboltFormatError, PAGE_HEADER_BYTES, PageFlag, readPageHeader } from './format.js';
import { bboltStream, writeBboltFile } from './output.js';
import { BboltReader, type BucketRef } from './reader.js';
import { writeBbolt, type BboltEntry } from './writer.js';

const dir = mkdtempSync(join(tmpdir(), 'bbolt-test-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

interface Tree {
  [bucket: string]: Array<[string, Buffer]> | Tree;
}

function key(i: number): string {
  return `key-${String(i).padStart(8, '0')}`;
}

function pairs(count: number, valueBytes: (i: number) => number): Array<[string, Buffer]> {
  return Array.from({ length: count }, (_, i) => [key(i), Buffer.alloc(valueBytes(i), i % 251)]);
}

/** The writer's input for a tree of buckets (names sorted, as bbolt orders them). */
function* source(tree: Tree): Generator<BboltEntry> {
  const names = Object.keys(tree).sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
  for (const name of names) {
    const content = tree[name]!;
    const entries = Array.isArray(content) ? content.map(([k, v]) => ({ key: Buffer.from(k), value: v })) : [...source(content)];
    yield { key: Buffer.from(name), bucket: entries };
  }
}

/** What the reader finds: "bucket/path" -> [[key, value hex]] (plain values only). */
function flatten(tree: Tree, prefix = ''): Map<string, Array<[string, string]>> {
  const out = new Map<string, Array<[string, string]>>();
  for (const [name, content] of Object.entries(tree)) {
    const path = prefix + name;
    if (Array.isArray(content))
      out.set(
        path,
        content.map(([k, v]) => [k, v.toString('hex')]),
      );
    else for (const [p, list] of flatten(content, `${path}/`)) out.set(p, list);
  }
  return out;
}

function readBack(reader: BboltReader): Map<string, Array<[string, string]>> {
  const out = new Map<string, Array<[string, string]>>();
  const visit = (ref: BucketRef, path: string): void => {
    const list: Array<[string, string]> = [];
    let hasPlain = false;
    let hasBuckets = false;
    for (const item of reader.items(ref)) {
      if (item.bucket) {
        hasBuckets = true;
        visit(item.bucket, `${path}${item.key.toString()}/`);
      } else {
        hasPlain = true;
        list.push([item.key.toString(), item.value.toString('hex')]);
      }
    }
    if (hasPlain || !hasBuckets) out.set(path.slice(0, -1), list);
  };
  for (const item of reader.items(reader.root)) visit(item.bucket!, `${item.key.toString()}/`);
  return out;
}

async function roundTrip(tree: Tree, pageSize?: number): Promise<{ reader: BboltReader; path: string }> {
  const path = join(dir, `db-${Math.random().toString(36).slice(2)}`);
  const result = await writeBboltFile(path, source(tree), pageSize ? { pageSize } : {});
  expect(statSync(path).size).toBe(result.pageCount * result.meta.pageSize);
  const reader = BboltReader.openFile(path);
  expect(reader.check()).toEqual([]);
  expect(readBack(reader)).toEqual(flatten(tree));
  return { reader, path };
}

function flipBit(buffer: Buffer, at: number): void {
  buffer.writeUInt8(buffer.readUInt8(at) ^ 1, at);
}

function pageFlags(path: string, id: number, pageSize: number): number {
  const file = readFileSync(path);
  return readPageHeader(file.subarray(id * pageSize, id * pageSize + PAGE_HEADER_BYTES)).flags;
}

describe('bbolt writer and reader', () => {
  it('round-trips a database without buckets, an empty bucket and a one-key bucket', async () => {
    (await roundTrip({})).reader.close();
    const { reader } = await roundTrip({ empty: [], one: [['k', Buffer.from('v')]] });
    // Both are small enough to be inline, as bbolt stores them.
    expect(reader.bucket('empty')).toHaveProperty('inline');
    expect(reader.bucket('one')).toHaveProperty('inline');
    expect(reader.bucket('missing')).toBeUndefined();
    reader.close();
  });

  it('round-trips thousands of keys over three branch levels (small pages)', async () => {
    const { reader, path } = await roundTrip({ big: pairs(5000, (i) => i % 40) }, 512);
    const root = reader.bucket('big') as { root: number };
    expect(pageFlags(path, root.root, 512)).toBe(PageFlag.branch);
    // Root -> branch -> branch -> leaf: the bottom-up build carried keys up two levels.
    const file = readFileSync(path);
    const firstChild = (id: number): number => Number(file.readBigUInt64LE(id * 512 + PAGE_HEADER_BYTES + 8));
    expect(pageFlags(path, firstChild(root.root), 512)).toBe(PageFlag.branch);
    expect(pageFlags(path, firstChild(firstChild(root.root)), 512)).toBe(PageFlag.branch);
    reader.close();
  });

  it('round-trips many buckets of thousands of keys with the default page size', async () => {
    const { reader } = await roundTrip({ a: pairs(20_000, () => 10), b: pairs(3, () => 1), c: pairs(2000, (i) => i % 300) });
    expect(reader.meta.pageSize).toBe(4096);
    reader.close();
  });

  it('round-trips values larger than a page (overflow pages), between small ones', async () => {
    const list = pairs(50, (i) => (i % 7 === 3 ? 10_000 + i * 100 : 20));
    const { reader, path } = await roundTrip({ large: list, single: [['huge', Buffer.alloc(100_000, 7)]] });
    const single = reader.bucket('single') as { root: number };
    const header = readPageHeader(readFileSync(path).subarray(single.root * 4096));
    expect(header.flags).toBe(PageFlag.leaf);
    expect(header.overflow).toBe(Math.ceil((PAGE_HEADER_BYTES + 16 + 4 + 100_000) / 4096) - 1);
    reader.close();
  });

  it('round-trips nested buckets, inline and on pages', async () => {
    const { reader } = await roundTrip({ outer: { inner: pairs(3, () => 5), wide: pairs(500, () => 30), deeper: { leaf: [['x', Buffer.from('y')]] } } });
    const outer = reader.bucket('outer')!;
    expect(outer).toHaveProperty('root'); // holds buckets: never inline
    expect(reader.bucket('inner', outer)).toHaveProperty('inline');
    expect(reader.bucket('wide', outer)).toHaveProperty('root');
    const walked = [...reader.walk()].map((w) => [...w.path.map(String), w.key.toString()].join('/'));
    expect(walked).toContain('outer/deeper/leaf/x');
    expect(walked).toContain('outer/wide/key-00000499');
    reader.close();
  });

  it('streams the same bytes as the file writer, size known up front', async () => {
    const tree: Tree = { a: pairs(3000, (i) => i % 50), b: pairs(10, () => 6000) };
    const path = join(dir, 'streamed-reference');
    await writeBboltFile(path, source(tree));
    const stream = await bboltStream(() => source(tree), { chunkBytes: 8192 });
    const chunks: Buffer[] = [];
    for await (const chunk of stream.chunks()) chunks.push(chunk);
    const streamed = Buffer.concat(chunks);
    expect(streamed.length).toBe(stream.sizeBytes);
    expect(streamed.equals(readFileSync(path))).toBe(true);
    expect(chunks.length).toBeGreaterThan(3);
  });

  it('a stream abandoned after its first chunks stops its writer', async () => {
    const stream = await bboltStream(() => source({ a: pairs(5000, () => 100) }), { chunkBytes: 4096 });
    let taken = 0;
    for await (const chunk of stream.chunks()) {
      expect(chunk.length).toBeGreaterThan(0);
      if (++taken === 3) break;
    }
    expect(taken).toBe(3);
  });

  it('a slow reader holds the writer back: the input is read at most one chunk and one page per level ahead', async () => {
    // What keeps a snapshot's memory flat whatever the store's size: the streaming run reads
    // its input only as fast as the reader takes chunks (the planning run reads everything
    // but keeps no pages).
    const chunkBytes = 16 * 1024;
    const pageSize = 4096;
    let readBytes = 0; // input bytes handed to the current run
    function* lazyInput(): Generator<BboltEntry> {
      readBytes = 0;
      function* bucket(): Generator<BboltEntry> {
        for (let i = 0; i < 20_000; i++) {
          const entry = { key: Buffer.from(key(i)), value: Buffer.alloc(100, i % 251) };
          readBytes += entry.key.length + entry.value.length;
          yield entry;
        }
      }
      yield { key: Buffer.from('data'), bucket: bucket() };
    }
    const stream = await bboltStream(lazyInput, { chunkBytes, pageSize });
    let taken = 0;
    let mostAhead = 0;
    for await (const chunk of stream.chunks()) {
      const first = taken === 0; // the meta pages, planned by the first run: no input of this run yet
      taken += chunk.length;
      if (!first) mostAhead = Math.max(mostAhead, readBytes - (taken - 2 * pageSize));
    }
    expect(taken).toBe(stream.sizeBytes);
    expect(readBytes).toBe(20_000 * 112); // the whole input went out
    // One chunk being gathered, plus the open leaf and branch pages.
    expect(mostAhead).toBeLessThanOrEqual(chunkBytes + 3 * pageSize);
  });

  it('refuses keys out of order and plain values in the root bucket (caller bugs)', async () => {
    const unsorted = [
      { key: Buffer.from('b'), bucket: [] },
      { key: Buffer.from('a'), bucket: [] },
    ];
    await expect(writeBbolt(unsorted, () => {})).rejects.toThrow(AssertionError);
    await expect(writeBbolt([{ key: Buffer.from('a'), value: Buffer.from('v') }], () => {})).rejects.toThrow(AssertionError);
  });

  it('refuses files that are not bbolt databases or are damaged', async () => {
    expect(() => BboltReader.fromBuffer(Buffer.alloc(100))).toThrow(BboltFormatError);
    expect(() => BboltReader.fromBuffer(Buffer.alloc(3 * 4096, 0x5a))).toThrow(BboltFormatError);
    const path = join(dir, 'damaged');
    await writeBboltFile(path, source({ a: pairs(2000, () => 10) }));
    const file = readFileSync(path);
    expect(() => BboltReader.fromBuffer(file.subarray(0, file.length - 4096))).toThrow(/its meta counts/);
    const badMetas = Buffer.from(file);
    flipBit(badMetas, 16 + 20); // root page field of both metas: checksums no longer match
    flipBit(badMetas, 4096 + 16 + 20);
    expect(() => BboltReader.fromBuffer(badMetas)).toThrow(/checksum/);
    const oneBadMeta = Buffer.from(file);
    flipBit(oneBadMeta, 4096 + 16 + 20); // the other meta still validates
    expect([...BboltReader.fromBuffer(oneBadMeta).walk()]).toHaveLength(2000);
    const badPage = Buffer.from(file);
    const root = (BboltReader.fromBuffer(file).bucket('a') as { root: number }).root;
    badPage.writeUInt16LE(0x40, root * 4096 + 8); // neither branch nor leaf
    expect(() => [...BboltReader.fromBuffer(badPage).walk()]).toThrow(BboltFormatError);
  });
});
