// The requests that go through the log, and their binary encoding (a log entry's data).
//
// A proposer keeps the decoded request next to its encoding, so the member that proposed an
// entry applies it without decoding; other members and crash recovery decode the bytes.
// The encoding is MetaStore's own: a version byte, a kind byte, then the fields in a fixed
// order. Decoding is strict: trailing bytes or an unknown kind are a bug (assert), because
// every entry in the log was written by this code.

import type { Compare, DeleteRangeRequest, PutRequest, RangeRequest, RequestOp, TxnRequest } from '../../mvcc/types.js';
import type { LeaseCheckpoint } from '../../lease/lessor.js';
import type { AuthOp, AuthStamp } from '../../auth/auth-store.js';
import { assert } from '../../util/assert.js';
import { ByteReader, ByteWriter } from '../../util/binary.js';

export type InternalRequest = (
  | { readonly kind: 'put'; readonly put: PutRequest }
  | { readonly kind: 'deleteRange'; readonly deleteRange: DeleteRangeRequest }
  | { readonly kind: 'txn'; readonly txn: TxnRequest }
  | { readonly kind: 'compact'; readonly revision: number; readonly physical: boolean }
  // Lease entries carry every decision (ID, TTL after the minimum, remaining TTLs): the
  // proposer makes them, so applying needs no clock or randomness (see src/server/lease-*.ts).
  | { readonly kind: 'leaseGrant'; readonly id: bigint; readonly ttlSeconds: number }
  | { readonly kind: 'leaseRevoke'; readonly id: bigint }
  | { readonly kind: 'leaseCheckpoint'; readonly checkpoints: readonly LeaseCheckpoint[] }
  // A starting member announces its name and client URLs (etcd's "publish").
  | { readonly kind: 'publishMember'; readonly memberId: bigint; readonly name: string; readonly clientUrls: readonly string[] }
  // etcd's AlarmRequest: raise or disarm an alarm (NOSPACE, CORRUPT) for a member.
  | { readonly kind: 'alarm'; readonly action: number; readonly memberId: bigint; readonly alarm: number }
  // An auth change (src/auth): password hashes and keys were made by the proposer.
  | { readonly kind: 'auth'; readonly op: AuthOp }
) & {
  // Who asked, and at which auth revision (set while auth is enabled): apply checks the
  // permissions against it. Encoded as a prefix, so entries without it read as before.
  readonly stamp?: AuthStamp;
};

const ENCODING_VERSION = 1;
const KIND = {
  range: 1,
  put: 2,
  deleteRange: 3,
  txn: 4,
  compact: 5,
  leaseGrant: 6,
  leaseRevoke: 7,
  leaseCheckpoint: 8,
  publishMember: 9,
  auth: 10,
  stamp: 11,
  alarm: 12,
} as const;

// Auth ops travel as JSON; Buffers (permission keys) as base64.
function encodeAuthOp(op: AuthOp): Buffer {
  return Buffer.from(
    JSON.stringify(op, (_key, value: unknown) =>
      typeof value === 'object' && value !== null && (value as { type?: unknown }).type === 'Buffer' && Array.isArray((value as { data?: unknown }).data)
        ? { $b64: Buffer.from((value as { data: number[] }).data).toString('base64') }
        : value,
    ),
  );
}

function decodeAuthOp(bytes: Buffer): AuthOp {
  return JSON.parse(bytes.toString(), (_key, value: unknown) =>
    typeof value === 'object' && value !== null && typeof (value as { $b64?: unknown }).$b64 === 'string'
      ? Buffer.from((value as { $b64: string }).$b64, 'base64')
      : value,
  ) as AuthOp;
}

/**
 * Bytes to reserve for an encoding: a put's exact size (its value is most of it, so a writer
 * that starts small would grow and copy it more than once); 64 for the others, which grow.
 */
function sizeHint(request: InternalRequest): number {
  const stamp = request.stamp === undefined ? 0 : 1 + 4 + Buffer.byteLength(request.stamp.username) + 8;
  if (request.kind !== 'put') return 64 + stamp;
  return 2 + 4 + request.put.key.length + 4 + request.put.value.length + 8 + 3 + stamp;
}

