// etcd's snapshot file: a bbolt database followed by the SHA-256 of the database (what
// `etcdctl snapshot save` stores and `etcdctl snapshot restore` checks), and `etcdctl snapshot
// status`'s summary of one.
//
// Writing streams (bboltStream): the database's bytes go to the file and the hash in one
// ordered pass, so neither the state nor the file is held in memory. The database is a whole
// number of pages, so the file is k * 512 + 32 bytes long: etcd's test for "has a trailer".

import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { open, stat } from 'node:fs/promises';
import { bboltStream } from '../../bbolt/output.js';
import { BboltReader } from '../../bbolt/reader.js';
import { crc32c } from '../../util/crc32c.js';
import { SHA256_BYTES, SnapshotFileError, hasChecksum } from './backup-format.js';
import { etcdBuckets, type EtcdExportOptions, type StateSource } from './etcd-export.js';

export interface EtcdSnapshotWritten {
  /** The database's size (the file is this plus the 32-byte trailer). */
  databaseBytes: number;
  sha256: Buffer;
}

/** Writes `state` as an etcd 3.4 snapshot file. `state` is read twice (plan, then write). */
export async function writeEtcdSnapshotFile(path: string, state: StateSource, options: EtcdExportOptions = {}): Promise<EtcdSnapshotWritten> {
  const stream = await bboltStream(() => etcdBuckets(state, options));
  const hash = createHash('sha256');
  const file = await open(path, 'w');
  try {
    let written = 0;
    for await (const chunk of stream.chunks()) {
      hash.update(chunk);
      await file.write(chunk);
      written += chunk.length;
    }
    if (written !== stream.sizeBytes) throw new Error(`etcd snapshot: wrote ${written} bytes, planned ${stream.sizeBytes}`);
    const sha256 = hash.digest();
    await file.write(sha256);
    await file.sync();
    return { databaseBytes: written, sha256 };
  } finally {
    await file.close();
  }
}

/**
 * Opens an etcd snapshot (or a bare bbolt database) for reading, after etcd restore's check:
 * a file that ends in a SHA-256 must match it; one without is refused unless skipHashCheck.
 */
export async function openEtcdSnapshot(path: string, options: { skipHashCheck: boolean }): Promise<BboltReader> {
  const size = (await stat(path)).size;
  if (hasChecksum(size)) {
    if (!options.skipHashCheck) await verifyTrailer(path, size);
  } else if (!options.skipHashCheck) {
    throw new SnapshotFileError('snapshot missing hash but --skip-hash-check=false');
  }
  return BboltReader.openFile(path);
}

async function verifyTrailer(path: string, size: number): Promise<void> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path, { end: size - SHA256_BYTES - 1 })) hash.update(chunk as Buffer);
  const actual = hash.digest();
  const file = await open(path, 'r');
  try {
    const expected = Buffer.alloc(SHA256_BYTES);
    await file.read(expected, 0, SHA256_BYTES, size - SHA256_BYTES);
    if (!actual.equals(expected)) {
      throw new SnapshotFileError(`expected sha256 ${expected.toString('hex')}, got ${actual.toString('hex')}`);
    }
  } finally {
    await file.close();
  }
}

/** What `etcdctl snapshot status` reports. */
export interface EtcdSnapshotStatus {
  /** CRC-32C over every bucket name, key and value in order. */
  hash: number;
  /** Main revision of the last key-bucket entry. */
  revision: number;
  /** Entries of all top-level buckets (nested bucket names count as entries). */
  totalKey: number;
  /** The database's size: its pages, the trailer not included. */
  totalSize: number;
}

export function etcdSnapshotStatus(reader: BboltReader): EtcdSnapshotStatus {
  const problems = reader.check();
  if (problems.length > 0) {
    throw new SnapshotFileError(`snapshot file integrity check failed. ${problems.length} errors found.\n${problems.join('\n')}`);
  }
  let hash = 0;
  let revision = 0;
  let totalKey = 0;
  for (const bucket of reader.items(reader.root)) {
    if (bucket.bucket === undefined) throw new SnapshotFileError(`cannot get hash of bucket ${bucket.key.toString()}`);
    hash = crc32c(bucket.key, hash);
    const isKeyBucket = bucket.key.toString() === 'key';
    for (const item of reader.items(bucket.bucket)) {
      hash = crc32c(item.key, hash);
      // A nested bucket's value is nil to bbolt's ForEach: it adds nothing to the hash.
      if (item.bucket === undefined) hash = crc32c(item.value, hash);
      if (isKeyBucket) {
        if (item.key.length < 8) throw new SnapshotFileError(`key bucket holds ${item.key.length}-byte key ${item.key.toString('hex')}, not a revision`);
        revision = Number(item.key.readBigInt64BE(0));
      }
      totalKey++;
    }
  }
  return { hash, revision, totalKey, totalSize: reader.sizeBytes };
}
