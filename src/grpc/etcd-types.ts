// TypeScript shapes of the etcd wire messages as @grpc/proto-loader presents them
// with the options in proto.ts (keepCase false, longs String, enums Number,
// defaults, oneofs, bytes Buffer).
//
// The interfaces below are the DECODED shape (what a handler receives, what a
// client gets back): every scalar present with its default, int64/uint64 as
// decimal strings, bytes as Buffer, unset message fields null, unset oneof
// members absent, plus a virtual field naming the oneof member that is set.
// Use Encodable<T> for the shape you may pass to be encoded.

/** A 64-bit integer as a decimal string, exactly as decoded (no precision loss). */
export type Int64 = string;

/**
 * What the encoder accepts for a decoded shape T: every field optional (or
 * null), 64-bit fields as number or decimal string, bytes as Buffer/Uint8Array.
 * Never pass a JS string for a bytes field: protobufjs would read it as base64.
 */
export type Encodable<T> = T extends Buffer
  ? Buffer | Uint8Array
  : T extends string
    ? string | number
    : T extends number
      ? number
      : T extends boolean
        ? boolean
        : T extends readonly (infer E)[]
          ? readonly Encodable<E>[]
          : T extends object
            ? { [K in keyof T]?: Encodable<T[K]> | null }
            : T;

// ---------------------------------------------------------------- enums

/** etcdserverpb.RangeRequest.SortOrder */
export const SortOrder = { NONE: 0, ASCEND: 1, DESCEND: 2 } as const;
export type SortOrder = (typeof SortOrder)[keyof typeof SortOrder];

/** etcdserverpb.RangeRequest.SortTarget */
export const SortTarget = { KEY: 0, VERSION: 1, CREATE: 2, MOD: 3, VALUE: 4 } as const;
export type SortTarget = (typeof SortTarget)[keyof typeof SortTarget];

/** etcdserverpb.Compare.CompareResult */
export const CompareResult = { EQUAL: 0, GREATER: 1, LESS: 2, NOT_EQUAL: 3 } as const;
export type CompareResult = (typeof CompareResult)[keyof typeof CompareResult];

/** etcdserverpb.Compare.CompareTarget */
export const CompareTarget = { VERSION: 0, CREATE: 1, MOD: 2, VALUE: 3, LEASE: 4 } as const;
export type CompareTarget = (typeof CompareTarget)[keyof typeof CompareTarget];

/** mvccpb.Event.EventType */
export const EventType = { PUT: 0, DELETE: 1 } as const;
export type EventType = (typeof EventType)[keyof typeof EventType];

/** etcdserverpb.AlarmType */
export const AlarmType = { NONE: 0, NOSPACE: 1, CORRUPT: 2 } as const;
export type AlarmType = (typeof AlarmType)[keyof typeof AlarmType];

// ---------------------------------------------------------------- messages

/** etcdserverpb.ResponseHeader */
export interface ResponseHeader {
  clusterId: Int64; // uint64
  memberId: Int64; // uint64
  revision: Int64;
  raftTerm: Int64; // uint64
}

/** mvccpb.KeyValue */
export interface KeyValue {
  key: Buffer;
  createRevision: Int64;
  modRevision: Int64;
  version: Int64;
  value: Buffer;
  lease: Int64;
}

/** mvccpb.Event */
export interface Event {
  type: EventType;
  kv: KeyValue | null;
  prevKv: KeyValue | null;
}

/** etcdserverpb.RangeRequest */
export interface RangeRequest {
  key: Buffer;
  rangeEnd: Buffer;
  limit: Int64;
  revision: Int64;
  sortOrder: SortOrder;
  sortTarget: SortTarget;
  serializable: boolean;
  keysOnly: boolean;
  countOnly: boolean;
  minModRevision: Int64;
  maxModRevision: Int64;
  minCreateRevision: Int64;
  maxCreateRevision: Int64;
}