/** The request's log encoding; `headroom` bytes left in front for a caller's header. */
export function encodeInternalRequest(request: InternalRequest, headroom = 0): Buffer {
  const out = new ByteWriter(headroom + sizeHint(request));
  out.skip(headroom);
  out.u8(ENCODING_VERSION);
  if (request.stamp !== undefined) out.u8(KIND.stamp).bytes(Buffer.from(request.stamp.username)).int(request.stamp.revision);
  switch (request.kind) {
    case 'put':
      out.u8(KIND.put);
      writePut(out, request.put);
      break;
    case 'deleteRange':
      out.u8(KIND.deleteRange);
      writeDeleteRange(out, request.deleteRange);
      break;
    case 'txn':
      out.u8(KIND.txn);
      writeTxn(out, request.txn);
      break;
    case 'compact':
      out.u8(KIND.compact).int(request.revision).bool(request.physical);
      break;
    case 'leaseGrant':
      out.u8(KIND.leaseGrant).signedId(request.id).int(request.ttlSeconds);
      break;
    case 'leaseRevoke':
      out.u8(KIND.leaseRevoke).signedId(request.id);
      break;
    case 'leaseCheckpoint':
      out.u8(KIND.leaseCheckpoint).u32(request.checkpoints.length);
      for (const checkpoint of request.checkpoints) out.signedId(checkpoint.id).int(checkpoint.remainingMs);
      break;
    case 'alarm':
      out.u8(KIND.alarm).u8(request.action).id(request.memberId).u8(request.alarm);
      break;
    case 'publishMember':
      out.u8(KIND.publishMember).id(request.memberId).bytes(Buffer.from(request.name)).u32(request.clientUrls.length);
      for (const url of request.clientUrls) out.bytes(Buffer.from(url));
      break;
    case 'auth':
      out.u8(KIND.auth).bytes(encodeAuthOp(request.op));
      break;
  }
  return out.finish();
}

export function decodeInternalRequest(data: Buffer): InternalRequest {
  const input = new ByteReader(data);
  const version = input.u8();
  assert(version === ENCODING_VERSION, `unknown log entry encoding ${version}`);
  let request: InternalRequest;
  let kind = input.u8();
  let stamp: AuthStamp | undefined;
  if (kind === KIND.stamp) {
    stamp = { username: input.bytes().toString(), revision: input.int() };
    kind = input.u8();
  }
  switch (kind) {
    case KIND.put:
      request = { kind: 'put', put: readPut(input) };
      break;
    case KIND.deleteRange:
      request = { kind: 'deleteRange', deleteRange: readDeleteRange(input) };
      break;
    case KIND.txn:
      request = { kind: 'txn', txn: readTxn(input) };
      break;
    case KIND.compact:
      request = { kind: 'compact', revision: input.int(), physical: input.bool() };
      break;
    case KIND.leaseGrant:
      request = { kind: 'leaseGrant', id: input.signedId(), ttlSeconds: input.int() };
      break;
    case KIND.leaseRevoke:
      request = { kind: 'leaseRevoke', id: input.signedId() };
      break;
    case KIND.leaseCheckpoint: {
      const count = input.u32();
      const checkpoints: LeaseCheckpoint[] = [];
      for (let i = 0; i < count; i++) checkpoints.push({ id: input.signedId(), remainingMs: input.int() });
      request = { kind: 'leaseCheckpoint', checkpoints };
      break;
    }
    case KIND.alarm:
      request = { kind: 'alarm', action: input.u8(), memberId: input.id(), alarm: input.u8() };
      break;
    case KIND.publishMember: {
      const memberId = input.id();
      const name = input.bytes().toString();
      const count = input.u32();
      const clientUrls: string[] = [];
      for (let i = 0; i < count; i++) clientUrls.push(input.bytes().toString());
      request = { kind: 'publishMember', memberId, name, clientUrls };
      break;
    }
    case KIND.auth:
      request = { kind: 'auth', op: decodeAuthOp(input.bytes()) };
      break;
    default:
      assert(false, `unknown log entry kind ${kind}`);
  }
  assert(input.done, 'trailing bytes in log entry');
  return stamp === undefined ? request : { ...request, stamp };
}

function writePut(out: ByteWriter, put: PutRequest): void {
  out.bytes(put.key).bytes(put.value).signedId(put.lease).bool(put.prevKv).bool(put.ignoreValue).bool(put.ignoreLease);
}

