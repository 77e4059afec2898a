// MvccStore: the pure, synchronous core of etcd's multi-version KV store (etcd 3.4 mvcc plus
// the KV parts of etcdserver/apply.go). No IO: it keeps the key index in memory (revisions and
// the live value's metadata per key, no values), reads every value through an injected
// HistoryReader, and hands every write to a WriteSink (records to persist + watch events) for
// the caller to batch. Memory therefore grows with the number of keys and revisions kept, not
// with the bytes stored.
//
// Invariants:
// - currentRevision only grows; one put/deleteRange/txn call raises it by at most one, and only
//   if it wrote something. All writes of one call share main = currentRevision + 1 with sub
//   revisions 0, 1, 2 ... in execution order.
// - For every key in `keys`, its KeyIndex lists every revision a read at >= compactedRevision
//   can need, and the backend holds a record for each of them (the caller persists what the
//   sink gets and deletes what compact() returns).
// - Values are only read through `history`, and only when a result carries them: keys-only and
//   count-only ranges, and compares on anything but the value, read none; a put or delete
//   reads the previous value only for prev_kv, ignore_value, or a sink that wants it (a watcher
//   with prev_kv); create revision, version and lease come from the index.
// - Before a call returns, either the whole request was applied or nothing changed: every
//   expected error is detected before the first write (as etcd's checkRequests does for txns).
//
// Revision conventions copied from etcd as facts: a fresh store is at revision 1 (the first
// write gets 2), and compactedRevision is -1 until the first compaction.

import { assert, AssertionError, unreachable } from '../util/assert.js';
import { CompactedError, FutureRevisionError, KeyNotFoundError, LeaseNotFoundError } from './errors.js';
import { KeyIndex, type KeyIndexHit } from './key-index.js';
import { decodeRecord, encodeRecord, encodeTombstone, recordKey, recordValueOffset } from './record.js';
import { compareRevisions, makeRevision } from './revision.js';
import { SortedKeyMap } from './sorted-key-map.js';
import { ValueCache } from './value-cache.js';
import {
  CompareResult,
  CompareTarget,
  SortOrder,
  SortTarget,
  type Compare,
  type DeleteRangeRequest,
  type DeleteRangeResult,
  type Event,
  type KeyValue,
  type PutRequest,
  type PutResult,
  type RangeRequest,
  type RangeResult,
  type RequestOp,
  type ResponseOp,
  type Revision,
  type TxnRequest,
  type TxnResult,
} from './types.js';

/** Reads a persisted record by revision, synchronously. It must also see records handed to a
 * WriteSink earlier but not yet flushed to disk (the apply loop batches several requests): a
 * put may read the key's previous record back (prev_kv) in the same batch. */
export interface HistoryReader {
  readRecord(rev: Revision): Buffer | undefined;
}

/** What the store needs from the lessor (declared here; the lessor implements it). */
export interface LeaseTracker {
  exists(lease: bigint): boolean;
  attach(lease: bigint, key: Buffer): void;
  detach(lease: bigint, key: Buffer): void;
}

/** Receives the effects of one write call, in revision order. Record buffers are owned by the
 * store's in-memory values too, so a sink must not modify them. */
export interface WriteSink {
  record(rev: Revision, record: Buffer): void;
  event(e: Event): void;
  /**
   * Whether the event of a write to this key (latin1) must carry prevKv: reading the previous
   * value back costs a history read per overwritten key, so the store reads it only when a
   * request asks for it or this says yes. Asked before the write, while the previous record
   * is still readable (a compaction later in the same apply batch may remove it). A sink
   * without this method gets prevKv on every event of a key that had a value.
   */
  wantsPrevKv?(keyText: string): boolean;
}

export interface MvccStoreOptions {
  history: HistoryReader;
  /** Bytes of live-value records kept in a cache in front of `history` (default 0). */
  valueCacheBytes?: number;
  /** Without a tracker, every lease other than 0 is unknown. */
  leases?: LeaseTracker;
}

const EMPTY = Buffer.alloc(0);

type Phase = 'fresh' | 'restoring' | 'ready';

/** Which branch each txn (and nested txn) takes, decided against the state before the txn, as
 * etcd's compareToPath does. `nested[i]` is the plan of ops[i] when that op is a txn. */
