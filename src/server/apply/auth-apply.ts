// Applying auth entries to the auth store, and the apply-time permission checks of writes
// (etcd's authApplierV3): a write is checked against the auth state as of its place in the
// log, with the user and auth revision the proposer stamped on it, so a permission revoked
// (or a password changed) between proposing and applying is honoured on every member alike.
//
// Invariants:
// - Checks read only the entry and the replicated state (auth store, lease keys): every member
//   reaches the same verdict. A refused entry changes nothing but still consumes its index.
// - The auth store's state is written as one record (KeySpace.auth, key "state") in the batch
//   of the entry that changed it, next to the applied index.

import type { AuthStore, AuthStamp } from '../../auth/auth-store.js';
import type { Compare, RequestOp, TxnRequest } from '../../mvcc/types.js';
import type { Backend, BatchOp } from '../../storage/backend.js';
import { KeySpace, spaceKey } from '../../storage/backend.js';
import type { InternalRequest } from './internal-request.js';

export const AUTH_STATE_KEY = 'state';

const EMPTY = Buffer.alloc(0);

export type AuthRequest = Extract<InternalRequest, { kind: 'auth' }>;

export class AuthApplier {
  constructor(
    readonly store: AuthStore,
    /** The keys attached to a lease (a revoke deletes them: the user must be able to write them). */
    private readonly leaseKeys: (id: bigint) => readonly Buffer[],
  ) {}

  /** Throws an AuthError when the entry's stamp may not do what the entry does. */
  check(request: InternalRequest): void {
    const store = this.store;
    if (!store.enabled) return;
    const stamp = request.stamp;
    switch (request.kind) {
      case 'put':
        store.checkPermitted(stamp, request.put.key, EMPTY, 'write');
        if (request.put.lease !== 0n) this.checkLease(stamp, request.put.lease);
        if (request.put.prevKv) store.checkPermitted(stamp, request.put.key, EMPTY, 'read');
        return;
      case 'deleteRange':
        store.checkPermitted(stamp, request.deleteRange.key, request.deleteRange.rangeEnd, 'write');
        if (request.deleteRange.prevKv) store.checkPermitted(stamp, request.deleteRange.key, request.deleteRange.rangeEnd, 'read');
        return;
      case 'txn':
        checkTxn(store, stamp, request.txn);
        return;
      case 'leaseRevoke':
        // Unstamped revokes are the lessor's own (expiry); clients' are stamped.
        if (stamp !== undefined) this.checkLease(stamp, request.id);
        return;
      case 'auth':
        store.checkAdmin(stamp);
        return;
      default:
        // compact (etcd 3.4 checks none), lease grants/checkpoints, member publication.
        return;
    }
  }

  private checkLease(stamp: AuthStamp | undefined, id: bigint): void {
    for (const key of this.leaseKeys(id)) this.store.checkPermitted(stamp, key, EMPTY, 'write');
  }

  /** Applies an auth change (checked already) and queues the new state's record. */
  apply(request: AuthRequest, ops: BatchOp[]): void {
    const before = this.store.revision;
    this.store.apply(request.op);
    if (this.store.revision !== before)
      ops.push({ type: 'put', key: spaceKey(KeySpace.auth, AUTH_STATE_KEY), value: Buffer.from(JSON.stringify(this.store.toJSON())) });
  }
}

/** Every compare reads; every op of both branches, nested txns included, as its kind needs. */
export function checkTxn(store: AuthStore, stamp: AuthStamp | undefined, txn: TxnRequest): void {
  for (const compare of txn.compare as readonly Compare[]) store.checkPermitted(stamp, compare.key, compare.rangeEnd, 'read');
  checkOps(store, stamp, txn.success);
  checkOps(store, stamp, txn.failure);
}

function checkOps(store: AuthStore, stamp: AuthStamp | undefined, ops: readonly RequestOp[]): void {
  for (const op of ops) {
    switch (op.kind) {
      case 'range':
        store.checkPermitted(stamp, op.range.key, op.range.rangeEnd, 'read');
        break;
      case 'put':
        store.checkPermitted(stamp, op.put.key, EMPTY, 'write');
        break;
      case 'deleteRange':
        if (op.deleteRange.prevKv) store.checkPermitted(stamp, op.deleteRange.key, op.deleteRange.rangeEnd, 'read');
        store.checkPermitted(stamp, op.deleteRange.key, op.deleteRange.rangeEnd, 'write');
        break;
      case 'txn':
        checkTxn(store, stamp, op.txn);
        break;
    }
  }
}

/** Loads the persisted auth state into `store` (a fresh store when none was written). */
export function restoreAuth(backend: Backend, store: AuthStore): void {
  const record = backend.get(KeySpace.auth, AUTH_STATE_KEY);
  if (record === undefined) store.reset();
  else store.loadJSON(JSON.parse(record.toString()) as Parameters<AuthStore['loadJSON']>[0]);
}
