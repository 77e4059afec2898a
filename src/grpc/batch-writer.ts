// The batch writer of a stream call. The client port's calls (h2/grpc-calls.ts), the JSON
// gateway's and an edge process's relayed calls are GatewayStreamCalls, which take framed
// messages whole (GatewayStreamCall.writeFramed: one HTTP/2 write per batch). Any other call
// object (grpc-js's own, when a plain grpc.Server serves these handlers: the differential
// tests' reference) gets each message of a batch through its public write(), in order.

import type * as grpc from '@grpc/grpc-js';
import { GatewayStreamCall } from './gateway/gateway-call.js';
import { type BatchWriter, unframeMessages } from './message-frames.js';

export type { BatchWriter } from './message-frames.js';

type StreamCall = grpc.ServerWritableStream<unknown, unknown> | grpc.ServerDuplexStream<unknown, unknown>;

export function batchWriterOf(call: StreamCall | GatewayStreamCall): BatchWriter {
  if (call instanceof GatewayStreamCall) {
    return {
      write: (framed, sent) => call.writeFramed(framed, sent),
      onDrain: (listener) => void call.on('drain', listener),
    };
  }
  return {
    // withRequestSizes' serializers pass encoded messages (Buffers) through as they are.
    write: (framed, sent) => {
      const messages = unframeMessages(framed);
      let writable = true;
      messages.forEach((message, i) => {
        writable = call.write(message, i === messages.length - 1 ? () => sent() : undefined);
      });
      return writable;
    },
    onDrain: (listener) => void call.on('drain', listener),
  };
}
