// Admission at the edge, before a large request's body is read: grpc-js buffers a whole
// message before a handler sees it, so a flood of large writes (500 clients sending 1 MiB each)
// would hold every partly received body at once, and each of them, sharing the bandwidth with
// all the others, would arrive too late to be answered before its deadline. So the client port
// receives at most `maxReceivingBytes / maxRequestBytes` LARGE requests at a time: a request
// counts as large once more than LARGE_REQUEST_BYTES of it have arrived and its body is not
// complete, and is then charged as if it had the largest allowed size. While that many are being
// received, a new request is answered at once, from its headers, with etcd's "etcdserver: too
// many requests" (RESOURCE_EXHAUSTED), and the stream is reset so the client stops sending its
// body. Small requests arrive in one piece and never take a place, however many are in flight
// (etcd serves thousands of concurrent small requests; a count of all requests refused the
// pipelined reads of an ordinary client); what is admitted goes on to RaftNode's write-path
// limits.
//
// Streams whose request side stays open (Watch, LeaseKeepAlive) are not counted: they would
// hold a place for their whole life.
//
// grpc-js attaches its 'stream' listener to each Node HTTP/2 server it creates; the gate takes
// that listener's place and passes on every stream it admits (asserted at start, as
// keepalive-enforcement.ts does for its use of the same servers).

import http2 from 'node:http2';
import * as grpc from '@grpc/grpc-js';
import { assert } from '../util/assert.js';

type NodeHttp2Server = http2.Http2Server | http2.Http2SecureServer;

/** Methods whose client side stays open for the life of the call. */
const LONG_LIVED_REQUEST_STREAMS = new Set(['/etcdserverpb.Watch/Watch', '/etcdserverpb.Lease/LeaseKeepAlive']);

export const TOO_MANY_REQUESTS = 'etcdserver: too many requests';

/** Bytes of a request's body after which, still incomplete, it takes a receiving place. */
export const LARGE_REQUEST_BYTES = 64 * 1024;

export interface ReceiveLimit {
  /** Bytes of requests being received at once (0 = no limit). */
  maxReceivingBytes: number;
  /** The largest request accepted (--max-request-bytes): what each receiving request is charged. */
  maxRequestBytes: number;
  /** Told about each request refused here. */
  onRefused?: (path: string) => void;
}

/** How many requests may be received at once under `limit` (at least one). */
export function receivingSlots(limit: ReceiveLimit): number {
  if (limit.maxReceivingBytes <= 0) return Number.POSITIVE_INFINITY;
  return Math.max(1, Math.floor(limit.maxReceivingBytes / limit.maxRequestBytes));
}

/** Puts the gate in front of grpc-js's stream handler on `http2Server`. */
export function limitReceivingRequests(http2Server: NodeHttp2Server, limit: ReceiveLimit): { receiving(): number } {
  const downstream = http2Server.listeners('stream') as Array<(...args: unknown[]) => void>;
  assert(downstream.length === 1, `expected grpc-js's one 'stream' listener on its HTTP/2 server, found ${downstream.length}`);
  const admit = receivingGate(limit);
  if (admit === undefined) return { receiving: () => 0 };
  http2Server.removeAllListeners('stream');
  http2Server.on('stream', (stream: CountedStream, headers: http2.IncomingHttpHeaders, ...rest: unknown[]) => {
    const admitted = admit(String(headers[':path'] ?? ''));
    if (admitted === null) {
      refuse(stream);
      return;
    }
    if (admitted !== undefined) {
      // The gate listens for the bytes unless a reader claims the count (claimReceiveCount).
      admitted.reported = false;
      stream[RECEIVED] = admitted;
    }
    for (const listener of downstream) listener.call(http2Server, stream, headers, ...rest);
    const state = stream[RECEIVED];
    // A stream whose reader reports its bytes itself (unary-stream.ts, claimReceiveCount) needs
    // no listeners of ours: three fewer per call, and single listeners Node emits to directly.
    if (state === undefined || state.reported) return;
    // grpc-js reads the stream with 'data' listeners too: one more only counts the bytes.
    // 'end' and 'close' each come once; after either, the count is released and data ignored.
    stream.on('data', onData);
    stream.on('end', release);
    stream.on('close', release);
  });
  return { receiving: () => admit.receiving() };
}

