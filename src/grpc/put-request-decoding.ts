// PutRequest decoded by hand into the object proto-loader builds (every field present, the
// lease as a decimal string, bytes as Buffers viewing the message), for the Put handler: the
// put is the busiest write, and proto-loader's decode plus toObject cost it an intermediate
// protobufjs message and a string conversion per call (bench/RESULTS.md, "The client path").
//
// Invariant, as for RangeRequest (range-request-decoding.ts): for any input the result is what
// proto-loader returns, or undefined and the caller decodes with proto-loader (malformed input,
// a known field of the wrong wire type, a group).

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

export function decodePutRequest(bytes: Buffer): wire.PutRequest | undefined {
  startReading(bytes);
  const request: wire.PutRequest = { key: EMPTY, value: EMPTY, lease: '0', prevKv: false, ignoreValue: false, ignoreLease: false };
  while (moreToRead()) {
    const tag = readUint32();
    const field = tag >>> 3;
    const type = tag & 7;
    if (failed() || field === 0) return undefined;
    if (field <= 2) {
      if (type !== LENGTH_DELIMITED) return undefined;
      if (field === 1) request.key = readBytes();
      else request.value = readBytes();
    } else if (field <= 6) {
      if (type !== VARINT) return undefined;
      if (field === 3) request.lease = readInt64();
      else if (field === 4) request.prevKv = readLow32() !== 0;
      else if (field === 5) request.ignoreValue = readLow32() !== 0;
      else request.ignoreLease = readLow32() !== 0;
    } else {
      skip(type);
    }
  }
  return finishReading() ? request : undefined;
}
