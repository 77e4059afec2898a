// MvccStore unit tests, one per etcd 3.4 behaviour (mvcc/kvstore_txn.go, etcdserver/apply.go).
import { describe, expect, it } from 'vitest';
import { CompactedError, FutureRevisionError, KeyNotFoundError, LeaseNotFoundError } from './errors.js';
import { MemoryHistory } from './memory-history.js';
import { MvccStore, type LeaseTracker, type WriteSink } from './mvcc-store.js';
import type { Compare, DeleteRangeRequest, KeyValue, PutRequest, RangeRequest, RequestOp, Revision, TxnRequest } from './types.js';
import { rangeRequest } from './types.js';

const b = (s: string): Buffer => Buffer.from(s, 'latin1');
const ALL = Buffer.from([0]);
const NONE = Buffer.alloc(0);

function rangeReq(key: string, rangeEnd: Buffer | string = NONE, extra: Partial<RangeRequest> = {}): RangeRequest {
  return rangeRequest(b(key), typeof rangeEnd === 'string' ? b(rangeEnd) : rangeEnd, extra);
}
function putReq(key: string, value: string, extra: Partial<PutRequest> = {}): PutRequest {
  return { key: b(key), value: b(value), lease: 0n, prevKv: false, ignoreValue: false, ignoreLease: false, ...extra };
}
function delReq(key: string, rangeEnd: Buffer | string = NONE, prevKv = false): DeleteRangeRequest {
  return { key: b(key), rangeEnd: typeof rangeEnd === 'string' ? b(rangeEnd) : rangeEnd, prevKv };
}
function cmp(key: string, target: number, result: number, against: Partial<Compare> = {}, rangeEnd: Buffer | string = NONE): Compare {
  return {
    key: b(key),
    rangeEnd: typeof rangeEnd === 'string' ? b(rangeEnd) : rangeEnd,
    target,
    result,
    version: 0,
    createRevision: 0,
    modRevision: 0,
    value: NONE,
    lease: 0n,
    ...against,
  };
}
const opPut = (p: PutRequest): RequestOp => ({ kind: 'put', put: p });
const opRange = (r: RangeRequest): RequestOp => ({ kind: 'range', range: r });
const opDel = (d: DeleteRangeRequest): RequestOp => ({ kind: 'deleteRange', deleteRange: d });
const opTxn = (t: TxnRequest): RequestOp => ({ kind: 'txn', txn: t });

class FakeLeases implements LeaseTracker {
  readonly known = new Set<bigint>([1n, 2n]);
  readonly calls: string[] = [];
  exists(lease: bigint): boolean {
    return this.known.has(lease);
  }
  attach(lease: bigint, key: Buffer): void {
    this.calls.push(`attach ${lease} ${key.toString()}`);
  }
  detach(lease: bigint, key: Buffer): void {
    this.calls.push(`detach ${lease} ${key.toString()}`);
  }
}

function setup(): { store: MvccStore; h: MemoryHistory; leases: FakeLeases } {
  const h = new MemoryHistory();
  const leases = new FakeLeases();
  return { store: new MvccStore({ history: h, leases }), h, leases };
}

const brief = (kv: KeyValue): string =>
  `${kv.key.toString()}=${kv.value.toString()} c${kv.createRevision} m${kv.modRevision} v${kv.version}${kv.lease !== 0n ? ` l${kv.lease}` : ''}`;
const keys = (kvs: KeyValue[]): string[] => kvs.map((kv) => kv.key.toString());

