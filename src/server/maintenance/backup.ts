// The Maintenance Snapshot stream: a member's replicated state as an etcd 3.4 snapshot file
// (a bbolt database with etcd's buckets, see etcd-export.ts), which `etcdctl snapshot save`
// stores and `etcdctl snapshot status/restore`, real etcd and `metastore snapshot restore` read.
//
// Invariants:
// - A snapshot is one point in time: both runs of the bbolt writer (planning, then streaming)
//   read the same StateView, so `remaining_bytes` counts down exactly to the bytes sent, and
//   the SHA-256 trailer covers exactly those bytes.
// - Nothing is held whole: the writer keeps one open page per tree level, the view is a
//   LevelDB snapshot read by iterators, and a blob is handed on only when the reader asks for
//   it. Writes go on meanwhile (the view pins old table files, not the write path).
// - The database is a whole number of pages, so the saved file is k * 512 + 32 bytes long:
//   etcdctl's test for "a database followed by its SHA-256".

import { createHash } from 'node:crypto';
import { bboltStream } from '../../bbolt/output.js';
import { assert } from '../../util/assert.js';
import { etcdBuckets } from './etcd-export.js';
import { StateView, type ViewSource } from './maintenance-view.js';

/** etcd's snapshotSendBufferSize: every blob but the last is this long. */
export const SNAPSHOT_BLOB_BYTES = 32 * 1024;

/** The `cluster` bucket's version: etcd 3.4 members write their major.minor.0. */
const CLUSTER_VERSION = '3.4.0';

export interface SnapshotStream {
  /** Bytes of the database before the SHA-256 trailer (etcd's snapshot size). */
  readonly totalBytes: number;
  /** The file's blobs, SNAPSHOT_BLOB_BYTES each except the last (trailer not included). */
  blobs(): AsyncGenerator<Buffer>;
  /** The SHA-256 of every blob, once blobs() has run to the end. */
  sha256(): Buffer;
  close(): Promise<void>;
}

/** Pins the member's state and plans the database; stream it with blobs(), then close(). */
export async function openSnapshot(source: ViewSource): Promise<SnapshotStream> {
  const view = await StateView.open(source);
  try {
    const database = await bboltStream(() => etcdBuckets(view, { clusterVersion: CLUSTER_VERSION }));
    const hash = createHash('sha256');
    let digest: Buffer | undefined;

    async function* blobs(): AsyncGenerator<Buffer> {
      let sent = 0;
      for await (const blob of fixedSizeBlobs(database.chunks(), SNAPSHOT_BLOB_BYTES)) {
        hash.update(blob);
        sent += blob.length;
        yield blob;
      }
      assert(sent === database.sizeBytes, `snapshot sent ${sent} bytes, planned ${database.sizeBytes}`);
      digest = hash.digest();
    }

    return {
      totalBytes: database.sizeBytes,
      blobs,
      sha256: () => {
        assert(digest !== undefined, 'sha256 asked before the last blob');
        return digest;
      },
      close: () => view.close(),
    };
  } catch (error) {
    await view.close();
    throw error;
  }
}

/** Re-cuts a byte stream into `size`-byte blobs (the last one shorter); each blob is a fresh buffer. */
async function* fixedSizeBlobs(pieces: AsyncIterable<Buffer>, size: number): AsyncGenerator<Buffer> {
  let blob = Buffer.allocUnsafe(size);
  let filled = 0;
  for await (const piece of pieces) {
    let at = 0;
    while (at < piece.length) {
      const n = Math.min(piece.length - at, size - filled);
      piece.copy(blob, filled, at, at + n);
      filled += n;
      at += n;
      if (filled === size) {
        yield blob;
        blob = Buffer.allocUnsafe(size);
        filled = 0;
      }
    }
  }
  if (filled > 0) yield blob.subarray(0, filled);
}
