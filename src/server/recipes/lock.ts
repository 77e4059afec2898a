// The distributed lock of etcd's v3lock service (which runs clientv3/concurrency's Mutex
// inside the server), on the member's own KV, lease and watch machinery.
//
// Layout: a lock named N is a queue of keys under "N/", one per lease: "N/<lease hex>", value
// empty, attached to the lease. The holder is the key with the smallest create revision;
// everybody else waits for every older key to go away (unlock, lease revoke or expiry).
//
//   Lock(N, L):  txn  if create_revision("N/<L>") == 0
//                     then put "N/<L>" (lease L), get oldest under "N/"
//                     else get "N/<L>",           get oldest under "N/"
//                mine := the key's create revision
//                oldest == mine (or none)  -> held at once (header: the txn's revision)
//                else wait until no key under "N/" has create revision < mine
//                                          -> held (header: the revision of that last read)
//   Unlock(K):   delete K
//
// Invariants:
// - A lease already queued under N reuses its key (the else branch), so the same lease
//   locking twice does not queue behind itself.
// - Lease 0 means "a new 60 s lease" (etcd opens a session without a lease, then orphans it).
// - A caller that goes away while queued (or while its txn was in flight) leaves no key
//   behind if this call created it. etcd deletes the key on a failed wait even when it found
//   it already there; we keep such a key because it belongs to another call with the same
//   lease that may still be waiting or holding.
// - If the waiter's own lease ends while it waits, its key is gone but the wait goes on and
//   returns the (deleted) key once the older keys are gone, exactly as etcd's Mutex does;
//   callers check ownership through their lease.

import { assert } from '../../util/assert.js';
import { CompareResult, CompareTarget, rangeRequest, type RangeResult, type ResponseOp } from '../../mvcc/types.js';
import { AbortedError, firstCreated, queueKey, queuePrefix, sessionLease, waitDeletes, type RecipeStore } from './lock-wait.js';

const EMPTY = Buffer.alloc(0);

export interface LockResult {
  /** The ownership key "<name>/<lease hex>"; it exists while the lock is held. */
  key: Buffer;
  /** Header revision: the txn's when uncontended, else the last read of the wait. */
  revision: number;
}

function rangeResult(op: ResponseOp | undefined): RangeResult {
  assert(op !== undefined && op.kind === 'range', 'lock: txn answered without its range');
  return op.range;
}

/** Acquires lock `name` for `lease`; resolves once held, rejects with AbortedError on cancel. */
export async function lock(store: RecipeStore, name: Buffer, lease: bigint, signal: AbortSignal): Promise<LockResult> {
  const leaseId = await sessionLease(store, lease);
  const prefix = queuePrefix(name);
  const myKey = queueKey(prefix, leaseId);
  const { result, revision } = await store.txn({
    compare: [
      {
        result: CompareResult.EQUAL,
        target: CompareTarget.CREATE,
        key: myKey,
        rangeEnd: EMPTY,
        version: 0,
        createRevision: 0,
        modRevision: 0,
        value: EMPTY,
        lease: 0n,
      },
    ],
    success: [
      { kind: 'put', put: { key: myKey, value: EMPTY, lease: leaseId, prevKv: false, ignoreValue: false, ignoreLease: false } },
      { kind: 'range', range: firstCreated(prefix) },
    ],
    failure: [
      { kind: 'range', range: rangeRequest(myKey, EMPTY) },
      { kind: 'range', range: firstCreated(prefix) },
    ],
  });
  const created = result.succeeded;
  let myRevision = revision;
  if (!created) {
    const mine = rangeResult(result.responses[0]).kvs[0];
    assert(mine !== undefined, 'lock: compare saw the key but the range did not');
    myRevision = mine.createRevision;
  }
  const release = async (): Promise<void> => {
    if (created) await store.deleteRange({ key: myKey, rangeEnd: EMPTY, prevKv: false });
  };
  if (signal.aborted) {
    await release();
    throw new AbortedError();
  }
  const oldest = rangeResult(result.responses[1]).kvs[0];
  if (oldest === undefined || oldest.createRevision === myRevision) return { key: myKey, revision };
  try {
    const waited = await waitDeletes(store, prefix, myRevision - 1, signal);
    return { key: myKey, revision: waited };
  } catch (error) {
    await release();
    throw error;
  }
}

/** Deletes the ownership key (whether or not it exists); resolves with the header revision. */
export async function unlock(store: RecipeStore, key: Buffer): Promise<number> {
  const { revision } = await store.deleteRange({ key, rangeEnd: EMPTY, prevKv: false });
  return revision;
}
