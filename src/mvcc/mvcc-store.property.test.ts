// Property test: MvccStore against a deliberately naive reference model that keeps a full
// snapshot (key -> KeyValue map) for every revision. Random sequences of put, deleteRange,
// txn (nested, with compares), compact and range, over a tiny key alphabet so keys collide and
// with revisions that are often past, compacted or in the future. Every result, error, event
// and lease attachment must be equal; records reported obsolete are deleted from the in-memory
// history (so a wrongly dropped record trips the store's history assertion); and restoring a
// fresh store from the surviving records must answer every query identically.
import { unreachable } from '../util/assert.js';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { MemoryHistory } from './memory-history.js';
import { MvccStore, type LeaseTracker, type WriteSink } from './mvcc-store.js';
import type {
  Compare,
  DeleteRangeRequest,
  Event,
  KeyValue,
  PutRequest,
  RangeRequest,
  RangeResult,
  RequestOp,
  ResponseOp,
  Revision,
  TxnRequest,
  TxnResult,
} from './types.js';
import { rangeRequest } from './types.js';

// ---- reference model ----------------------------------------------------------------------

type Snapshot = Map<string, KeyValue>;

class ModelError extends Error {
  constructor(readonly code: string) {
    super(code);
  }
}

const KNOWN_LEASES = new Set([5n, 7n]);
const EMPTY = Buffer.alloc(0);
const text = (buf: Buffer): string => buf.toString('latin1');

function inRange(k: string, key: Buffer, rangeEnd: Buffer): boolean {
  const start = text(key);
  if (rangeEnd.length === 0) return k === start;
  if (rangeEnd.length === 1 && rangeEnd[0] === 0) return k >= start;
  return k >= start && k < text(rangeEnd);
}

function selectSorted(snap: Snapshot, key: Buffer, rangeEnd: Buffer): KeyValue[] {
  return [...snap.entries()]
    .filter(([k]) => inRange(k, key, rangeEnd))
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([, kv]) => kv);
}

class Model {
  /** snapshots[r] = the state at revision r, for r in 1..current. */
  readonly snapshots: Snapshot[] = [new Map(), new Map()];
  compacted = -1;
  events: Event[] = [];

  get current(): number {
    return this.snapshots.length - 1;
  }

  range(req: RangeRequest): RangeResult {
    return this.rangeIn(req, this.current, this.snapshots[this.current]!);
  }

  /** `now` is the state a revision-0 read sees (the working state inside a txn). */
  private rangeIn(req: RangeRequest, curRev: number, now: Snapshot): RangeResult {
    if (req.revision > curRev) throw new ModelError('future-revision');
    const rev = req.revision <= 0 ? curRev : req.revision;
    if (rev < this.compacted) throw new ModelError('compacted');
    const snap = rev === curRev ? now : this.snapshots[rev]!;
    const all = selectSorted(snap, req.key, req.rangeEnd);
    const count = all.length;
    if (req.countOnly) return { kvs: [], more: false, count };
    const filtered = req.minModRevision || req.maxModRevision || req.minCreateRevision || req.maxCreateRevision;
    let kvs = req.sortOrder === 0 && !filtered && req.limit > 0 ? all.slice(0, req.limit + 1) : all;
    kvs = kvs.filter(
      (kv) =>
        !(req.maxModRevision && kv.modRevision > req.maxModRevision) &&
        !(req.minModRevision && kv.modRevision < req.minModRevision) &&
        !(req.maxCreateRevision && kv.createRevision > req.maxCreateRevision) &&
        !(req.minCreateRevision && kv.createRevision < req.minCreateRevision),
    );
    const order = req.sortTarget !== 0 && req.sortOrder === 0 ? 1 : req.sortOrder;
    if (order !== 0) {
      const field = (kv: KeyValue): number | Buffer => [kv.key, kv.version, kv.createRevision, kv.modRevision, kv.value][req.sortTarget]!;
      const c = (a: KeyValue, b: KeyValue): number => {
        const x = field(a);
        const y = field(b);
        return typeof x === 'number' ? x - (y as number) : Buffer.compare(x, y as Buffer);
      };
      kvs = [...kvs].sort(order === 1 ? c : (a, b) => c(b, a));
    }
    let more = false;
    if (req.limit > 0 && kvs.length > req.limit) {
      kvs = kvs.slice(0, req.limit);
      more = true;
    }
    if (req.keysOnly) kvs = kvs.map((kv) => ({ ...kv, value: EMPTY }));
    return { kvs, more, count };
  }

