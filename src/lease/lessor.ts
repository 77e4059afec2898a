// The lessor: etcd's leases as a pure, synchronous state machine (model: etcd lease/lessor.go).
// No IO, no clock, no timers: every time is a number of milliseconds on the caller's monotonic
// clock, passed in.
//
// Two kinds of state live here, and the split is the point of the design:
//
//   replicated (same on every member, changed only by applying log entries):
//     id, granted ttlSeconds, last checkpointed remainingMs, attached keys
//   local (this member only, never in the log, never persisted):
//     checkpointAtMs  when this member applied the grant/last checkpoint (its own clock)
//     expiryMs        the leader's deadline (Infinity while this member is not primary)
//     dirty/lastCheckpointMs, revoke retry time (leader bookkeeping)
//
// Invariants:
// - Apply methods (grant, revoke, checkpoint, attach, detach) decide only from their arguments
//   and the replicated state; `nowMs` given to them only stamps local state. So every member
//   that applies the same entries holds the same replicated state and returns the same results.
// - Only a primary (leader) lessor has finite expiries; `expired()` returns nothing otherwise.
//   The lessor never revokes on its own: the server proposes a revoke for what `expired()`
//   returns, and the revoke takes effect when that entry is applied.
// - Remaining TTL after promotion (leader change, restart) is
//     checkpointAtMs + checkpointed remainingMs + extendMs   (grant counts as a checkpoint of the
//                                                              full TTL)
//   measured on the new leader's own clock from when it applied that checkpoint. So a lease that
//   was not renewed keeps its deadline up to replication delay plus `extendMs` (one election
//   timeout, as etcd), instead of being reset to its full TTL as etcd does by default; a renewed
//   lease loses at most the time since its last checkpoint, which `dueCheckpoints` keeps below
//   `dirtyCheckpointMs` (one election timeout), so `extendMs` covers it. After a restart the
//   member's clock restarts: remaining = last checkpointed remaining (the time spent down is not
//   known), plus `extendMs`.

import { assert } from '../util/assert.js';
import { ByteReader, ByteWriter } from '../util/binary.js';
import { LeaseError } from './errors.js';

/** etcd's MaxLeaseTTL (lease/lessor.go), seconds. */
export const MAX_LEASE_TTL_SECONDS = 9_000_000_000;

/** etcd's minLeaseTTL: 1.5 election timeouts, rounded up to whole seconds (2 s by default). */
export function minLeaseTtlSeconds(electionTimeoutMs: number): number {
  return Math.ceil((3 * electionTimeoutMs) / 2 / 1000);
}

/** How long a leader waits before proposing the revoke of an expired lease again (etcd's
 * expiredLeaseRetryInterval): the first proposal may have been lost with a leader change. */
export const REVOKE_RETRY_MS = 3000;

export interface LessorOptions {
  /** Leases checkpointed at least this often while their leader is alive (etcd: 5 min). */
  checkpointIntervalMs?: number;
  /** A renewed lease is checkpointed again after this long (one election timeout). */
  dirtyCheckpointMs: number;
}

export interface LeaseCheckpoint {
  id: bigint;
  remainingMs: number;
}

export interface LeaseTimeToLive {
  /** Remaining whole seconds (truncated, as etcd's int64(Remaining().Seconds())). */
  ttlSeconds: number;
  grantedTtlSeconds: number;
  /** Attached keys in byte order. */
  keys: Buffer[];
}

interface Lease {
  readonly id: bigint;
  readonly ttlSeconds: number;
  /** Replicated: remaining TTL as of the last checkpoint (the full TTL at grant). */
  remainingMs: number;
  /** Attached keys by their latin1 text (byte order = string order for latin1). */
  readonly keys: Map<string, Buffer>;
  /** Local: when this member applied the grant or the last checkpoint. */
  checkpointAtMs: number;
  /** Local, primary only: the deadline; Infinity otherwise. */
  expiryMs: number;
  /** Local, primary only: the time of this lease's live entry in the expiry heap. */
  heapAtMs: number;
  /** Local, primary only: renewed since its last checkpoint. */
  dirty: boolean;
  /** Local, primary only: when its remaining TTL was last sent to the log (or set). */
  lastCheckpointMs: number;
}