function readPut(input: ByteReader): PutRequest {
  return {
    key: input.bytes(),
    value: input.bytes(),
    lease: input.signedId(),
    prevKv: input.bool(),
    ignoreValue: input.bool(),
    ignoreLease: input.bool(),
  };
}

function writeDeleteRange(out: ByteWriter, request: DeleteRangeRequest): void {
  out.bytes(request.key).bytes(request.rangeEnd).bool(request.prevKv);
}

function readDeleteRange(input: ByteReader): DeleteRangeRequest {
  return { key: input.bytes(), rangeEnd: input.bytes(), prevKv: input.bool() };
}

function writeRange(out: ByteWriter, request: RangeRequest): void {
  out
    .bytes(request.key)
    .bytes(request.rangeEnd)
    .int(request.limit)
    .int(request.revision)
    .u8(request.sortOrder)
    .u8(request.sortTarget)
    .bool(request.keysOnly)
    .bool(request.countOnly)
    .int(request.minModRevision)
    .int(request.maxModRevision)
    .int(request.minCreateRevision)
    .int(request.maxCreateRevision);
}

function readRange(input: ByteReader): RangeRequest {
  return {
    key: input.bytes(),
    rangeEnd: input.bytes(),
    limit: input.int(),
    revision: input.int(),
    sortOrder: input.u8(),
    sortTarget: input.u8(),
    keysOnly: input.bool(),
    countOnly: input.bool(),
    minModRevision: input.int(),
    maxModRevision: input.int(),
    minCreateRevision: input.int(),
    maxCreateRevision: input.int(),
  };
}

function writeCompare(out: ByteWriter, compare: Compare): void {
  out
    .u8(compare.result)
    .u8(compare.target)
    .bytes(compare.key)
    .bytes(compare.rangeEnd)
    .int(compare.version)
    .int(compare.createRevision)
    .int(compare.modRevision)
    .bytes(compare.value)
    .signedId(compare.lease);
}

function readCompare(input: ByteReader): Compare {
  return {
    result: input.u8(),
    target: input.u8(),
    key: input.bytes(),
    rangeEnd: input.bytes(),
    version: input.int(),
    createRevision: input.int(),
    modRevision: input.int(),
    value: input.bytes(),
    lease: input.signedId(),
  };
}

function writeOps(out: ByteWriter, ops: readonly RequestOp[]): void {
  out.u32(ops.length);
  for (const op of ops) {
    switch (op.kind) {
      case 'range':
        out.u8(KIND.range);
        writeRange(out, op.range);
        break;
      case 'put':
        out.u8(KIND.put);
        writePut(out, op.put);
        break;
      case 'deleteRange':
        out.u8(KIND.deleteRange);
        writeDeleteRange(out, op.deleteRange);
        break;
      case 'txn':
        out.u8(KIND.txn);
        writeTxn(out, op.txn);
        break;
    }
  }
}

function readOps(input: ByteReader): RequestOp[] {
  const count = input.u32();
  const ops: RequestOp[] = [];
  for (let i = 0; i < count; i++) {
    const kind = input.u8();
    switch (kind) {
      case KIND.range:
        ops.push({ kind: 'range', range: readRange(input) });
        break;
      case KIND.put:
        ops.push({ kind: 'put', put: readPut(input) });
        break;
      case KIND.deleteRange:
        ops.push({ kind: 'deleteRange', deleteRange: readDeleteRange(input) });
        break;
      case KIND.txn:
        ops.push({ kind: 'txn', txn: readTxn(input) });
        break;
      default:
        assert(false, `unknown txn op kind ${kind}`);
    }
  }
  return ops;
}

function writeTxn(out: ByteWriter, txn: TxnRequest): void {
  out.u32(txn.compare.length);
  for (const compare of txn.compare) writeCompare(out, compare);
  writeOps(out, txn.success);
  writeOps(out, txn.failure);
}

function readTxn(input: ByteReader): TxnRequest {
  const compareCount = input.u32();
  const compare: Compare[] = [];
  for (let i = 0; i < compareCount; i++) compare.push(readCompare(input));
  return { compare, success: readOps(input), failure: readOps(input) };
}
