// RangeResponse bytes written by hand, in one buffer of the exact size: the Range handler hands
// them to grpc-js as they are (handler.ts lets a handler answer with encoded bytes). Through
// protobufjs a 1-key answer cost a spread copy of the response, fromObject of the response and
// of each KeyValue (int64s through Long), its encoder's writer and a concat with the header
// bytes: a few percent of a member's CPU per range, the busiest call etcd serves.
//
// Invariant: the bytes are exactly what protobufjs wrote for the object the handler built
// before (toWireRange: every KeyValue field written, zero values included; `more` and `count`
// always written), so clients see no change at all; range-encoding.test.ts compares the two.
// The KeyValue writer also encodes watch events (watch-encoding.ts).

import type { KeyValue, RangeResult } from '../mvcc/types.js';
import { encodeHeaderField, type HeaderObject } from './header-encoding.js';

const KVS_TAG = 0x12; // field 2, length-delimited
const MORE_TAG = 0x18; // field 3, varint
const COUNT_TAG = 0x20; // field 4, varint
const KEY_TAG = 0x0a; // KeyValue field 1
const CREATE_TAG = 0x10; // field 2
const MOD_TAG = 0x18; // field 3
const VERSION_TAG = 0x20; // field 4
const VALUE_TAG = 0x2a; // field 5
const LEASE_TAG = 0x30; // field 6

/** Byte strings shorter than this are copied by a loop (cheaper than a native copy call). */
const LOOP_COPY_MAX = 48;

/**
 * The encoded RangeResponse, or undefined when the header holds something other than plain
 * integers (the caller then answers with the object, for protobufjs to encode).
 */
export function encodeRangeResponse(header: HeaderObject, result: RangeResult): Buffer | undefined {
  const headerField = encodeHeaderField(header);
  if (headerField === undefined) return undefined;
  const kvs = result.kvs;
  // more: tag and one byte; count: tag and varint.
  let size = headerField.length + 3 + varintSize(result.count);
  for (const kv of kvs) {
    const body = keyValueSize(kv);
    size += 1 + varintSize(body) + body;
  }
  const out = Buffer.allocUnsafe(size);
  let at = copyBytes(headerField, out, 0);
  for (const kv of kvs) {
    out[at++] = KVS_TAG;
    at = writeVarint(out, at, keyValueSize(kv));
    at = writeKeyValue(out, at, kv);
  }
  out[at++] = MORE_TAG;
  out[at++] = result.more ? 1 : 0;
  out[at++] = COUNT_TAG;
  at = writeVarint(out, at, result.count);
  return out;
}

/** The encoded size of a KeyValue message (every field written, zero values included). */
export function keyValueSize(kv: KeyValue): number {
  return (
    1 +
    varintSize(kv.key.length) +
    kv.key.length +
    1 +
    varintSize(kv.createRevision) +
    1 +
    varintSize(kv.modRevision) +
    1 +
    varintSize(kv.version) +
    1 +
    varintSize(kv.value.length) +
    kv.value.length +
    1 +
    leaseSize(kv.lease)
  );
}

/** Writes a KeyValue message's body at `start` (keyValueSize bytes); returns the offset after it. */
export function writeKeyValue(out: Buffer, start: number, kv: KeyValue): number {
  let at = start;
  out[at++] = KEY_TAG;
  at = writeVarint(out, at, kv.key.length);
  at = copyBytes(kv.key, out, at);
  out[at++] = CREATE_TAG;
  at = writeVarint(out, at, kv.createRevision);
  out[at++] = MOD_TAG;
  at = writeVarint(out, at, kv.modRevision);
  out[at++] = VERSION_TAG;
  at = writeVarint(out, at, kv.version);
  out[at++] = VALUE_TAG;
  at = writeVarint(out, at, kv.value.length);
  at = copyBytes(kv.value, out, at);
  out[at++] = LEASE_TAG;
  return writeLease(out, at, kv.lease);
}

function copyBytes(from: Buffer, out: Buffer, at: number): number {
  const length = from.length;
  if (length < LOOP_COPY_MAX) {
    for (let i = 0; i < length; i++) out[at + i] = from[i] as number;
  } else {
    out.set(from, at);
  }
  return at + length;
}

/** Bytes of a non-negative safe integer as a varint (revisions, counts, lengths). */
export function varintSize(value: number): number {
  let size = 1;
  for (let v = value; v >= 0x80; v = Math.floor(v / 0x80)) size++;
  return size;
}

export function writeVarint(out: Buffer, start: number, value: number): number {
  let at = start;
  let v = value;
  while (v >= 0x80) {
    out[at++] = (v % 0x80) | 0x80;
    v = Math.floor(v / 0x80);
  }
  out[at++] = v;
  return at;
}

/** A lease ID is an int64: a negative one is written as ten bytes of two's complement. */
function leaseSize(lease: bigint): number {
  if (lease === 0n) return 1;
  let size = 1;
  for (let v = BigInt.asUintN(64, lease); v >= 0x80n; v >>= 7n) size++;
  return size;
}

function writeLease(out: Buffer, start: number, lease: bigint): number {
  if (lease === 0n) {
    out[start] = 0;
    return start + 1;
  }
  let at = start;
  let v = BigInt.asUintN(64, lease);
  while (v >= 0x80n) {
    out[at++] = Number(v & 0x7fn) | 0x80;
    v >>= 7n;
  }
  out[at++] = Number(v);
  return at;
}
