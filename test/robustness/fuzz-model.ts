// A reference model of the KV store for the fuzz test: every key's history, the current
// revision and the compaction point, with etcd 3.4's semantics written out plainly (v3rpc
// key.go validation, apply.go checks and txn execution, mvcc range rules). Requests come in
// as the server sees them (decoded from the exact bytes sent), so the model and the server
// read the same message.
//
// The fuzz test keeps writes to one lane (a key prefix) one at a time, so the model can say
// exactly what a write does before its revision is known: `evaluate` gives the outcome as a
// function of the revision the write took, learned from the response.

import type { EtcdErrorCode } from '../../src/grpc/errors.js';

export interface ModelKv {
  key: Buffer;
  value: Buffer;
  createRevision: number;
  modRevision: number;
  version: number;
  lease: bigint;
}

/** A decoded wire message (proto-loader shape: int64 as strings, bytes as Buffer). */
export type Wire = Record<string, any>;

type Change = { key: string; kv?: ModelKv };

export interface Outcome {
  /** etcd errors any of which is a correct answer; empty = the request must succeed. */
  errors: EtcdErrorCode[];
  /** The expected response body for a success (fields the test compares). */
  response?: Wire;
  /** Changes made, at the revision passed to evaluate. */
  changes: Change[];
}

const latin1 = (b: Buffer): string => b.toString('latin1');
const buf = (v: unknown): Buffer => (Buffer.isBuffer(v) ? v : Buffer.alloc(0));
export const int64 = (v: unknown): bigint => (v === undefined || v === null || v === '' ? 0n : BigInt(v as string));

class RequestInvalid extends Error {
  constructor(readonly code: EtcdErrorCode) {
    super(code);
  }
}

