// etcd's KV service (Range, Put, DeleteRange, Txn, Compact) over the member's KvServer.
//
// Each handler converts and validates the wire request (bad input never reaches the log),
// enforces --max-request-bytes on requests that go through the log as etcd does, calls the
// server, and answers with a full ResponseHeader.

import type * as grpc from '@grpc/grpc-js';
import type { KvServer } from '../server/member/kv-server.js';
import type * as wire from './etcd-types.js';
import { requestSize, type Handlers, type ResponseHeaders, unary } from './handler.js';
import {
  RequestError,
  checkDuplicateKeys,
  checkIgnorePutsAgainstDeletes,
  toDeleteRangeRequest,
  toPutRequest,
  toRangeRequest,
  toTxnRequest,
  toWireDeleteRange,
  toWirePut,
  toWireRange,
  toWireTxn,
  txnChanged,
  wireRevision,
} from './kv-convert.js';
import { isReadOnlyTxn } from '../server/member/kv-server.js';
import { checkRange, checkTxnAccess } from './auth-check.js';
import { encodeRangeResponse } from './range-encoding.js';

/** A single-key check's range end (read only, so one instance serves every call). */
const NO_RANGE_END = Buffer.alloc(0);

export interface KvLimits {
  maxTxnOps: number;
  maxRequestBytes: number;
}

export function kvHandlers(kv: KvServer, headers: ResponseHeaders, limits: KvLimits): Handlers {
  /** etcd refuses a proposal whose encoded request exceeds --max-request-bytes. */
  const checkSize = (request: object): void => {
    if (requestSize(request) > limits.maxRequestBytes) throw new RequestError('RequestTooLarge');
  };

  return {
    Range: unary<wire.RangeRequest>('Range', (request, call) => {
      const range = toRangeRequest(request);
      const respond = () => {
        checkRange(kv.auth, call, range.key, range.rangeEnd, 'read');
        const { result, revision } = kv.range(range);
        const header = headers.at(revision);
        // Encoded here, in one buffer (range-encoding.ts); protobufjs only for an odd header.
        return encodeRangeResponse(header, result) ?? { header, ...toWireRange(result) };
      };
      // A linearizable read on a cluster member first confirms it is up to date (ReadIndex);
      // a lone voter that has applied all it committed is (readsLocally).
      const barrier = request.serializable || kv.readsLocally() ? undefined : kv.readBarrier();
      return barrier === undefined ? respond() : barrier.then(respond);
    }),

    // Not async: a throw here is answered by unary() as a rejection would be, and the put's
    // promise is handed on without another async frame per call.
    Put: unary<wire.PutRequest>('Put', (request, call) => {
      const put = toPutRequest(request);
      checkSize(request);
      const stamp = checkRange(kv.auth, call, put.key, NO_RANGE_END, 'write');
      return kv.put(put, stamp).then(({ result, revision }) => ({ header: headers.at(revision), ...toWirePut(result) }));
    }),

    DeleteRange: unary<wire.DeleteRangeRequest>('DeleteRange', async (request, call) => {
      const deleteRange = toDeleteRangeRequest(request);
      checkSize(request);
      const stamp = checkRange(kv.auth, call, deleteRange.key, deleteRange.rangeEnd, 'write');
      const { result, revision } = await kv.deleteRange(deleteRange, stamp);
      return { header: headers.at(revision), ...toWireDeleteRange(result) };
    }),

    Txn: unary<wire.TxnRequest>('Txn', async (request, call) => {
      const txn = toTxnRequest(request, limits.maxTxnOps);
      checkDuplicateKeys(txn.success);
      checkDuplicateKeys(txn.failure);
      checkIgnorePutsAgainstDeletes(txn.success);
      checkIgnorePutsAgainstDeletes(txn.failure);
      if (isReadOnlyTxn(txn)) {
        // etcd serves a read-only txn locally, after a ReadIndex unless all its ranges are serializable.
        if (!txnSerializable(request) && !kv.readsLocally()) await kv.readBarrier();
      } else {
        checkSize(request);
      }
      // Checked here for every txn (a read-only one never reaches apply), and again at apply.
      const stamp = checkTxnAccess(kv.auth, call, txn);
      const { result, revision } = await kv.txn(txn, stamp);
      // A txn that changed something wrote at `revision`, so it started just below it.
      const start = txnChanged(result) ? revision - 1 : revision;
      return toWireTxn(result, headers.at(revision), start);
    }),

    Compact: unary<wire.CompactionRequest>('Compact', async (request) => {
      checkSize(request);
      // int64 extremes are clamped (a revision past 2^53 cannot exist): still future or compacted.
      const { revision } = await kv.compact(wireRevision(request.revision), request.physical ?? false);
      return { header: headers.at(revision) };
    }),
  } satisfies Record<string, grpc.handleUnaryCall<never, unknown>>;
}

/** etcd's isTxnSerializable: every range in both branches (recursively) is serializable. */
function txnSerializable(request: wire.TxnRequest): boolean {
  const ops = [...(request.success ?? []), ...(request.failure ?? [])];
  return ops.every((op) =>
    op.request === 'requestRange' ? op.requestRange.serializable : op.request === 'requestTxn' ? txnSerializable(op.requestTxn) : true,
  );
}