describe('MvccStore put', () => {
  it('starts at revision 1 with nothing compacted (-1), like etcd; the first put gets revision 2', () => {
    const { store, h } = setup();
    expect(store.currentRevision).toBe(1);
    expect(store.compactedRevision).toBe(-1);
    store.put(putReq('a', '1'), h);
    expect(store.currentRevision).toBe(2);
    expect(store.range(rangeReq('a')).kvs.map(brief)).toEqual(['a=1 c2 m2 v1']);
  });

  it('increments version and keeps createRevision within a generation; returns prevKv only when asked', () => {
    const { store, h } = setup();
    store.put(putReq('a', '1'), h);
    expect(store.put(putReq('a', '2'), h)).toEqual({});
    const r = store.put(putReq('a', '3', { prevKv: true }), h);
    expect(brief(r.prevKv!)).toBe('a=2 c2 m3 v2');
    expect(store.range(rangeReq('a')).kvs.map(brief)).toEqual(['a=3 c2 m4 v3']);
  });

  it('a put after a delete starts a new generation (new createRevision, version 1)', () => {
    const { store, h } = setup();
    store.put(putReq('a', '1'), h);
    store.deleteRange(delReq('a'), h);
    store.put(putReq('a', '2'), h);
    expect(store.range(rangeReq('a')).kvs.map(brief)).toEqual(['a=2 c4 m4 v1']);
  });

  it('ignore_value keeps the value, ignore_lease keeps the lease', () => {
    const { store, h } = setup();
    store.put(putReq('a', 'v', { lease: 1n }), h);
    store.put(putReq('a', '', { ignoreValue: true, lease: 2n }), h);
    expect(store.range(rangeReq('a')).kvs.map(brief)).toEqual(['a=v c2 m3 v2 l2']);
    store.put(putReq('a', 'w', { ignoreLease: true }), h);
    expect(store.range(rangeReq('a')).kvs.map(brief)).toEqual(['a=w c2 m4 v3 l2']);
  });

  it('ignore_value / ignore_lease on a missing key: "key not found", nothing changes', () => {
    const { store, h } = setup();
    expect(() => store.put(putReq('a', '', { ignoreValue: true }), h)).toThrow(KeyNotFoundError);
    expect(() => store.put(putReq('a', 'x', { ignoreLease: true }), h)).toThrow(KeyNotFoundError);
    expect(store.currentRevision).toBe(1);
    expect(h.size).toBe(0);
    expect(h.events).toEqual([]);
  });

  it('an unknown lease fails with "requested lease not found" before anything (and before key-not-found)', () => {
    const { store, h } = setup();
    expect(() => store.put(putReq('a', 'x', { lease: 9n }), h)).toThrow(LeaseNotFoundError);
    expect(() => store.put(putReq('a', 'x', { lease: 9n, ignoreValue: true }), h)).toThrow(LeaseNotFoundError);
    expect(store.currentRevision).toBe(1);
    const noLessor = new MvccStore({ history: h });
    expect(() => noLessor.put(putReq('a', 'x', { lease: 1n }), h)).toThrow(LeaseNotFoundError);
  });

  it('attaches and detaches leases through the tracker', () => {
    const { store, h, leases } = setup();
    store.put(putReq('a', '1', { lease: 1n }), h);
    store.put(putReq('a', '2', { lease: 2n }), h);
    store.put(putReq('a', '3'), h);
    store.put(putReq('a', '4', { lease: 1n }), h);
    store.deleteRange(delReq('a'), h);
    expect(leases.calls).toEqual(['attach 1 a', 'detach 1 a', 'attach 2 a', 'detach 2 a', 'attach 1 a', 'detach 1 a']);
  });

  it('emits one record and one put event with the previous value', () => {
    const { store, h } = setup();
    store.put(putReq('a', '1'), h);
    store.put(putReq('a', '2'), h);
    expect(h.events.map((e) => `${e.type} ${brief(e.kv)} prev ${e.prevKv ? brief(e.prevKv) : '-'}`)).toEqual([
      'put a=1 c2 m2 v1 prev -',
      'put a=2 c2 m3 v2 prev a=1 c2 m2 v1',
    ]);
    expect(h.sorted().map((r) => `${r.rev.main}.${r.rev.sub}`)).toEqual(['2.0', '3.0']);
  });
});

