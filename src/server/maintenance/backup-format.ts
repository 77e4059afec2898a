// MetaStore's snapshot file: what the Maintenance Snapshot stream carries and what
// `metastore snapshot restore` reads. It is MetaStore's own format, not bbolt: etcdctl can
// save it (`etcdctl snapshot save`) but not inspect or restore it.
//
// Layout (integers big-endian):
//
//   "MetaStore snapshot\n"        19 bytes, the magic (readable with `head -1 FILE`)
//   u32 n, n bytes                header: UTF-8 JSON (SnapshotHeader)
//   entries                       [u8 key space][u32 key length][key][u32 value length][value]
//   u8 0                          end of entries (no key space is 0)
//   zero padding                  to a multiple of 512 bytes
//   32 bytes                      SHA-256 of everything above
//
// Why the padding: etcdctl's `snapshot save` accepts a stream only if its length modulo 512
// is 32 (its test for "a database image followed by a SHA-256"), and etcd's restore treats a
// file as checksummed by the same test. The server sends the SHA-256 as the last message, as
// etcd does; the padding is what lets etcdctl recognise it.
//
// Entries list the replicated key spaces in key order (see maintenance-view.ts), the meta
// space included with the applied index it was taken at; restore drops the member-local keys.

import { createHash } from 'node:crypto';
import { assert } from '../../util/assert.js';

export const SNAPSHOT_MAGIC = Buffer.from('MetaStore snapshot\n', 'latin1');
export const SNAPSHOT_FORMAT = 'metastore-snapshot-1';
/** etcd's sector size: a checksummed file is k * 512 + 32 bytes long. */
export const SNAPSHOT_ALIGN_BYTES = 512;
export const SHA256_BYTES = 32;
const END_OF_ENTRIES = 0;

export interface SnapshotHeader {
  format: string;
  /** The storage format of the member that wrote it (backend FORMAT_VERSION). */
  storageFormat: string;
  /** The etcd API the member reproduces. */
  etcdVersion: string;
  /** Applied raft index of the state taken (the source cluster's; meaningless after restore). */
  appliedIndex: number;
  /** Highest MVCC revision whose record is in the file. */
  revision: number;
  compactedRevision: number;
  /** Source member and cluster, hex, for the operator's information. */
  memberId: string;
  clusterId: string;
  entries: number;
}

export class SnapshotFileError extends Error {
  override name = 'SnapshotFileError';
}

export function entryBytes(key: Buffer, value: Buffer): number {
  return 1 + 4 + key.length + 4 + value.length;
}

export function encodeHeader(header: SnapshotHeader): Buffer {
  const json = Buffer.from(JSON.stringify(header), 'utf8');
  const out = Buffer.allocUnsafe(SNAPSHOT_MAGIC.length + 4 + json.length);
  SNAPSHOT_MAGIC.copy(out, 0);
  out.writeUInt32BE(json.length, SNAPSHOT_MAGIC.length);
  json.copy(out, SNAPSHOT_MAGIC.length + 4);
  return out;
}

export function encodeEntry(space: number, key: Buffer, value: Buffer): Buffer {
  assert(space !== END_OF_ENTRIES, 'key space 0 marks the end of entries');
  const out = Buffer.allocUnsafe(entryBytes(key, value));
  out[0] = space;
  out.writeUInt32BE(key.length, 1);
  key.copy(out, 5);
  out.writeUInt32BE(value.length, 5 + key.length);
  value.copy(out, 9 + key.length);
  return out;
}

/** The end marker and the zero padding that follow `bodyBytes` bytes of header and entries. */
export function encodeTail(bodyBytes: number): Buffer {
  const unpadded = bodyBytes + 1;
  const padded = Math.ceil(unpadded / SNAPSHOT_ALIGN_BYTES) * SNAPSHOT_ALIGN_BYTES;
  return Buffer.alloc(padded - bodyBytes); // zeroes: the end marker is 0 as well
}

/** etcd's test (clientv3/snapshot hasChecksum) for "ends with a SHA-256". */
export function hasChecksum(fileBytes: number): boolean {
  return fileBytes % SNAPSHOT_ALIGN_BYTES === SHA256_BYTES;
}

export interface DecodedSnapshot {
  header: SnapshotHeader;
  entries: Array<{ space: number; key: Buffer; value: Buffer }>;
}

/**
 * Checks the trailer (unless `skipHashCheck`) and decodes a snapshot file. Entries are views
 * into `file`.
 */
export function decodeSnapshotFile(file: Buffer, options: { skipHashCheck: boolean }): DecodedSnapshot {
  let body = file;
  if (hasChecksum(file.length)) {
    body = file.subarray(0, file.length - SHA256_BYTES);
    if (!options.skipHashCheck) {
      const expected = file.subarray(file.length - SHA256_BYTES);
      const actual = createHash('sha256').update(body).digest();
      if (!actual.equals(expected)) {
        throw new SnapshotFileError(`snapshot sha256 mismatch: the file says ${expected.toString('hex')}, its content hashes to ${actual.toString('hex')}`);
      }
    }
  } else if (!options.skipHashCheck) {
    throw new SnapshotFileError('snapshot missing hash but --skip-hash-check=false');
  }
  if (body.length < SNAPSHOT_MAGIC.length || !body.subarray(0, SNAPSHOT_MAGIC.length).equals(SNAPSHOT_MAGIC)) {
    throw new SnapshotFileError('not a MetaStore snapshot (no "MetaStore snapshot" magic); etcd (bbolt) snapshots cannot be restored by MetaStore');
  }
  let offset = SNAPSHOT_MAGIC.length;
  const need = (bytes: number): void => {
    if (offset + bytes > body.length) throw new SnapshotFileError(`snapshot truncated at byte ${offset}`);
  };
  need(4);
  const headerBytes = body.readUInt32BE(offset);
  offset += 4;
  need(headerBytes);
  const header = parseHeader(body.toString('utf8', offset, offset + headerBytes));
  offset += headerBytes;
  if (header.format !== SNAPSHOT_FORMAT) {
    throw new SnapshotFileError(`snapshot format "${String(header.format)}" is not "${SNAPSHOT_FORMAT}", the one this MetaStore reads`);
  }
  const entries: DecodedSnapshot['entries'] = [];
  for (;;) {
    need(1);
    const space = body[offset]!;
    offset += 1;
    if (space === END_OF_ENTRIES) break;
    need(4);
    const keyBytes = body.readUInt32BE(offset);
    offset += 4;
    need(keyBytes + 4);
    const key = body.subarray(offset, offset + keyBytes);
    offset += keyBytes;
    const valueBytes = body.readUInt32BE(offset);
    offset += 4;
    need(valueBytes);
    entries.push({ space, key, value: body.subarray(offset, offset + valueBytes) });
    offset += valueBytes;
  }
  if (entries.length !== header.entries) {
    throw new SnapshotFileError(`snapshot holds ${entries.length} entries, its header says ${header.entries}`);
  }
  return { header, entries };
}

/** The header of an untrusted file: a JSON object, else a SnapshotFileError. */
function parseHeader(text: string): SnapshotHeader {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    // JSON.parse fails only with SyntaxError; anything else is not ours to reinterpret.
    if (!(error instanceof SyntaxError)) throw error;
    throw new SnapshotFileError('snapshot header is not valid JSON');
  }
  if (typeof parsed !== 'object' || parsed === null) throw new SnapshotFileError('snapshot header is not a JSON object');
  return parsed as SnapshotHeader;
}