interface TxnPlan {
  succeeded: boolean;
  ops: RequestOp[];
  nested: (TxnPlan | undefined)[];
}

/** Working state of one range: the read revision, etcd's load limit (0 = all) and the tally. */
interface RangeAccumulator {
  readonly rev: number;
  readonly loadLimit: number;
  readonly countOnly: boolean;
  /** False for keys-only ranges not sorted by value: their values are never read. */
  readonly withValues: boolean;
  /** True when the entry past the limit is cut unsorted (no sort at all): its value is unused. */
  readonly extraIsCut: boolean;
  /** Single-key reads keep what they read in the value cache; scans (lists) would only flush it. */
  readonly cacheValues: boolean;
  count: number;
  kvs: KeyValue[];
}

export class MvccStore {
  private readonly history: HistoryReader;
  private readonly leases: LeaseTracker | undefined;
  /** Live values of hot keys (see value-cache.ts). */
  private readonly liveValues: ValueCache<KeyIndex>;
  /** Keys that exist now (live), kept as writes happen: counting them by walking the index took
   * seconds of the one thread at a million keys, for every metrics scrape. */
  private liveKeys = 0;
  private keys = new SortedKeyMap<KeyIndex>();
  private current = 1;
  private compacted = -1;
  private phase: Phase = 'fresh';
  private lastRestored: Revision = { main: 0, sub: 0 };

  // State of the write call in progress: its main revision, the next sub revision (= number of
  // writes so far) and where its effects go.
  private writeMain = 0;
  private writeSub = 0;
  private sink: WriteSink | undefined = undefined;

  constructor(options: MvccStoreOptions) {
    this.history = options.history;
    this.leases = options.leases;
    this.liveValues = new ValueCache(options.valueCacheBytes ?? 0);
  }
  /**
   * Forgets the whole state, ready for restoreRecord()/finishRestore() again: a member that
   * installs a snapshot from its leader replaces its state this way instead of rebuilding the
   * objects that hold a reference to the store.
   */
  reset(): void {
    assert(this.sink === undefined, 'reset during a write');
    this.keys = new SortedKeyMap<KeyIndex>();
    this.liveValues.clear();
    this.liveKeys = 0;
    this.current = 1;
    this.compacted = -1;
    this.phase = 'fresh';
    this.lastRestored = { main: 0, sub: 0 };
  }

  /** How many keys exist now (etcd's keys_total): O(1). */
  get liveKeyCount(): number {
    return this.liveKeys;
  }

  get currentRevision(): number {
    return this.current;
  }

  /** -1 until the first compaction. */
  get compactedRevision(): number {
    return this.compacted;
  }

  // ---- restore ------------------------------------------------------------------------------

  /** Replays one persisted record; records must come in ascending revision order. Only the
   * record's metadata is kept (the key is copied), so the buffer may be reused afterwards. */
  restoreRecord(rev: Revision, record: Buffer): void {
    assert(this.phase !== 'ready', 'mvcc: restoreRecord after the store was used');
    this.phase = 'restoring';
    assert(compareRevisions(rev, this.lastRestored) > 0, 'mvcc: records must be restored in ascending revision order');
    makeRevision(rev.main, rev.sub);
    this.lastRestored = rev;
    const decoded = decodeRecord(record);
    const keyText = decoded.key.toString('latin1');
    let ki = this.keys.get(keyText);
    if (decoded.tombstone) {
      // A tombstone whose put is gone was compacted together with it: nothing to rebuild.
      if (ki === undefined || !ki.isLive()) return;
      ki.tombstone(rev);
      this.liveKeys--;
      return;
    }
    if (ki === undefined) {
      ki = new KeyIndex(keyText);
      ki.restore(decoded.createRevision, rev, decoded.version);
      this.keys.insert(ki);
      this.liveKeys++;
    } else {
      if (!ki.isLive()) this.liveKeys++;
      ki.put(rev);
      const hit = ki.get(rev.main);
      assert(
        hit !== undefined && hit.created === decoded.createRevision && hit.version === decoded.version,
        'mvcc: restored record disagrees with the rebuilt key index',
      );
    }
    ki.lease = decoded.lease === 0n ? 0n : decoded.lease; // see applyPut
  }

