// HPACK (RFC 7541) for our own HTTP/2 server connection: a full decoder for the requests we
// receive, and a small stateless encoder for the responses we send.
//
// Decoder: static table, dynamic table (insertions, size updates, eviction from the oldest),
// prefixed integers, raw and Huffman strings (huffman-code.ts). Strings are decoded as latin1
// (one byte, one char), as Node's HTTP/2 does. A dynamic-table hit returns the very field tuple
// stored in the table: a request whose headers all hit the tables costs no allocation beyond the
// field list. The header list size (RFC 9113 §6.5.2: name + value + 32 per field) is counted
// while decoding; a block beyond the limit is still decoded to the end (the dynamic table must
// stay in step with the peer's encoder) but its fields are not kept.
//
// Encoder: never touches a dynamic table (so the peer's SETTINGS_HEADER_TABLE_SIZE does not
// matter to it). A field whose name and value are both in the static table is one indexed byte
// (":status 200" is 0x88); a field whose name is there is a literal without indexing with an
// indexed name; else a literal without indexing with a literal name. Strings raw (no Huffman).
// encodedBlock() keeps the bytes of a field list by the list's identity (a constant list, such
// as the gRPC layer's response headers and OK trailers, is encoded once per process); a hit is
// checked field by field against the strings it was encoded from, so a list changed since is
// encoded afresh.
//
// Invariants:
// - decode() never throws and never reads outside [start, end); a malformed block (bad index,
//   bad integer, bad Huffman, a size update above the limit or after a field) returns null: the
//   caller answers COMPRESSION_ERROR, a connection error, since the table is out of step.
// - Dynamic table size = sum of (name.length + value.length + 32) <= maxTableSize, always.

import { huffmanCode } from './huffman-code.js';
import type { HeaderField } from './h2-stream.js';

/** RFC 7541 Appendix A, index 1..61 (entry 0 unused). */
const STATIC_TABLE: readonly HeaderField[] = [
  ['', ''],
  [':authority', ''],
  [':method', 'GET'],
  [':method', 'POST'],
  [':path', '/'],
  [':path', '/index.html'],
  [':scheme', 'http'],
  [':scheme', 'https'],
  [':status', '200'],
  [':status', '204'],
  [':status', '206'],
  [':status', '304'],
  [':status', '400'],
  [':status', '404'],
  [':status', '500'],
  ['accept-charset', ''],
  ['accept-encoding', 'gzip, deflate'],
  ['accept-language', ''],
  ['accept-ranges', ''],
  ['accept', ''],
  ['access-control-allow-origin', ''],
  ['age', ''],
  ['allow', ''],
  ['authorization', ''],
  ['cache-control', ''],
  ['content-disposition', ''],
  ['content-encoding', ''],
  ['content-language', ''],
  ['content-length', ''],
  ['content-location', ''],
  ['content-range', ''],
  ['content-type', ''],
  ['cookie', ''],
  ['date', ''],
  ['etag', ''],
  ['expect', ''],
  ['expires', ''],
  ['from', ''],
  ['host', ''],
  ['if-match', ''],
  ['if-modified-since', ''],
  ['if-none-match', ''],
  ['if-range', ''],
  ['if-unmodified-since', ''],
  ['last-modified', ''],
  ['link', ''],
  ['location', ''],
  ['max-forwards', ''],
  ['proxy-authenticate', ''],
  ['proxy-authorization', ''],
  ['range', ''],
  ['referer', ''],
  ['refresh', ''],
  ['retry-after', ''],
  ['server', ''],
  ['set-cookie', ''],
  ['strict-transport-security', ''],
  ['transfer-encoding', ''],
  ['user-agent', ''],
  ['vary', ''],
  ['via', ''],
  ['www-authenticate', ''],
];
const STATIC_COUNT = 61;

/** The default and largest dynamic table we accept (our SETTINGS_HEADER_TABLE_SIZE stays 4096). */
export const DEFAULT_TABLE_SIZE = 4096;

const ENTRY_OVERHEAD = 32;

export class HpackDecoder {
  /** Dynamic table, oldest first: entries[first..] are live, the newest is the last. */
  private entries: HeaderField[] = [];
  private first = 0;
  private size = 0;
  /** The size the peer's encoder may use (its latest size update, <= maxAllowed). */
  private maxSize: number;
  /** Set by decode(): the block's header list was larger than the limit (fields dropped). */
  tooLarge = false;

