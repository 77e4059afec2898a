// The contract between MetaStore's own HTTP/2 server connection (connection.ts: frames, HPACK,
// flow control, SETTINGS, PING, GOAWAY) and what serves its streams (the gRPC call layer).
// Node's HTTP/2 costs ~50 us of main-thread CPU per call (its JS, nghttp2, a Duplex per stream)
// and sends a call's trailers in a second socket write (bench/RESULTS.md, "The lone put on the
// wire"); this connection serves the client port's streams with neither.
//
// Invariants both sides keep:
// - Output is queued in JS and written once per turn: HEADERS, DATA and trailers queued in one
//   synchronous run (and across streams of one connection) leave in one socket write; earlier
//   only when writeQueuedOutput() (connection.ts) is called, as the watch fan-out does.
// - After end() or reset() a stream calls nothing more of its handlers; after aborted() the
//   stream's methods are no-ops.

import type net from 'node:net';

/** One header field: name in lower case (pseudo-headers start with ':'), value as sent. */
export type HeaderField = readonly [name: string, value: string];

/** What a stream tells the code that serves it. Every callback runs on the main thread. */
export interface H2StreamHandlers {
  /**
   * A DATA frame's payload (padding removed), in order. The connection has already given the
   * bytes back to the peer's send window. The buffer may be a view into the connection's read
   * buffer: copy what must outlive the call.
   */
  data(chunk: Buffer): void;
  /** The peer half-closed the stream (END_STREAM on HEADERS or DATA). */
  end(): void;
  /**
   * The stream ended before we ended it: the peer reset it (RST_STREAM, its error code) or the
   * connection closed or failed (code -1).
   */
  aborted(code: number): void;
  /** Everything write() had queued beyond the high-water mark has been handed to the socket. */
  drain(): void;
}

export interface H2ServerStream {
  readonly id: number;
  /** The request's header fields in wire order (pseudo-headers first), trailers not included. */
  readonly fields: readonly HeaderField[];
  /** The connection's socket (remote address; for a TLSSocket, the peer certificate). */
  readonly socket: net.Socket;
  /** Set by onStream before it returns; until then, stream events are not delivered. */
  handlers: H2StreamHandlers;
  /** Response HEADERS without END_STREAM; `fields` start with [':status', ...]. Once. */
  respond(fields: readonly HeaderField[]): void;
  /**
   * DATA (split into frames by the peer's SETTINGS_MAX_FRAME_SIZE, sent as the stream's and the
   * connection's send windows allow). Always queued; returns false when this stream's queued
   * but unsent bytes exceed the high-water mark (drain() follows when they are sent).
   */
  write(data: Buffer): boolean;
  /**
   * Trailers: HEADERS with END_STREAM, after every queued DATA. With no respond() before, this
   * is a Trailers-Only response (`fields` then carry :status too).
   */
  end(trailers: readonly HeaderField[]): void;
  /** RST_STREAM with this error code (0x8 CANCEL, 0x2 INTERNAL_ERROR...); queued DATA is dropped. */
  reset(code: number): void;
}

export interface H2ConnectionOptions {
  /** Called once per new stream (a request's HEADERS block, CONTINUATIONs joined). */
  onStream(stream: H2ServerStream): void;
  /** SETTINGS_MAX_CONCURRENT_STREAMS we announce and enforce (REFUSED_STREAM beyond). */
  readonly maxConcurrentStreams: number;
  /** SETTINGS_MAX_HEADER_LIST_SIZE we announce and enforce (a larger request block: stream reset). */
  readonly maxHeaderListBytes: number;
  /** Our receive window per stream (SETTINGS_INITIAL_WINDOW_SIZE) and for the connection. */
  readonly receiveWindowBytes: number;
  /**
   * A PING from the peer (not an ACK) arrived; `wroteSinceLastPing`: a HEADERS or DATA frame
   * went out since the peer's previous PING (grpc-go resets ping strikes per frame it writes,
   * so a client's BDP pings during a long response are never strikes). true: answer it;
   * false: close the connection with GOAWAY ENHANCE_YOUR_CALM, debug data "too_many_pings"
   * (keepalive enforcement).
   */
  ping(wroteSinceLastPing: boolean): boolean;
  /** The connection is gone (socket closed); every stream still open got aborted(-1) first. */
  closed(): void;
}

export interface H2Connection {
  /** Streams open now. */
  readonly activeStreams: number;
  /** Send a PING; `acked` runs when its ACK arrives (server keepalive), never if the connection closes first. */
  sendPing(acked: () => void): void;
  /**
   * Graceful close: GOAWAY(NO_ERROR, last stream id); new streams are refused, open ones finish,
   * then the socket ends.
   */
  shutdown(): void;
  /** Close now: every open stream is aborted(-1), the socket destroyed. */
  destroy(): void;
}
