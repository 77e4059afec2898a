// A streaming bbolt writer: buckets of sorted key/value pairs in, a valid bbolt database out,
// without holding the database in memory.
//
// How it streams. Pages get their ids in the order they are emitted, starting at 2 (pages 0
// and 1 are the meta pages). Each bucket is a B+tree built bottom-up while its pairs arrive:
// every level keeps one open page; when the next element would not fit, the open page is
// emitted and its first key and page id go up into the level above (which opens on demand).
// At the end of a bucket the open pages are emitted from the bottom up and the top one is the
// bucket's root. A nested bucket is written completely while its parent's leaf is still open
// (its pages come first), then its header enters the parent as an element. The root bucket
// (bucket names -> headers) comes after all buckets, then an empty freelist page. Memory is
// one open page per tree level per open bucket.
//
// The meta pages name the root and the freelist, so they are known only at the end: the
// writer returns them ("last written, first read") and the caller puts them at offset 0 —
// with a positional write into a file (bbolt-file.ts), or by running the writer twice when the
// output is a stream (the layout depends only on the input, so the second run emits the same
// pages after the meta pages computed by the first).
//
// Layout choices, each one bbolt itself may make: pages are filled up to the page size (bbolt
// splits at 50% by default; readers do not care); a bucket small enough (no sub-buckets, at
// most a quarter page) is stored inline in its parent's leaf, as bbolt does; an element larger
// than a page gets a page of its own with overflow pages.

import { assert } from '../util/assert.js';
import {
  BUCKET_HEADER_BYTES,
  BUCKET_LEAF_FLAG,
  DEFAULT_PAGE_SIZE,
  ELEMENT_BYTES,
  MAX_PAGE_ELEMENTS,
  PAGE_HEADER_BYTES,
  PageFlag,
  encodeMeta,
  pagesFor,
  writePageHeader,
  type Meta,
} from './format.js';

export type BboltEntry = { key: Buffer; value: Buffer } | { key: Buffer; bucket: BboltSource };
/** A bucket's entries in strictly ascending key order (bytewise). */
export type BboltSource = Iterable<BboltEntry> | AsyncIterable<BboltEntry>;
/** Receives the database's pages from page 2 on, in id order, a chunk of whole pages per call. */
export type PageSink = (pages: Buffer) => void | Promise<void>;

export interface BboltWriteOptions {
  pageSize?: number;
  /** The sink is called with at least this many bytes (except for the last call). */
  chunkBytes?: number;
}

export interface BboltWriteResult {
  /** Pages 0 and 1: write them at offset 0. */
  metaPages: Buffer;
  meta: Meta;
  /** Pages in the database, meta pages included: the file is pageCount * pageSize bytes. */
  pageCount: number;
}

/** Writes a database whose root bucket holds `buckets` (every entry must be a bucket). */
export async function writeBbolt(buckets: BboltSource, sink: PageSink, options: BboltWriteOptions = {}): Promise<BboltWriteResult> {
  const pageSize = options.pageSize ?? DEFAULT_PAGE_SIZE;
  assert(Number.isInteger(pageSize) && pageSize >= 512 && (pageSize & (pageSize - 1)) === 0, `bbolt page size ${pageSize} is not a power of two >= 512`);
  const pages = new PageEmitter(sink, pageSize, options.chunkBytes ?? 1 << 20);
  const root = await writeTree(buckets, pages, { isRoot: true });
  assert(typeof root === 'number', 'the root bucket is never inline');
  const freelist = pages.nextId;
  const freelistPage = Buffer.alloc(pageSize);
  writePageHeader(freelistPage, { id: freelist, flags: PageFlag.freelist, count: 0, overflow: 0 });
  await pages.emit(freelistPage);
  await pages.flush();
  const meta: Meta = { pageSize, flags: 0, rootPage: root, rootSequence: 0n, freelist: BigInt(freelist), highWater: pages.nextId, txid: 0n };
  // Two valid metas with txids 0 and 1, as bbolt's own init writes them; readers take txid 1.
  const metaPages = Buffer.alloc(2 * pageSize);
  for (const id of [0, 1]) {
    const page = metaPages.subarray(id * pageSize, (id + 1) * pageSize);
    writePageHeader(page, { id, flags: PageFlag.meta, count: 0, overflow: 0 });
    encodeMeta({ ...meta, txid: BigInt(id) }).copy(page, PAGE_HEADER_BYTES);
  }
  return { metaPages, meta: { ...meta, txid: 1n }, pageCount: pages.nextId };
}

/** Hands out page ids in emission order and batches pages into sink-sized chunks. */
class PageEmitter {
  nextId = 2;
  private pending: Buffer[] = [];
  private pendingBytes = 0;

  constructor(
    private readonly sink: PageSink,
    readonly pageSize: number,
    private readonly chunkBytes: number,
  ) {}

  async emit(page: Buffer): Promise<void> {
    assert(page.length % this.pageSize === 0, 'a page is a whole number of pages long');
    this.nextId += page.length / this.pageSize;
    this.pending.push(page);
    this.pendingBytes += page.length;
    if (this.pendingBytes >= this.chunkBytes) await this.flush();
  }

  async flush(): Promise<void> {
    if (this.pending.length === 0) return;
    const chunk = this.pending.length === 1 ? this.pending[0]! : Buffer.concat(this.pending, this.pendingBytes);
    this.pending = [];
    this.pendingBytes = 0;
    await this.sink(chunk);
  }
}

