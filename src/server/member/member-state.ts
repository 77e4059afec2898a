// The member's replicated state machine: MVCC, leases, auth, alarms and the member list, all
// behind one Applier. Restored from the backend at open, dumped for a lagging follower and
// replaced by a leader's dump (Raft snapshots carry exactly these key spaces).

import { AuthStore } from '../../auth/auth-store.js';
import { Lessor } from '../../lease/lessor.js';
import { MvccStore } from '../../mvcc/mvcc-store.js';
import { decodeRevisionKey, encodeRevisionKey } from '../../mvcc/revision.js';
import type { Revision } from '../../mvcc/types.js';
import type { Backend, BatchOp } from '../../storage/backend.js';
import { KeySpace, spaceKey } from '../../storage/backend.js';
import { ByteReader, ByteWriter } from '../../util/binary.js';
import { Applier, META_APPLIED_INDEX, META_COMPACTED_REVISION } from '../apply/applier.js';
import { AuthApplier, restoreAuth } from '../apply/auth-apply.js';
import { LeaseApplier, restoreLeases } from '../apply/lease-apply.js';
import { Membership } from '../membership/membership.js';

export interface MemberState {
  mvcc: MvccStore;
  lessor: Lessor;
  authStore: AuthStore;
  membership: Membership;
  applier: Applier;
  /** Monotonic milliseconds for lease deadlines. */
  leaseNow: () => number;
}

/** Key spaces that make up the replicated state a snapshot carries. */
const SNAPSHOT_SPACES = [KeySpace.meta, KeySpace.mvcc, KeySpace.lease, KeySpace.auth, KeySpace.members];

/** Keys a snapshot neither carries nor replaces: they describe this member, not the cluster. */
function memberLocalKey(space: KeySpace, key: Buffer): boolean {
  const name = key.toString('latin1');
  return (space === KeySpace.meta && name === 'format') || (space === KeySpace.members && name === 'local');
}

function readMetaNumber(backend: Backend, key: string): number {
  const value = backend.get(KeySpace.meta, key);
  return value === undefined ? 0 : Number(value.readBigUInt64BE(0));
}

/**
 * Rebuilds the state machine from the backend. `initialMembers` seeds the member list (a
 * joining member seeds it from its --initial-cluster too, as etcd asks its peers for it; the
 * log then brings the changes since).
 */
export async function restoreMemberState(
  backend: Backend,
  options: {
    initialMembers?: ReadonlyArray<{ id: bigint; name: string; peerUrls: string[] }>;
    electionTimeoutMs: number;
    leaseNow: () => number;
    /** Bytes of live values the store caches in front of the backend (default 0). */
    valueCacheBytes?: number;
  },
): Promise<MemberState> {
  const membership = await Membership.load(backend);
  if (options.initialMembers) await membership.seed(options.initialMembers);
  const leaseNow = options.leaseNow;
  const lessor = new Lessor({ dirtyCheckpointMs: Math.max(1, Math.floor(options.electionTimeoutMs / 2)) });
  // The store reads every value back through this: records of the batch being applied from
  // the applier, everything else from the backend (which sees its own queued writes).
  let applier: Applier | undefined;
  const history = { readRecord: (rev: Revision) => applier?.unwrittenRecord(rev) ?? backend.get(KeySpace.mvcc, encodeRevisionKey(rev)) };
  const mvcc = new MvccStore({ history, leases: lessor, valueCacheBytes: options.valueCacheBytes });
  await restoreMvcc(backend, mvcc, lessor, leaseNow());
  applier = new Applier(mvcc, backend, readMetaNumber(backend, META_APPLIED_INDEX));
  applier.setLeaseApplier(new LeaseApplier(lessor, mvcc, leaseNow));
  applier.setMembers(membership);
  applier.alarms.load((space, key) => backend.get(space, key));
  const authStore = new AuthStore();
  restoreAuth(backend, authStore);
  applier.setAuthApplier(new AuthApplier(authStore, (id) => lessor.timeToLive(id, 0, true)?.keys ?? []));
  return { mvcc, lessor, authStore, membership, applier, leaseNow };
}

/** A consistent dump of the replicated state (every snapshot key space), for a follower. */
export async function dumpState(backend: Backend, state: MemberState): Promise<{ appliedIndex: number; data: Uint8Array }> {
  await state.applier.flushed();
  const out = new ByteWriter(1 << 20);
  for (const space of SNAPSHOT_SPACES) {
    for await (const [key, value] of backend.scan(space)) {
      if (memberLocalKey(space, key)) continue;
      out.u8(space).bytes(key).bytes(value);
    }
  }
  return { appliedIndex: state.applier.appliedIndex, data: out.finish() };
}

/** Replaces the replicated state with a leader's dump; returns the applied index it holds. */
export async function installState(backend: Backend, state: MemberState, data: Uint8Array): Promise<number> {
  await state.applier.flushed();
  const ops: BatchOp[] = [];
  for (const space of SNAPSHOT_SPACES) {
    for await (const [key] of backend.scan(space)) {
      if (memberLocalKey(space, key)) continue;
      ops.push({ type: 'del', key: spaceKey(space, key) });
    }
  }
  const input = new ByteReader(Buffer.from(data.buffer, data.byteOffset, data.byteLength));
  while (!input.done) {
    const space = input.u8() as KeySpace;
    ops.push({ type: 'put', key: spaceKey(space, input.bytes()), value: Buffer.from(input.bytes()) });
  }
  await backend.write(ops, { sync: true });
  const previousRevision = state.mvcc.currentRevision;
  state.mvcc.reset();
  state.lessor.reset();
  await restoreMvcc(backend, state.mvcc, state.lessor, state.leaseNow());
  const applied = readMetaNumber(backend, META_APPLIED_INDEX);
  state.applier.restored(applied, previousRevision);
  restoreAuth(backend, state.authStore);
  await state.membership.reload();
  state.applier.alarms.load((space, key) => backend.get(space, key));
  return applied;
}

async function restoreMvcc(backend: Backend, mvcc: MvccStore, lessor: Lessor, nowMs: number): Promise<void> {
  for await (const [key, record] of backend.scan(KeySpace.mvcc)) {
    mvcc.restoreRecord(decodeRevisionKey(key), record);
  }
  // Leases before finishRestore, which re-attaches live keys to the leases it finds.
  await restoreLeases(backend, lessor, nowMs);
  // Never compacted: -1, as a fresh store (0 would make negative revisions read as compacted).
  const compacted = backend.get(KeySpace.meta, META_COMPACTED_REVISION);
  mvcc.finishRestore({ compactedRevision: compacted === undefined ? -1 : Number(compacted.readBigUInt64BE(0)) });
}