  put(req: PutRequest): { prevKv?: KeyValue } {
    if (req.lease !== 0n && !KNOWN_LEASES.has(req.lease)) throw new ModelError('lease-not-found');
    const prev = this.snapshots[this.current]!.get(text(req.key));
    if ((req.ignoreValue || req.ignoreLease) && !prev) throw new ModelError('key-not-found');
    const w = this.beginWrite();
    const r = this.doPut(w, req);
    this.endWrite(w);
    return r;
  }

  deleteRange(req: DeleteRangeRequest): { deleted: number; prevKvs: KeyValue[] } {
    const w = this.beginWrite();
    const r = this.doDelete(w, req);
    this.endWrite(w);
    return r;
  }

  txn(req: TxnRequest): TxnResult {
    const before = this.snapshots[this.current]!;
    // Decide every branch up front against the pre-txn state.
    const decide = (t: TxnRequest): boolean => t.compare.every((c) => this.compare(before, c));
    const path = (t: TxnRequest, fn: (op: RequestOp) => void): void => {
      for (const op of decide(t) ? t.success : t.failure) {
        if (op.kind === 'txn') path(op.txn, fn);
        else fn(op);
      }
    };
    path(req, (op) => {
      if (op.kind !== 'put') return;
      if ((op.put.ignoreValue || op.put.ignoreLease) && !before.has(text(op.put.key))) throw new ModelError('key-not-found');
      if (op.put.lease !== 0n && !KNOWN_LEASES.has(op.put.lease)) throw new ModelError('lease-not-found');
    });
    path(req, (op) => {
      if (op.kind !== 'range' || op.range.revision === 0) return;
      if (op.range.revision > this.current) throw new ModelError('future-revision');
      if (op.range.revision < this.compacted) throw new ModelError('compacted');
    });
    const w = this.beginWrite();
    const run = (t: TxnRequest): TxnResult => {
      const succeeded = decide(t);
      const responses = (succeeded ? t.success : t.failure).map((op): ResponseOp => {
        switch (op.kind) {
          case 'range':
            return { kind: 'range', range: this.rangeIn(op.range, w.changed ? w.rev : this.current, w.state) };
          case 'put':
            return { kind: 'put', put: this.doPut(w, op.put) };
          case 'deleteRange':
            return { kind: 'deleteRange', deleteRange: this.doDelete(w, op.deleteRange) };
          case 'txn':
            return { kind: 'txn', txn: run(op.txn) };
          default:
            return unreachable(op, 'request op kind');
        }
      });
      return { succeeded, responses };
    };
    const result = run(req);
    this.endWrite(w);
    return result;
  }

  compact(rev: number): void {
    if (rev <= this.compacted) throw new ModelError('compacted');
    if (rev > this.current) throw new ModelError('future-revision');
    this.compacted = rev;
  }

  private compare(snap: Snapshot, c: Compare): boolean {
    const kvs = selectSorted(snap, c.key, c.rangeEnd);
    if (kvs.length === 0 && c.target === 3) return false;
    const zero: KeyValue = { key: c.key, createRevision: 0, modRevision: 0, version: 0, value: EMPTY, lease: 0n };
    return (kvs.length === 0 ? [zero] : kvs).every((kv) => {
      const sign = (x: number | bigint): number => (x < 0 ? -1 : x > 0 ? 1 : 0);
      const r = [
        sign(kv.version - c.version),
        sign(kv.createRevision - c.createRevision),
        sign(kv.modRevision - c.modRevision),
        Buffer.compare(kv.value, c.value),
        sign(kv.lease - c.lease),
      ][c.target]!;
      return [r === 0, r > 0, r < 0, r !== 0][c.result]!;
    });
  }

  private beginWrite(): { rev: number; state: Snapshot; changed: boolean } {
    return { rev: this.current + 1, state: new Map(this.snapshots[this.current]!), changed: false };
  }

  private endWrite(w: { state: Snapshot; changed: boolean }): void {
    if (w.changed) this.snapshots.push(w.state);
  }

