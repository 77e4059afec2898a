// Leader election as etcd's v3election service runs it (clientv3/concurrency's Election inside
// the server), on the member's own KV, lease and watch machinery.
//
// Layout: election N is a queue of keys under "N/", one per lease: "N/<lease hex>", holding
// the candidate's value, attached to its lease. The leader is the key with the smallest
// create revision; a LeaderKey {name, key, rev = create revision, lease} identifies one
// candidacy, and Proclaim/Resign act only while that exact key (same create revision) exists.
//
//   Campaign(N, L, v): txn if create_revision("N/<L>") == 0 then put "N/<L>"=v (lease L)
//                      else get "N/<L>" (an existing candidacy of L: proclaim v if it differs);
//                      then wait until no key under "N/" has a smaller create revision.
//                      Header: the campaign txn's revision.
//   Proclaim(k, v):    txn if create_revision(k.key) == k.rev then put k.key=v (lease k.lease)
//                      else "election: not leader"
//   Resign(k):         txn if create_revision(k.key) == k.rev then delete k.key
//   Leader(N):         oldest key under "N/", else "election: no leader"
//   Observe(N):        the leader's kv, then every put to that key until it is deleted, then
//                      the next leader (waiting for the first put when there is none).
//
// Invariants:
// - Lease 0 in Campaign, Proclaim and Resign means "a new 60 s lease", as in etcd (its server
//   opens a session for each of them).
// - A campaigner cancelled while waiting resigns (deletes its key if it is still that
//   candidacy); one whose wait fails otherwise leaves its key, as etcd does.
// - Observe never reports a delete: a deletion of the leader key only moves it on to the next
//   leader. Watches start right after the revision the preceding read saw, so no write is
//   missed even if it lands between the read and the watch.

import { assert } from '../../util/assert.js';
import { CompareResult, CompareTarget, rangeRequest, type Compare, type KeyValue } from '../../mvcc/types.js';
import { firstCreated, HubWatch, queueKey, queuePrefix, readNow, sessionLease, waitDeletes, type RecipeStore } from './lock-wait.js';
import { prefixEnd } from '../watch/watch-hub.js';

const EMPTY = Buffer.alloc(0);

export type ElectionErrorCode = 'not-leader' | 'no-leader' | 'missing-leader-key';

const MESSAGES: Record<ElectionErrorCode, string> = {
  'not-leader': 'election: not leader',
  'no-leader': 'election: no leader',
  'missing-leader-key': '"leader" field must be provided',
};

/** etcd's election errors: plain Go errors, so gRPC carries them as codes.Unknown with this text. */
export class ElectionError extends Error {
  override name = 'ElectionError';
  constructor(readonly code: ElectionErrorCode) {
    super(MESSAGES[code]);
  }
}

export interface LeaderKey {
  name: Buffer;
  key: Buffer;
  /** Create revision of `key`: which candidacy this is. */
  rev: number;
  lease: bigint;
}

function createRevisionIs(key: Buffer, createRevision: number): Compare {
  return {
    result: CompareResult.EQUAL,
    target: CompareTarget.CREATE,
    key,
    rangeEnd: EMPTY,
    version: 0,
    createRevision,
    modRevision: 0,
    value: EMPTY,
    lease: 0n,
  };
}

function putOp(key: Buffer, value: Buffer, lease: bigint) {
  return { kind: 'put' as const, put: { key, value, lease, prevKv: false, ignoreValue: false, ignoreLease: false } };
}

/** Proclaim's txn for an already known lease; throws not-leader if the candidacy is gone. */
async function proclaimAs(store: RecipeStore, key: Buffer, rev: number, lease: bigint, value: Buffer): Promise<number> {
  const { result, revision } = await store.txn({ compare: [createRevisionIs(key, rev)], success: [putOp(key, value, lease)], failure: [] });
  if (!result.succeeded) throw new ElectionError('not-leader');
  return revision;
}

async function resignAs(store: RecipeStore, key: Buffer, rev: number): Promise<number> {
  const { revision } = await store.txn({
    compare: [createRevisionIs(key, rev)],
    success: [{ kind: 'deleteRange', deleteRange: { key, rangeEnd: EMPTY, prevKv: false } }],
    failure: [],
  });
  return revision;
}

