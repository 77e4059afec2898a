// A bbolt reader: walks a database file's buckets (nested and inline ones included), branch
// and leaf pages (with their overflow pages) and yields bucket / key / value, reading pages on
// demand, so a large file is never held whole. Format facts: format.ts.
//
// Everything read is checked against the file's bounds; a damaged or foreign file raises
// BboltFormatError (an expected condition: the file comes from the user), never a crash or a
// read past the end. `check()` is our counterpart of bbolt's Tx.Check (which `etcdctl snapshot
// status` runs): each page below the high water mark is reachable exactly once or free.

import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import {
  BUCKET_HEADER_BYTES,
  BUCKET_LEAF_FLAG,
  BboltFormatError,
  DEFAULT_PAGE_SIZE,
  ELEMENT_BYTES,
  META_BYTES,
  NO_FREELIST,
  PAGE_HEADER_BYTES,
  PageFlag,
  decodeMeta,
  pageId,
  readPageHeader,
  type Meta,
  type PageHeader,
} from './format.js';

/** Random access to the file's bytes. */
export interface ByteSource {
  readonly size: number;
  read(offset: number, length: number): Buffer;
  close(): void;
}

/** Where a bucket's tree is: a root page, or a page stored inline in its parent's leaf. */
export type BucketRef = { root: number } | { inline: Buffer };

export interface BboltItem {
  key: Buffer;
  /** A plain value; for a nested bucket, its raw header (see `bucket`). */
  value: Buffer;
  /** Set when the element is a nested bucket. */
  bucket?: BucketRef;
}

export interface WalkedItem {
  /** Bucket names from the root down to the one holding the pair. */
  path: Buffer[];
  key: Buffer;
  value: Buffer;
}

/** Deeper trees than this mean a cycle in a damaged file (a real one is a handful deep). */
const MAX_DEPTH = 64;

export class BboltReader {
  private constructor(
    private readonly source: ByteSource,
    readonly meta: Meta,
  ) {}

  static fromBuffer(buffer: Buffer): BboltReader {
    return BboltReader.open({ size: buffer.length, read: (offset, length) => buffer.subarray(offset, offset + length), close: () => {} });
  }

  static openFile(path: string): BboltReader {
    const fd = openSync(path, 'r');
    const size = fstatSync(fd).size;
    const source: ByteSource = {
      size,
      read: (offset, length) => {
        const out = Buffer.allocUnsafe(length);
        const got = readSync(fd, out, 0, length, offset);
        return out.subarray(0, got);
      },
      close: () => closeSync(fd),
    };
    try {
      return BboltReader.open(source);
    } catch (error) {
      source.close();
      throw error;
    }
  }

  private static open(source: ByteSource): BboltReader {
    const first = decodeMeta(readBounded(source, PAGE_HEADER_BYTES, META_BYTES));
    const pageSize = typeof first === 'string' ? DEFAULT_PAGE_SIZE : first.pageSize;
    if (pageSize < 512 || (pageSize & (pageSize - 1)) !== 0) throw new BboltFormatError(`invalid page size ${pageSize}`);
    const second = decodeMeta(readBounded(source, pageSize + PAGE_HEADER_BYTES, META_BYTES));
    const valid = [first, second].filter((m): m is Meta => typeof m !== 'string' && m.pageSize === pageSize);
    if (valid.length === 0) throw new BboltFormatError(`not a valid bbolt database: ${String(first)}`);
    const meta = valid.reduce((a, b) => (b.txid > a.txid ? b : a));
    if (meta.highWater * pageSize > source.size) {
      throw new BboltFormatError(`file holds ${source.size} bytes, its meta counts ${meta.highWater} pages of ${pageSize}`);
    }
    if (meta.rootPage >= meta.highWater) throw new BboltFormatError(`root page ${meta.rootPage} beyond the high water mark ${meta.highWater}`);
    return new BboltReader(source, meta);
  }

  close(): void {
    this.source.close();
  }

  /** The database's size as bbolt counts it (Tx.Size): high water mark times page size. */
  get sizeBytes(): number {
    return this.meta.highWater * this.meta.pageSize;
  }