  constructor(private readonly maxAllowed = DEFAULT_TABLE_SIZE) {
    this.maxSize = maxAllowed;
  }

  /** Bytes the dynamic table holds now (RFC 7541 §4.1 accounting). */
  get tableSize(): number {
    return this.size;
  }

  /** Entries of the dynamic table, newest first (index 62 first), for tests. */
  tableEntries(): HeaderField[] {
    return this.entries.slice(this.first).reverse();
  }

  /**
   * Decodes one complete header block. Returns the fields (empty if `tooLarge` is set
   * afterwards), or null when the block is malformed (COMPRESSION_ERROR).
   */
  decode(buf: Buffer, start: number, end: number, maxListBytes: number): HeaderField[] | null {
    const fields: HeaderField[] = [];
    let listBytes = 0;
    this.tooLarge = false;
    let pos = start;
    let sawField = false;
    while (pos < end) {
      const b = buf[pos]!;
      let field: HeaderField;
      if (b & 0x80) {
        // Indexed field.
        const index = decodeInt(buf, pos, end, 7);
        if (index < 0) return null;
        pos = intEnd;
        const found = this.lookup(index);
        if (found === undefined) return null;
        field = found;
      } else if ((b & 0xe0) === 0x20) {
        // Dynamic table size update: only before the first field of a block.
        if (sawField) return null;
        const newSize = decodeInt(buf, pos, end, 5);
        if (newSize < 0 || newSize > this.maxAllowed) return null;
        pos = intEnd;
        this.maxSize = newSize;
        this.evictTo(newSize);
        continue;
      } else {
        // Literal: 01 = with incremental indexing (6-bit index), 0000 / 0001 = without / never (4-bit).
        const incremental = (b & 0xc0) === 0x40;
        const index = decodeInt(buf, pos, end, incremental ? 6 : 4);
        if (index < 0) return null;
        pos = intEnd;
        let name: string;
        if (index === 0) {
          const s = decodeString(buf, pos, end);
          if (s === null) return null;
          name = s;
          pos = intEnd;
        } else {
          const found = this.lookup(index);
          if (found === undefined) return null;
          name = found[0];
        }
        const value = decodeString(buf, pos, end);
        if (value === null) return null;
        pos = intEnd;
        field = [name, value];
        if (incremental) this.insert(field);
      }
      sawField = true;
      listBytes += field[0].length + field[1].length + ENTRY_OVERHEAD;
      if (listBytes > maxListBytes) this.tooLarge = true;
      else fields.push(field);
    }
    if (this.tooLarge) fields.length = 0;
    return fields;
  }

  private lookup(index: number): HeaderField | undefined {
    if (index === 0) return undefined;
    if (index <= STATIC_COUNT) return STATIC_TABLE[index];
    const i = this.entries.length - (index - STATIC_COUNT);
    return i >= this.first ? this.entries[i] : undefined;
  }

  private insert(field: HeaderField): void {
    const entrySize = field[0].length + field[1].length + ENTRY_OVERHEAD;
    if (entrySize > this.maxSize) {
      // RFC 7541 §4.4: an entry larger than the table empties it and is not added.
      this.evictTo(0);
      return;
    }
    this.evictTo(this.maxSize - entrySize);
    this.entries.push(field);
    this.size += entrySize;
  }

  private evictTo(limit: number): void {
    while (this.size > limit) {
      const old = this.entries[this.first]!;
      this.entries[this.first] = STATIC_TABLE[0]!;
      this.first++;
      this.size -= old[0].length + old[1].length + ENTRY_OVERHEAD;
    }
    // Compact now and then so the array does not grow without bound.
    if (this.first > 64 && this.first * 2 > this.entries.length) {
      this.entries = this.entries.slice(this.first);
      this.first = 0;
    }
  }
}

/** Where the last decodeInt / decodeString stopped (module state: no allocation per call). */
let intEnd = 0;

/** A prefixed integer (RFC 7541 §5.1) at buf[pos]; -1 if truncated or above 2^30. */
function decodeInt(buf: Buffer, pos: number, end: number, prefixBits: number): number {
  const mask = (1 << prefixBits) - 1;
  let value = buf[pos]! & mask;
  pos++;
  if (value < mask) {
    intEnd = pos;
    return value;
  }
  let shift = 0;
  for (;;) {
    if (pos >= end) return -1;
    const b = buf[pos++]!;
    value += (b & 0x7f) * 2 ** shift;
    if (value > 0x40000000) return -1;
    if ((b & 0x80) === 0) break;
    shift += 7;
  }
  intEnd = pos;
  return value;
}