interface HeapEntry {
  atMs: number;
  id: bigint;
}

const DEFAULT_CHECKPOINT_INTERVAL_MS = 5 * 60 * 1000;
const RECORD_VERSION = 1;

/** A lease's persisted form (its KeySpace.lease value): granted TTL and checkpointed remainder. */
export interface LeaseRecord {
  ttlSeconds: number;
  remainingMs: number;
}

export function encodeLeaseRecord(lease: LeaseRecord): Buffer {
  return new ByteWriter(24).u8(RECORD_VERSION).int(lease.ttlSeconds).int(lease.remainingMs).finish();
}

export function decodeLeaseRecord(record: Buffer): LeaseRecord {
  const input = new ByteReader(record);
  const version = input.u8();
  assert(version === RECORD_VERSION, `lessor: unknown lease record version ${version}`);
  const ttlSeconds = input.int();
  const remainingMs = input.int();
  assert(input.done, 'lessor: trailing bytes in lease record');
  return { ttlSeconds, remainingMs };
}

export class Lessor {
  private readonly leases = new Map<bigint, Lease>();
  private readonly heap: HeapEntry[] = [];
  private primary = false;
  private readonly checkpointIntervalMs: number;
  private readonly dirtyCheckpointMs: number;

  constructor(options: LessorOptions) {
    this.checkpointIntervalMs = options.checkpointIntervalMs ?? DEFAULT_CHECKPOINT_INTERVAL_MS;
    this.dirtyCheckpointMs = options.dirtyCheckpointMs;
    assert(this.checkpointIntervalMs > 0 && this.dirtyCheckpointMs > 0, 'lessor: checkpoint intervals must be positive');
  }

  get isPrimary(): boolean {
    return this.primary;
  }

  get size(): number {
    return this.leases.size;
  }

  has(id: bigint): boolean {
    return this.leases.has(id);
  }

  // ---- LeaseTracker (what MVCC needs) --------------------------------------------------------

  exists(id: bigint): boolean {
    return this.leases.has(id);
  }

  attach(id: bigint, key: Buffer): void {
    const lease = this.leases.get(id);
    // MVCC checks existence before writing; a restored key whose lease is gone is skipped there.
    assert(lease !== undefined, `lessor: attach to unknown lease ${id}`);
    lease.keys.set(key.toString('latin1'), key);
  }

  detach(id: bigint, key: Buffer): void {
    // The lease may be gone already: a revoke removes it before deleting its keys.
    this.leases.get(id)?.keys.delete(key.toString('latin1'));
  }

  // ---- apply (replicated state) --------------------------------------------------------------

  /** Applies a grant; `ttlSeconds` already has the minimum applied by the proposer. */
  grant(id: bigint, ttlSeconds: number, nowMs: number): void {
    // Same checks, same order as etcd's lessor.Grant.
    if (id === 0n) throw new LeaseError('LeaseNotFound');
    if (ttlSeconds > MAX_LEASE_TTL_SECONDS) throw new LeaseError('LeaseTTLTooLarge');
    if (this.leases.has(id)) throw new LeaseError('LeaseExist');
    assert(Number.isSafeInteger(ttlSeconds) && ttlSeconds > 0, `lessor: bad granted TTL ${ttlSeconds}`);
    const lease = this.newLease(id, ttlSeconds, ttlSeconds * 1000, nowMs);
    if (this.primary) this.refresh(lease, nowMs, lease.ttlSeconds * 1000);
  }

  /** Applies a revoke: forgets the lease and returns its keys in byte order, which the caller
   * deletes in the same apply (one revision), as etcd does. */
  revoke(id: bigint): Buffer[] {
    const lease = this.leases.get(id);
    if (lease === undefined) throw new LeaseError('LeaseNotFound');
    this.leases.delete(id);
    return sortedKeys(lease);
  }

  /** Applies a checkpoint of one lease's remaining TTL; unknown leases are ignored (revoked in
   * between), as in etcd. Returns whether the lease exists (its record must be rewritten). */
  checkpoint(id: bigint, remainingMs: number, nowMs: number): boolean {
    assert(Number.isSafeInteger(remainingMs) && remainingMs > 0, `lessor: bad checkpoint ${remainingMs}`);
    const lease = this.leases.get(id);
    if (lease === undefined) return false;
    lease.remainingMs = remainingMs;
    lease.checkpointAtMs = nowMs;
    // The leader's own deadline stays authoritative while it leads.
    return true;
  }

