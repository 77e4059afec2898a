// Plain data shapes of the MVCC store: revisions, key-values, events, and the KV requests and
// results it executes. Requests arrive already validated by the gRPC edge (empty keys, sizes,
// txn op limits and duplicate keys are rejected there), so the store only checks what depends
// on its own state (revisions, leases, missing keys).
//
// Invariants:
// - Revision numbers are safe integers (asserted where they are created or decoded).
// - KeyValue objects are immutable once created: the store hands the same object to several
//   readers (a write's result, its event, prevKv), so nobody may mutate one.
//   Their Buffers are views into the encoded records and must not be written either.

/** An MVCC clock reading: `main` counts etcd requests that wrote something; `sub` orders the
 * writes inside one such request (a txn writes several keys at one main revision). */
export interface Revision {
  readonly main: number;
  readonly sub: number;
}

export interface KeyValue {
  readonly key: Buffer;
  readonly createRevision: number;
  readonly modRevision: number;
  /** Number of writes to the key since its creation (1 after the creating put). */
  readonly version: number;
  readonly value: Buffer;
  /** 0n means no lease. */
  readonly lease: bigint;
}

/** A watch event, in revision order. For a delete, `kv` is etcd's tombstone shape: the key and
 * modRevision = the delete revision, every other field zero or empty. `prevKv` is the key's
 * value just before this write, when it had one and the WriteSink wanted it (the store reads it
 * back only then); whether it had one follows from the event itself (see hadPrevious). */
export interface Event {
  readonly type: 'put' | 'delete';
  readonly kv: KeyValue;
  readonly prevKv?: KeyValue;
}

/** Whether the key had a value just before this event's write: every delete removes a live
 * key, and a put either overwrote one or created the key (createRevision = its revision). */
export function hadPrevious(event: Event): boolean {
  return event.type === 'delete' || event.kv.createRevision !== event.kv.modRevision;
}

export const SortOrder = { NONE: 0, ASCEND: 1, DESCEND: 2 } as const;
export const SortTarget = { KEY: 0, VERSION: 1, CREATE: 2, MOD: 3, VALUE: 4 } as const;
export const CompareResult = { EQUAL: 0, GREATER: 1, LESS: 2, NOT_EQUAL: 3 } as const;
export const CompareTarget = { VERSION: 0, CREATE: 1, MOD: 2, VALUE: 3, LEASE: 4 } as const;

/** Key range convention used by every request below: `rangeEnd` empty = the single key `key`;
 * `rangeEnd` = [0x00] = every key >= `key`; otherwise the half-open interval [key, rangeEnd). */
export interface RangeRequest {
  key: Buffer;
  rangeEnd: Buffer;
  /** 0 = unlimited. */
  limit: number;
  /** <= 0 = the current revision. */
  revision: number;
  sortOrder: number;
  sortTarget: number;
  keysOnly: boolean;
  countOnly: boolean;
  /** The four filters: 0 = unset. */
  minModRevision: number;
  maxModRevision: number;
  minCreateRevision: number;
  maxCreateRevision: number;
}

/** A RangeRequest with etcd's defaults (current revision, no limit, no sort, no filters). */
export function rangeRequest(key: Buffer, rangeEnd: Buffer = Buffer.alloc(0), options: Partial<RangeRequest> = {}): RangeRequest {
  return {
    key,
    rangeEnd,
    limit: 0,
    revision: 0,
    sortOrder: SortOrder.NONE,
    sortTarget: SortTarget.KEY,
    keysOnly: false,
    countOnly: false,
    minModRevision: 0,
    maxModRevision: 0,
    minCreateRevision: 0,
    maxCreateRevision: 0,
    ...options,
  };
}

export interface PutRequest {
  key: Buffer;
  value: Buffer;
  lease: bigint;
  prevKv: boolean;
  ignoreValue: boolean;
  ignoreLease: boolean;
}

export interface DeleteRangeRequest {
  key: Buffer;
  rangeEnd: Buffer;
  prevKv: boolean;
}

export interface Compare {
  result: number;
  target: number;
  key: Buffer;
  rangeEnd: Buffer;
  version: number;
  createRevision: number;
  modRevision: number;
  value: Buffer;
  lease: bigint;
}

/** One operation of a txn branch. Discriminated by `kind`; the payload sits under the field
 * named like the kind, mirroring etcd's oneof (request_range / request_put / ...). */
export type RequestOp =
  | { readonly kind: 'range'; readonly range: RangeRequest }
  | { readonly kind: 'put'; readonly put: PutRequest }
  | { readonly kind: 'deleteRange'; readonly deleteRange: DeleteRangeRequest }
  | { readonly kind: 'txn'; readonly txn: TxnRequest };

export interface TxnRequest {
  compare: Compare[];
  success: RequestOp[];
  failure: RequestOp[];
}

export interface RangeResult {
  kvs: KeyValue[];
  /** True when `limit` cut the result. */
  more: boolean;
  /** Keys in the range at the read revision, ignoring limit and the min/max filters. */
  count: number;
}

export interface PutResult {
  prevKv?: KeyValue;
}

export interface DeleteRangeResult {
  deleted: number;
  /** Empty unless the request asked for prevKv. */
  prevKvs: KeyValue[];
}

/** Same discriminant and payload-field convention as RequestOp. */
export type ResponseOp =
  | { readonly kind: 'range'; readonly range: RangeResult }
  | { readonly kind: 'put'; readonly put: PutResult }
  | { readonly kind: 'deleteRange'; readonly deleteRange: DeleteRangeResult }
  | { readonly kind: 'txn'; readonly txn: TxnResult };

export interface TxnResult {
  succeeded: boolean;
  responses: ResponseOp[];
}
