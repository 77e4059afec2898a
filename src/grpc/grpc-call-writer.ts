// Several gRPC messages in ONE HTTP/2 write on a grpc-js server call. grpc-js's public API frames
// one message per write(): each costs a serialisation, a 5-byte prefix allocation and copy, and
// an HTTP/2 write with its own completion callback; and grpc-js's call is a Node Writable that
// hands the next message to HTTP/2 only when the previous one's write completed. A watch stream
// with 100 watchers then takes 100 such writes per revision, which saturated the one thread at
// 1,000 watchers x 200 puts/s (bench/RESULTS.md). Messages framed together (message-frames.ts)
// and written here leave in one write, byte for byte as grpc-js would have sent them one by one.
//
// Reaching the stream: a grpc-js server call object (ServerDuplexStreamImpl and friends) keeps
// its BaseServerInterceptingCall in `.call`, which holds the Node Http2ServerStream (`stream`)
// and the steps grpc-js's own sendMessage takes around its write: send the response headers
// first (maybeSendMetadata), drop messages of a cancelled call (checkCancelled), refuse messages
// over grpc.max_send_message_length and fail the call on a write error (sendStatus). None of it
// is public API. grpc-js is pinned by package-lock (1.14.7); the class and its methods are
// checked when this module loads (the process fails at start) and each call's object when the
// writer is made (an assertion, reaching the fail-stop path), so a grpc-js upgrade that moves
// them, or a server interceptor wrapping the call, fails loudly instead of falling back to a
// second code path the tests do not cover.
//
// Rules for a call written through here: every message goes through this writer (grpc-js's own
// write() would race these writes, which bypass its Writable queue); the status still goes
// through grpc-js (call.end() or an emitted 'error'), which ends the HTTP/2 stream after the
// data written here. Channelz's per-call "messages sent" counter does not count these messages
// (MetaStore reads only channelz's connection list).

import type http2 from 'node:http2';
import { createRequire } from 'node:module';
import * as grpc from '@grpc/grpc-js';
import { assert } from '../util/assert.js';
import { type BatchWriter, firstOversized, MESSAGE_PREFIX_BYTES } from './message-frames.js';

/** The parts of grpc-js's BaseServerInterceptingCall this module uses. */
interface BaseCall {
  readonly stream: http2.ServerHttp2Stream;
  readonly maxSendMessageSize: number;
  maybeSendMetadata(): void;
  checkCancelled(): boolean;
  sendStatus(status: { code: grpc.status; details: string; metadata: grpc.Metadata | null }): void;
}

const BaseServerInterceptingCall = loadBaseCallClass();

function loadBaseCallClass(): abstract new (...args: never[]) => BaseCall {
  const require = createRequire(import.meta.url);
  const exported = (require('@grpc/grpc-js/build/src/server-interceptors.js') as { BaseServerInterceptingCall?: unknown }).BaseServerInterceptingCall;
  assert(typeof exported === 'function', 'grpc-js exports no BaseServerInterceptingCall: watch responses cannot be written in batches');
  const proto = exported.prototype as Record<string, unknown>;
  for (const method of ['maybeSendMetadata', 'checkCancelled', 'sendStatus']) {
    assert(typeof proto[method] === 'function', `grpc-js BaseServerInterceptingCall has no ${method}(): watch responses cannot be written in batches`);
  }
  return exported as abstract new (
    ...args: never[]
  ) => BaseCall;
}

/** A batch writer on a grpc-js server call (unary calls have no stream to write on). */
export function grpcCallWriter(call: grpc.ServerWritableStream<unknown, unknown> | grpc.ServerDuplexStream<unknown, unknown>): BatchWriter {
  const base = (call as unknown as { call?: unknown }).call;
  assert(
    base instanceof BaseServerInterceptingCall,
    'grpc-js server call holds no BaseServerInterceptingCall in .call (a server interceptor or a grpc-js upgrade): cannot write batches',
  );
  const stream = base.stream;
  assert(typeof stream?.write === 'function' && typeof stream.on === 'function', 'grpc-js call holds no HTTP/2 stream: cannot write batches');
  assert(typeof base.maxSendMessageSize === 'number', 'grpc-js call has no maxSendMessageSize: cannot write batches');
  return {
    write: (framed, sent) => write(base, framed, sent),
    onDrain: (listener) => void stream.on('drain', listener),
  };
}

function write(base: BaseCall, framed: Buffer, sent: () => void): boolean {
  // A cancelled call's messages are dropped, as grpc-js's sendMessage drops them; a call whose
  // status went out already (its stream ended) takes no more data.
  if (base.checkCancelled() || base.stream.writableEnded) return false;
  const oversized = firstOversized(framed, base.maxSendMessageSize);
  if (oversized !== undefined) {
    // grpc-js sends the messages before it, then fails the call with its own text.
    if (oversized.at > 0) write(base, framed.subarray(0, oversized.at), () => {});
    base.sendStatus({
      code: grpc.status.RESOURCE_EXHAUSTED,
      details: `Sent message larger than max (${oversized.length + MESSAGE_PREFIX_BYTES} vs. ${base.maxSendMessageSize})`,
      metadata: null,
    });
    return false;
  }
  base.maybeSendMetadata();
  return base.stream.write(framed, (error?: Error | null) => {
    if (error) {
      base.sendStatus({ code: grpc.status.INTERNAL, details: 'Internal server error', metadata: null });
      return;
    }
    sent();
  });
}