  private doPut(w: { rev: number; state: Snapshot; changed: boolean }, req: PutRequest): { prevKv?: KeyValue } {
    const prev = w.state.get(text(req.key));
    if ((req.ignoreValue || req.ignoreLease) && !prev) throw new Error('model: txn put failed after checks');
    const kv: KeyValue = {
      key: req.key,
      createRevision: prev ? prev.createRevision : w.rev,
      modRevision: w.rev,
      version: prev ? prev.version + 1 : 1,
      value: req.ignoreValue ? prev!.value : req.value,
      lease: req.ignoreLease ? prev!.lease : req.lease,
    };
    w.state.set(text(req.key), kv);
    w.changed = true;
    this.events.push(prev ? { type: 'put', kv, prevKv: prev } : { type: 'put', kv });
    return req.prevKv && prev ? { prevKv: prev } : {};
  }

  private doDelete(w: { rev: number; state: Snapshot; changed: boolean }, req: DeleteRangeRequest): { deleted: number; prevKvs: KeyValue[] } {
    const doomed = selectSorted(w.state, req.key, req.rangeEnd);
    for (const prev of doomed) {
      w.state.delete(text(prev.key));
      w.changed = true;
      this.events.push({
        type: 'delete',
        kv: { key: prev.key, createRevision: 0, modRevision: w.rev, version: 0, value: EMPTY, lease: 0n },
        prevKv: prev,
      });
    }
    return { deleted: doomed.length, prevKvs: req.prevKv ? doomed : [] };
  }
}

// ---- harness ------------------------------------------------------------------------------

class TrackingLeases implements LeaseTracker {
  readonly attached = new Map<string, bigint>(); // key -> lease
  exists(lease: bigint): boolean {
    return KNOWN_LEASES.has(lease);
  }
  attach(lease: bigint, key: Buffer): void {
    expect(KNOWN_LEASES.has(lease)).toBe(true);
    expect(this.attached.has(text(key))).toBe(false);
    this.attached.set(text(key), lease);
  }
  detach(lease: bigint, key: Buffer): void {
    expect(this.attached.get(text(key))).toBe(lease);
    this.attached.delete(text(key));
  }
}

/** Plain, comparable form of any result: Buffers as latin1 strings, bigints as strings. */
function plain(value: unknown): unknown {
  if (Buffer.isBuffer(value)) return `b:${text(value)}`;
  if (typeof value === 'bigint') return `n:${value}`;
  if (Array.isArray(value)) return value.map(plain);
  if (value !== null && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) if (v !== undefined) out[k] = plain(v);
    return out;
  }
  return value;
}

function outcome(fn: () => unknown): unknown {
  try {
    return { ok: plain(fn()) };
  } catch (e) {
    if (e instanceof ModelError) return { error: e.code };
    if (e instanceof Error && 'code' in e && typeof e.code === 'string') return { error: e.code };
    throw e;
  }
}

function errorOf(result: unknown): string | undefined {
  return (result as { error?: string }).error;
}

// ---- generators ---------------------------------------------------------------------------

const KEYS = ['a', 'b', 'c', 'd', 'e'];
const key = fc.constantFrom(...KEYS).map((k) => Buffer.from(k));
const rangeEnd = fc.oneof(
  { weight: 3, arbitrary: fc.constant(EMPTY) },
  { weight: 1, arbitrary: fc.constant(Buffer.from([0])) },
  { weight: 2, arbitrary: fc.constantFrom('a', 'c', 'd', 'f', 'bb').map((k) => Buffer.from(k)) },
);
const value = fc.constantFrom('', 'x', 'y', 'zz').map((v) => Buffer.from(v));
const lease = fc.constantFrom(0n, 0n, 0n, 5n, 7n, 9n);
const revision = fc.oneof({ weight: 3, arbitrary: fc.constant(0) }, { weight: 4, arbitrary: fc.integer({ min: -2, max: 30 }) });
const filterRev = fc.oneof({ weight: 5, arbitrary: fc.constant(0) }, { weight: 1, arbitrary: fc.integer({ min: 1, max: 25 }) });

