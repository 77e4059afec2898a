// Encoding of one persisted MVCC record (the value stored under a revision key).
//
// Layout (format version 1), all integers big-endian:
//
//   offset  size  field
//   0       1     format version (1)
//   1       1     flags: bit 0 = tombstone
//   2       8     createRevision (uint64)
//   10      8     version (uint64)
//   18      8     lease (int64: etcd lease IDs are int64)
//   26      4     key length (uint32)
//   30      k     key
//   30+k    rest  value
//
// modRevision is not stored: it is the main part of the revision the record is filed under.
// A tombstone has createRevision = version = lease = 0 and an empty value.
// decodeRecord returns views (subarray) into the record instead of copies. encodeRecord gives
// each record its own ArrayBuffer (allocUnsafeSlow): a record (and the values viewing into it)
// can live for a while in queued watch events and unflushed batches, and from Node's shared
// 8 KiB pool one such record would keep a whole slab of otherwise dead buffers alive.

import { assert } from '../util/assert.js';
import { readUint64, writeUint64 } from './revision.js';

export const RECORD_FORMAT_VERSION = 1;
const FLAG_TOMBSTONE = 1;
const HEADER_BYTES = 30;
const INT64_MIN = -(1n << 63n);
const INT64_MAX = (1n << 63n) - 1n;

export interface DecodedRecord {
  key: Buffer;
  value: Buffer;
  createRevision: number;
  version: number;
  lease: bigint;
  tombstone: boolean;
}

export interface RecordFields {
  key: Buffer;
  value: Buffer;
  createRevision: number;
  version: number;
  lease: bigint;
}

export function encodeRecord(fields: RecordFields): Buffer {
  const { key, value, lease } = fields;
  const record = Buffer.allocUnsafeSlow(HEADER_BYTES + key.length + value.length);
  record[0] = RECORD_FORMAT_VERSION;
  record[1] = 0;
  writeUint64(record, fields.createRevision, 2);
  writeUint64(record, fields.version, 10);
  writeLease(record, lease);
  record.writeUInt32BE(key.length, 26);
  // TypedArray#set is a plain memcpy; Buffer#copy adds argument checks that cost more than
  // the copy itself for small keys and values.
  record.set(key, HEADER_BYTES);
  record.set(value, HEADER_BYTES + key.length);
  return record;
}

export function encodeTombstone(key: Buffer): Buffer {
  // Tombstones are short-lived (never kept in memory), so the shared pool is fine here.
  const record = Buffer.alloc(HEADER_BYTES + key.length);
  record[0] = RECORD_FORMAT_VERSION;
  record[1] = FLAG_TOMBSTONE;
  record.writeUInt32BE(key.length, 26);
  key.copy(record, HEADER_BYTES);
  return record;
}

export function decodeRecord(record: Buffer): DecodedRecord {
  assert(record.length >= HEADER_BYTES, `mvcc record too short: ${record.length} bytes`);
  assert(record[0] === RECORD_FORMAT_VERSION, `unknown mvcc record format ${record[0]}`);
  const flags = record[1] ?? 0;
  assert((flags & ~FLAG_TOMBSTONE) === 0, `unknown mvcc record flags ${flags}`);
  const keyLength = record.readUInt32BE(26);
  assert(HEADER_BYTES + keyLength <= record.length, 'mvcc record key overruns the record');
  return {
    key: record.subarray(HEADER_BYTES, HEADER_BYTES + keyLength),
    value: record.subarray(HEADER_BYTES + keyLength),
    createRevision: readUint64(record, 2),
    version: readUint64(record, 10),
    lease: record.readBigInt64BE(18),
    tombstone: (flags & FLAG_TOMBSTONE) !== 0,
  };
}

/** The key inside a record encoded with a key of `keyLength` bytes (a view, no copy). */
export function recordKey(record: Buffer, keyLength: number): Buffer {
  return record.subarray(HEADER_BYTES, HEADER_BYTES + keyLength);
}

/** Byte offset of the value inside a record with a key of `keyLength` bytes. */
export function recordValueOffset(keyLength: number): number {
  return HEADER_BYTES + keyLength;
}

function writeLease(record: Buffer, lease: bigint): void {
  if (lease === 0n) {
    // The common case; skips BigInt arithmetic on the hot path.
    record.writeUInt32BE(0, 18);
    record.writeUInt32BE(0, 22);
    return;
  }
  assert(lease >= INT64_MIN && lease <= INT64_MAX, `lease id does not fit int64: ${lease}`);
  record.writeBigInt64BE(lease, 18);
}