  get root(): BucketRef {
    return { root: this.meta.rootPage };
  }

  /** A named bucket of the root bucket (or of `parent`); undefined if absent. */
  bucket(name: Buffer | string, parent: BucketRef = this.root): BucketRef | undefined {
    const wanted = typeof name === 'string' ? Buffer.from(name) : name;
    for (const item of this.items(parent)) {
      const order = Buffer.compare(item.key, wanted);
      if (order === 0) return item.bucket;
      if (order > 0) return undefined;
    }
    return undefined;
  }

  /** The elements of one bucket in key order. */
  *items(bucket: BucketRef): Generator<BboltItem> {
    if ('inline' in bucket) {
      yield* this.leafItems(bucket.inline, readPageHeader(bucket.inline));
      return;
    }
    yield* this.treeItems(bucket.root, 0);
  }

  /** Every key/value pair of every bucket, depth-first in key order. */
  *walk(bucket: BucketRef = this.root, path: Buffer[] = []): Generator<WalkedItem> {
    for (const item of this.items(bucket)) {
      if (item.bucket) yield* this.walk(item.bucket, [...path, item.key]);
      else yield { path, key: item.key, value: item.value };
    }
  }

  /** bbolt's Tx.Check, in short: problems found (empty when the file is consistent). */
  check(): string[] {
    const problems: string[] = [];
    const seen = new Map<number, string>([
      [0, 'meta'],
      [1, 'meta'],
    ]);
    const free = new Set(this.freePages());
    const mark = (id: number, overflow: number, what: string): void => {
      for (let page = id; page <= id + overflow; page++) {
        if (page >= this.meta.highWater) problems.push(`page ${page}: out of bounds (${what})`);
        if (seen.has(page)) problems.push(`page ${page}: multiple references`);
        if (free.has(page)) problems.push(`page ${page}: reachable freed`);
        seen.set(page, what);
      }
    };
    if (this.meta.freelist !== NO_FREELIST) mark(pageId(this.meta.freelist), this.header(pageId(this.meta.freelist)).overflow, 'freelist');
    const visitTree = (root: number): void => {
      this.forEachPage(root, 0, (id, header) => mark(id, header.overflow, 'tree'));
      for (const item of this.items({ root })) if (item.bucket && 'root' in item.bucket) visitTree(item.bucket.root);
    };
    visitTree(this.meta.rootPage);
    // Without a freelist page (bbolt's NoFreelistSync, which etcd 3.4 uses), bbolt rebuilds the
    // freelist as "every page nothing reaches", so only a synced freelist can miss a page.
    if (this.meta.freelist !== NO_FREELIST) {
      for (let page = 0; page < this.meta.highWater; page++) {
        if (!seen.has(page) && !free.has(page)) problems.push(`page ${page}: unreachable unfreed`);
      }
    }
    return problems;
  }

  /** The ids the freelist page lists (empty when the database keeps no freelist). */
  freePages(): number[] {
    if (this.meta.freelist === NO_FREELIST) return [];
    const id = pageId(this.meta.freelist);
    const header = this.header(id);
    if (header.flags !== PageFlag.freelist) throw new BboltFormatError(`page ${id} is the freelist but has flags ${header.flags}`);
    const page = this.page(id, header);
    let count = header.count;
    let at = PAGE_HEADER_BYTES;
    if (count === 0xffff) {
      count = pageId(page.readBigUInt64LE(at));
      at += 8;
    }
    if (at + count * 8 > page.length) throw new BboltFormatError(`freelist of ${count} ids overruns page ${id}`);
    return Array.from({ length: count }, (_, i) => pageId(page.readBigUInt64LE(at + i * 8)));
  }

  private forEachPage(id: number, depth: number, visit: (id: number, header: PageHeader) => void): void {
    if (depth > MAX_DEPTH) throw new BboltFormatError(`tree deeper than ${MAX_DEPTH} at page ${id}`);
    const header = this.header(id);
    visit(id, header);
    if (header.flags & PageFlag.branch) {
      const page = this.page(id, header);
      for (let i = 0; i < header.count; i++) this.forEachPage(branchChild(page, i), depth + 1, visit);
    }
  }

