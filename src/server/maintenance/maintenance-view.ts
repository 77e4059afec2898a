// A point-in-time, read-only view of a member's replicated state, for the maintenance
// operations that must see one consistent state while writes go on: Hash, HashKV and
// Snapshot.
//
// Invariants:
// - The view is a LevelDB snapshot taken right after every apply batch requested so far has
//   landed. Each apply batch carries its MVCC records, lease records and the applied index
//   together, so any LevelDB snapshot holds "everything up to the applied index it stores" and
//   nothing half-applied; a raft snapshot install is one batch as well.
// - A snapshot file carries the replicated data spaces (SNAPSHOT_SPACES) and never the raft
//   log or the member list: a restored cluster has a new membership. Hash also covers the
//   member list (HASHED_SPACES), which is replicated through the log.
// - Per-member bookkeeping (the storage format marker, the applied index, the 'local' identity
//   in the member space that node/storage.ts keeps) is flagged by `isMemberLocal`, so hashes leave it out.
// - The caller must close() the view: an open LevelDB snapshot pins old table files.

import type { Backend } from '../../storage/backend.js';
import { KeySpace, spaceKey } from '../../storage/backend.js';
import { isLevelError } from '../../storage/storage-error.js';
import { META_APPLIED_INDEX, META_COMPACTED_REVISION } from '../apply/applier.js';

/** Key spaces a snapshot file carries, in the order it lists them. */
export const SNAPSHOT_SPACES: readonly KeySpace[] = [KeySpace.meta, KeySpace.mvcc, KeySpace.lease, KeySpace.auth];

/** Key spaces Hash covers: the snapshot's plus the member list. */
export const HASHED_SPACES: readonly KeySpace[] = [...SNAPSHOT_SPACES, KeySpace.members];

/** Meta keys that differ between members holding the same state. */
const MEMBER_LOCAL_META = new Set(['format', META_APPLIED_INDEX]);

export function isMemberLocal(space: KeySpace, key: Buffer): boolean {
  if (space === KeySpace.meta) return MEMBER_LOCAL_META.has(key.toString('latin1'));
  return space === KeySpace.members && key.toString('latin1') === 'local';
}

/** What a view needs from the member: its backend and a way to wait for pending applies. */
export interface ViewSource {
  backend: Backend;
  applier: { flushed(): Promise<void> };
}

export class StateView {
  private closed = false;

  private constructor(
    private readonly backend: Backend,
    private readonly snapshot: ReturnType<Backend['level']['snapshot']>,
  ) {}

  /** Waits until every apply requested so far is on disk, then pins that state. */
  static async open(source: ViewSource): Promise<StateView> {
    await source.applier.flushed();
    // No await between the flush and the snapshot is needed for consistency (any landed state
    // is consistent); taking it at once just keeps the view as fresh as the caller expects.
    return new StateView(source.backend, source.backend.level.snapshot());
  }

  /** Iterates one key space in key order (keys without the space prefix). */
  async *scan(space: KeySpace, range: { gte?: Buffer; lt?: Buffer } = {}): AsyncGenerator<[Buffer, Buffer]> {
    const gte = spaceKey(space, range.gte ?? Buffer.alloc(0));
    const lt = range.lt ? spaceKey(space, range.lt) : Buffer.from([space + 1]);
    const iterator = this.backend.level.iterator({ gte, lt, snapshot: this.snapshot });
    try {
      while (true) {
        const next = await iterator.next().catch((error: unknown) => this.readFailed(error));
        if (next === undefined) return;
        yield [next[0].subarray(1), next[1]];
      }
    } finally {
      await iterator.close();
    }
  }

  async get(space: KeySpace, key: string): Promise<Buffer | undefined> {
    const value = await this.backend.level.get(spaceKey(space, key), { snapshot: this.snapshot }).catch((error: unknown) => this.readFailed(error));
    return value ?? undefined;
  }

  /** A LevelDB read failure is a damaged file: the member's fail-stop (storage-error.ts). */
  private readFailed(error: unknown): never {
    if (isLevelError(error)) throw this.backend.readFailed(error);
    throw error;
  }

  async metaNumber(key: string): Promise<number | undefined> {
    const value = await this.get(KeySpace.meta, key);
    return value === undefined ? undefined : Number(value.readBigUInt64BE(0));
  }

  /** The compacted revision in this view (-1: never compacted, as the MVCC store counts). */
  async compactedRevision(): Promise<number> {
    return (await this.metaNumber(META_COMPACTED_REVISION)) ?? -1;
  }

  async appliedIndex(): Promise<number> {
    return (await this.metaNumber(META_APPLIED_INDEX)) ?? 0;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.snapshot.close();
  }
}