describe('MvccStore deleteRange', () => {
  it('deletes every live key in range at one main revision, sub revisions in key order', () => {
    const { store, h } = setup();
    for (const k of ['c', 'a', 'b', 'd']) store.put(putReq(k, k), h);
    store.deleteRange(delReq('b'), h); // rev 6
    h.events = [];
    const r = store.deleteRange(delReq('a', 'z', true), h);
    expect(r.deleted).toBe(3);
    expect(r.prevKvs.map(brief)).toEqual(['a=a c3 m3 v1', 'c=c c2 m2 v1', 'd=d c5 m5 v1']);
    expect(store.currentRevision).toBe(7);
    expect(
      h
        .sorted()
        .slice(-3)
        .map((x) => `${x.rev.main}.${x.rev.sub}`),
    ).toEqual(['7.0', '7.1', '7.2']);
    expect(h.events.map((e) => `${e.type} ${e.kv.key.toString()} m${e.kv.modRevision} c${e.kv.createRevision} v${e.kv.version}`)).toEqual([
      'delete a m7 c0 v0',
      'delete c m7 c0 v0',
      'delete d m7 c0 v0',
    ]);
    expect(store.range(rangeReq('a', ALL)).count).toBe(0);
  });

  it('returns prevKvs only when asked', () => {
    const { store, h } = setup();
    store.put(putReq('a', '1'), h);
    expect(store.deleteRange(delReq('a'), h)).toEqual({ deleted: 1, prevKvs: [] });
  });

  it('deleting nothing does not bump the revision and writes nothing', () => {
    const { store, h } = setup();
    store.put(putReq('a', '1'), h);
    store.deleteRange(delReq('a'), h);
    const before = h.size;
    expect(store.deleteRange(delReq('a', ALL), h)).toEqual({ deleted: 0, prevKvs: [] });
    expect(store.deleteRange(delReq('x'), h).deleted).toBe(0);
    expect(store.currentRevision).toBe(3);
    expect(h.size).toBe(before);
  });
});