  // ---- leader duties (local state) -----------------------------------------------------------

  /** This member became leader: derive every deadline from the last checkpoint (see header). */
  promote(nowMs: number, extendMs: number): void {
    this.primary = true;
    this.heap.length = 0;
    for (const lease of this.leases.values()) {
      const deadline = lease.checkpointAtMs + lease.remainingMs + extendMs;
      this.refresh(lease, nowMs, Math.max(0, deadline - nowMs));
      lease.dirty = false;
    }
  }

  /** This member stopped leading: forget deadlines (another leader owns them now). */
  demote(): void {
    this.primary = false;
    this.heap.length = 0;
    for (const lease of this.leases.values()) {
      lease.expiryMs = Infinity;
      lease.heapAtMs = Infinity;
      lease.dirty = false;
    }
  }

  /** Keep-alive on the leader: the granted TTL, or undefined for an unknown lease. A lease past
   * its deadline is not renewed (its revoke is on the way) and counts as unknown. */
  renew(id: bigint, nowMs: number): number | undefined {
    assert(this.primary, 'lessor: renew on a non-primary lessor');
    const lease = this.leases.get(id);
    if (lease === undefined || lease.expiryMs <= nowMs) return undefined;
    this.refresh(lease, nowMs, lease.ttlSeconds * 1000);
    lease.dirty = true;
    return lease.ttlSeconds;
  }

  /** Leases past their deadline, earliest first (ties by ID), at most `limit`. Each is handed
   * out again only after REVOKE_RETRY_MS, in case its revoke never commits. */
  expired(nowMs: number, limit: number): bigint[] {
    const out: bigint[] = [];
    if (!this.primary) return out;
    const retry: Lease[] = [];
    while (out.length < limit && this.heap.length > 0 && this.heap[0]!.atMs <= nowMs) {
      const entry = heapPop(this.heap);
      const lease = this.leases.get(entry.id);
      if (lease === undefined || lease.heapAtMs !== entry.atMs) continue; // revoked or renewed
      out.push(lease.id);
      retry.push(lease);
    }
    for (const lease of retry) {
      lease.heapAtMs = nowMs + REVOKE_RETRY_MS;
      heapPush(this.heap, { atMs: lease.heapAtMs, id: lease.id });
    }
    return out;
  }

  /** The earliest time `expired()` can return something (Infinity if never, e.g. follower). */
  nextDeadlineMs(): number {
    if (!this.primary) return Infinity;
    while (this.heap.length > 0) {
      const top = this.heap[0]!;
      const lease = this.leases.get(top.id);
      if (lease !== undefined && lease.heapAtMs === top.atMs) return top.atMs;
      heapPop(this.heap);
    }
    return Infinity;
  }

  /** Checkpoints the leader should propose now: leases renewed more than `dirtyCheckpointMs`
   * ago and leases not checkpointed for `checkpointIntervalMs`; at most `limit`.
   * Leases already past their deadline are left to their revoke. Order: grant order. */
  dueCheckpoints(nowMs: number, limit: number): LeaseCheckpoint[] {
    const out: LeaseCheckpoint[] = [];
    if (!this.primary) return out;
    for (const lease of this.leases.values()) {
      if (out.length >= limit) break;
      const remainingMs = Math.ceil(lease.expiryMs - nowMs);
      if (remainingMs <= 0) continue;
      const since = nowMs - lease.lastCheckpointMs;
      if ((lease.dirty && since >= this.dirtyCheckpointMs) || since >= this.checkpointIntervalMs) {
        out.push({ id: lease.id, remainingMs });
        lease.dirty = false;
        lease.lastCheckpointMs = nowMs;
      }
    }
    return out;
  }

  // ---- reads ----------------------------------------------------------------------------------

  /** etcd LeaseTimeToLive; undefined for an unknown lease. A follower answers from the last
   * checkpoint (it has no deadline of its own). */
  timeToLive(id: bigint, nowMs: number, withKeys: boolean): LeaseTimeToLive | undefined {
    const lease = this.leases.get(id);
    if (lease === undefined) return undefined;
    const deadline = this.primary ? lease.expiryMs : lease.checkpointAtMs + lease.remainingMs;
    return {
      ttlSeconds: Math.trunc((deadline - nowMs) / 1000),
      grantedTtlSeconds: lease.ttlSeconds,
      keys: withKeys ? sortedKeys(lease) : [],
    };
  }