/** A string literal (RFC 7541 §5.2) at buf[pos], as latin1; null if malformed or truncated. */
function decodeString(buf: Buffer, pos: number, end: number): string | null {
  if (pos >= end) return null;
  const huffman = (buf[pos]! & 0x80) !== 0;
  const length = decodeInt(buf, pos, end, 7);
  if (length < 0) return null;
  const from = intEnd;
  const to = from + length;
  if (to > end) return null;
  intEnd = to;
  if (huffman) return huffmanDecodeLatin1(buf, from, to);
  return buf.toString('latin1', from, to);
}

// ---- Huffman decoding, a nibble at a time ----
//
// The code (huffman-code.ts) as a tree whose 256 internal nodes are the states of a machine that
// reads 4 bits per step: for every state and nibble, the state reached and the symbol completed on
// the way (at most one: the shortest code is 5 bits), or a failure (EOS inside the string). The
// string may end in a state whose path from the root is all ones and shorter than 8 bits (RFC 7541
// §5.2 padding). A bit-at-a-time decoder in test/support is the reference the tests compare it with.

const HUFFMAN_EOS = 256;
/** Per state*16 + nibble: the next state, and the symbol emitted (-1 none, -2 failure). */
const NIBBLE_NEXT = new Uint8Array(256 * 16);
const NIBBLE_SYMBOL = new Int16Array(256 * 16);
/** Per state: the string may end here. */
const ACCEPTS = new Uint8Array(256);

function buildHuffmanMachine(): void {
  // Tree: internal nodes 0..255 (root 0); child encodes a node (>= 0) or a leaf (-1 - symbol).
  const children: number[][] = [[0, 0]];
  const depth = [0];
  const allOnes = [1];
  const unset = 0x7fffffff;
  children[0] = [unset, unset];
  for (let symbol = 0; symbol <= HUFFMAN_EOS; symbol++) {
    const { code, length } = huffmanCode(symbol);
    let node = 0;
    for (let bit = length - 1; bit >= 0; bit--) {
      const b = Math.floor(code / 2 ** bit) & 1;
      if (bit === 0) {
        children[node]![b] = -1 - symbol;
      } else {
        let next = children[node]![b]!;
        if (next === unset) {
          next = children.length;
          children.push([unset, unset]);
          depth.push(depth[node]! + 1);
          allOnes.push(allOnes[node]! & b);
          children[node]![b] = next;
        }
        node = next;
      }
    }
  }
  if (children.length !== 256) throw new Error(`HPACK Huffman tree has ${children.length} internal nodes, not 256`);
  for (let state = 0; state < 256; state++) {
    ACCEPTS[state] = allOnes[state]! === 1 && depth[state]! < 8 ? 1 : 0;
    for (let nibble = 0; nibble < 16; nibble++) {
      let node = state;
      let symbol = -1;
      for (let bit = 3; bit >= 0; bit--) {
        const child = children[node]![(nibble >> bit) & 1]!;
        if (child >= 0) {
          node = child;
          continue;
        }
        const leaf = -1 - child;
        if (leaf === HUFFMAN_EOS) {
          symbol = -2;
          break;
        }
        symbol = leaf;
        node = 0;
      }
      NIBBLE_NEXT[state * 16 + nibble] = symbol === -2 ? 0 : node;
      NIBBLE_SYMBOL[state * 16 + nibble] = symbol;
    }
  }
}
buildHuffmanMachine();

let huffmanOut = Buffer.allocUnsafe(1024);

/** Decodes the Huffman-coded string buf[from, to) to latin1; null if it is not a valid encoding. */
export function huffmanDecodeLatin1(buf: Buffer, from: number, to: number): string | null {
  // At most one symbol per 5 bits.
  const most = Math.ceil(((to - from) * 8) / 5);
  if (huffmanOut.length < most) huffmanOut = Buffer.allocUnsafe(most);
  const out = huffmanOut;
  let n = 0;
  let state = 0;
  for (let i = from; i < to; i++) {
    const byte = buf[i]!;
    let k = state * 16 + (byte >> 4);
    let symbol = NIBBLE_SYMBOL[k]!;
    if (symbol === -2) return null;
    if (symbol >= 0) out[n++] = symbol;
    state = NIBBLE_NEXT[k]!;
    k = state * 16 + (byte & 15);
    symbol = NIBBLE_SYMBOL[k]!;
    if (symbol === -2) return null;
    if (symbol >= 0) out[n++] = symbol;
    state = NIBBLE_NEXT[k]!;
  }
  if (ACCEPTS[state] !== 1) return null;
  return out.toString('latin1', 0, n);
}

