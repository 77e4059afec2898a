// Applying lease log entries (grant, revoke, checkpoint) to the lessor and, for a revoke, to
// MVCC; and restoring the lessor from the backend at start.
//
// Invariants:
// - Apply decides only from the entry and the replicated state: the ID and the TTL were chosen
//   by the proposer, so every member grants the same lease. The clock read here only stamps the
//   lessor's local state (when this member saw the grant/checkpoint), never a result.
// - A revoke deletes every attached key in ONE MVCC write (one revision, keys in byte order),
//   as etcd does, and its records, events and the removal of the lease record go into the
//   same backend batch as the applied index (the applier's `ops`). Watchers see the deletes as
//   ordinary delete events.
// - The lease record (KeySpace.lease, key = 8-byte big-endian signed ID) is written in the
//   batch of the entry that changed it, so a restart restores exactly the applied state.

import type { Lessor } from '../../lease/lessor.js';
import type { MvccStore, WriteSink } from '../../mvcc/mvcc-store.js';
import type { RequestOp } from '../../mvcc/types.js';
import type { Backend, BatchOp } from '../../storage/backend.js';
import { KeySpace, spaceKey } from '../../storage/backend.js';
import { assert } from '../../util/assert.js';
import type { ApplyOutcome } from './outcome.js';
import type { InternalRequest } from './internal-request.js';

export type LeaseRequest = Extract<InternalRequest, { kind: 'leaseGrant' | 'leaseRevoke' | 'leaseCheckpoint' }>;

const EMPTY = Buffer.alloc(0);

export function leaseKey(id: bigint): Buffer {
  const key = Buffer.allocUnsafe(8);
  key.writeBigInt64BE(BigInt.asIntN(64, id));
  return key;
}

export class LeaseApplier {
  constructor(
    private readonly lessor: Lessor,
    private readonly mvcc: MvccStore,
    private readonly nowMs: () => number,
  ) {}

  /** Applies one lease entry; expected errors (LeaseError) are thrown for the applier to turn
   * into the outcome, before anything changed. */
  apply(request: LeaseRequest, sink: WriteSink, ops: BatchOp[]): ApplyOutcome {
    switch (request.kind) {
      case 'leaseGrant': {
        this.lessor.grant(request.id, request.ttlSeconds, this.nowMs());
        ops.push({ type: 'put', key: spaceKey(KeySpace.lease, leaseKey(request.id)), value: this.lessor.record(request.id)! });
        return {
          ok: true,
          value: { kind: 'leaseGrant', id: request.id, ttlSeconds: request.ttlSeconds },
          revision: this.mvcc.currentRevision,
        };
      }
      case 'leaseRevoke': {
        const keys = this.lessor.revoke(request.id);
        if (keys.length > 0) {
          const success: RequestOp[] = keys.map((key) => ({
            kind: 'deleteRange',
            deleteRange: { key, rangeEnd: EMPTY, prevKv: false },
          }));
          this.mvcc.txn({ compare: [], success, failure: [] }, sink);
        }
        ops.push({ type: 'del', key: spaceKey(KeySpace.lease, leaseKey(request.id)) });
        return { ok: true, value: { kind: 'leaseRevoke' }, revision: this.mvcc.currentRevision };
      }
      case 'leaseCheckpoint': {
        const now = this.nowMs();
        for (const { id, remainingMs } of request.checkpoints) {
          if (!this.lessor.checkpoint(id, remainingMs, now)) continue;
          ops.push({ type: 'put', key: spaceKey(KeySpace.lease, leaseKey(id)), value: this.lessor.record(id)! });
        }
        return { ok: true, value: { kind: 'leaseCheckpoint' }, revision: this.mvcc.currentRevision };
      }
    }
  }
}

/** Loads every persisted lease into a fresh lessor (call before MVCC's finishRestore, which
 * re-attaches live keys to the leases it finds). */
export async function restoreLeases(backend: Backend, lessor: Lessor, nowMs: number): Promise<void> {
  for await (const [key, value] of backend.scan(KeySpace.lease)) {
    assert(key.length === 8, 'lease record key is not 8 bytes');
    lessor.restore(key.readBigInt64BE(0), value, nowMs);
  }
}