  /** Ends the restore: sets the compaction point and re-attaches live keys to their leases
   * (the lessor must be restored first; a lease it no longer knows is skipped, as in etcd). */
  finishRestore(options: { compactedRevision: number }): void {
    assert(this.phase !== 'ready', 'mvcc: finishRestore after the store was used');
    const compacted = options.compactedRevision;
    assert(Number.isSafeInteger(compacted) && compacted >= -1, `mvcc: bad compacted revision ${compacted}`);
    this.phase = 'ready';
    this.compacted = compacted;
    this.current = Math.max(1, this.lastRestored.main, compacted);
    const leases = this.leases;
    if (leases === undefined) return;
    this.keys.forEach((ki) => {
      if (ki.isLive() && ki.lease !== 0n && leases.exists(ki.lease)) leases.attach(ki.lease, ownedKey(ki.keyText));
    });
  }

  // ---- reads --------------------------------------------------------------------------------

  range(req: RangeRequest): RangeResult {
    this.phase = 'ready';
    return this.rangeAt(req, this.current);
  }

  // ---- writes -------------------------------------------------------------------------------

  put(req: PutRequest, out: WriteSink): PutResult {
    // etcd checks the lease before opening the write, then ignore_value/ignore_lease.
    this.checkLease(req.lease);
    if ((req.ignoreValue || req.ignoreLease) && !this.isLiveKey(req.key)) throw new KeyNotFoundError();
    this.beginWrite(out);
    try {
      return this.applyPut(req);
    } finally {
      this.endWrite();
    }
  }

  deleteRange(req: DeleteRangeRequest, out: WriteSink): DeleteRangeResult {
    this.beginWrite(out);
    try {
      return this.applyDeleteRange(req);
    } finally {
      this.endWrite();
    }
  }

  txn(req: TxnRequest, out: WriteSink): TxnResult {
    // Everything that can fail is decided against the state before the txn, so a failing txn
    // changes nothing: the branch path, then every put on the path, then every range on it.
    const plan = this.planTxn(req);
    this.checkPlan(plan, (op) => (op.kind === 'put' ? this.checkTxnPut(op.put) : undefined));
    this.checkPlan(plan, (op) => (op.kind === 'range' ? this.checkTxnRange(op.range) : undefined));
    this.beginWrite(out);
    try {
      return this.applyTxn(plan);
    } finally {
      this.endWrite();
    }
  }

  /** Compacts at `revision`: afterwards reads below it fail with CompactedError and reads at
   * or above it answer as before. Returns the revisions whose records nobody can read any more;
   * the caller deletes them (in the same batch that records the compaction). */
  compact(revision: number): { obsolete: Revision[] } {
    assert(Number.isSafeInteger(revision), `mvcc: compact revision is not a safe integer: ${revision}`);
    this.phase = 'ready';
    if (revision <= this.compacted) throw new CompactedError();
    if (revision > this.current) throw new FutureRevisionError();
    this.compacted = revision;
    const obsolete: Revision[] = [];
    const emptied: string[] = [];
    this.keys.forEach((ki) => {
      ki.compact(revision, obsolete);
      if (ki.isEmpty()) emptied.push(ki.keyText);
    });
    for (const keyText of emptied) this.keys.delete(keyText);
    obsolete.sort(compareRevisions);
    return { obsolete };
  }

  // ---- internals: write framing ---------------------------------------------------------------

  private beginWrite(out: WriteSink): void {
    assert(this.sink === undefined, 'mvcc: nested write call');
    this.phase = 'ready';
    this.sink = out;
    this.writeMain = this.current + 1;
    this.writeSub = 0;
  }

  private endWrite(): void {
    if (this.writeSub > 0) this.current = this.writeMain;
    this.sink = undefined;
  }

  /** The revision reads inside a write see: the write's own revision once it changed something
   * (etcd storeTxnWrite.Range reads at beginRev + 1 then), else the current one. */
  private readRevision(): number {
    return this.writeSub > 0 ? this.writeMain : this.current;
  }

  private nextRevision(): Revision {
    return makeRevision(this.writeMain, this.writeSub++);
  }

  // ---- internals: put / delete --------------------------------------------------------------