/** Writes one bucket's tree; returns its root page id, or for a nested bucket its header value. */
async function writeTree(source: BboltSource, pages: PageEmitter, where: { isRoot: boolean }): Promise<number | Buffer> {
  const tree = new TreeBuilder(pages);
  let previous: Buffer | undefined;
  for await (const entry of source) {
    assert(previous === undefined || Buffer.compare(previous, entry.key) < 0, 'bbolt keys must arrive in strictly ascending order');
    previous = entry.key;
    if ('bucket' in entry) {
      const child = await writeTree(entry.bucket, pages, { isRoot: false });
      await tree.add({ key: entry.key, value: typeof child === 'number' ? bucketHeader(child) : child, flags: BUCKET_LEAF_FLAG });
    } else {
      assert(!where.isRoot, 'the root bucket holds buckets only');
      await tree.add({ key: entry.key, value: entry.value, flags: 0 });
    }
  }
  return tree.finish(!where.isRoot);
}

function bucketHeader(rootPage: number): Buffer {
  const header = Buffer.alloc(BUCKET_HEADER_BYTES);
  header.writeBigUInt64LE(BigInt(rootPage), 0);
  return header; // sequence 0
}

interface LeafItem {
  key: Buffer;
  value: Buffer;
  flags: number;
}
interface BranchItem {
  key: Buffer;
  child: number;
}

/** One tree level's open page. */
class Level {
  items: Array<LeafItem | BranchItem> = [];
  bytes = PAGE_HEADER_BYTES;
  emittedAny = false;
}

class TreeBuilder {
  /** levels[0] holds leaf items, the others branch items. */
  private readonly levels: Level[] = [new Level()];
  private holdsBucket = false;

  constructor(private readonly pages: PageEmitter) {}

  async add(item: LeafItem): Promise<void> {
    if (item.flags & BUCKET_LEAF_FLAG) this.holdsBucket = true;
    await this.push(0, item, ELEMENT_BYTES + item.key.length + item.value.length);
  }

  /** Emits the open pages bottom-up; the bucket's root page id, or its inline header + page. */
  async finish(mayInline: boolean): Promise<number | Buffer> {
    for (let depth = 0; ; depth++) {
      const level = this.levels[depth]!;
      if (depth === this.levels.length - 1 && !level.emittedAny) {
        if (depth > 0 && level.items.length === 1) return (level.items[0] as BranchItem).child;
        if (depth === 0 && mayInline && this.inlineable(level)) {
          // An inline page is exactly as long as its content, with page id 0.
          return Buffer.concat([Buffer.alloc(BUCKET_HEADER_BYTES), encodePage(level, 0, { bytes: level.bytes, overflow: 0 })]);
        }
        return this.emit(depth);
      }
      if (level.items.length > 0) await this.flush(depth);
    }
  }

  private inlineable(leaf: Level): boolean {
    // bbolt's rule (Bucket.inlineable): one leaf, no sub-buckets, at most a quarter page.
    return !this.holdsBucket && leaf.bytes <= this.pages.pageSize / 4;
  }

  private async push(depth: number, item: LeafItem | BranchItem, bytes: number): Promise<void> {
    let level = this.levels[depth];
    if (level === undefined) {
      level = new Level();
      this.levels[depth] = level;
    }
    const full = level.bytes + bytes > this.pages.pageSize || level.items.length === MAX_PAGE_ELEMENTS;
    if (level.items.length > 0 && full) await this.flush(depth);
    level.items.push(item);
    level.bytes += bytes;
  }

  /** Emits a level's open page and files it in the level above. */
  private async flush(depth: number): Promise<void> {
    const firstKey = this.levels[depth]!.items[0]!.key;
    const id = await this.emit(depth);
    await this.push(depth + 1, { key: firstKey, child: id }, ELEMENT_BYTES + firstKey.length);
  }

  private async emit(depth: number): Promise<number> {
    const level = this.levels[depth]!;
    const id = this.pages.nextId;
    const count = pagesFor(level.bytes, this.pages.pageSize);
    await this.pages.emit(encodePage(level, id, { bytes: count * this.pages.pageSize, overflow: count - 1 }));
    level.items = [];
    level.bytes = PAGE_HEADER_BYTES;
    level.emittedAny = true;
    return id;
  }
}

/** A leaf or branch page (with `overflow` pages after it) of `bytes` bytes, zero-padded. */
function encodePage(level: Level, id: number, size: { bytes: number; overflow: number }): Buffer {
  const page = Buffer.alloc(size.bytes);
  const items = level.items;
  const isLeaf = items.length === 0 || 'value' in items[0]!;
  writePageHeader(page, {
    id,
    flags: isLeaf ? PageFlag.leaf : PageFlag.branch,
    count: items.length,
    overflow: size.overflow,
  });
  let data = PAGE_HEADER_BYTES + items.length * ELEMENT_BYTES;
  items.forEach((item, index) => {
    const element = PAGE_HEADER_BYTES + index * ELEMENT_BYTES;
    if ('value' in item) {
      page.writeUInt32LE(item.flags, element);
      page.writeUInt32LE(data - element, element + 4);
      page.writeUInt32LE(item.key.length, element + 8);
      page.writeUInt32LE(item.value.length, element + 12);
      page.set(item.key, data);
      page.set(item.value, data + item.key.length);
      data += item.key.length + item.value.length;
    } else {
      page.writeUInt32LE(data - element, element);
      page.writeUInt32LE(item.key.length, element + 4);
      page.writeBigUInt64LE(BigInt(item.child), element + 8);
      page.set(item.key, data);
      data += item.key.length;
    }
  });
  assert(data === level.bytes, 'bbolt page content size mismatch');
  return page;
}
