// bbolt's on-disk format (go.etcd.io/bbolt 1.3, the store under etcd 3.4), as facts for our own
// writer and reader. Integers are little-endian: bbolt writes its structs from memory and etcd
// runs on little-endian machines, so that is what every etcd file holds.
//
//   page header (16 bytes)   u64 id | u16 flags | u16 count | u32 overflow
//   meta (at page 0 and 1)   u32 magic | u32 version | u32 pageSize | u32 flags |
//                            u64 root bucket page | u64 root sequence | u64 freelist page |
//                            u64 high water page id | u64 txid | u64 FNV-64a of the 56 bytes before
//   branch element (16)      u32 pos | u32 ksize | u64 child page id
//   leaf element (16)        u32 flags (1 = bucket) | u32 pos | u32 ksize | u32 vsize
//   bucket value             u64 root page (0 = inline) | u64 sequence [| inline leaf page]
//   freelist page            count free page ids (u64); count 0xFFFF: the first u64 is the count
//
// An element's `pos` counts from the element's own first byte to its key; the value follows
// the key. A page whose content outgrows one page continues over `overflow` further pages
// (contiguous ids). The meta page with the higher txid that validates is the current one.

export const PAGE_HEADER_BYTES = 16;
export const ELEMENT_BYTES = 16;
export const BUCKET_HEADER_BYTES = 16;
export const META_BYTES = 64;
const META_CHECKSUM_OFFSET = 56;

export const MAGIC = 0xed0cdaed;
export const FORMAT_VERSION = 2;
export const DEFAULT_PAGE_SIZE = 4096;
/** The freelist field of a database that keeps no freelist page. */
export const NO_FREELIST = 0xffffffffffffffffn;
/** The most elements one page can count (the header's u16). */
export const MAX_PAGE_ELEMENTS = 0xffff;

export const PageFlag = { branch: 0x01, leaf: 0x02, meta: 0x04, freelist: 0x10 } as const;
export const BUCKET_LEAF_FLAG = 0x01;

/** A file that is not a bbolt database, or a damaged one: an expected condition for user input. */
export class BboltFormatError extends Error {
  override name = 'BboltFormatError';
}

export interface PageHeader {
  id: number;
  flags: number;
  count: number;
  overflow: number;
}

export function writePageHeader(page: Buffer, header: PageHeader): void {
  page.writeBigUInt64LE(BigInt(header.id), 0);
  page.writeUInt16LE(header.flags, 8);
  page.writeUInt16LE(header.count, 10);
  page.writeUInt32LE(header.overflow, 12);
}

export function readPageHeader(page: Buffer): PageHeader {
  return {
    id: pageId(page.readBigUInt64LE(0)),
    flags: page.readUInt16LE(8),
    count: page.readUInt16LE(10),
    overflow: page.readUInt32LE(12),
  };
}

/** A u64 page id as a number; ids beyond 2^53 pages cannot be real offsets. */
export function pageId(value: bigint): number {
  if (value > BigInt(Number.MAX_SAFE_INTEGER)) throw new BboltFormatError(`page id ${value} out of range`);
  return Number(value);
}

export interface Meta {
  pageSize: number;
  flags: number;
  rootPage: number;
  rootSequence: bigint;
  /** Page id of the freelist, or NO_FREELIST. */
  freelist: bigint;
  /** The high water mark: pages 0 .. highWater-1 make up the database. */
  highWater: number;
  txid: bigint;
}

/** The 64 meta bytes (checksum included) that follow a meta page's header. */
export function encodeMeta(meta: Meta): Buffer {
  const out = Buffer.alloc(META_BYTES);
  out.writeUInt32LE(MAGIC, 0);
  out.writeUInt32LE(FORMAT_VERSION, 4);
  out.writeUInt32LE(meta.pageSize, 8);
  out.writeUInt32LE(meta.flags, 12);
  out.writeBigUInt64LE(BigInt(meta.rootPage), 16);
  out.writeBigUInt64LE(meta.rootSequence, 24);
  out.writeBigUInt64LE(meta.freelist, 32);
  out.writeBigUInt64LE(BigInt(meta.highWater), 40);
  out.writeBigUInt64LE(meta.txid, 48);
  out.writeBigUInt64LE(fnv64a(out.subarray(0, META_CHECKSUM_OFFSET)), META_CHECKSUM_OFFSET);
  return out;
}

/** Decodes and validates meta bytes; returns the reason when they are not a valid meta. */
export function decodeMeta(bytes: Buffer): Meta | string {
  if (bytes.length < META_BYTES) return 'short meta page';
  if (bytes.readUInt32LE(0) !== MAGIC) return 'invalid magic (not a bbolt database)';
  if (bytes.readUInt32LE(4) !== FORMAT_VERSION) return `format version ${bytes.readUInt32LE(4)}, not ${FORMAT_VERSION}`;
  const checksum = bytes.readBigUInt64LE(META_CHECKSUM_OFFSET);
  // bbolt accepts a zero checksum (files from before checksums existed).
  if (checksum !== 0n && checksum !== fnv64a(bytes.subarray(0, META_CHECKSUM_OFFSET))) return 'meta checksum mismatch';
  return {
    pageSize: bytes.readUInt32LE(8),
    flags: bytes.readUInt32LE(12),
    rootPage: pageId(bytes.readBigUInt64LE(16)),
    rootSequence: bytes.readBigUInt64LE(24),
    freelist: bytes.readBigUInt64LE(32),
    highWater: pageId(bytes.readBigUInt64LE(40)),
    txid: bytes.readBigUInt64LE(48),
  };
}

const FNV64_OFFSET = 0xcbf29ce484222325n;
const FNV64_PRIME = 0x100000001b3n;
const U64 = (1n << 64n) - 1n;

/** FNV-1a, 64 bits (Go's hash/fnv New64a). Only meta pages use it: 56 bytes, BigInt is fine. */
export function fnv64a(bytes: Uint8Array): bigint {
  let hash = FNV64_OFFSET;
  for (const byte of bytes) hash = ((hash ^ BigInt(byte)) * FNV64_PRIME) & U64;
  return hash;
}

/** Pages needed for `bytes` of page content (header included). */
export function pagesFor(bytes: number, pageSize: number): number {
  return Math.max(1, Math.ceil(bytes / pageSize));
}