const rangeReq: fc.Arbitrary<RangeRequest> = fc.record({
  key,
  rangeEnd,
  limit: fc.oneof(fc.constant(0), fc.integer({ min: 1, max: 3 })),
  revision,
  sortOrder: fc.integer({ min: 0, max: 2 }),
  sortTarget: fc.integer({ min: 0, max: 4 }),
  keysOnly: fc.boolean(),
  countOnly: fc.oneof({ weight: 5, arbitrary: fc.constant(false) }, { weight: 1, arbitrary: fc.constant(true) }),
  minModRevision: filterRev,
  maxModRevision: filterRev,
  minCreateRevision: filterRev,
  maxCreateRevision: filterRev,
});
const putReq: fc.Arbitrary<PutRequest> = fc.record({
  key,
  value,
  lease,
  prevKv: fc.boolean(),
  ignoreValue: fc.oneof({ weight: 5, arbitrary: fc.constant(false) }, { weight: 1, arbitrary: fc.constant(true) }),
  ignoreLease: fc.oneof({ weight: 5, arbitrary: fc.constant(false) }, { weight: 1, arbitrary: fc.constant(true) }),
});
const delReq: fc.Arbitrary<DeleteRangeRequest> = fc.record({ key, rangeEnd, prevKv: fc.boolean() });
const compare: fc.Arbitrary<Compare> = fc.record({
  result: fc.integer({ min: 0, max: 3 }),
  target: fc.integer({ min: 0, max: 4 }),
  key,
  rangeEnd,
  version: fc.integer({ min: 0, max: 3 }),
  createRevision: fc.integer({ min: 0, max: 15 }),
  modRevision: fc.integer({ min: 0, max: 15 }),
  value,
  lease,
});

const { txn: txnReq } = fc.letrec<{ txn: TxnRequest; op: RequestOp }>((tie) => ({
  txn: fc.record({
    compare: fc.array(compare, { maxLength: 2 }),
    success: fc.array(tie('op'), { maxLength: 3 }),
    failure: fc.array(tie('op'), { maxLength: 3 }),
  }),
  op: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    rangeReq.map((range): RequestOp => ({ kind: 'range', range })),
    putReq.map((put): RequestOp => ({ kind: 'put', put })),
    delReq.map((deleteRange): RequestOp => ({ kind: 'deleteRange', deleteRange })),
    tie('txn').map((txn): RequestOp => ({ kind: 'txn', txn: txn as TxnRequest })),
  ),
}));

/** A conservative version of the gRPC edge's duplicate-key rule (etcd checkIntervals): across
 * the whole txn tree no key is put twice and no put key lies in a deleted range. The store
 * relies on the edge for this, so only such txns are valid input. */
function edgeValid(t: TxnRequest): boolean {
  const puts: Buffer[] = [];
  const dels: DeleteRangeRequest[] = [];
  const walk = (x: TxnRequest): void => {
    for (const op of [...x.success, ...x.failure]) {
      if (op.kind === 'put') puts.push(op.put.key);
      else if (op.kind === 'deleteRange') dels.push(op.deleteRange);
      else if (op.kind === 'txn') walk(op.txn);
    }
  };
  walk(t);
  const names = puts.map(text);
  if (new Set(names).size !== names.length) return false;
  return !names.some((k) => dels.some((d) => inRange(k, d.key, d.rangeEnd)));
}

type Action =
  | { kind: 'range'; req: RangeRequest }
  | { kind: 'put'; req: PutRequest }
  | { kind: 'deleteRange'; req: DeleteRangeRequest }
  | { kind: 'txn'; req: TxnRequest }
  | { kind: 'compact'; back: number }
  | { kind: 'restore' };

const action: fc.Arbitrary<Action> = fc.oneof(
  { weight: 4, arbitrary: rangeReq.map((req): Action => ({ kind: 'range', req })) },
  { weight: 6, arbitrary: putReq.map((req): Action => ({ kind: 'put', req })) },
  { weight: 2, arbitrary: delReq.map((req): Action => ({ kind: 'deleteRange', req })) },
  { weight: 3, arbitrary: txnReq.filter(edgeValid).map((req): Action => ({ kind: 'txn', req })) },
  // Compact at current - back: often valid, sometimes compacted (negative) or future (back < 0).
  { weight: 1, arbitrary: fc.integer({ min: -1, max: 6 }).map((back): Action => ({ kind: 'compact', back })) },
  { weight: 1, arbitrary: fc.constant<Action>({ kind: 'restore' }) },
);

// ---- the property -------------------------------------------------------------------------

function restoreFrom(history: MemoryHistory, compactedRevision: number, leases: LeaseTracker): MvccStore {
  const store = new MvccStore({ history, leases });
  for (const { rev, record } of history.sorted()) store.restoreRecord(rev, record);
  store.finishRestore({ compactedRevision });
  return store;
}

const FULL: RangeRequest = rangeRequest(Buffer.from([0]), Buffer.from([0]));

