// Backups: producing a MetaStore snapshot file from a running member (the Maintenance
// Snapshot stream) and building a fresh member's data dir from one (`metastore snapshot
// restore`). The file layout is in backup-format.ts.
//
// Invariants:
// - A snapshot is one point in time: both passes (sizing, then streaming) read the same
//   StateView, so `remaining_bytes` counts down exactly to the bytes sent, and the SHA-256
//   trailer covers exactly those bytes.
// - Restore writes only into a data dir that does not exist or is empty, and leaves it looking
//   like the data dir of a brand-new member that already holds the state: the replicated key
//   spaces (MVCC records with their revisions, leases, auth, the compacted revision) and
//   nothing else. No raft log, no applied index, no member list or identity: at first start
//   the member derives its member and cluster IDs from its --initial-cluster flags, Raft
//   bootstraps the new membership at log indexes 1..N, and the applier (applied index 0)
//   applies them on top of the restored MVCC state, which carries its own revisions.

import { createHash } from 'node:crypto';
import { existsSync, readdirSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { decodeRevisionKey } from '../../mvcc/revision.js';
import { Backend, FORMAT_VERSION, KeySpace, spaceKey, type BatchOp } from '../../storage/backend.js';
import { assert } from '../../util/assert.js';
import {
  SNAPSHOT_FORMAT,
  SnapshotFileError,
  decodeSnapshotFile,
  encodeEntry,
  encodeHeader,
  encodeTail,
  entryBytes,
  type SnapshotHeader,
} from './backup-format.js';
import { deriveClusterId, deriveMemberId } from '../membership/member-id.js';
import { SNAPSHOT_SPACES, StateView, isMemberLocal, type ViewSource } from './maintenance-view.js';

/** etcd's snapshotSendBufferSize: every blob but the last is this long. */
export const SNAPSHOT_BLOB_BYTES = 32 * 1024;

export interface SnapshotSourceInfo {
  memberId: bigint;
  clusterId: bigint;
  etcdVersion: string;
}

export interface SnapshotStream {
  /** Bytes of the file before the SHA-256 trailer (etcd's snapshot size). */
  readonly totalBytes: number;
  readonly header: SnapshotHeader;
  /** The file's blobs, SNAPSHOT_BLOB_BYTES each except the last (trailer not included). */
  blobs(): AsyncGenerator<Buffer>;
  /** The SHA-256 of every blob, once blobs() has run to the end. */
  sha256(): Buffer;
  close(): Promise<void>;
}

/** Pins the member's state and sizes the snapshot file; stream it with blobs(), then close(). */
export async function openSnapshot(source: ViewSource, info: SnapshotSourceInfo): Promise<SnapshotStream> {
  const view = await StateView.open(source);
  try {
    const { entries, entriesBytes, revision } = await sizeEntries(view);
    const header: SnapshotHeader = {
      format: SNAPSHOT_FORMAT,
      storageFormat: FORMAT_VERSION,
      etcdVersion: info.etcdVersion,
      appliedIndex: await view.appliedIndex(),
      revision,
      compactedRevision: await view.compactedRevision(),
      memberId: info.memberId.toString(16),
      clusterId: info.clusterId.toString(16),
      entries,
    };
    const head = encodeHeader(header);
    const tail = encodeTail(head.length + entriesBytes);
    const totalBytes = head.length + entriesBytes + tail.length;
    const hash = createHash('sha256');
    let digest: Buffer | undefined;

    async function* pieces(): AsyncGenerator<Buffer> {
      yield head;
      let count = 0;
      for await (const [space, key, value] of snapshotEntries(view)) {
        count++;
        yield encodeEntry(space, key, value);
      }
      assert(count === entries, 'snapshot view changed between its two passes');
      yield tail;
    }

    async function* blobs(): AsyncGenerator<Buffer> {
      let sent = 0;
      for await (const blob of fixedSizeBlobs(pieces(), SNAPSHOT_BLOB_BYTES)) {
        hash.update(blob);
        sent += blob.length;
        yield blob;
      }
      assert(sent === totalBytes, `snapshot sent ${sent} bytes, sized ${totalBytes}`);
      digest = hash.digest();
    }

    return {
      totalBytes,
      header,
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

/** The entries a snapshot file carries, in file order: every snapshot space but the format marker. */
async function* snapshotEntries(view: StateView): AsyncGenerator<[KeySpace, Buffer, Buffer]> {
  for (const space of SNAPSHOT_SPACES) {
    for await (const [key, value] of view.scan(space)) {
      if (space === KeySpace.meta && key.toString('latin1') === 'format') continue;
      yield [space, key, value];
    }
  }
}

/** The first pass: how many entries, their encoded bytes, and the last MVCC revision. */
async function sizeEntries(view: StateView): Promise<{ entries: number; entriesBytes: number; revision: number }> {
  let entries = 0;
  let entriesBytes = 0;
  let revision = 0;
  for await (const [space, key, value] of snapshotEntries(view)) {
    entries++;
    entriesBytes += entryBytes(key, value);
    if (space === KeySpace.mvcc) revision = decodeRevisionKey(key).main;
  }
  return { entries, entriesBytes, revision };
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

// ---------------------------------------------------------------- restore

export interface RestoreOptions {
  snapshotFile: string;
  dataDir: string;
  name: string;
  /** The new cluster: every member's name and peer URLs (as given, etcd hashes them verbatim). */
  initialCluster: ReadonlyArray<{ name: string; peerUrls: readonly string[] }>;
  initialClusterToken: string;
  /** This member's advertised peer URLs; must equal its --initial-cluster entry. */
  advertisePeerUrls: readonly string[];
  skipHashCheck: boolean;
}

export interface RestoreResult {
  header: SnapshotHeader;
  /** The member and cluster IDs the restored member will derive from the same flags. */
  memberId: bigint;
  clusterId: bigint;
  /** Entries written (the member-local meta keys are left out). */
  entries: number;
}

/** Ops per LevelDB batch while restoring: bounds memory, not correctness (nothing reads yet). */
const RESTORE_BATCH_BYTES = 4 * 1024 * 1024;

/** The snapshot file's bytes; a missing file is the operator's mistake, reported as such. */
async function readSnapshotFile(path: string): Promise<Buffer> {
  try {
    return await readFile(path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') throw new SnapshotFileError((error as Error).message);
    throw error;
  }
}

/** Builds a new member's data dir from a snapshot file; see the file header. */
export async function restoreSnapshot(options: RestoreOptions): Promise<RestoreResult> {
  if (existsSync(options.dataDir) && readdirSync(options.dataDir).length > 0) {
    throw new SnapshotFileError(`data-dir "${options.dataDir}" exists`);
  }
  const self = options.initialCluster.find((m) => m.name === options.name);
  if (self === undefined) throw new SnapshotFileError(`member "${options.name}" is not in --initial-cluster`);
  const sameUrls = (a: readonly string[], b: readonly string[]): boolean =>
    [...a].sort().join(',') === [...b].sort().join(',');
  if (options.advertisePeerUrls.length > 0 && !sameUrls(self.peerUrls, options.advertisePeerUrls)) {
    throw new SnapshotFileError(
      `--initial-cluster has ${options.name}=${self.peerUrls.join(',')} but --initial-advertise-peer-urls is ${options.advertisePeerUrls.join(',')}`,
    );
  }
  const file = await readSnapshotFile(options.snapshotFile);
  const { header, entries } = decodeSnapshotFile(file, { skipHashCheck: options.skipHashCheck });
  if (header.storageFormat !== FORMAT_VERSION) {
    throw new SnapshotFileError(`snapshot holds storage format "${header.storageFormat}", this MetaStore writes "${FORMAT_VERSION}"`);
  }
  const replicated = new Set<number>(SNAPSHOT_SPACES);
  const backend = await Backend.open(options.dataDir);
  let written = 0;
  try {
    let batch: BatchOp[] = [];
    let batchBytes = 0;
    for (const entry of entries) {
      if (!replicated.has(entry.space)) throw new SnapshotFileError(`snapshot holds an entry in unknown key space ${entry.space}`);
      const space = entry.space as KeySpace;
      if (isMemberLocal(space, entry.key)) continue;
      batch.push({ type: 'put', key: spaceKey(space, entry.key), value: entry.value });
      batchBytes += entry.key.length + entry.value.length;
      written++;
      if (batchBytes >= RESTORE_BATCH_BYTES) {
        await backend.write(batch, { sync: false });
        batch = [];
        batchBytes = 0;
      }
    }
    await backend.write(batch, { sync: true });
  } finally {
    await backend.close();
  }
  const ids = options.initialCluster.map((m) => deriveMemberId([...m.peerUrls], options.initialClusterToken));
  return {
    header,
    memberId: deriveMemberId([...self.peerUrls], options.initialClusterToken),
    clusterId: deriveClusterId(ids),
    entries: written,
  };
}