  private applyPut(req: PutRequest): PutResult {
    const keyText = req.key.toString('latin1');
    let ki = this.keys.get(keyText);
    const live = ki?.isLive() === true;
    if ((req.ignoreValue || req.ignoreLease) && !live) {
      // Checked before any write; reaching this means the edge let through a txn that deletes
      // or puts this key earlier in the same txn, which etcd rejects as a duplicate key.
      assert(false, 'mvcc: ignore_value/ignore_lease on a missing key after the checks passed');
    }
    // The index knows the previous value's create revision, version and lease (ignore_lease
    // needs no read): the value is read back from history only when someone will see it (as
    // etcd reads it only for prev_kv), not for every overwrite.
    const needPrev = live && (req.prevKv || req.ignoreValue || this.eventWantsPrevKv(keyText));
    const prev = needPrev ? this.liveValue(ki!) : undefined;
    const prevLease = live ? ki!.lease : 0n;
    const value = req.ignoreValue ? prev!.value : req.value;
    const lease = req.ignoreLease ? prevLease : req.lease;
    const rev = this.nextRevision();
    const createRevision = live ? ki!.createRevision : rev.main;
    const version = live ? ki!.version + 1 : 1;
    if (ki === undefined) {
      ki = new KeyIndex(keyText);
      this.keys.insert(ki);
    }
    const record = encodeRecord({ key: req.key, value, createRevision, version, lease });
    // The event's and the cache's key is a view into the record (its own allocation), never the
    // caller's buffer: that may be a view into a whole network message, which a cached or
    // queued KeyValue would otherwise pin.
    const keyLength = req.key.length;
    const kv: KeyValue = {
      key: recordKey(record, keyLength),
      createRevision,
      modRevision: rev.main,
      version,
      value: record.subarray(recordValueOffset(keyLength)),
      lease,
    };
    ki.put(rev);
    if (!live) this.liveKeys++;
    // A decoded request carries a BigInt of its own even for 0n; the index keeps the literal so
    // that a million leaseless keys do not keep a million BigInt objects alive.
    ki.lease = lease === 0n ? 0n : lease;
    // A key already cached gets the new value; any other enters the cache when it is read.
    this.liveValues.refresh(ki, kv);
    const sink = this.sink!;
    sink.record(rev, record);
    sink.event(prev === undefined ? { type: 'put', kv } : { type: 'put', kv, prevKv: prev });
    // Like etcd, detach and re-attach even when the lease is unchanged. Without a tracker a
    // non-zero lease can only come from ignore_lease over a restored key: nothing to tell.
    if (this.leases !== undefined) {
      if (prevLease !== 0n) this.leases.detach(prevLease, req.key);
      if (lease !== 0n) this.leases.attach(lease, ownedKey(keyText));
    }
    return req.prevKv && prev !== undefined ? { prevKv: prev } : {};
  }

  private applyDeleteRange(req: DeleteRangeRequest): DeleteRangeResult {
    const doomed: KeyIndex[] = [];
    this.visit(req.key, req.rangeEnd, (ki) => {
      if (ki.isLive()) doomed.push(ki);
    });
    const prevKvs: KeyValue[] = [];
    const sink = this.sink!;
    for (const ki of doomed) {
      // Read before the tombstone, and only when the response or a watcher needs the value.
      const prev = req.prevKv || this.eventWantsPrevKv(ki.keyText) ? this.liveValue(ki) : undefined;
      if (req.prevKv) prevKvs.push(prev!);
      const prevLease = ki.lease;
      const rev = this.nextRevision();
      ki.tombstone(rev);
      this.liveKeys--;
      this.liveValues.delete(ki);
      const key = keyOf(ki);
      sink.record(rev, encodeTombstone(key));
      const kv: KeyValue = { key, createRevision: 0, modRevision: rev.main, version: 0, value: EMPTY, lease: 0n };
      sink.event(prev === undefined ? { type: 'delete', kv } : { type: 'delete', kv, prevKv: prev });
      if (prevLease !== 0n && this.leases !== undefined) this.leases.detach(prevLease, key);
    }
    return { deleted: doomed.length, prevKvs };
  }

  /** Whether the write call's sink wants the previous value in this key's event. */
  private eventWantsPrevKv(keyText: string): boolean {
    const sink = this.sink!;
    return sink.wantsPrevKv === undefined || sink.wantsPrevKv(keyText);
  }

  private checkLease(lease: bigint): void {
    if (lease !== 0n && (this.leases === undefined || !this.leases.exists(lease))) throw new LeaseNotFoundError();
  }