describe('MvccStore range', () => {
  function filled(): { store: MvccStore; h: MemoryHistory } {
    const { store, h } = setup();
    store.put(putReq('a', 'z'), h); // 2
    store.put(putReq('b', 'y'), h); // 3
    store.put(putReq('c', 'y'), h); // 4
    store.put(putReq('a', 'x'), h); // 5: a v2
    store.put(putReq('d', 'w'), h); // 6
    store.put(putReq('a', 'w'), h); // 7: a v3
    return { store, h };
  }

  it('selects a single key, [key, end), and every key >= key with end "\\0"', () => {
    const { store } = filled();
    expect(keys(store.range(rangeReq('b')).kvs)).toEqual(['b']);
    expect(keys(store.range(rangeReq('b', 'd')).kvs)).toEqual(['b', 'c']);
    expect(keys(store.range(rangeReq('b', ALL)).kvs)).toEqual(['b', 'c', 'd']);
    expect(keys(store.range(rangeReq('\0', ALL)).kvs)).toEqual(['a', 'b', 'c', 'd']);
    expect(store.range(rangeReq('c', 'b')).kvs).toEqual([]); // key >= range_end: empty
    expect(store.range(rangeReq('zz')).count).toBe(0);
  });

  it('reads at a past revision through history; revision <= 0 means current', () => {
    const { store } = filled();
    expect(store.range(rangeReq('a', NONE, { revision: 4 })).kvs.map(brief)).toEqual(['a=z c2 m2 v1']);
    expect(store.range(rangeReq('a', NONE, { revision: 6 })).kvs.map(brief)).toEqual(['a=x c2 m5 v2']);
    expect(keys(store.range(rangeReq('a', ALL, { revision: 3 })).kvs)).toEqual(['a', 'b']);
    expect(store.range(rangeReq('a', NONE, { revision: -5 })).kvs.map(brief)).toEqual(['a=w c2 m7 v3']);
  });

  it('a key deleted at or before the read revision is absent; present before', () => {
    const { store, h } = filled();
    store.deleteRange(delReq('b'), h); // 8
    expect(store.range(rangeReq('b', NONE, { revision: 7 })).count).toBe(1);
    expect(store.range(rangeReq('b', NONE, { revision: 8 })).count).toBe(0);
    expect(store.range(rangeReq('b')).count).toBe(0);
  });

  it('future revision: "required revision is a future revision"; compacted: "required revision has been compacted"', () => {
    const { store } = filled();
    expect(() => store.range(rangeReq('a', NONE, { revision: 8 }))).toThrow(FutureRevisionError);
    expect(() => store.range(rangeReq('a', NONE, { revision: 8 }))).toThrow('mvcc: required revision is a future revision');
    store.compact(5);
    expect(() => store.range(rangeReq('a', NONE, { revision: 4 }))).toThrow('mvcc: required revision has been compacted');
    expect(store.range(rangeReq('a', NONE, { revision: 5 })).kvs.map(brief)).toEqual(['a=x c2 m5 v2']); // = compacted: allowed
  });

  it('limit cuts after counting: count ignores limit, more tells about the cut', () => {
    const { store } = filled();
    const r = store.range(rangeReq('a', ALL, { limit: 2 }));
    expect(keys(r.kvs)).toEqual(['a', 'b']);
    expect(r).toMatchObject({ more: true, count: 4 });
    expect(store.range(rangeReq('a', ALL, { limit: 4 })).more).toBe(false);
    expect(store.range(rangeReq('a', ALL, { limit: -1 }))).toMatchObject({ more: false, count: 4 }); // negative = none
    expect(store.range(rangeReq('a', ALL, { limit: -1 })).kvs).toHaveLength(4);
  });

  it('count ignores the min/max revision filters (etcd quirk); filters apply before limit', () => {
    const { store } = filled();
    const r = store.range(rangeReq('a', ALL, { minModRevision: 4, limit: 1 }));
    expect(keys(r.kvs)).toEqual(['a']);
    expect(r).toMatchObject({ count: 4, more: true });
    const r2 = store.range(rangeReq('a', ALL, { maxCreateRevision: 3, minCreateRevision: 3 }));
    expect(keys(r2.kvs)).toEqual(['b']);
    expect(r2.count).toBe(4);
    expect(keys(store.range(rangeReq('a', ALL, { maxModRevision: 4 })).kvs)).toEqual(['b', 'c']);
  });

  it('sorts stably: equal elements keep key order, ascending and descending', () => {
    const { store } = filled();
    expect(keys(store.range(rangeReq('a', ALL, { sortOrder: 1, sortTarget: 4 })).kvs)).toEqual(['a', 'd', 'b', 'c']);
    expect(keys(store.range(rangeReq('a', ALL, { sortOrder: 2, sortTarget: 4 })).kvs)).toEqual(['b', 'c', 'a', 'd']);
    expect(keys(store.range(rangeReq('a', ALL, { sortOrder: 2, sortTarget: 1 })).kvs)).toEqual(['a', 'b', 'c', 'd']);
    expect(keys(store.range(rangeReq('a', ALL, { sortOrder: 2, sortTarget: 0 })).kvs)).toEqual(['d', 'c', 'b', 'a']);
    expect(keys(store.range(rangeReq('a', ALL, { sortOrder: 1, sortTarget: 3 })).kvs)).toEqual(['b', 'c', 'd', 'a']);
    expect(keys(store.range(rangeReq('a', ALL, { sortOrder: 2, sortTarget: 2 })).kvs)).toEqual(['d', 'c', 'b', 'a']);
  });

  it('sort target other than KEY with order NONE sorts ascending, over the first limit+1 keys only (etcd)', () => {
    const { store } = filled();
    // MOD ascending over everything would start with b (3); with NONE etcd loads a, b, c first.
    const r = store.range(rangeReq('a', ALL, { sortTarget: 3, limit: 2 }));
    expect(keys(r.kvs)).toEqual(['b', 'c']);
    expect(r.more).toBe(true);
    expect(keys(store.range(rangeReq('a', ALL, { sortTarget: 3 })).kvs)).toEqual(['b', 'c', 'd', 'a']);
    // An explicit ASCEND loads the whole range before the limit.
    expect(keys(store.range(rangeReq('a', ALL, { sortTarget: 2, sortOrder: 2, limit: 1 })).kvs)).toEqual(['d']);
  });

  it('keys_only drops values; count_only returns only the count', () => {
    const { store } = filled();
    const r = store.range(rangeReq('a', ALL, { keysOnly: true }));
    expect(r.kvs.every((kv) => kv.value.length === 0)).toBe(true);
    expect(r.kvs[0]!.version).toBe(3);
    expect(store.range(rangeReq('a', ALL, { countOnly: true, limit: 1 }))).toEqual({ kvs: [], more: false, count: 4 });
  });
});

