// The protobuf reading shared by the requests decoded by hand (range- and put-request-decoding.ts):
// one message is read at a time, synchronously, from module state, so a decode allocates only
// what it returns. A reader that meets input outside what the hand decoders handle (a truncated
// field, a varint longer than its type allows, a group) marks it `failed` and the caller leaves
// the message to proto-loader.

/** Shared by every request without a bytes field: a zero-length Buffer cannot be written to. */
export const EMPTY = Buffer.alloc(0);

export const VARINT = 0;
const FIXED64 = 1;
export const LENGTH_DELIMITED = 2;
const FIXED32 = 5;

let buf: Buffer = EMPTY;
let pos = 0;
/** Set when the input is outside what the hand decoders handle. */
let bad = false;

/** Starts reading `bytes` from its first byte. */
export function startReading(bytes: Buffer): void {
  buf = bytes;
  pos = 0;
  bad = false;
}

/** True while there is more to read and nothing went wrong. */
export function moreToRead(): boolean {
  return pos < buf.length && !bad;
}

/** True once the input went outside what the hand decoders handle. */
export function failed(): boolean {
  return bad;
}

/** Ends the read (the buffer is not kept); true when it went well. */
export function finishReading(): boolean {
  buf = EMPTY;
  return !bad;
}

/** A varint of at most 5 bytes (tags, lengths), its low 32 bits unsigned. */
export function readUint32(): number {
  return readVarint32(5);
}

/**
 * An enum or bool: its low 32 bits, as protobufjs reads them, from a varint of up to ten bytes
 * (a negative enum value is written as a sign-extended int64).
 */
export function readLow32(): number {
  return readVarint32(10);
}

function readVarint32(maxBytes: number): number {
  let value = 0;
  for (let i = 0; i < maxBytes && pos < buf.length; i++) {
    const byte = buf[pos++] as number;
    // Bits past 35 never reach the low 32: only the first five bytes count.
    if (i < 5) value += (byte & 0x7f) * 2 ** (7 * i);
    if (byte < 0x80) return value >>> 0;
  }
  bad = true;
  return 0;
}

/** An int64 varint (at most 10 bytes) as its signed decimal string, as longs: String gives it. */
export function readInt64(): string {
  const start = pos;
  let value = 0;
  for (let shift = 0; shift < 49; shift += 7) {
    if (pos >= buf.length) break;
    const byte = buf[pos++] as number;
    value += (byte & 0x7f) * 2 ** shift;
    if (byte < 0x80) return String(value);
  }
  // Past 49 bits (negative numbers take ten bytes): exact arithmetic.
  pos = start;
  let big = 0n;
  for (let shift = 0n; shift < 70n; shift += 7n) {
    if (pos >= buf.length) break;
    const byte = buf[pos++] as number;
    big |= BigInt(byte & 0x7f) << shift;
    if (byte < 0x80) return BigInt.asIntN(64, big).toString();
  }
  bad = true;
  return '0';
}

export function readBytes(): Buffer {
  const length = readUint32();
  if (bad || length > buf.length - pos) {
    bad = true;
    return EMPTY;
  }
  const bytes = length === 0 ? EMPTY : buf.subarray(pos, pos + length);
  pos += length;
  return bytes;
}

/** Steps over a field this decoder does not know (proto3 keeps no unknown fields). */
export function skip(type: number): void {
  if (type === VARINT) {
    readInt64();
  } else if (type === LENGTH_DELIMITED) {
    readBytes();
  } else if (type === FIXED64 || type === FIXED32) {
    const size = type === FIXED64 ? 8 : 4;
    if (size > buf.length - pos) bad = true;
    pos += size;
  } else {
    bad = true; // groups (3, 4) and the invalid wire types: proto-loader's business
  }
}
