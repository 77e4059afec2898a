// Conversion between etcd's wire messages (as proto-loader decodes them) and the MVCC
// store's request and result types, with etcd's request validation (etcd v3rpc/key.go).
//
// Validation happens here, before anything is proposed, so bad input changes nothing and gets
// exactly etcd's error. Revisions and limits arrive as decimal strings (int64) and become
// numbers; lease IDs become bigint. Results go back out with numbers for revisions (the
// encoder takes them) and decimal strings for lease IDs (no precision loss).

import { unreachable } from '../util/assert.js';
import type * as mvcc from '../mvcc/types.js';
import { CompareResult, CompareTarget } from '../mvcc/types.js';
import type * as wire from './etcd-types.js';
import type { EtcdErrorCode } from './errors.js';

export class RequestError extends Error {
  override name = 'RequestError';
  constructor(readonly etcdCode: EtcdErrorCode) {
    super(etcdCode);
  }
}

const EMPTY = Buffer.alloc(0);

/** An int64 revision (or limit) from the wire as a number, clamped to the safe range. */
export function wireRevision(value: string | number | null | undefined): number {
  return int(value);
}

function int(value: string | number | null | undefined): number {
  if (value === null || value === undefined) return 0;
  const n = typeof value === 'number' ? value : Number(value);
  // Revisions beyond 2^53 cannot exist in this store; clamp so comparisons stay meaningful.
  return Number.isSafeInteger(n) ? n : n > 0 ? Number.MAX_SAFE_INTEGER : Number.MIN_SAFE_INTEGER;
}

function lease(value: string | number | null | undefined): bigint {
  if (value === null || value === undefined || value === '0' || value === 0) return 0n;
  return BigInt(value);
}

function bytes(value: Buffer | null | undefined): Buffer {
  return value ?? EMPTY;
}

export function toRangeRequest(request: wire.RangeRequest): mvcc.RangeRequest {
  if (bytes(request.key).length === 0) throw new RequestError('EmptyKey');
  const sortOrder = request.sortOrder ?? 0;
  const sortTarget = request.sortTarget ?? 0;
  if (sortOrder < 0 || sortOrder > 2 || sortTarget < 0 || sortTarget > 4) throw new RequestError('InvalidSortOption');
  return {
    key: request.key,
    rangeEnd: bytes(request.rangeEnd),
    // etcd treats a negative limit like 0: no limit.
    limit: Math.max(0, int(request.limit)),
    revision: int(request.revision),
    sortOrder,
    sortTarget,
    keysOnly: request.keysOnly ?? false,
    countOnly: request.countOnly ?? false,
    minModRevision: int(request.minModRevision),
    maxModRevision: int(request.maxModRevision),
    minCreateRevision: int(request.minCreateRevision),
    maxCreateRevision: int(request.maxCreateRevision),
  };
}

export function toPutRequest(request: wire.PutRequest): mvcc.PutRequest {
  const key = bytes(request.key);
  if (key.length === 0) throw new RequestError('EmptyKey');
  const value = bytes(request.value);
  const leaseId = lease(request.lease);
  if (request.ignoreValue && value.length !== 0) throw new RequestError('ValueProvided');
  if (request.ignoreLease && leaseId !== 0n) throw new RequestError('LeaseProvided');
  return {
    key,
    value,
    lease: leaseId,
    prevKv: request.prevKv ?? false,
    ignoreValue: request.ignoreValue ?? false,
    ignoreLease: request.ignoreLease ?? false,
  };
}

export function toDeleteRangeRequest(request: wire.DeleteRangeRequest): mvcc.DeleteRangeRequest {
  if (bytes(request.key).length === 0) throw new RequestError('EmptyKey');
  return { key: request.key, rangeEnd: bytes(request.rangeEnd), prevKv: request.prevKv ?? false };
}

/** The compare results etcd knows: EQUAL, GREATER, LESS, NOT_EQUAL. */
const KNOWN_RESULTS = 4;
/** The compare targets etcd knows: VERSION, CREATE, MOD, VALUE, LEASE. */
const KNOWN_TARGETS = 5;

/**
 * etcd compares nothing for a target it does not know (its comparison result stays 0), so
 * such a compare is a constant: true for EQUAL or an unknown result, false otherwise. The
 * MVCC store only takes known targets (and asserts), so it gets an equivalent compare on the
 * version, which is never negative: "version > -1" always holds, "version < 0" never does.
 */
function constantCompare(compare: wire.Compare, holds: boolean): mvcc.Compare {
  return {
    result: holds ? CompareResult.GREATER : CompareResult.LESS,
    target: CompareTarget.VERSION,
    key: compare.key,
    rangeEnd: bytes(compare.rangeEnd),
    version: holds ? -1 : 0,
    createRevision: 0,
    modRevision: 0,
    value: EMPTY,
    lease: 0n,
  };
}