describe('MvccStore value reads', () => {
  /** A history that counts reads: values live there, not in the store. */
  function counted(): { store: MvccStore; h: MemoryHistory; reads: () => number } {
    const h = new MemoryHistory();
    let reads = 0;
    const store = new MvccStore({
      history: {
        readRecord: (rev) => {
          reads++;
          return h.readRecord(rev);
        },
      },
    });
    store.put(putReq('a', '1'), h);
    store.put(putReq('b', '2'), h);
    store.put(putReq('a', '3'), h);
    return { store, h, reads: () => reads };
  }

  it('keys-only and count-only ranges, and compares on anything but the value, read no value', () => {
    const { store, h, reads } = counted();
    const before = reads();
    expect(store.range(rangeReq('a', ALL, { keysOnly: true })).kvs.map(brief)).toEqual(['a= c2 m4 v2', 'b= c3 m3 v1']);
    expect(store.range(rangeReq('a', ALL, { countOnly: true })).count).toBe(2);
    const compares = [cmp('a', 0, 0, { version: 2 }), cmp('a', 2, 0, { modRevision: 4 }), cmp('a', 1, 0, { createRevision: 2 }), cmp('a', 4, 0)];
    expect(store.txn({ compare: compares, success: [], failure: [] }, h).succeeded).toBe(true);
    expect(reads()).toBe(before);
    // Sorting by value needs the values even when the result drops them, as in etcd.
    expect(store.range(rangeReq('a', ALL, { keysOnly: true, sortTarget: 4, sortOrder: 2 })).kvs.map(brief)).toEqual(['a= c2 m4 v2', 'b= c3 m3 v1']);
    expect(reads()).toBe(before + 2);
  });

  it('with a value cache, a value read once is served from it, and a put to a cached key replaces it there', () => {
    const h = new MemoryHistory();
    let reads = 0;
    const readRecord = (rev: Revision): Buffer | undefined => {
      reads++;
      return h.readRecord(rev);
    };
    const store = new MvccStore({ history: { readRecord }, valueCacheBytes: 1024 });
    store.put(putReq('a', '1'), h);
    store.put(putReq('b', '1'), h);
    // A put does not cache the value of a key not cached: the first read goes to history.
    expect(store.range(rangeReq('a')).kvs.map(brief)).toEqual(['a=1 c2 m2 v1']);
    expect(reads).toBe(1);
    store.put(putReq('a', '2', { prevKv: true }), h); // prevKv from the cache, the new value replaces it
    for (let i = 0; i < 3; i++) expect(store.range(rangeReq('a')).kvs.map(brief)).toEqual(['a=2 c2 m4 v2']);
    expect(reads).toBe(1);
    expect(store.range(rangeReq('b')).kvs.map(brief)).toEqual(['b=1 c3 m3 v1']);
    expect(reads).toBe(2);
    store.deleteRange(delReq('a'), h);
    store.put(putReq('a', '3'), h); // deleted keys leave the cache; the new generation is not cached
    expect(store.range(rangeReq('a')).kvs.map(brief)).toEqual(['a=3 c6 m6 v1']);
    expect(reads).toBe(3);
    expect(store.range(rangeReq('a')).kvs.map(brief)).toEqual(['a=3 c6 m6 v1']);
    expect(store.range(rangeReq('a', NONE, { revision: 4 })).kvs.map(brief)).toEqual(['a=2 c2 m4 v2']); // history
    expect(reads).toBe(4);
  });

  it('a put or delete reads the previous value only for prev_kv, ignore_value, or a sink that wants it', () => {
    const h = new MemoryHistory();
    const leases = new FakeLeases();
    let reads = 0;
    const readRecord = (rev: Revision): Buffer | undefined => {
      reads++;
      return h.readRecord(rev);
    };
    const store = new MvccStore({ history: { readRecord }, leases });
    const wanted = new Set<string>();
    const sink: WriteSink = { record: (rev, record) => h.record(rev, record), event: (e) => h.event(e), wantsPrevKv: (key) => wanted.has(key) };
    const lastEvent = (): string => {
      const e = h.events[h.events.length - 1]!;
      return `${e.type} ${brief(e.kv)} prev ${e.prevKv ? brief(e.prevKv) : '-'}`;
    };
    store.put(putReq('a', '1', { lease: 1n }), sink);
    store.put(putReq('a', '2', { lease: 2n }), sink); // a plain overwrite: metadata from the index
    expect(lastEvent()).toBe('put a=2 c2 m3 v2 l2 prev -');
    store.put(putReq('a', '3', { ignoreLease: true }), sink); // the lease is in the index too
    expect(lastEvent()).toBe('put a=3 c2 m4 v3 l2 prev -');
    expect(reads).toBe(0);
    expect(leases.calls).toEqual(['attach 1 a', 'detach 1 a', 'attach 2 a', 'detach 2 a', 'attach 2 a']);
    expect(brief(store.put(putReq('a', '4', { prevKv: true }), sink).prevKv!)).toBe('a=3 c2 m4 v3 l2');
    expect(reads).toBe(1);
    store.put(putReq('a', '', { ignoreValue: true }), sink);
    expect(reads).toBe(2);
    expect(lastEvent()).toBe('put a=4 c2 m6 v5 prev a=4 c2 m5 v4');
    wanted.add('a'); // a watcher with prev_kv covers the key now
    store.put(putReq('a', '5'), sink);
    expect(reads).toBe(3);
    expect(lastEvent()).toBe('put a=5 c2 m7 v6 prev a=4 c2 m6 v5');
    wanted.clear();
    store.put(putReq('a', '6', { lease: 1n }), sink);
    leases.calls.length = 0;
    expect(store.deleteRange(delReq('a'), sink)).toEqual({ deleted: 1, prevKvs: [] });
    expect(lastEvent()).toBe('delete a= c0 m9 v0 prev -');
    expect(reads).toBe(3);
    expect(leases.calls).toEqual(['detach 1 a']);
    store.put(putReq('a', '7'), sink);
    wanted.add('a');
    store.deleteRange(delReq('a'), sink);
    expect(lastEvent()).toBe('delete a= c0 m11 v0 prev a=7 c10 m10 v1');
    expect(reads).toBe(4);
  });

  it('a range reads the value of each key it returns, and only those within the limit', () => {
    const { store, reads } = counted();
    const before = reads();
    expect(store.range(rangeReq('a', ALL, { limit: 1 })).kvs.map(brief)).toEqual(['a=3 c2 m4 v2']);
    expect(reads() - before).toBe(1);
  });
});