  private *treeItems(id: number, depth: number): Generator<BboltItem> {
    if (depth > MAX_DEPTH) throw new BboltFormatError(`tree deeper than ${MAX_DEPTH} at page ${id}`);
    const header = this.header(id);
    const page = this.page(id, header);
    if (header.flags & PageFlag.leaf) {
      yield* this.leafItems(page, header);
    } else if (header.flags & PageFlag.branch) {
      for (let i = 0; i < header.count; i++) yield* this.treeItems(branchChild(page, i), depth + 1);
    } else {
      throw new BboltFormatError(`page ${id}: expected a branch or leaf page, found flags ${header.flags}`);
    }
  }

  private *leafItems(page: Buffer, header: PageHeader): Generator<BboltItem> {
    if (!(header.flags & PageFlag.leaf)) throw new BboltFormatError(`page ${header.id}: expected a leaf page, found flags ${header.flags}`);
    for (let i = 0; i < header.count; i++) {
      const element = PAGE_HEADER_BYTES + i * ELEMENT_BYTES;
      if (element + ELEMENT_BYTES > page.length) throw new BboltFormatError(`page ${header.id}: element ${i} overruns the page`);
      const flags = page.readUInt32LE(element);
      const keyAt = element + page.readUInt32LE(element + 4);
      const keyBytes = page.readUInt32LE(element + 8);
      const valueBytes = page.readUInt32LE(element + 12);
      if (keyAt + keyBytes + valueBytes > page.length) throw new BboltFormatError(`page ${header.id}: element ${i}'s data overruns the page`);
      const key = page.subarray(keyAt, keyAt + keyBytes);
      const value = page.subarray(keyAt + keyBytes, keyAt + keyBytes + valueBytes);
      yield flags & BUCKET_LEAF_FLAG ? { key, value, bucket: bucketRef(value, header.id) } : { key, value };
    }
  }

  private header(id: number): PageHeader {
    if (id >= this.meta.highWater) throw new BboltFormatError(`page ${id} beyond the high water mark ${this.meta.highWater}`);
    const header = readPageHeader(readBounded(this.source, id * this.meta.pageSize, PAGE_HEADER_BYTES));
    if (header.id !== id) throw new BboltFormatError(`page ${id} says it is page ${header.id}`);
    return header;
  }

  private page(id: number, header: PageHeader): Buffer {
    if (id + header.overflow >= this.meta.highWater) throw new BboltFormatError(`page ${id}'s ${header.overflow} overflow pages pass the high water mark`);
    return readBounded(this.source, id * this.meta.pageSize, (header.overflow + 1) * this.meta.pageSize);
  }
}

function branchChild(page: Buffer, index: number): number {
  const element = PAGE_HEADER_BYTES + index * ELEMENT_BYTES;
  if (element + ELEMENT_BYTES > page.length) throw new BboltFormatError(`branch element ${index} overruns its page`);
  return pageId(page.readBigUInt64LE(element + 8));
}

function bucketRef(value: Buffer, inPage: number): BucketRef {
  if (value.length < BUCKET_HEADER_BYTES) throw new BboltFormatError(`page ${inPage}: bucket value of ${value.length} bytes`);
  const root = pageId(value.readBigUInt64LE(0));
  if (root !== 0) return { root };
  const inline = value.subarray(BUCKET_HEADER_BYTES);
  if (inline.length < PAGE_HEADER_BYTES) throw new BboltFormatError(`page ${inPage}: inline bucket without a page`);
  return { inline };
}

function readBounded(source: ByteSource, offset: number, length: number): Buffer {
  if (offset + length > source.size) throw new BboltFormatError(`read of ${length} bytes at ${offset} passes the end of the file (${source.size} bytes)`);
  const bytes = source.read(offset, length);
  if (bytes.length !== length) throw new BboltFormatError(`short read at ${offset}`);
  return bytes;
}
