// Revision helpers and the on-disk revision key.
//
// The backend stores one record per revision under encodeRevisionKey(rev): 16 bytes, main then
// sub, each a 64-bit big-endian unsigned integer. Big-endian fixed width makes LevelDB's
// bytewise key order equal to revision order, which restore and compaction rely on (they scan
// records in ascending revision order). Revisions are non-negative safe integers, so the high
// 32-bit word never exceeds 2^21 and the split into two 32-bit words is exact.

import { assert } from '../util/assert.js';
import type { Revision } from './types.js';

export const REVISION_KEY_BYTES = 16;
const TWO_32 = 0x1_0000_0000;

export function makeRevision(main: number, sub: number): Revision {
  assert(Number.isSafeInteger(main) && main >= 0, `revision main is not a safe integer >= 0: ${main}`);
  assert(Number.isSafeInteger(sub) && sub >= 0, `revision sub is not a safe integer >= 0: ${sub}`);
  return { main, sub };
}

/** <0, 0, >0 like a comparator: main first, then sub. */
export function compareRevisions(a: Revision, b: Revision): number {
  return a.main !== b.main ? a.main - b.main : a.sub - b.sub;
}

export function revisionsEqual(a: Revision, b: Revision): boolean {
  return a.main === b.main && a.sub === b.sub;
}

/** Writes a non-negative safe integer as 8 big-endian bytes. */
export function writeUint64(buf: Buffer, value: number, offset: number): void {
  assert(Number.isSafeInteger(value) && value >= 0, `not a safe integer >= 0: ${value}`);
  buf.writeUInt32BE(Math.floor(value / TWO_32), offset);
  buf.writeUInt32BE(value >>> 0, offset + 4);
}

/** Reads 8 big-endian bytes; asserts the value is a safe integer (no silent precision loss). */
export function readUint64(buf: Buffer, offset: number): number {
  const high = buf.readUInt32BE(offset);
  assert(high < 0x20_0000, 'uint64 does not fit a safe integer');
  return high * TWO_32 + buf.readUInt32BE(offset + 4);
}

/** The revision key; `room` bytes left in front of it (uninitialised) for a caller's own
 * prefix, so that a key filed under a prefix is made in one allocation. */
export function encodeRevisionKey(rev: Revision, room = 0): Buffer {
  const key = Buffer.allocUnsafe(room + REVISION_KEY_BYTES);
  writeUint64(key, rev.main, room);
  writeUint64(key, rev.sub, room + 8);
  return key;
}

export function decodeRevisionKey(key: Buffer): Revision {
  assert(key.length === REVISION_KEY_BYTES, `revision key must be ${REVISION_KEY_BYTES} bytes, got ${key.length}`);
  return { main: readUint64(key, 0), sub: readUint64(key, 8) };
}