describe('MvccStore txn', () => {
  function two(): { store: MvccStore; h: MemoryHistory } {
    const { store, h } = setup();
    store.put(putReq('a', '1'), h); // 2
    store.put(putReq('b', '2', { lease: 1n }), h); // 3
    return { store, h };
  }
  const txnReq = (compare: Compare[], success: RequestOp[], failure: RequestOp[] = []): TxnRequest => ({ compare, success, failure });

  it('compares a missing key as zeros, except VALUE which is false', () => {
    const { store, h } = two();
    const run = (c: Compare): boolean => store.txn(txnReq([c], []), h).succeeded;
    expect(run(cmp('zz', 0, 0, { version: 0 }))).toBe(true);
    expect(run(cmp('zz', 1, 0, { createRevision: 0 }))).toBe(true);
    expect(run(cmp('zz', 2, 2, { modRevision: 1 }))).toBe(true);
    expect(run(cmp('zz', 4, 0, { lease: 0n }))).toBe(true);
    expect(run(cmp('zz', 3, 0, { value: NONE }))).toBe(false);
    expect(run(cmp('zz', 3, 3, { value: b('x') }))).toBe(false);
  });

  it('evaluates each result and target on an existing key', () => {
    const { store, h } = two();
    const run = (c: Compare): boolean => store.txn(txnReq([c], []), h).succeeded;
    expect(run(cmp('a', 3, 0, { value: b('1') }))).toBe(true);
    expect(run(cmp('a', 3, 1, { value: b('0') }))).toBe(true);
    expect(run(cmp('a', 3, 2, { value: b('10') }))).toBe(true);
    expect(run(cmp('a', 3, 3, { value: b('1') }))).toBe(false);
    expect(run(cmp('b', 1, 0, { createRevision: 3 }))).toBe(true);
    expect(run(cmp('b', 2, 1, { modRevision: 2 }))).toBe(true);
    expect(run(cmp('b', 4, 0, { lease: 1n }))).toBe(true);
    expect(run(cmp('b', 0, 2, { version: 2 }))).toBe(true);
  });

  it('with range_end every key must satisfy; an empty range compares zeros', () => {
    const { store, h } = two();
    const run = (c: Compare): boolean => store.txn(txnReq([c], []), h).succeeded;
    expect(run(cmp('a', 0, 0, { version: 1 }, 'c'))).toBe(true);
    expect(run(cmp('a', 2, 2, { modRevision: 3 }, 'c'))).toBe(false);
    expect(run(cmp('a', 2, 2, { modRevision: 4 }, ALL))).toBe(true);
    expect(run(cmp('x', 0, 0, { version: 0 }, 'z'))).toBe(true);
    expect(run(cmp('x', 3, 0, { value: NONE }, 'z'))).toBe(false);
  });

  it('runs the chosen branch; all writes share one main revision with increasing subs', () => {
    const { store, h } = two();
    h.events = [];
    const r = store.txn(
      txnReq([cmp('a', 3, 0, { value: b('nope') })], [opPut(putReq('x', 'x'))], [opPut(putReq('c', '3')), opDel(delReq('a')), opPut(putReq('d', '4'))]),
      h,
    );
    expect(r.succeeded).toBe(false);
    expect(r.responses.map((x) => x.kind)).toEqual(['put', 'deleteRange', 'put']);
    expect(store.currentRevision).toBe(4);
    expect(
      h
        .sorted()
        .slice(-3)
        .map((x) => `${x.rev.main}.${x.rev.sub}`),
    ).toEqual(['4.0', '4.1', '4.2']);
    expect(h.events.map((e) => `${e.type} ${e.kv.key.toString()} ${e.kv.modRevision}`)).toEqual(['put c 4', 'delete a 4', 'put d 4']);
    expect(keys(store.range(rangeReq('a', ALL)).kvs)).toEqual(['b', 'c', 'd']);
  });

  it('a range after writes in the same txn sees them; before the writes it does not', () => {
    const { store, h } = two();
    const r = store.txn(
      txnReq([], [opRange(rangeReq('a', ALL)), opPut(putReq('c', '3')), opRange(rangeReq('a', ALL)), opRange(rangeReq('a', ALL, { revision: 3 }))]),
      h,
    );
    const counts = r.responses.map((x) => (x.kind === 'range' ? x.range.count : -1));
    expect(counts).toEqual([2, -1, 3, 2]);
  });

  it('nested txns: compares are evaluated against the state before the whole txn', () => {
    const { store, h } = two();
    const r = store.txn(
      txnReq(
        [],
        [opPut(putReq('a', 'changed')), opTxn(txnReq([cmp('a', 3, 0, { value: b('1') })], [opPut(putReq('n', 'then'))], [opPut(putReq('n', 'else'))]))],
      ),
      h,
    );
    const nested = r.responses[1]!;
    expect(nested.kind === 'txn' && nested.txn.succeeded).toBe(true);
    expect(store.range(rangeReq('n')).kvs.map(brief)).toEqual(['n=then c4 m4 v1']);
    expect(store.currentRevision).toBe(4);
  });

  it('fails as a whole, changing nothing, if a put on the chosen path would fail (etcd checkRequests)', () => {
    const { store, h } = two();
    const before = h.size;
    expect(() => store.txn(txnReq([], [opPut(putReq('c', '3')), opPut(putReq('zz', '', { ignoreValue: true }))]), h)).toThrow(KeyNotFoundError);
    expect(() => store.txn(txnReq([], [opPut(putReq('c', '3')), opTxn(txnReq([], [opPut(putReq('d', '', { lease: 7n }))]))]), h)).toThrow(LeaseNotFoundError);
    // Put checks come before range checks.
    expect(() => store.txn(txnReq([], [opRange(rangeReq('a', NONE, { revision: 99 })), opPut(putReq('d', '', { lease: 7n }))]), h)).toThrow(LeaseNotFoundError);
    // The failure branch is not checked when the success branch is taken.
    expect(store.txn(txnReq([], [], [opPut(putReq('d', '', { lease: 7n }))]), h).succeeded).toBe(true);
    expect(store.currentRevision).toBe(3);
    expect(h.size).toBe(before);
  });

  it('a range on the path with a future or compacted revision fails the txn', () => {
    const { store, h } = two();
    expect(() => store.txn(txnReq([], [opPut(putReq('c', '3')), opRange(rangeReq('a', NONE, { revision: 4 }))]), h)).toThrow(FutureRevisionError);
    store.compact(3);
    expect(() => store.txn(txnReq([], [opRange(rangeReq('a', NONE, { revision: 2 }))]), h)).toThrow(CompactedError);
    // etcd quirk: inside a txn a negative revision is compared with the compaction point.
    expect(() => store.txn(txnReq([], [opRange(rangeReq('a', NONE, { revision: -1 }))]), h)).toThrow(CompactedError);
    expect(store.currentRevision).toBe(3);
  });

  it('a read-only txn (or one whose writes are no-ops) does not bump the revision', () => {
    const { store, h } = two();
    const r = store.txn(txnReq([], [opRange(rangeReq('a')), opDel(delReq('zz'))]), h);
    expect(r.responses[0]!.kind === 'range' && r.responses[0]!.range.kvs.length).toBe(1);
    expect(store.currentRevision).toBe(3);
  });

  it('prevKv inside a txn sees earlier writes of the txn', () => {
    const { store, h } = two();
    const r = store.txn(txnReq([], [opDel(delReq('a')), opPut(putReq('b', '3', { prevKv: true })), opDel(delReq('a', 'z', true))]), h);
    expect(r.responses.map((x) => (x.kind === 'put' ? brief(x.put.prevKv!) : x.kind === 'deleteRange' ? x.deleteRange.prevKvs.map(brief).join() : ''))).toEqual(
      ['', 'b=2 c3 m3 v1 l1', 'b=3 c3 m4 v2'],
    );
  });
});

