// The waiting half of the lock and election recipes (etcd clientv3/concurrency key.go, which
// etcd's v3lock and v3election services run inside the server): "wait until no key under a
// prefix was created at or below a revision", plus the small pieces both recipes share (the
// session lease, the queue key, the first/last-created range requests).
//
// Waiting is event-driven: a HubWatch registers a watcher on the member's watch hub and hands
// its deliveries to an async consumer one at a time. Nothing polls.
//
// Invariants:
// - A watch that continues a read (range at revision R) starts at R+1; the hub replays from
//   its history whatever was written meanwhile, so no write falls between the two.
// - A HubWatch takes deliveries from the hub only when its consumer asks for the next one, so
//   an idle consumer holds at most the hub's per-owner budget (the hub turns a watcher whose
//   owner is full back into a catch-up watcher instead of buffering more).
// - Every HubWatch is cancelled on every path out (done, error, abort): `close()` is
//   idempotent and the recipes call it in `finally`.
// - Aborting (the client cancelled its call) rejects the pending wait with AbortedError; the
//   caller decides what to clean up.

import type { Event, KeyValue, RangeRequest, RangeResult, TxnRequest, TxnResult } from '../../mvcc/types.js';
import { CompactedError } from '../../mvcc/errors.js';
import { rangeRequest, SortOrder, SortTarget } from '../../mvcc/types.js';
import type { Delivery, WatchHub, WatchOwner, Watcher } from '../watch/watch-hub.js';
import { prefixEnd } from '../watch/watch-hub.js';

/** What the lock and election recipes need from the member (a narrow view of KvServer). */
export interface RecipeStore {
  readonly watchHub: WatchHub;
  readonly leases: { grant(id: bigint, ttlSeconds: number): Promise<{ result: { id: bigint }; revision: number }> };
  range(request: RangeRequest): { result: RangeResult; revision: number };
  txn(request: TxnRequest): Promise<{ result: TxnResult; revision: number }>;
  deleteRange(request: { key: Buffer; rangeEnd: Buffer; prevKv: boolean }): Promise<{ revision: number }>;
  /** Resolves once a linearizable read may be served locally (undefined: at once). */
  readBarrier(): Promise<void> | undefined;
}

/** The client cancelled the call the recipe was serving. */
export class AbortedError extends Error {
  override name = 'AbortedError';
  constructor() {
    super('context canceled');
  }
}

/** TTL of the lease a session grants when the request names none (concurrency defaultSessionTTL). */
export const DEFAULT_SESSION_TTL_SECONDS = 60;

/**
 * The lease a recipe runs under: the given one, or (lease 0) a fresh lease of 60 s, which is
 * what etcd's server does by opening a concurrency.Session without a lease. The session is
 * orphaned at once in etcd, so nobody keeps that lease alive: it simply expires.
 */
export async function sessionLease(store: RecipeStore, lease: bigint): Promise<bigint> {
  if (lease !== 0n) return lease;
  return (await store.leases.grant(0n, DEFAULT_SESSION_TTL_SECONDS)).result.id;
}

/** `<prefix><lease in lowercase hex>`: Go's fmt "%s%x" of the prefix and the int64 lease ID. */
export function queueKey(prefix: Buffer, lease: bigint): Buffer {
  return Buffer.concat([prefix, Buffer.from(lease.toString(16))]);
}

/** `name + "/"`: the prefix under which a lock's or an election's queue keys live. */
export function queuePrefix(name: Buffer): Buffer {
  return Buffer.concat([name, Buffer.from('/')]);
}

/** clientv3's WithFirstCreate on a prefix: the oldest key under it. */
export function firstCreated(prefix: Buffer): RangeRequest {
  return rangeRequest(prefix, prefixEnd(prefix), { sortTarget: SortTarget.CREATE, sortOrder: SortOrder.ASCEND, limit: 1 });
}

/** A linearizable range: waits for the read barrier (ReadIndex on a cluster) first. */
export async function readNow(store: RecipeStore, request: RangeRequest): Promise<{ result: RangeResult; revision: number }> {
  const barrier = store.readBarrier();
  if (barrier !== undefined) await barrier;
  return store.range(request);
}

/**
 * One watcher on the hub, consumed as an async sequence of deliveries. Deliveries carry the
 * events of whole revisions, in revision order, each revision once.
 */
export class HubWatch implements WatchOwner {
  readonly maxPendingBytes = 1024 * 1024;
  pendingBytes = 0;
  private readonly watcher: Watcher;
  private wakeUp: (() => void) | undefined;
  private closed = false;
  private readonly onAbort = (): void => this.wakeUp?.();

  constructor(
    private readonly hub: WatchHub,
    spec: { key: Buffer; rangeEnd: Buffer; startRevision: number },
    private readonly signal: AbortSignal,
  ) {
    this.watcher = hub.watch(this, { ...spec, noPut: false, noDelete: false, prevKv: false });
    signal.addEventListener('abort', this.onAbort);
  }

  /** Called by the hub (possibly inside the apply path): only resolves a promise. */
  wake(): void {
    this.wakeUp?.();
  }

  /** The next delivery; rejects with AbortedError on abort, CompactedError if the start
   * revision was compacted (etcd's watch is cancelled then, and the recipe fails). */
  async next(): Promise<Delivery> {
    for (;;) {
      if (this.signal.aborted) throw new AbortedError();
      const delivery = this.hub.take(this.watcher);
      if (delivery !== undefined) {
        if (delivery.compactRevision > 0) throw new CompactedError();
        if (delivery.control === undefined) return delivery;
        continue;
      }
      await new Promise<void>((resolve) => {
        this.wakeUp = resolve;
      });
      this.wakeUp = undefined;
    }
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.signal.removeEventListener('abort', this.onAbort);
    this.hub.cancel(this.watcher);
    this.hub.drop(this.watcher, () => false);
  }
}

/** Resolves at the first delete of `key` at a revision >= `fromRevision` (concurrency waitDelete). */
async function waitDelete(hub: WatchHub, key: Buffer, fromRevision: number, signal: AbortSignal): Promise<void> {
  const watch = new HubWatch(hub, { key, rangeEnd: Buffer.alloc(0), startRevision: fromRevision }, signal);
  try {
    for (;;) {
      const delivery = await watch.next();
      if (delivery.events.some((event: Event) => event.type === 'delete')) return;
    }
  } finally {
    watch.close();
  }
}

/**
 * concurrency.waitDeletes: until no key under `prefix` has a create revision <= `maxCreateRevision`,
 * waits for the youngest such key to be deleted, then looks again. Resolves with the revision
 * of the last (empty) read, which etcd's Lock reports in its header.
 */
export async function waitDeletes(store: RecipeStore, prefix: Buffer, maxCreateRevision: number, signal: AbortSignal): Promise<number> {
  const request = rangeRequest(prefix, prefixEnd(prefix), {
    sortTarget: SortTarget.CREATE,
    sortOrder: SortOrder.DESCEND,
    limit: 1,
    maxCreateRevision,
  });
  for (;;) {
    if (signal.aborted) throw new AbortedError();
    const { result, revision } = await readNow(store, request);
    const last: KeyValue | undefined = result.kvs[0];
    if (last === undefined) return revision;
    // The watcher starts right after the revision the read saw (history covers any gap).
    await waitDelete(store.watchHub, last.key, revision + 1, signal);
  }
}