/** Campaigns for leadership of `name`; resolves once elected. */
export async function campaign(
  store: RecipeStore,
  name: Buffer,
  lease: bigint,
  value: Buffer,
  signal: AbortSignal,
): Promise<{ leader: LeaderKey; revision: number }> {
  const leaseId = await sessionLease(store, lease);
  const prefix = queuePrefix(name);
  const key = queueKey(prefix, leaseId);
  const { result, revision } = await store.txn({
    compare: [createRevisionIs(key, 0)],
    success: [putOp(key, value, leaseId)],
    failure: [{ kind: 'range', range: rangeRequest(key, EMPTY) }],
  });
  let rev = revision;
  if (!result.succeeded) {
    const response = result.responses[0];
    assert(response !== undefined && response.kind === 'range', 'election: campaign txn answered without its range');
    const existing = response.range.kvs[0];
    assert(existing !== undefined, 'election: compare saw the key but the range did not');
    rev = existing.createRevision;
    if (!existing.value.equals(value)) {
      try {
        await proclaimAs(store, key, rev, leaseId, value);
      } catch (error) {
        await resignAs(store, key, rev);
        throw error;
      }
    }
  }
  try {
    await waitDeletes(store, prefix, rev - 1, signal);
  } catch (error) {
    if (signal.aborted) await resignAs(store, key, rev);
    throw error;
  }
  return { leader: { name, key, rev, lease: leaseId }, revision };
}

/** Replaces the leader's value, if `leader` is still the candidacy it names. */
export async function proclaim(store: RecipeStore, leader: LeaderKey, value: Buffer): Promise<number> {
  const leaseId = await sessionLease(store, leader.lease);
  return proclaimAs(store, leader.key, leader.rev, leaseId, value);
}

/** Ends the candidacy (deletes its key if it is still that candidacy); never fails for a stale key. */
export async function resign(store: RecipeStore, leader: LeaderKey): Promise<number> {
  await sessionLease(store, leader.lease);
  return resignAs(store, leader.key, leader.rev);
}

/** The current leader's key-value. */
export async function leader(store: RecipeStore, name: Buffer): Promise<{ kv: KeyValue; revision: number }> {
  const { result, revision } = await readNow(store, firstCreated(queuePrefix(name)));
  const kv = result.kvs[0];
  if (kv === undefined) throw new ElectionError('no-leader');
  return { kv, revision };
}

/**
 * Streams leadership of `name` to `send` (awaited: the caller's backpressure holds the loop)
 * until `signal` aborts, which rejects with AbortedError.
 */
export async function observe(store: RecipeStore, name: Buffer, signal: AbortSignal, send: (kv: KeyValue, revision: number) => Promise<void>): Promise<never> {
  const prefix = queuePrefix(name);
  for (;;) {
    const { result, revision } = await readNow(store, firstCreated(prefix));
    let current = result.kvs[0];
    let headerRevision = revision;
    if (current === undefined) {
      // No leader: the first put under the prefix makes one.
      const watch = new HubWatch(store.watchHub, { key: prefix, rangeEnd: prefixEnd(prefix), startRevision: revision + 1 }, signal);
      try {
        while (current === undefined) {
          const delivery = await watch.next();
          const put = delivery.events.find((event) => event.type === 'put');
          if (put !== undefined) {
            current = put.kv;
            headerRevision = put.kv.modRevision;
          }
        }
      } finally {
        watch.close();
      }
    }
    await send(current, headerRevision);
    // Follow the leader's key: its new values, until it is deleted.
    const watch = new HubWatch(store.watchHub, { key: current.key, rangeEnd: EMPTY, startRevision: headerRevision + 1 }, signal);
    try {
      let deleted = false;
      while (!deleted) {
        const delivery = await watch.next();
        for (const event of delivery.events) {
          if (event.type === 'delete') {
            deleted = true;
            break;
          }
          await send(event.kv, delivery.revision);
        }
      }
    } finally {
      watch.close();
    }
  }
}