describe('MvccStore compact', () => {
  it('rejects revisions <= compacted and > current', () => {
    const { store, h } = setup();
    store.put(putReq('a', '1'), h);
    expect(() => store.compact(3)).toThrow(FutureRevisionError);
    store.compact(2);
    expect(() => store.compact(2)).toThrow(CompactedError);
    expect(() => store.compact(1)).toThrow(CompactedError);
    expect(store.compactedRevision).toBe(2);
  });

  it('returns what no read at >= R needs; reads at R answer as before; below R fail', () => {
    const { store, h } = setup();
    store.put(putReq('a', '1'), h); // 2
    store.put(putReq('a', '2'), h); // 3
    store.put(putReq('b', '1'), h); // 4
    store.deleteRange(delReq('b'), h); // 5
    store.put(putReq('c', '1'), h); // 6
    store.deleteRange(delReq('c'), h); // 7
    store.put(putReq('a', '3'), h); // 8
    const before = store.range(rangeReq('a', ALL, { revision: 6 }));
    const { obsolete } = store.compact(6);
    expect(obsolete.map((r) => r.main)).toEqual([2, 4, 5]);
    h.deleteRevisions(obsolete);
    expect(store.range(rangeReq('a', ALL, { revision: 6 }))).toEqual(before);
    expect(() => store.range(rangeReq('a', ALL, { revision: 5 }))).toThrow(CompactedError);
    // c's tombstone at 7 > 6 keeps its put at 6; compacting at 7 drops the key entirely.
    expect(store.compact(7).obsolete.map((r) => r.main)).toEqual([6, 7]);
  });
});

