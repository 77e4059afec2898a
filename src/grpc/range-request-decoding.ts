// RangeRequest decoded by hand into the object proto-loader builds (every field present,
// int64s as decimal strings, enums as numbers, bytes as Buffers viewing the message), for the
// Range handler. proto-loader decodes into a protobufjs message and then copies it into a
// plain object through toObject, with a string conversion per int64 field: a few
// microseconds of the busiest call's CPU (bench/RESULTS.md, "Ranges: 1 and 3 members").
//
// Invariant: for any input, the result is what proto-loader returns, or undefined and the
// caller decodes with proto-loader. Only well-formed messages whose known fields have their
// declared wire type are decoded here; anything else (a group, a truncated field, a varint
// longer than its type allows, a field number 0) is left to proto-loader, which keeps its
// own answer to malformed input (range-request-decoding.test.ts compares the two).

import type * as wire from './etcd-types.js';

/** Shared by every request without the field: a zero-length Buffer cannot be written to. */
const EMPTY = Buffer.alloc(0);

const VARINT = 0;
const FIXED64 = 1;
const LENGTH_DELIMITED = 2;
const FIXED32 = 5;

/** The reader's state: one request is decoded at a time, synchronously. */
let buf: Buffer = EMPTY;
let pos = 0;
/** Set when the input is outside what this decoder handles. */
let bad = false;

export function decodeRangeRequest(bytes: Buffer): wire.RangeRequest | undefined {
  buf = bytes;
  pos = 0;
  bad = false;
  const request: wire.RangeRequest = {
    key: EMPTY,
    rangeEnd: EMPTY,
    limit: '0',
    revision: '0',
    sortOrder: 0,
    sortTarget: 0,
    serializable: false,
    keysOnly: false,
    countOnly: false,
    minModRevision: '0',
    maxModRevision: '0',
    minCreateRevision: '0',
    maxCreateRevision: '0',
  };
  while (pos < buf.length && !bad) {
    const tag = readUint32();
    const field = tag >>> 3;
    const type = tag & 7;
    if (bad || field === 0) return undefined;
    if (field <= 2) {
      if (type !== LENGTH_DELIMITED) return undefined;
      if (field === 1) request.key = readBytes();
      else request.rangeEnd = readBytes();
    } else if (field <= 13) {
      if (type !== VARINT) return undefined;
      readScalar(request, field);
    } else {
      skip(type);
    }
  }
  buf = EMPTY;
  return bad ? undefined : request;
}

function readScalar(request: wire.RangeRequest, field: number): void {
  switch (field) {
    case 3:
      request.limit = readInt64();
      return;
    case 4:
      request.revision = readInt64();
      return;
    case 5:
      request.sortOrder = (readLow32() | 0) as wire.SortOrder;
      return;
    case 6:
      request.sortTarget = (readLow32() | 0) as wire.SortTarget;
      return;
    case 7:
      request.serializable = readLow32() !== 0;
      return;
    case 8:
      request.keysOnly = readLow32() !== 0;
      return;
    case 9:
      request.countOnly = readLow32() !== 0;
      return;
    case 10:
      request.minModRevision = readInt64();
      return;
    case 11:
      request.maxModRevision = readInt64();
      return;
    case 12:
      request.minCreateRevision = readInt64();
      return;
    default:
      request.maxCreateRevision = readInt64();
  }
}

/** A varint of at most 5 bytes (tags, lengths), its low 32 bits unsigned. */
function readUint32(): number {
  return readVarint32(5);
}

/**
 * An enum or bool: its low 32 bits, as protobufjs reads them, from a varint of up to ten bytes
 * (a negative enum value is written as a sign-extended int64).
 */
function readLow32(): number {
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
function readInt64(): string {
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

function readBytes(): Buffer {
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
function skip(type: number): void {
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
