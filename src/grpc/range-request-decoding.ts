// RangeRequest decoded by hand into the object proto-loader builds (every field present,
// int64s as decimal strings, enums as numbers, bytes as Buffers viewing the message), for the
// Range handler. proto-loader decodes into a protobufjs message and then copies it into a
// plain object through toObject, with a string conversion per int64 field: a few
// microseconds of the busiest call's CPU (bench/RESULTS.md, "Ranges: 1 and 3 members").
//
// Invariant: for any input, the result is what proto-loader returns, or undefined and the
// caller decodes with proto-loader. Only well-formed messages whose known fields have their
// declared wire type are decoded here; anything else (a group, a truncated field, a varint
// longer than its type allows, a field number 0) is left to proto-loader, which keeps its
// own answer to malformed input (range-request-decoding.test.ts compares the two).

import type * as wire from './etcd-types.js';
import {
  EMPTY,
  LENGTH_DELIMITED,
  VARINT,
  failed,
  finishReading,
  moreToRead,
  readBytes,
  readInt64,
  readLow32,
  readUint32,
  skip,
  startReading,
} from './wire-reader.js';

export function decodeRangeRequest(bytes: Buffer): wire.RangeRequest | undefined {
  startReading(bytes);
  const request: wire.RangeRequest = {
    key: EMPTY,
    rangeEnd: EMPTY,
    limit: '0',
    revision: '0',
    sortOrder: 0,
    sortTarget: 0,
    serializable: false,
    keysOnly: false,
    countOnly: false,
    minModRevision: '0',
    maxModRevision: '0',
    minCreateRevision: '0',
    maxCreateRevision: '0',
  };
  while (moreToRead()) {
    const tag = readUint32();
    const field = tag >>> 3;
    const type = tag & 7;
    if (failed() || field === 0) return undefined;
    if (field <= 2) {
      if (type !== LENGTH_DELIMITED) return undefined;
      if (field === 1) request.key = readBytes();
      else request.rangeEnd = readBytes();
    } else if (field <= 13) {
      if (type !== VARINT) return undefined;
      readScalar(request, field);
    } else {
      skip(type);
    }
  }
  return finishReading() ? request : undefined;
}

function readScalar(request: wire.RangeRequest, field: number): void {
  switch (field) {
    case 3:
      request.limit = readInt64();
      return;
    case 4:
      request.revision = readInt64();
      return;
    case 5:
      request.sortOrder = (readLow32() | 0) as wire.SortOrder;
      return;
    case 6:
      request.sortTarget = (readLow32() | 0) as wire.SortTarget;
      return;
    case 7:
      request.serializable = readLow32() !== 0;
      return;
    case 8:
      request.keysOnly = readLow32() !== 0;
      return;
    case 9:
      request.countOnly = readLow32() !== 0;
      return;
    case 10:
      request.minModRevision = readInt64();
      return;
    case 11:
      request.maxModRevision = readInt64();
      return;
    case 12:
      request.minCreateRevision = readInt64();
      return;
    default:
      request.maxCreateRevision = readInt64();
  }
}