function toCompare(compare: wire.Compare): mvcc.Compare {
  if (bytes(compare.key).length === 0) throw new RequestError('EmptyKey');
  const target = compare.target ?? 0;
  if (!(target >= 0 && target < KNOWN_TARGETS)) {
    const result = compare.result ?? 0;
    return constantCompare(compare, result === 0 || !(result >= 0 && result < KNOWN_RESULTS));
  }
  return {
    result: compare.result ?? 0,
    target: compare.target ?? 0,
    key: compare.key,
    rangeEnd: bytes(compare.rangeEnd),
    // Only the oneof member that is set carries a value; the others read as zero, as in Go.
    version: compare.targetUnion === 'version' ? int(compare.version) : 0,
    createRevision: compare.targetUnion === 'createRevision' ? int(compare.createRevision) : 0,
    modRevision: compare.targetUnion === 'modRevision' ? int(compare.modRevision) : 0,
    value: compare.targetUnion === 'value' ? bytes(compare.value) : EMPTY,
    lease: compare.targetUnion === 'lease' ? lease(compare.lease) : 0n,
  };
}

function toRequestOp(op: wire.RequestOp, maxTxnOps: number): mvcc.RequestOp {
  switch (op.request) {
    case 'requestRange':
      return { kind: 'range', range: toRangeRequest(op.requestRange) };
    case 'requestPut':
      return { kind: 'put', put: toPutRequest(op.requestPut) };
    case 'requestDeleteRange':
      return { kind: 'deleteRange', deleteRange: toDeleteRangeRequest(op.requestDeleteRange) };
    case 'requestTxn':
      return { kind: 'txn', txn: toTxnRequest(op.requestTxn, maxTxnOps) };
  }
  // etcd answers an empty op with "key not found" (checkRequestOp's default case).
  throw new RequestError('KeyNotFound');
}

/**
 * etcd's checkTxnRequest: the largest of compares/success/failure counts against the op
 * budget; nested txns get what is left of it.
 */
export function toTxnRequest(request: wire.TxnRequest, maxTxnOps: number): mvcc.TxnRequest {
  const compares = request.compare ?? [];
  const success = request.success ?? [];
  const failure = request.failure ?? [];
  const opCount = Math.max(compares.length, success.length, failure.length);
  if (opCount > maxTxnOps) throw new RequestError('TooManyOps');
  const compare = compares.map(toCompare);
  const budget = maxTxnOps - opCount;
  return {
    compare,
    success: success.map((op) => toRequestOp(op, budget)),
    failure: failure.map((op) => toRequestOp(op, budget)),
  };
}

// ---------------------------------------------------------------- duplicate keys

interface Interval {
  begin: Buffer;
  /** Empty = a single point at begin. */
  end: Buffer;
}

function intersects(intervals: readonly Interval[], key: Buffer): boolean {
  for (const iv of intervals) {
    if (iv.end.length === 0) {
      if (iv.begin.equals(key)) return true;
    } else if (Buffer.compare(iv.begin, key) <= 0 && Buffer.compare(key, iv.end) < 0) {
      return true;
    }
  }
  return false;
}

/**
 * etcd's checkIntervals: within a txn (across its nested txns) a key may be put only once and
 * never inside a range the same txn deletes; the then/else branches of one nested txn may
 * overlap each other because only one of them runs.
 */
export function checkDuplicateKeys(ops: readonly mvcc.RequestOp[]): { puts: Set<string>; dels: Interval[] } {
  const dels: Interval[] = [];
  for (const op of ops) {
    if (op.kind === 'deleteRange') dels.push({ begin: op.deleteRange.key, end: op.deleteRange.rangeEnd });
  }
  const puts = new Set<string>();
  const childDels: Interval[] = [];
  for (const op of ops) {
    if (op.kind !== 'txn') continue;
    const then = checkDuplicateKeys(op.txn.success);
    const otherwise = checkDuplicateKeys(op.txn.failure);
    for (const key of then.puts) {
      if (puts.has(key) || intersects(dels, Buffer.from(key, 'latin1'))) throw new RequestError('DuplicateKey');
      puts.add(key);
    }
    for (const key of otherwise.puts) {
      if (puts.has(key) && !then.puts.has(key)) throw new RequestError('DuplicateKey');
      if (intersects(dels, Buffer.from(key, 'latin1'))) throw new RequestError('DuplicateKey');
      puts.add(key);
    }
    childDels.push(...then.dels, ...otherwise.dels);
  }
  dels.push(...childDels);
  for (const op of ops) {
    if (op.kind !== 'put') continue;
    const key = op.put.key.toString('latin1');
    if (puts.has(key) || intersects(dels, op.put.key)) throw new RequestError('DuplicateKey');
    puts.add(key);
  }
  return { puts, dels };
}