  // ---- internals: txn -----------------------------------------------------------------------

  private planTxn(req: TxnRequest): TxnPlan {
    const succeeded = req.compare.every((c) => this.evaluateCompare(c));
    const ops = succeeded ? req.success : req.failure;
    return { succeeded, ops, nested: ops.map((op) => (op.kind === 'txn' ? this.planTxn(op.txn) : undefined)) };
  }

  /** Runs `check` over every non-txn op on the plan's path, depth first, in order. */
  private checkPlan(plan: TxnPlan, check: (op: RequestOp) => void): void {
    plan.ops.forEach((op, i) => {
      const nested = plan.nested[i];
      if (nested !== undefined) this.checkPlan(nested, check);
      else check(op);
    });
  }

  /** etcd checkRequestPut: ignore_* needs an existing key, then the lease must exist. */
  private checkTxnPut(req: PutRequest): void {
    if ((req.ignoreValue || req.ignoreLease) && !this.isLiveKey(req.key)) throw new KeyNotFoundError();
    this.checkLease(req.lease);
  }

  /** etcd checkRequestRange; compares against the pre-txn revisions, so a negative revision
   * other than -1 counts as compacted before the first compaction (an etcd quirk kept). */
  private checkTxnRange(req: RangeRequest): void {
    if (req.revision === 0) return;
    if (req.revision > this.current) throw new FutureRevisionError();
    if (req.revision < this.compacted) throw new CompactedError();
  }

  private applyTxn(plan: TxnPlan): TxnResult {
    const responses: ResponseOp[] = plan.ops.map((op, i): ResponseOp => {
      switch (op.kind) {
        case 'range':
          return { kind: 'range', range: this.rangeAt(op.range, this.readRevision()) };
        case 'put':
          return { kind: 'put', put: this.applyPut(op.put) };
        case 'deleteRange':
          return { kind: 'deleteRange', deleteRange: this.applyDeleteRange(op.deleteRange) };
        case 'txn':
          return { kind: 'txn', txn: this.applyTxn(plan.nested[i]!) };
        default:
          return unreachable(op, 'request op');
      }
    });
    return { succeeded: plan.succeeded, responses };
  }

  /** etcd applyCompare: compares every key of the range at the current revision; an empty range
   * compares a zeroed KeyValue, except that a VALUE compare on nothing is false. */
  private evaluateCompare(c: Compare): boolean {
    const kvs: KeyValue[] = [];
    const withValue = c.target === CompareTarget.VALUE;
    this.visit(c.key, c.rangeEnd, (ki) => {
      if (ki.isLive()) kvs.push(withValue ? this.liveValue(ki) : liveMetadata(ki));
    });
    if (kvs.length === 0) {
      if (c.target === CompareTarget.VALUE) return false;
      return compareKv(c, undefined);
    }
    return kvs.every((kv) => compareKv(c, kv));
  }

  // ---- internals: range ---------------------------------------------------------------------