/**
 * The gate, for limitReceivingRequests and for streams not served by a Node HTTP/2 server
 * (src/grpc/h2/grpc-calls.ts): per new stream, its count (reported by its reader with countReceived and releaseReceived),
 * undefined when it is not counted, or null when it must be refused (TOO_MANY_REQUESTS).
 * Undefined as a whole when there is no limit.
 */
export function receivingGate(limit: ReceiveLimit): AdmissionGate | undefined {
  const slots = receivingSlots(limit);
  if (slots === Number.POSITIVE_INFINITY) return undefined;
  const gate: ReceivingGate = { receiving: 0 };
  const admit = (path: string): ReceivedBytes | undefined | null => {
    if (LONG_LIVED_REQUEST_STREAMS.has(path)) return undefined;
    if (gate.receiving >= slots) {
      limit.onRefused?.(path);
      return null;
    }
    return { gate, arrived: 0, counted: false, done: false, reported: true };
  };
  return Object.assign(admit, { receiving: () => gate.receiving });
}

/** receivingGate's per-stream decision, and how many requests hold a receiving place now. */
export type AdmissionGate = ((path: string) => ReceivedBytes | undefined | null) & { receiving(): number };

/**
 * For the one reader of `stream` that reports what it receives (countReceived, releaseReceived)
 * instead of the gate listening: the stream's count, or undefined when no gate counts it.
 */
export function claimReceiveCount(stream: http2.ServerHttp2Stream): ReceivedBytes | undefined {
  const state = (stream as CountedStream)[RECEIVED];
  if (state !== undefined) state.reported = true;
  return state;
}

/** `bytes` more of the request arrived. */
export function countReceived(state: ReceivedBytes, bytes: number): void {
  if (state.done) return;
  state.arrived += bytes;
  if (state.counted || state.arrived <= LARGE_REQUEST_BYTES) return;
  state.counted = true;
  state.gate.receiving++;
}

/** The request ended (or its stream closed): its place, if it took one, is free again. */
export function releaseReceived(state: ReceivedBytes): void {
  if (state.done) return;
  state.done = true;
  if (state.counted) state.gate.receiving--;
}

// One set of listeners for all streams, reading each stream's count from the stream itself
// (`this`): closures and once() wrappers per stream were allocations on every call.
function onData(this: CountedStream, chunk: Buffer): void {
  const state = this[RECEIVED];
  if (state !== undefined) countReceived(state, chunk.length);
}
function release(this: CountedStream): void {
  const state = this[RECEIVED];
  if (state !== undefined) releaseReceived(state);
}

/** How many requests of one server hold a receiving place now. */
interface ReceivingGate {
  receiving: number;
}

/** Bytes of a request received so far, and whether it holds a receiving place. */
export interface ReceivedBytes {
  readonly gate: ReceivingGate;
  arrived: number;
  counted: boolean;
  done: boolean;
  /** Its reader reports its bytes and end (claimReceiveCount): the gate does not listen. */
  reported: boolean;
}

const RECEIVED = Symbol('receivedBytes');

type CountedStream = http2.ServerHttp2Stream & { [RECEIVED]?: ReceivedBytes };

/** A trailers-only gRPC answer, then RST_STREAM(NO_ERROR): "stop sending, the answer is complete". */
function refuse(stream: http2.ServerHttp2Stream): void {
  if (stream.destroyed || stream.closed) return;
  stream.respond(
    {
      ':status': 200,
      'content-type': 'application/grpc',
      'grpc-status': String(grpc.status.RESOURCE_EXHAUSTED),
      'grpc-message': TOO_MANY_REQUESTS,
    },
    { endStream: true },
  );
  stream.close(http2.constants.NGHTTP2_NO_ERROR);
}