/**
 * A put with ignore_value or ignore_lease needs its key to exist when it runs, and that is
 * checked against the state before the txn; etcd's interval check does not see a delete in
 * one nested txn and such a put in a sibling, so the key can be gone by then (etcd 3.4 panics
 * applying that txn). Refused here, before it reaches the log, as a duplicate key: the put
 * overlaps a range the same txn deletes. Either order and either branch of a nested txn is
 * refused, which is stricter than needed but never lets the bad case through.
 */
export function checkIgnorePutsAgainstDeletes(ops: readonly mvcc.RequestOp[]): void {
  const deletes: Interval[] = [];
  const ignoringPuts: Buffer[] = [];
  const visit = (list: readonly mvcc.RequestOp[]): void => {
    for (const op of list) {
      if (op.kind === 'deleteRange') deletes.push({ begin: op.deleteRange.key, end: op.deleteRange.rangeEnd });
      else if (op.kind === 'put' && (op.put.ignoreValue || op.put.ignoreLease)) ignoringPuts.push(op.put.key);
      else if (op.kind === 'txn') {
        visit(op.txn.success);
        visit(op.txn.failure);
      }
    }
  };
  visit(ops);
  if (ignoringPuts.some((key) => deletes.some((d) => deletedBy(d, key)))) throw new RequestError('DuplicateKey');
}

/** Whether a DeleteRange of [begin, end) removes `key` (end "\0": every key from begin on). */
function deletedBy(range: Interval, key: Buffer): boolean {
  if (range.end.length === 0) return range.begin.equals(key);
  if (Buffer.compare(key, range.begin) < 0) return false;
  return (range.end.length === 1 && range.end[0] === 0) || Buffer.compare(key, range.end) < 0;
}

// ---------------------------------------------------------------- results

export function toWireKeyValue(kv: mvcc.KeyValue): wire.Encodable<wire.KeyValue> {
  return {
    key: kv.key,
    createRevision: kv.createRevision,
    modRevision: kv.modRevision,
    version: kv.version,
    value: kv.value,
    lease: kv.lease === 0n ? 0 : kv.lease.toString(),
  };
}

export function toWireRange(result: mvcc.RangeResult) {
  return { kvs: result.kvs.map(toWireKeyValue), more: result.more, count: result.count };
}

export function toWirePut(result: mvcc.PutResult) {
  return { prevKv: result.prevKv ? toWireKeyValue(result.prevKv) : null };
}

export function toWireDeleteRange(result: mvcc.DeleteRangeResult) {
  return { deleted: result.deleted, prevKvs: result.prevKvs.map(toWireKeyValue) };
}

type Header = wire.Encodable<wire.ResponseHeader>;

/**
 * A txn response as etcd builds it (apply.go): only the top level carries the full header;
 * each inner op's header holds just the revision the op saw or wrote (the txn's start
 * revision, or one more once the txn has changed something), and a nested txn's own header
 * is empty.
 */
export function toWireTxn(result: mvcc.TxnResult, header: Header, startRevision: number): object {
  const state = { changed: false };
  return { header, succeeded: result.succeeded, responses: wireTxnResponses(result, startRevision, state) };
}

function wireTxnResponses(result: mvcc.TxnResult, start: number, state: { changed: boolean }): object[] {
  return result.responses.map((response) => {
    switch (response.kind) {
      case 'range':
        return { responseRange: { header: { revision: state.changed ? start + 1 : start }, ...toWireRange(response.range) } };
      case 'put':
        state.changed = true;
        return { responsePut: { header: { revision: start + 1 }, ...toWirePut(response.put) } };
      case 'deleteRange':
        if (response.deleteRange.deleted > 0) state.changed = true;
        return {
          responseDeleteRange: { header: { revision: state.changed ? start + 1 : start }, ...toWireDeleteRange(response.deleteRange) },
        };
      case 'txn':
        return {
          responseTxn: { header: {}, succeeded: response.txn.succeeded, responses: wireTxnResponses(response.txn, start, state) },
        };
      default:
        return unreachable(response, 'txn response kind');
    }
  });
}

/** Whether an executed txn wrote anything (and so took a new revision). */
export function txnChanged(result: mvcc.TxnResult): boolean {
  return result.responses.some(
    (response) =>
      response.kind === 'put' || (response.kind === 'deleteRange' && response.deleteRange.deleted > 0) || (response.kind === 'txn' && txnChanged(response.txn)),
  );
}