  /** Every lease ID, soonest deadline first (etcd sorts by Remaining()), ties by ID. */
  list(): bigint[] {
    const leases = [...this.leases.values()];
    const deadline = (l: Lease): number => (this.primary ? l.expiryMs : l.checkpointAtMs + l.remainingMs);
    leases.sort((a, b) => deadline(a) - deadline(b) || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
    return leases.map((l) => l.id);
  }

  // ---- persistence ----------------------------------------------------------------------------

  /** The persisted form of a lease (its KeySpace.lease value); undefined if it is gone. */
  record(id: bigint): Buffer | undefined {
    const lease = this.leases.get(id);
    if (lease === undefined) return undefined;
    return encodeLeaseRecord(lease);
  }

  /** Restores one persisted lease (before MVCC re-attaches keys); its clock starts at nowMs. */
  restore(id: bigint, record: Buffer, nowMs: number): void {
    assert(!this.primary, 'lessor: restore after promotion');
    assert(!this.leases.has(id), `lessor: lease ${id} restored twice`);
    const { ttlSeconds, remainingMs } = decodeLeaseRecord(record);
    this.newLease(id, ttlSeconds, remainingMs, nowMs);
  }

  /** Forgets everything (before restoring a snapshot of the replicated state). */
  reset(): void {
    this.leases.clear();
    this.heap.length = 0;
    this.primary = false;
  }

  // ---- internals ------------------------------------------------------------------------------

  private newLease(id: bigint, ttlSeconds: number, remainingMs: number, nowMs: number): Lease {
    const lease: Lease = {
      id,
      ttlSeconds,
      remainingMs,
      keys: new Map(),
      checkpointAtMs: nowMs,
      expiryMs: Infinity,
      heapAtMs: Infinity,
      dirty: false,
      lastCheckpointMs: nowMs,
    };
    this.leases.set(id, lease);
    return lease;
  }

  private refresh(lease: Lease, nowMs: number, remainingMs: number): void {
    lease.expiryMs = nowMs + remainingMs;
    lease.heapAtMs = lease.expiryMs;
    heapPush(this.heap, { atMs: lease.heapAtMs, id: lease.id });
    // Every renewal leaves a stale entry behind; rebuild once they outnumber the live ones, so
    // the heap stays O(leases) even under keep-alive storms on long leases.
    if (this.heap.length > 2 * this.leases.size + 1024) this.rebuildHeap();
  }

  private rebuildHeap(): void {
    const live = this.heap.filter((entry) => this.leases.get(entry.id)?.heapAtMs === entry.atMs);
    this.heap.length = 0;
    for (const entry of live) heapPush(this.heap, entry);
  }
}

function sortedKeys(lease: Lease): Buffer[] {
  return [...lease.keys.keys()].sort().map((text) => lease.keys.get(text)!);
}

// A binary min-heap on (atMs, id); stale entries are skipped by the readers above.
function less(a: HeapEntry, b: HeapEntry): boolean {
  return a.atMs < b.atMs || (a.atMs === b.atMs && a.id < b.id);
}

function heapPush(heap: HeapEntry[], entry: HeapEntry): void {
  heap.push(entry);
  let i = heap.length - 1;
  while (i > 0) {
    const parent = (i - 1) >> 1;
    if (!less(heap[i]!, heap[parent]!)) break;
    [heap[i], heap[parent]] = [heap[parent]!, heap[i]!];
    i = parent;
  }
}

function heapPop(heap: HeapEntry[]): HeapEntry {
  const top = heap[0]!;
  const last = heap.pop()!;
  if (heap.length > 0) {
    heap[0] = last;
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      if (l < heap.length && less(heap[l]!, heap[m]!)) m = l;
      if (r < heap.length && less(heap[r]!, heap[m]!)) m = r;
      if (m === i) break;
      [heap[i], heap[m]] = [heap[m]!, heap[i]!];
      i = m;
    }
  }
  return top;
}