/** Every revision a read may ask for, plus the first invalid ones on each side. */
function checkAllRevisions(store: MvccStore, model: Model): void {
  for (let rev = Math.max(1, model.compacted) - 1; rev <= model.current + 1; rev++) {
    const req = { ...FULL, revision: rev };
    expect(outcome(() => store.range(req))).toEqual(outcome(() => model.range(req)));
  }
}

/** The sink wants prev_kv for some keys only, as a watch hub whose prev_kv watchers cover part
 * of the key space: events of the other keys carry it only when the request needed it anyway. */
const wantsPrevKv = (keyText: string): boolean => keyText.charCodeAt(0) % 2 === 0;

function sinkOver(history: MemoryHistory): WriteSink {
  return { record: (rev, record) => history.record(rev, record), event: (e) => history.event(e), wantsPrevKv };
}

/** Events as a watcher with prev_kv on the wanted keys sees them. */
function shown(events: readonly Event[]): Event[] {
  return events.map((e) => (wantsPrevKv(e.kv.key.toString('latin1')) ? e : { type: e.type, kv: e.kv }));
}

describe('MvccStore vs a snapshot-per-revision model', () => {
  it('agrees on every result, error, event, lease attachment and after restore', () => {
    fc.assert(
      fc.property(fc.array(action, { minLength: 1, maxLength: 60, size: 'max' }), (actions) => {
        const history = new MemoryHistory();
        const sink = sinkOver(history);
        let leases = new TrackingLeases();
        // A value cache that holds about two records: hits, misses and evictions all happen
        // (the store restored below runs without one).
        let store = new MvccStore({ history, leases, valueCacheBytes: 400 });
        const model = new Model();
        for (const a of actions) {
          switch (a.kind) {
            case 'range':
              expect(outcome(() => store.range(a.req))).toEqual(outcome(() => model.range(a.req)));
              break;
            case 'put':
              expect(outcome(() => store.put(a.req, sink))).toEqual(outcome(() => model.put(a.req)));
              break;
            case 'deleteRange':
              expect(outcome(() => store.deleteRange(a.req, sink))).toEqual(outcome(() => model.deleteRange(a.req)));
              break;
            case 'txn':
              expect(outcome(() => store.txn(a.req, sink))).toEqual(outcome(() => model.txn(a.req)));
              break;
            case 'compact': {
              const rev = model.current - a.back;
              let obsolete: Revision[] | undefined;
              const got = outcome(() => (obsolete = store.compact(rev).obsolete));
              expect(errorOf(got)).toEqual(errorOf(outcome(() => model.compact(rev))));
              if (obsolete !== undefined) {
                history.deleteRevisions(obsolete);
                // What survives at or below the compaction point: exactly one record per key
                // alive at `rev` (its newest put), nothing else.
                const survivors = history.sorted().filter((r) => r.rev.main <= rev).length;
                expect(survivors).toBe(model.snapshots[rev]!.size);
                checkAllRevisions(store, model);
              }
              break;
            }
            case 'restore': {
              leases = new TrackingLeases();
              store = restoreFrom(history, model.compacted, leases);
              break;
            }
          }
          expect(store.currentRevision).toBe(model.current);
          expect(store.compactedRevision).toBe(model.compacted);
          expect(store.liveKeyCount).toBe(model.snapshots[model.current]!.size);
        }
        expect(plain(shown(history.events))).toEqual(plain(shown(model.events)));
        // Where the store read a previous value although no watcher wanted it (the request
        // needed it), it is the right one.
        history.events.forEach((e, i) => {
          if (e.prevKv !== undefined) expect(plain(e.prevKv)).toEqual(plain(model.events[i]!.prevKv));
        });
        checkAllRevisions(store, model);
        const expectedLeases = new Map<string, bigint>();
        for (const [k, kv] of model.snapshots[model.current]!) if (kv.lease !== 0n) expectedLeases.set(k, kv.lease);
        expect(leases.attached).toEqual(expectedLeases);
        // A restart from the surviving records answers everything the same way.
        const restoredLeases = new TrackingLeases();
        const restored = restoreFrom(history, model.compacted, restoredLeases);
        expect(restored.currentRevision).toBe(model.current);
        expect(restored.liveKeyCount).toBe(model.snapshots[model.current]!.size);
        checkAllRevisions(restored, model);
        expect(restoredLeases.attached).toEqual(expectedLeases);
      }),
      { numRuns: 500 },
    );
  });
});
