// Hash and HashKV: checksums of a member's replicated state that must come out identical on
// every member holding the same state, so members (and operators, with `etcdctl endpoint
// hashkv`) can detect divergence.
//
// Definitions (MetaStore's own; etcd uses the same checksum, CRC-32C, over its bolt buckets):
// - HashKV(rev): CRC-32C over every MVCC record filed at a revision whose main part is <= rev,
//   in revision order, each as [16-byte revision key][u32 record length][record]. The records
//   at or below the compacted revision that remain on disk are exactly those compaction kept,
//   and compaction is applied from the log, so two members at the same revision and the same
//   compacted revision hash the same records (compare `compact_revision` too, as etcd's
//   corruption check does). Any difference in a key, value, lease, version or revision changes
//   a record or its key, and so the hash.
// - Hash: CRC-32C over every replicated key space (meta, mvcc, lease, auth, members) without
//   the member-local keys (format marker, applied index, own identity), each pair as
//   [space][u32 key length][key][u32 value length][value].
// Both read a StateView (a LevelDB snapshot after pending applies landed), never the live
// database, so a concurrent write or compaction cannot tear the result.

import { CompactedError, FutureRevisionError } from '../../mvcc/errors.js';
import { encodeRevisionKey } from '../../mvcc/revision.js';
import { KeySpace } from '../../storage/backend.js';
import { HASHED_SPACES, StateView, isMemberLocal, type ViewSource } from './maintenance-view.js';

// ---------------------------------------------------------------- CRC-32C (Castagnoli)

const CASTAGNOLI_REVERSED = 0x82f63b78;

const CRC_TABLE: Uint32Array = (() => {
  const table = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? CASTAGNOLI_REVERSED ^ (c >>> 1) : c >>> 1;
    table[n] = c >>> 0;
  }
  return table;
})();

/** An incremental CRC-32C, the checksum etcd's Hash and HashKV report (uint32). */
export class Crc32c {
  private state = 0xffffffff;
  private readonly lengthBytes = Buffer.allocUnsafe(4);

  update(bytes: Uint8Array): this {
    let c = this.state;
    for (let i = 0; i < bytes.length; i++) c = CRC_TABLE[(c ^ bytes[i]!) & 0xff]! ^ (c >>> 8);
    this.state = c;
    return this;
  }

  /** A length prefix, so that concatenations of different pairs cannot collide. */
  updateLength(length: number): this {
    this.lengthBytes.writeUInt32BE(length, 0);
    return this.update(this.lengthBytes);
  }

  digest(): number {
    return (this.state ^ 0xffffffff) >>> 0;
  }
}

// ---------------------------------------------------------------- HashKV

export interface HashKvResult {
  hash: number;
  /** The revision hashed up to (HashKVResponse.hash_revision). */
  hashRevision: number;
  /** The compacted revision of the hashed state (HashKVResponse.compact_revision). */
  compactRevision: number;
  /** The member's current revision (the response header's revision). */
  currentRevision: number;
}

/** What HashKV reads from the member besides its stored state. */
export interface HashSource extends ViewSource {
  currentRevision: number;
  compactedRevision: number;
}

/**
 * HashKV at `revision` (0 = current). Errors as a Range at that revision would: at or below
 * the compacted revision, CompactedError; above the current revision, FutureRevisionError.
 */
export async function hashKv(source: HashSource, revision: number): Promise<HashKvResult> {
  const currentRevision = source.currentRevision;
  checkRevision(revision, source.compactedRevision, currentRevision);
  const hashRevision = revision === 0 ? currentRevision : revision;
  const view = await StateView.open(source);
  try {
    // A compaction may have been applied between the check and the view: check against the
    // compacted revision of the state actually hashed.
    const compactRevision = await view.compactedRevision();
    checkRevision(revision, compactRevision, currentRevision);
    const crc = new Crc32c();
    for await (const [key, record] of view.scan(KeySpace.mvcc, { lt: encodeRevisionKey({ main: hashRevision + 1, sub: 0 }) })) {
      crc.update(key).updateLength(record.length).update(record);
    }
    return { hash: crc.digest(), hashRevision, compactRevision, currentRevision };
  } finally {
    await view.close();
  }
}

function checkRevision(revision: number, compacted: number, current: number): void {
  if (revision > 0 && revision <= compacted) throw new CompactedError();
  if (revision > 0 && revision > current) throw new FutureRevisionError();
}

// ---------------------------------------------------------------- Hash

/** Hash of the whole replicated state; `currentRevision` is the member's at the call. */
export async function hashState(source: HashSource): Promise<{ hash: number; currentRevision: number }> {
  const currentRevision = source.currentRevision;
  const view = await StateView.open(source);
  try {
    const crc = new Crc32c();
    const spaceByte = Buffer.allocUnsafe(1);
    for (const space of HASHED_SPACES) {
      spaceByte[0] = space;
      for await (const [key, value] of view.scan(space)) {
        if (isMemberLocal(space, key)) continue;
        crc.update(spaceByte).updateLength(key.length).update(key).updateLength(value.length).update(value);
      }
    }
    return { hash: crc.digest(), currentRevision };
  } finally {
    await view.close();
  }
}
