// The batch writer of a stream call, whoever carries it: grpc-js (grpc-call-writer.ts), or a
// call object of the JSON gateway or of an edge process's relay (gateway-call.ts), which take
// framed messages through GatewayStreamCall.writeFramed.

import type * as grpc from '@grpc/grpc-js';
import { GatewayStreamCall } from './gateway/gateway-call.js';
import { grpcCallWriter } from './grpc-call-writer.js';
import type { BatchWriter } from './message-frames.js';

export type { BatchWriter } from './message-frames.js';

export function batchWriterOf(call: grpc.ServerWritableStream<unknown, unknown> | grpc.ServerDuplexStream<unknown, unknown> | GatewayStreamCall): BatchWriter {
  if (call instanceof GatewayStreamCall) {
    return {
      write: (framed, sent) => call.writeFramed(framed, sent),
      onDrain: (listener) => void call.on('drain', listener),
    };
  }
  return grpcCallWriter(call);
}