  /** etcd rangeKeys + applierV3backend.Range, with `curRev` the revision "now" for this read. */
  private rangeAt(req: RangeRequest, curRev: number): RangeResult {
    assert(Number.isSafeInteger(req.revision) && Number.isSafeInteger(req.limit), 'mvcc: range revision/limit must be safe integers');
    let rev = req.revision;
    if (rev > curRev) throw new FutureRevisionError();
    if (rev <= 0) rev = curRev;
    if (rev < this.compacted) throw new CompactedError();

    const filtered = req.minModRevision !== 0 || req.maxModRevision !== 0 || req.minCreateRevision !== 0 || req.maxCreateRevision !== 0;
    // etcd loads limit + 1 entries (to know about "more") unless it has to sort or filter
    // first; note it tests the requested sort order, before NONE is turned into ASCEND below.
    // A limit <= 0 means no limit (etcd treats negative limits like 0).
    let loadLimit = req.sortOrder !== SortOrder.NONE || filtered || req.limit <= 0 ? 0 : req.limit;
    if (loadLimit > 0) loadLimit++;

    // etcd sorts by value before it drops the values of a keys-only range.
    const withValues = !req.keysOnly || req.sortTarget === SortTarget.VALUE;
    // With order NONE, etcd still sorts the limit + 1 loaded entries by a target other than KEY.
    const extraIsCut = req.sortTarget === SortTarget.KEY;
    const cacheValues = req.rangeEnd.length === 0;
    const acc: RangeAccumulator = { rev, loadLimit, countOnly: req.countOnly, withValues, extraIsCut, cacheValues, count: 0, kvs: [] };
    if (req.rangeEnd.length === 0) {
      // Single-key get, the most common read: a Map lookup, no scan.
      const ki = this.keys.get(req.key.toString('latin1'));
      if (ki !== undefined) this.collect(acc, ki);
    } else {
      this.visit(req.key, req.rangeEnd, (ki) => this.collect(acc, ki));
    }
    const count = acc.count;
    let kvs = acc.kvs;

    if (filtered) {
      kvs = kvs.filter(
        (kv) =>
          (req.maxModRevision === 0 || kv.modRevision <= req.maxModRevision) &&
          (req.minModRevision === 0 || kv.modRevision >= req.minModRevision) &&
          (req.maxCreateRevision === 0 || kv.createRevision <= req.maxCreateRevision) &&
          (req.minCreateRevision === 0 || kv.createRevision >= req.minCreateRevision),
      );
    }
    let sortOrder = req.sortOrder;
    if (req.sortTarget !== SortTarget.KEY && sortOrder === SortOrder.NONE) sortOrder = SortOrder.ASCEND;
    if (sortOrder !== SortOrder.NONE && kvs.length > 1) {
      // Array.prototype.sort is stable: entries that compare equal keep key order.
      const cmp = kvComparator(req.sortTarget);
      if (sortOrder === SortOrder.ASCEND) kvs.sort(cmp);
      else if (sortOrder === SortOrder.DESCEND) kvs.sort((a, b) => cmp(b, a));
      else assert(false, `mvcc: unknown sort order ${sortOrder}`);
    }
    let more = false;
    if (req.limit > 0 && kvs.length > req.limit) {
      kvs.length = req.limit;
      more = true;
    }
    if (req.keysOnly) kvs = kvs.map((kv) => (kv.value.length === 0 ? kv : { ...kv, value: EMPTY }));
    return { kvs, more, count };
  }

  /** Counts one key of a range and loads its value unless count-only or past the load limit.
   * (A method, not a local closure: this runs once per key of every range.) */
  private collect(acc: RangeAccumulator, ki: KeyIndex): void {
    const rev = acc.rev;
    // Fast path: a live key whose newest write is at or below the read revision is read at its
    // live revision (the common case for reads at the current revision): no index walk.
    if (ki.isLive() && ki.modMain <= rev) {
      acc.count++;
      if (acc.countOnly || (acc.loadLimit > 0 && acc.kvs.length >= acc.loadLimit)) return;
      acc.kvs.push(acc.withValues && !lastOfLoadLimit(acc) ? this.liveValue(ki, acc.cacheValues) : liveMetadata(ki));
      return;
    }
    const hit = ki.get(rev);
    if (hit === undefined) return;
    acc.count++;
    if (acc.countOnly || (acc.loadLimit > 0 && acc.kvs.length >= acc.loadLimit)) return;
    // Below the live revision the index knows no lease, so even a keys-only range reads the
    // record (its value is dropped at the end); the entry past the limit only says "more".
    acc.kvs.push(
      lastOfLoadLimit(acc)
        ? { key: keyOf(ki), createRevision: hit.created, modRevision: hit.rev.main, version: hit.version, value: EMPTY, lease: 0n }
        : this.readValue(hit),
    );
  }

  /** The live value of a live key, from the cache or history (then cached if `remember`). */
  private liveValue(ki: KeyIndex, remember = true): KeyValue {
    const cached = this.liveValues.get(ki);
    if (cached !== undefined) return cached;
    const kv = this.readValue({ rev: { main: ki.modMain, sub: ki.modSub }, created: ki.createRevision, version: ki.version });
    if (remember) this.liveValues.set(ki, kv);
    return kv;
  }

  /** The KeyValue at an index hit, read from history. */
  private readValue(hit: KeyIndexHit): KeyValue {
    const record = this.history.readRecord(hit.rev);
    assert(record !== undefined, `mvcc: history has no record for revision ${hit.rev.main}.${hit.rev.sub}`);
    const decoded = decodeRecord(record);
    assert(!decoded.tombstone, 'mvcc: key index points at a tombstone for a live revision');
    assert(decoded.createRevision === hit.created && decoded.version === hit.version, 'mvcc: history record disagrees with the key index');
    return {
      key: decoded.key,
      createRevision: decoded.createRevision,
      modRevision: hit.rev.main,
      version: decoded.version,
      value: decoded.value,
      lease: decoded.lease,
    };
  }