/** The kvs (sorted by `keyOf`) whose keys a [key, rangeEnd) pair covers; rangeEnd non-empty. */
function lowerBound<T>(sorted: T[], keyOf: (item: T) => string, from: string): number {
  let lo = 0;
  let hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (keyOf(sorted[mid]!) < from) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

function slice<T>(sorted: T[], keyOf: (item: T) => string, key: Buffer, rangeEnd: Buffer): T[] {
  const lo = lowerBound(sorted, keyOf, latin1(key));
  const toEnd = rangeEnd.length === 1 && rangeEnd[0] === 0;
  const to = latin1(rangeEnd);
  const out: T[] = [];
  for (let i = lo; i < sorted.length && (toEnd || keyOf(sorted[i]!) < to); i++) out.push(sorted[i]!);
  return out;
}

/** The keys a [key, rangeEnd) pair covers, as etcd reads range_end. */
export function inRange(key: Buffer, rangeEnd: Buffer, candidate: Buffer): boolean {
  if (rangeEnd.length === 0) return candidate.equals(key);
  if (rangeEnd.length === 1 && rangeEnd[0] === 0) return Buffer.compare(candidate, key) >= 0;
  return Buffer.compare(candidate, key) >= 0 && Buffer.compare(candidate, rangeEnd) < 0;
}

export class KvModel {
  revision: number;
  /** etcd's compactMainRev: -1 until the first compaction. */
  compacted = -1;
  /** Lease IDs that exist and stay (the fuzz test's stable pool). */
  readonly leases = new Set<bigint>();
  private readonly history = new Map<string, Array<{ rev: number; kv?: ModelKv }>>();
  private readonly current = new Map<string, ModelKv>();

  constructor(revision: number) {
    this.revision = revision;
  }

  get(key: string): ModelKv | undefined {
    return this.current.get(key);
  }

  /** Live keys in [key, rangeEnd) as of `revision` (current when undefined), sorted. */
  rangeAt(key: Buffer, rangeEnd: Buffer, revision?: number): ModelKv[] {
    if (revision === undefined) {
      if (rangeEnd.length === 0) {
        const kv = this.current.get(latin1(key));
        return kv === undefined ? [] : [kv];
      }
      return slice(this.sortedCurrent(), (kv) => latin1(kv.key), key, rangeEnd);
    }
    const out: ModelKv[] = [];
    const keys = rangeEnd.length === 0 ? (this.history.has(latin1(key)) ? [latin1(key)] : []) : slice(this.sortedHistoryKeys(), (k) => k, key, rangeEnd);
    for (const k of keys) {
      let found: { rev: number; kv?: ModelKv } | undefined;
      for (const v of this.history.get(k)!) if (v.rev <= revision) found = v;
      if (found?.kv !== undefined) out.push(found.kv);
    }
    return out;
  }

  /** Every live key, sorted. */
  liveAt(): ModelKv[] {
    return this.sortedCurrent();
  }

  /** The current kvs and every key ever written, kept sorted (latin1 strings compare like bytes). */
  private readonly currentSorted: ModelKv[] = [];
  private readonly historyKeys: string[] = [];

  private sortedCurrent(): ModelKv[] {
    return this.currentSorted;
  }

  private sortedHistoryKeys(): string[] {
    return this.historyKeys;
  }

  apply(changes: Change[], revision: number): void {
    for (const change of changes) {
      const versions = this.history.get(change.key);
      if (versions === undefined) {
        this.history.set(change.key, [{ rev: revision, kv: change.kv }]);
        this.historyKeys.splice(
          lowerBound(this.historyKeys, (k) => k, change.key),
          0,
          change.key,
        );
      } else versions.push({ rev: revision, kv: change.kv });
      const at = lowerBound(this.currentSorted, (kv) => latin1(kv.key), change.key);
      const present = at < this.currentSorted.length && latin1(this.currentSorted[at]!.key) === change.key;
      if (change.kv === undefined) {
        this.current.delete(change.key);
        if (present) this.currentSorted.splice(at, 1);
      } else {
        this.current.set(change.key, change.kv);
        this.currentSorted.splice(at, present ? 1 : 0, change.kv);
      }
    }
    if (changes.length > 0) this.revision = Math.max(this.revision, revision);
  }

  // ---------------------------------------------------------------- validation (v3rpc key.go)

  static checkRange(r: Wire): void {
    if (buf(r.key).length === 0) throw new RequestInvalid('EmptyKey');
    const order = r.sortOrder ?? 0;
    const target = r.sortTarget ?? 0;
    // etcd 3.6's check (3.4 has none); MetaStore answers with 3.6's text.
    if (order < 0 || order > 2 || target < 0 || target > 4) throw new RequestInvalid('InvalidSortOption');
  }

  static checkPut(r: Wire): void {
    if (buf(r.key).length === 0) throw new RequestInvalid('EmptyKey');
    if (r.ignoreValue && buf(r.value).length !== 0) throw new RequestInvalid('ValueProvided');
    if (r.ignoreLease && int64(r.lease) !== 0n) throw new RequestInvalid('LeaseProvided');
  }

  static checkTxn(r: Wire, maxTxnOps: number): void {
    const compares: Wire[] = r.compare ?? [];
    const success: Wire[] = r.success ?? [];
    const failure: Wire[] = r.failure ?? [];
    const count = Math.max(compares.length, success.length, failure.length);
    if (count > maxTxnOps) throw new RequestInvalid('TooManyOps');
    for (const c of compares) if (buf(c.key).length === 0) throw new RequestInvalid('EmptyKey');
    for (const op of [...success, ...failure]) {
      switch (op.request) {
        case 'requestRange':
          KvModel.checkRange(op.requestRange);
          break;
        case 'requestPut':
          KvModel.checkPut(op.requestPut);
          break;
        case 'requestDeleteRange':
          if (buf(op.requestDeleteRange.key).length === 0) throw new RequestInvalid('EmptyKey');
          break;
        case 'requestTxn':
          KvModel.checkTxn(op.requestTxn, maxTxnOps - count);
          break;
        default:
          throw new RequestInvalid('KeyNotFound');
      }
    }
  }

  /** etcd's checkIntervals: a key put twice, or put inside a range the txn deletes. */
  static checkIntervals(ops: Wire[]): { puts: Set<string>; dels: Array<[Buffer, Buffer]> } {
    const hit = (dels: Array<[Buffer, Buffer]>, k: string): boolean =>
      dels.some(([key, end]) =>
        end.length === 0 ? latin1(key) === k : Buffer.compare(key, Buffer.from(k, 'latin1')) <= 0 && Buffer.compare(Buffer.from(k, 'latin1'), end) < 0,
      );
    const dels: Array<[Buffer, Buffer]> = ops
      .filter((o) => o.request === 'requestDeleteRange')
      .map((o) => [buf(o.requestDeleteRange.key), buf(o.requestDeleteRange.rangeEnd)]);
    const puts = new Set<string>();
    const childDels: Array<[Buffer, Buffer]> = [];
    for (const op of ops) {
      if (op.request !== 'requestTxn') continue;
      const then = KvModel.checkIntervals(op.requestTxn.success ?? []);
      const otherwise = KvModel.checkIntervals(op.requestTxn.failure ?? []);
      for (const k of then.puts) {
        if (puts.has(k) || hit(dels, k)) throw new RequestInvalid('DuplicateKey');
        puts.add(k);
      }
      for (const k of otherwise.puts) {
        if ((puts.has(k) && !then.puts.has(k)) || hit(dels, k)) throw new RequestInvalid('DuplicateKey');
        puts.add(k);
      }
      childDels.push(...then.dels, ...otherwise.dels);
    }
    dels.push(...childDels);
    for (const op of ops) {
      if (op.request !== 'requestPut') continue;
      const k = latin1(buf(op.requestPut.key));
      if (puts.has(k) || hit(dels, k)) throw new RequestInvalid('DuplicateKey');
      puts.add(k);
    }
    return { puts, dels };
  }

  /** MetaStore's addition (etcd 3.4 panics instead): an ignore_value/ignore_lease put on a key
   * that any delete in the same branch tree covers is refused as a duplicate key. */
  static checkIgnorePuts(ops: Wire[]): void {
    const dels: Wire[] = [];
    const puts: Buffer[] = [];
    const visit = (list: Wire[]): void => {
      for (const op of list) {
        if (op.request === 'requestDeleteRange') dels.push(op.requestDeleteRange);
        else if (op.request === 'requestPut' && (op.requestPut.ignoreValue || op.requestPut.ignoreLease)) puts.push(buf(op.requestPut.key));
        else if (op.request === 'requestTxn') {
          visit(op.requestTxn.success ?? []);
          visit(op.requestTxn.failure ?? []);
        }
      }
    };
    visit(ops);
    if (puts.some((k) => dels.some((d) => inRange(buf(d.key), buf(d.rangeEnd), k)))) {
      throw new RequestInvalid('DuplicateKey');
    }
  }

  // ---------------------------------------------------------------- evaluation

  /** A top-level KV request as the member answers it, if it wrote at `revision`. */
  evaluate(method: string, r: Wire, revision: number, options: { maxTxnOps: number; roundRevision: number }): Outcome {
    const { maxTxnOps, roundRevision } = options;
    try {
      switch (method) {
        case 'Range':
          KvModel.checkRange(r);
          return { errors: [], response: this.range(r, new TxnView(this, revision, roundRevision)), changes: [] };
        case 'Put':
          KvModel.checkPut(r);
          return this.topLevelWrite((view) => this.put(r, view, true), revision, roundRevision);
        case 'DeleteRange':
          if (buf(r.key).length === 0) throw new RequestInvalid('EmptyKey');
          return this.topLevelWrite((view) => this.deleteRange(r, view), revision, roundRevision);
        case 'Txn':
          KvModel.checkTxn(r, maxTxnOps);
          KvModel.checkIntervals(r.success ?? []);
          KvModel.checkIntervals(r.failure ?? []);
          KvModel.checkIgnorePuts(r.success ?? []);
          KvModel.checkIgnorePuts(r.failure ?? []);
          return this.topLevelWrite((view) => this.txn(r, view, true), revision, roundRevision);
      }
      throw new Error(`model has no ${method}`);
    } catch (error) {
      if (error instanceof RequestInvalid) return { errors: [error.code], changes: [] };
      throw error;
    }
  }

  private topLevelWrite(body: (view: TxnView) => Wire, revision: number, roundRevision: number): Outcome {
    const view = new TxnView(this, revision, roundRevision);
    const response = body(view);
    return { errors: [], response, changes: view.changes() };
  }

  /** Range semantics (mvcc range + etcd's sort, filter and limit in apply.go). */
  range(r: Wire, view: TxnView): Wire {
    const rev = Number(int64(r.revision));
    const atRevision = rev > 0 ? rev : undefined;
    if (atRevision !== undefined && atRevision > view.roundRevision) throw new RequestInvalid('FutureRev');
    if (atRevision !== undefined && atRevision < this.compacted) throw new RequestInvalid('Compacted');
    const key = buf(r.key);
    const end = buf(r.rangeEnd);
    const all = view.liveIn(key, end, atRevision);
    const count = all.length;
    let kvs = all.filter((kv) => {
      const minMod = int64(r.minModRevision),
        maxMod = int64(r.maxModRevision);
      const minCreate = int64(r.minCreateRevision),
        maxCreate = int64(r.maxCreateRevision);
      return (
        (minMod <= 0n || BigInt(kv.modRevision) >= minMod) &&
        (maxMod <= 0n || BigInt(kv.modRevision) <= maxMod) &&
        (minCreate <= 0n || BigInt(kv.createRevision) >= minCreate) &&
        (maxCreate <= 0n || BigInt(kv.createRevision) <= maxCreate)
      );
    });
    const limit = int64(r.limit);
    // etcd fetches the whole range only for an explicit sort order or a revision filter;
    // otherwise it reads limit+1 keys in key order and sorts just those (a sort target with
    // order NONE still sorts, ascending).
    const fetchAll = (r.sortOrder ?? 0) !== 0 || [r.minModRevision, r.maxModRevision, r.minCreateRevision, r.maxCreateRevision].some((v) => int64(v) !== 0n);
    if (!fetchAll && limit > 0n && BigInt(kvs.length) > limit + 1n) kvs = kvs.slice(0, Number(limit) + 1);
    if (r.countOnly) return { kvs: [], more: false, count, sortTarget: 0, sortOrder: 0, candidates: [], keysOnly: false };
    const target = r.sortTarget ?? 0;
    const order = (r.sortOrder ?? 0) === 0 && target !== 0 ? 1 : (r.sortOrder ?? 0);
    const candidates = sortKvs(kvs, order, target);
    const more = limit > 0n && BigInt(candidates.length) > limit;
    kvs = more ? candidates.slice(0, Number(limit)) : candidates;
    if (r.keysOnly) kvs = kvs.map((kv) => ({ ...kv, value: Buffer.alloc(0) }));
    return { kvs, more, count, sortTarget: target, sortOrder: order, candidates, keysOnly: Boolean(r.keysOnly) };
  }

  private put(r: Wire, view: TxnView, topLevel: boolean): Wire {
    const key = buf(r.key);
    const lease = int64(r.lease);
    if (topLevel && lease !== 0n && !this.leases.has(lease)) throw new RequestInvalid('LeaseNotFound');
    const prev = view.get(latin1(key));
    if ((r.ignoreValue || r.ignoreLease) && prev === undefined) throw new RequestInvalid('KeyNotFound');
    const next: ModelKv = {
      key,
      value: r.ignoreValue ? prev!.value : buf(r.value),
      lease: r.ignoreLease ? prev!.lease : lease,
      createRevision: prev?.createRevision ?? view.writeRevision,
      modRevision: view.writeRevision,
      version: (prev?.version ?? 0) + 1,
    };
    view.set(latin1(key), next);
    return { prevKv: r.prevKv ? prev : undefined };
  }

  private deleteRange(r: Wire, view: TxnView): Wire {
    const doomed = view.liveIn(buf(r.key), buf(r.rangeEnd));
    for (const kv of doomed) view.set(latin1(kv.key), undefined);
    return { deleted: doomed.length, prevKvs: r.prevKv ? doomed : [] };
  }

  private txn(r: Wire, view: TxnView, topLevel: boolean): Wire {
    // etcd decides every compare, nested ones included, on the state before the txn.
    const succeeded = this.compares(r);
    const ops: Wire[] = (succeeded ? r.success : r.failure) ?? [];
    if (topLevel) {
      const path = this.executedOps(r);
      // apply.go: puts are checked first (write txns only), then ranges, in path order.
      if (path.some((op) => op.request === 'requestPut' || op.request === 'requestDeleteRange')) {
        for (const op of path) if (op.request === 'requestPut') this.checkPutAtApply(op.requestPut, view);
      }
      for (const op of path) if (op.request === 'requestRange') this.checkRangeAtApply(op.requestRange, view);
    }
    const responses = ops.map((op) => {
      switch (op.request) {
        case 'requestRange':
          return { responseRange: this.range(op.requestRange, view) };
        case 'requestPut':
          return { responsePut: this.put(op.requestPut, view, false) };
        case 'requestDeleteRange':
          return { responseDeleteRange: this.deleteRange(op.requestDeleteRange, view) };
        default:
          return { responseTxn: this.txn(op.requestTxn, view, false) };
      }
    });
    return { succeeded, responses };
  }

  /** The ops the txn will run (compares evaluated against the state before it). */
  private compares(r: Wire): boolean {
    return (r.compare ?? []).every((c: Wire) => compare(c, this.rangeAt(buf(c.key), buf(c.rangeEnd))));
  }

  private executedOps(r: Wire): Wire[] {
    const out: Wire[] = [];
    for (const op of (this.compares(r) ? r.success : r.failure) ?? []) {
      if (op.request === 'requestTxn') out.push(...this.executedOps(op.requestTxn));
      else out.push(op);
    }
    return out;
  }

  private checkPutAtApply(r: Wire, view: TxnView): void {
    if ((r.ignoreValue || r.ignoreLease) && view.get(latin1(buf(r.key))) === undefined) throw new RequestInvalid('KeyNotFound');
    const lease = int64(r.lease);
    if (lease !== 0n && !this.leases.has(lease)) throw new RequestInvalid('LeaseNotFound');
  }

  private checkRangeAtApply(r: Wire, view: TxnView): void {
    const rev = int64(r.revision);
    if (rev === 0n) return;
    if (rev > BigInt(view.roundRevision)) throw new RequestInvalid('FutureRev');
    if (rev < BigInt(this.compacted)) throw new RequestInvalid('Compacted');
  }
}

/** The state a request sees: the model plus the changes the request has made so far. */
class TxnView {
  private readonly overlay = new Map<string, ModelKv | undefined>();

  constructor(
    private readonly model: KvModel,
    /** The revision this request writes at (if it writes). */
    readonly writeRevision: number,
    /** The store's revision when the request's round began: the fuzz test never reads at a
     * revision between it and the round's end, so "future" is decided against it. */
    readonly roundRevision: number,
  ) {}

  get(key: string): ModelKv | undefined {
    return this.overlay.has(key) ? this.overlay.get(key) : this.model.get(key);
  }

  set(key: string, kv: ModelKv | undefined): void {
    this.overlay.set(key, kv);
  }

  /** Live keys in [key, rangeEnd), with this request's own changes. */
  liveIn(key: Buffer, rangeEnd: Buffer, atRevision?: number): ModelKv[] {
    const base = this.model.rangeAt(key, rangeEnd, atRevision);
    if (atRevision !== undefined || this.overlay.size === 0) return base;
    const byKey = new Map(base.map((kv) => [latin1(kv.key), kv] as const));
    for (const [k, kv] of this.overlay) {
      if (!inRange(key, rangeEnd, Buffer.from(k, 'latin1'))) continue;
      if (kv === undefined) byKey.delete(k);
      else byKey.set(k, kv);
    }
    return [...byKey.values()].sort((a, b) => Buffer.compare(a.key, b.key));
  }

  changes(): Change[] {
    const out: Change[] = [];
    for (const [key, kv] of this.overlay) {
      // A delete of a key that did not exist before is no change.
      if (kv === undefined && this.model.get(key) === undefined) continue;
      out.push({ key, kv });
    }
    return out;
  }
}

function compareKv(c: Wire, kv: ModelKv | undefined): boolean {
  const target = c.target ?? 0;
  const union = c.targetUnion;
  let result = 0;
  const cmp = (a: bigint, b: bigint): number => (a < b ? -1 : a > b ? 1 : 0);
  switch (target) {
    case 3:
      result = Buffer.compare(kv?.value ?? Buffer.alloc(0), union === 'value' ? buf(c.value) : Buffer.alloc(0));
      break;
    case 1:
      result = cmp(BigInt(kv?.createRevision ?? 0), union === 'createRevision' ? int64(c.createRevision) : 0n);
      break;
    case 2:
      result = cmp(BigInt(kv?.modRevision ?? 0), union === 'modRevision' ? int64(c.modRevision) : 0n);
      break;
    case 0:
      result = cmp(BigInt(kv?.version ?? 0), union === 'version' ? int64(c.version) : 0n);
      break;
    case 4:
      result = cmp(kv?.lease ?? 0n, union === 'lease' ? int64(c.lease) : 0n);
      break;
  }
  switch (c.result ?? 0) {
    case 0:
      return result === 0;
    case 3:
      return result !== 0;
    case 1:
      return result > 0;
    case 2:
      return result < 0;
  }
  return true;
}

/** etcd applyCompare: every key in the range must match; an empty range compares a zero
 * key-value, except that a value comparison on nothing fails. */
function compare(c: Wire, kvs: ModelKv[]): boolean {
  if (kvs.length === 0) return (c.target ?? 0) === 3 ? false : compareKv(c, undefined);
  return kvs.every((kv) => compareKv(c, kv));
}

const SORT_FIELDS: Array<(kv: ModelKv) => bigint | Buffer> = [
  (kv) => kv.key,
  (kv) => BigInt(kv.version),
  (kv) => BigInt(kv.createRevision),
  (kv) => BigInt(kv.modRevision),
  (kv) => kv.value,
];

export function sortValue(kv: ModelKv, target: number): bigint | Buffer {
  return SORT_FIELDS[target]!(kv);
}

export function compareSortValues(a: bigint | Buffer, b: bigint | Buffer): number {
  if (Buffer.isBuffer(a) && Buffer.isBuffer(b)) return Buffer.compare(a, b);
  return (a as bigint) < (b as bigint) ? -1 : (a as bigint) > (b as bigint) ? 1 : 0;
}

function sortKvs(kvs: ModelKv[], order: number, target: number): ModelKv[] {
  if (order === 0) return kvs;
  const sign = order === 2 ? -1 : 1;
  return [...kvs].sort((a, b) => sign * compareSortValues(sortValue(a, target), sortValue(b, target)));
}