// ---- Encoder ----

interface StaticName {
  readonly nameIndex: number;
  readonly values: Map<string, number>;
}

const STATIC_NAMES = new Map<string, StaticName>();
for (let i = 1; i <= STATIC_COUNT; i++) {
  const [name, value] = STATIC_TABLE[i]!;
  let entry = STATIC_NAMES.get(name);
  if (entry === undefined) {
    entry = { nameIndex: i, values: new Map() };
    STATIC_NAMES.set(name, entry);
  }
  if (value !== '' && !entry.values.has(value)) entry.values.set(value, i);
}

/** An upper bound of encodeFields()'s output length for these fields. */
export function encodedBound(fields: readonly HeaderField[]): number {
  let n = 0;
  for (let i = 0; i < fields.length; i++) {
    const f = fields[i]!;
    n += f[0].length + f[1].length + 12;
  }
  return n;
}

/**
 * Encodes `fields` into `out` at `pos` (room for encodedBound(fields) bytes must be there);
 * returns the end position. Strings are written as latin1.
 */
export function encodeFields(fields: readonly HeaderField[], out: Buffer, pos: number): number {
  for (let i = 0; i < fields.length; i++) {
    const f = fields[i]!;
    const name = f[0];
    const value = f[1];
    const known = STATIC_NAMES.get(name);
    if (known !== undefined) {
      const full = known.values.get(value);
      if (full !== undefined) {
        pos = encodeInt(out, pos, full, 7, 0x80);
        continue;
      }
      pos = encodeInt(out, pos, known.nameIndex, 4, 0x00);
    } else {
      out[pos++] = 0x00;
      pos = encodeString(out, pos, name);
    }
    pos = encodeString(out, pos, value);
  }
  return pos;
}

function encodeInt(out: Buffer, pos: number, value: number, prefixBits: number, pattern: number): number {
  const mask = (1 << prefixBits) - 1;
  if (value < mask) {
    out[pos++] = pattern | value;
    return pos;
  }
  out[pos++] = pattern | mask;
  value -= mask;
  while (value >= 0x80) {
    out[pos++] = (value & 0x7f) | 0x80;
    value = Math.floor(value / 128);
  }
  out[pos++] = value;
  return pos;
}

function encodeString(out: Buffer, pos: number, s: string): number {
  pos = encodeInt(out, pos, s.length, 7, 0x00);
  if (s.length > 0) pos += out.write(s, pos, 'latin1');
  return pos;
}

interface CachedBlock {
  /** The names and values the bytes were encoded from, in order. */
  readonly strings: string[];
  readonly bytes: Buffer;
}

const blockCache = new WeakMap<readonly HeaderField[], CachedBlock>();
let scratch = Buffer.allocUnsafe(4096);

/** The HPACK block of `fields` (see the header comment: cached by the list's identity, checked). */
export function encodedBlock(fields: readonly HeaderField[]): Buffer {
  const cached = blockCache.get(fields);
  if (cached !== undefined && sameFields(cached.strings, fields)) return cached.bytes;
  const bound = encodedBound(fields);
  if (scratch.length < bound) scratch = Buffer.allocUnsafe(bound);
  const n = encodeFields(fields, scratch, 0);
  const bytes = Buffer.allocUnsafeSlow(n);
  scratch.copy(bytes, 0, 0, n);
  const strings: string[] = [];
  for (let i = 0; i < fields.length; i++) strings.push(fields[i]![0], fields[i]![1]);
  blockCache.set(fields, { strings, bytes });
  return bytes;
}

function sameFields(strings: string[], fields: readonly HeaderField[]): boolean {
  if (strings.length !== fields.length * 2) return false;
  for (let i = 0; i < fields.length; i++) {
    const f = fields[i]!;
    if (f[0] !== strings[2 * i] || f[1] !== strings[2 * i + 1]) return false;
  }
  return true;
}