  private isLiveKey(key: Buffer): boolean {
    return this.keys.get(key.toString('latin1'))?.isLive() === true;
  }

  /** Visits the key index entries selected by (key, rangeEnd) in key order. */
  private visit(key: Buffer, rangeEnd: Buffer, fn: (ki: KeyIndex) => void): void {
    if (rangeEnd.length === 0) {
      const ki = this.keys.get(key.toString('latin1'));
      if (ki !== undefined) fn(ki);
      return;
    }
    const end = rangeEnd.length === 1 && rangeEnd[0] === 0 ? undefined : rangeEnd.toString('latin1');
    this.keys.forEachInRange(key.toString('latin1'), end, fn);
  }
}

/** The key's bytes, from its latin1 text (the index keeps no Buffer per key). Short-lived:
 * from Node's shared pool. */
function keyOf(ki: KeyIndex): Buffer {
  return Buffer.from(ki.keyText, 'latin1');
}

/** A key copy with its own allocation, for the lessor, which keeps it while the key is
 * attached: a slice of Node's shared pool would pin the whole 8 KiB slab. */
function ownedKey(keyText: string): Buffer {
  const key = Buffer.allocUnsafeSlow(keyText.length);
  key.write(keyText, 'latin1');
  return key;
}

/** True when the next entry is the one etcd loads past the limit only to know there is more
 * and it will be cut unsorted: its value is never needed. */
function lastOfLoadLimit(acc: RangeAccumulator): boolean {
  return acc.extraIsCut && acc.loadLimit > 0 && acc.kvs.length === acc.loadLimit - 1;
}

/** A live key's KeyValue without its value (keys-only results, compares on metadata). */
function liveMetadata(ki: KeyIndex): KeyValue {
  return { key: keyOf(ki), createRevision: ki.createRevision, modRevision: ki.modMain, version: ki.version, value: EMPTY, lease: ki.lease };
}

function kvComparator(target: number): (a: KeyValue, b: KeyValue) => number {
  switch (target) {
    case SortTarget.KEY:
      return (a, b) => Buffer.compare(a.key, b.key);
    case SortTarget.VERSION:
      return (a, b) => a.version - b.version;
    case SortTarget.CREATE:
      return (a, b) => a.createRevision - b.createRevision;
    case SortTarget.MOD:
      return (a, b) => a.modRevision - b.modRevision;
    case SortTarget.VALUE:
      return (a, b) => Buffer.compare(a.value, b.value);
    default:
      throw new AssertionError(`mvcc: unknown sort target ${target}`);
  }
}

/** etcd compareKV; `kv` undefined stands for the zeroed KeyValue of a missing key. */
function compareKv(c: Compare, kv: KeyValue | undefined): boolean {
  let result: number;
  switch (c.target) {
    case CompareTarget.VALUE:
      result = Buffer.compare(kv?.value ?? EMPTY, c.value);
      break;
    case CompareTarget.CREATE:
      result = compareNumbers(kv?.createRevision ?? 0, c.createRevision);
      break;
    case CompareTarget.MOD:
      result = compareNumbers(kv?.modRevision ?? 0, c.modRevision);
      break;
    case CompareTarget.VERSION:
      result = compareNumbers(kv?.version ?? 0, c.version);
      break;
    case CompareTarget.LEASE: {
      const lease = kv?.lease ?? 0n;
      result = lease < c.lease ? -1 : lease > c.lease ? 1 : 0;
      break;
    }
    default:
      throw new AssertionError(`mvcc: unknown compare target ${c.target}`);
  }
  switch (c.result) {
    case CompareResult.EQUAL:
      return result === 0;
    case CompareResult.NOT_EQUAL:
      return result !== 0;
    case CompareResult.GREATER:
      return result > 0;
    case CompareResult.LESS:
      return result < 0;
    default:
      // etcd answers true for an unknown result; the edge validates the enum anyway.
      return true;
  }
}

function compareNumbers(a: number, b: number): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