/** etcdserverpb.RangeResponse */
export interface RangeResponse {
  header: ResponseHeader | null;
  kvs: KeyValue[];
  more: boolean;
  count: Int64;
}

/** etcdserverpb.PutRequest */
export interface PutRequest {
  key: Buffer;
  value: Buffer;
  lease: Int64;
  prevKv: boolean;
  ignoreValue: boolean;
  ignoreLease: boolean;
}

/** etcdserverpb.PutResponse */
export interface PutResponse {
  header: ResponseHeader | null;
  prevKv: KeyValue | null;
}

/** etcdserverpb.DeleteRangeRequest */
export interface DeleteRangeRequest {
  key: Buffer;
  rangeEnd: Buffer;
  prevKv: boolean;
}

/** etcdserverpb.DeleteRangeResponse */
export interface DeleteRangeResponse {
  header: ResponseHeader | null;
  deleted: Int64;
  prevKvs: KeyValue[];
}

/** etcdserverpb.RequestOp: exactly one member is set, named by `request`. */
export type RequestOp =
  | { request: 'requestRange'; requestRange: RangeRequest }
  | { request: 'requestPut'; requestPut: PutRequest }
  | { request: 'requestDeleteRange'; requestDeleteRange: DeleteRangeRequest }
  | { request: 'requestTxn'; requestTxn: TxnRequest }
  | { request?: undefined }; // nothing set (invalid op; reject it)

/** etcdserverpb.ResponseOp: exactly one member is set, named by `response`. */
export type ResponseOp =
  | { response: 'responseRange'; responseRange: RangeResponse }
  | { response: 'responsePut'; responsePut: PutResponse }
  | { response: 'responseDeleteRange'; responseDeleteRange: DeleteRangeResponse }
  | { response: 'responseTxn'; responseTxn: TxnResponse };

/** The oneof `target_union` of Compare, named by `targetUnion`. */
export type CompareTargetUnion =
  | { targetUnion: 'version'; version: Int64 }
  | { targetUnion: 'createRevision'; createRevision: Int64 }
  | { targetUnion: 'modRevision'; modRevision: Int64 }
  | { targetUnion: 'value'; value: Buffer }
  | { targetUnion: 'lease'; lease: Int64 }
  | { targetUnion?: undefined };

/** etcdserverpb.Compare */
export type Compare = {
  result: CompareResult;
  target: CompareTarget;
  key: Buffer;
  rangeEnd: Buffer;
} & CompareTargetUnion;

/** etcdserverpb.TxnRequest */
export interface TxnRequest {
  compare: Compare[];
  success: RequestOp[];
  failure: RequestOp[];
}

/** etcdserverpb.TxnResponse */
export interface TxnResponse {
  header: ResponseHeader | null;
  succeeded: boolean;
  responses: ResponseOp[];
}

/** etcdserverpb.CompactionRequest */
export interface CompactionRequest {
  revision: Int64;
  physical: boolean;
}

/** etcdserverpb.CompactionResponse */
export interface CompactionResponse {
  header: ResponseHeader | null;
}

/** etcdserverpb.StatusRequest (empty) */
export type StatusRequest = Record<string, never>;

/** etcdserverpb.DowngradeInfo (3.6) */
export interface DowngradeInfo {
  enabled: boolean;
  targetVersion: string;
}

/** etcdserverpb.StatusResponse */
export interface StatusResponse {
  header: ResponseHeader | null;
  version: string;
  dbSize: Int64;
  leader: Int64; // uint64 member ID
  raftIndex: Int64; // uint64, committed index
  raftTerm: Int64; // uint64
  raftAppliedIndex: Int64; // uint64
  errors: string[];
  dbSizeInUse: Int64;
  isLearner: boolean;
  storageVersion: string; // 3.6
  dbSizeQuota: Int64; // 3.6
  downgradeInfo: DowngradeInfo | null; // 3.6
}