describe('MvccStore restore', () => {
  it('rebuilds the same state from the persisted records', () => {
    const { store, h } = setup();
    store.put(putReq('a', '1', { lease: 1n }), h);
    store.put(putReq('a', '2', { lease: 1n }), h);
    store.put(putReq('b', '1'), h);
    store.deleteRange(delReq('b'), h);
    store.put(putReq('b', '2', { lease: 2n }), h);
    store.put(putReq('c', '2', { lease: 2n }), h);
    store.deleteRange(delReq('c'), h);
    h.deleteRevisions(store.compact(5).obsolete);
    const leases = new FakeLeases();
    leases.known.delete(2n);
    const restored = new MvccStore({ history: h, leases });
    for (const { rev, record } of h.sorted()) restored.restoreRecord(rev, record);
    restored.finishRestore({ compactedRevision: 5 });
    expect(restored.currentRevision).toBe(store.currentRevision);
    expect(restored.compactedRevision).toBe(5);
    for (let rev = 5; rev <= store.currentRevision; rev++) {
      expect(restored.range(rangeReq('\0', ALL, { revision: rev }))).toEqual(store.range(rangeReq('\0', ALL, { revision: rev })));
    }
    expect(leases.calls).toEqual(['attach 1 a']); // lease 2 is gone: skipped, as etcd does
    store.put(putReq('b', '3'), h);
    restored.put(putReq('b', '3'), new MemoryHistory());
    expect(restored.range(rangeReq('b'))).toEqual(store.range(rangeReq('b')));
  });

  it('current revision is the compaction point when compaction removed the newest record', () => {
    const { store, h } = setup();
    store.put(putReq('a', '1'), h);
    store.deleteRange(delReq('a'), h);
    h.deleteRevisions(store.compact(3).obsolete);
    expect(h.size).toBe(0);
    const restored = new MvccStore({ history: h });
    restored.finishRestore({ compactedRevision: 3 });
    expect(restored.currentRevision).toBe(3);
  });
});
