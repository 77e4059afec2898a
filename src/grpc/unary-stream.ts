// The hot unary calls (KV Range, Put, DeleteRange, Txn, Compact) answered below grpc-js, on
// Node's public HTTP/2 API. grpc-js makes per call a BaseServerInterceptingCall, a Metadata for
// the headers and one for the trailers, a stream decoder, an async decompress step and a Node
// Writable (its ServerWritableStreamImpl), with their listeners: about a quarter of a put's
// allocation and most of the per-call stream plumbing (bench/RESULTS.md, "The client path").
// Here one small exchange object per stream reads the request, calls the SAME handler grpc-js
// would call (after leaderGuard.wrap, with withRequestSizes' deserializer and serializer) with
// a light call object (GatewayCallBase), and writes the answer as grpc-js 1.14 writes it.
//
// The envelope taken here; everything else goes to grpc-js's 'stream' listener unchanged:
// - :path is one of the table's methods (unary on both sides);
// - content-type is exactly application/grpc or application/grpc+proto (grpc-js answers 415 to
//   anything not starting with application/grpc; other subtypes are left to it);
// - grpc-encoding is absent or "identity": then grpc-js reads every message as it is, whatever
//   its compressed flag, and so does this (a compressed request goes to grpc-js, which inflates);
// - grpc-timeout is absent or parses as grpc-js parses it (an unparsable one is grpc-js's
//   INTERNAL "Invalid grpc-timeout value").
//
// What grpc-js does for such a call, and so what this does:
// - metadata: grpc.Metadata.fromHttp2Headers without grpc-timeout, grpc-encoding,
//   grpc-accept-encoding, accept-encoding, te and content-type (built on first read);
// - grpc-timeout: a deadline timer that answers DEADLINE_EXCEEDED "Deadline exceeded" and then
//   tells the handler's call 'cancelled';
// - framing: a message prefix announcing more than grpc.max_receive_message_length bytes is
//   answered RESOURCE_EXHAUSTED "Received message larger than max (N vs M)" (grpc-js drops the
//   rest of that DATA chunk, so do we); a request that does not decode is INTERNAL "Error
//   deserializing request"; a second message is UNIMPLEMENTED "Received a second request message
//   for server streaming method <path>", none at the end of the request UNIMPLEMENTED "Received
//   no request message for ..."; bytes of an unfinished message at the end are ignored. The
//   handler runs at the end of the request (half close), as grpc-js runs unary handlers;
// - the answer: response headers (:status 200, content-type application/grpc+proto,
//   grpc-accept-encoding identity,deflate,gzip, grpc-encoding identity; waitForTrailers), the
//   prefixed message, the end of the stream and trailers grpc-status 0 / grpc-message OK (grpc-js
//   ends the stream only when the message's write completed, one more socket write and callback
//   per call; here the message and the end go together, so a deadline cannot fail a call whose
//   answer is already written); a message over grpc.max_send_message_length is
//   RESOURCE_EXHAUSTED "Sent message larger than max (N+5 vs. M)"; an error before any header is
//   a Trailers-Only answer (grpc-status, grpc-message percent-encoded by encodeURI, :status,
//   content-type, then the error's metadata);
// - the client's RST_STREAM (or a lost connection) before the answer: the call is 'cancelled'
//   and nothing more is written. The first status wins; nothing is written after it.
// Other things grpc-js does that this does not: it also emits 'cancelled' after every answered
// call (nothing reads it then); it turns an exception thrown out of the handler (not its body:
// unary() catches those) or out of the response serializer into UNKNOWN "Unknown error" or
// INTERNAL "Error serializing response": here such a bug reaches the fail-stop path as an
// uncaught exception; and it builds the Metadata of every call, where this builds it only when
// a handler reads it (auth, or the hasleader check of a member without a leader).
//
// Receive admission (receive-admission.ts) takes the 'stream' listener's place after this and
// so runs first (the exchange reports the bytes it receives to admission's count itself, so
// admission adds no listeners of its own to these streams); keepalive policing replaces each stream's respond()/write() when its session
// reports the stream, before any answer is written here, so our respond() is noted as
// grpc-js's is (the message leaves in the same step as its headers). grpc-js's idle-timeout bookkeeping (onStreamOpened) is off (no
// grpc.max_connection_idle_ms) and channelz is off (grpc-server.ts), so skipping its stream
// handler skips nothing else.

import type http2 from 'node:http2';
import { TLSSocket } from 'node:tls';
import * as grpc from '@grpc/grpc-js';
import { assert } from '../util/assert.js';
import { type Caller, GatewayCallBase } from './gateway/gateway-call.js';
import { MESSAGE_PREFIX_BYTES } from './message-frames.js';
import { claimReceiveCount, countReceived, type ReceivedBytes, releaseReceived } from './receive-admission.js';

type NodeHttp2Server = http2.Http2Server | http2.Http2SecureServer;
type StreamListener = (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders, ...rest: unknown[]) => void;

/** One method answered here: the handler and codecs grpc-js would use for it. */
export interface UnaryMethod {
  readonly path: string;
  readonly handler: grpc.handleUnaryCall<unknown, unknown>;
  readonly deserialize: (bytes: Buffer) => unknown;
  readonly serialize: (value: unknown) => Buffer;
}

export interface UnaryStreamLimits {
  /** grpc.max_receive_message_length of the grpc-js server (-1 = none). */
  readonly maxReceiveMessageBytes: number;
  /** grpc.max_send_message_length of the grpc-js server (-1 = none). */
  readonly maxSendMessageBytes: number;
}

/** Puts the fast path in front of grpc-js's 'stream' listener on `http2Server`. */
export function answerUnaryCalls(http2Server: NodeHttp2Server, methods: ReadonlyMap<string, UnaryMethod>, limits: UnaryStreamLimits): void {
  const downstream = http2Server.listeners('stream') as StreamListener[];
  assert(downstream.length === 1, `expected grpc-js's one 'stream' listener on its HTTP/2 server, found ${downstream.length}`);
  const grpcJs = downstream[0] as StreamListener;
  http2Server.removeAllListeners('stream');
  // Node's 'stream' arguments spelled out: a rest parameter would be an array per call.
  http2Server.on('stream', (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders, flags: number, rawHeaders: string[]) => {
    const method = methods.get(headers[':path'] as string);
    if (method === undefined || !withinEnvelope(headers)) {
      grpcJs.call(http2Server, stream, headers, flags, rawHeaders);
      return;
    }
    new UnaryExchange(stream as ExchangeStream, headers, method, limits).start();
  });
}

/** grpc-js's grpc-timeout parsing (server-interceptors.ts): not anchored, as there. */
export const TIMEOUT_PATTERN = /(\d{1,8})\s*([HMSmun])/;
export const TIMEOUT_UNIT_MS: Record<string, number> = { H: 3_600_000, M: 60_000, S: 1000, m: 1, u: 0.001, n: 0.000_001 };

function withinEnvelope(headers: http2.IncomingHttpHeaders): boolean {
  const contentType = headers['content-type'];
  if (contentType !== 'application/grpc' && contentType !== 'application/grpc+proto') return false;
  const encoding = headers['grpc-encoding'];
  if (encoding !== undefined && encoding !== 'identity') return false;
  const timeout = headers['grpc-timeout'];
  return timeout === undefined || (typeof timeout === 'string' && TIMEOUT_PATTERN.test(timeout));
}

/** Headers grpc-js takes out of the metadata it hands to handlers. */
const NOT_METADATA = ['grpc-timeout', 'grpc-encoding', 'grpc-accept-encoding', 'accept-encoding', 'te', 'content-type'];

const EXCHANGE = Symbol('unaryExchange');
type ExchangeStream = http2.ServerHttp2Stream & { [EXCHANGE]?: UnaryExchange };

/** What a handler may give its callback as an error (grpc-js's ServerErrorResponse | ServerStatusResponse). */
type HandlerError = Parameters<grpc.sendUnaryData<unknown>>[0] & object;

interface Status {
  readonly code: grpc.status;
  readonly details: string;
  readonly metadata: grpc.Metadata | null;
}

// One set of listeners for every stream, finding the exchange on the stream (`this`): closures
// per stream would be allocations on every call.
function onData(this: ExchangeStream, chunk: Buffer): void {
  this[EXCHANGE]?.received(chunk);
}
function onEnd(this: ExchangeStream): void {
  this[EXCHANGE]?.halfClosed();
}
function onClose(this: ExchangeStream): void {
  this[EXCHANGE]?.closed();
}
function onWantTrailers(this: ExchangeStream): void {
  this[EXCHANGE]?.sendTrailers();
}
/** As grpc-js: an 'error' is followed by 'close', which cancels; without a listener it would throw. */
function ignoreError(): void {}
function onDeadline(exchange: UnaryExchange): void {
  exchange.deadlineExceeded();
}

/** One unary call on one HTTP/2 stream, from its headers to its status; also the call's Caller. */
class UnaryExchange implements Caller {
  deadline: grpc.Deadline = Infinity;
  private timer: NodeJS.Timeout | undefined;
  /** Received bytes of a message not complete yet, and how many make the next step possible. */
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  private needed = MESSAGE_PREFIX_BYTES;
  private request: unknown;
  private hasRequest = false;
  private call: StreamUnaryCall | undefined;
  private headersSent = false;
  /** A status went out (or is waiting for 'wantTrailers'), or the client went away. */
  private done = false;
  private trailers: Status | undefined;
  private metadataRead: grpc.Metadata | undefined;
  /** Receive admission's count of this request, reported from here rather than by its listeners. */
  private receiveCount: ReceivedBytes | undefined;

  constructor(
    readonly stream: ExchangeStream,
    private readonly headers: http2.IncomingHttpHeaders,
    private readonly method: UnaryMethod,
    private readonly limits: UnaryStreamLimits,
  ) {}

  start(): void {
    const stream = this.stream;
    stream[EXCHANGE] = this;
    this.receiveCount = claimReceiveCount(stream);
    stream.on('error', ignoreError);
    stream.on('close', onClose);
    stream.on('data', onData);
    stream.on('end', onEnd);
    const timeout = this.headers['grpc-timeout'];
    if (typeof timeout === 'string') this.armDeadline(timeout);
  }

  get metadata(): grpc.Metadata {
    if (this.metadataRead === undefined) {
      const metadata = grpc.Metadata.fromHttp2Headers(this.headers);
      for (const name of NOT_METADATA) metadata.remove(name);
      this.metadataRead = metadata;
    }
    return this.metadataRead;
  }

  get peer(): string {
    const socket = this.stream.session?.socket;
    if (socket?.remoteAddress === undefined) return 'unknown';
    return socket.remotePort ? `${socket.remoteAddress}:${socket.remotePort}` : socket.remoteAddress;
  }

  get path(): string {
    return this.method.path;
  }

  authContext(): ReturnType<Caller['authContext']> {
    const socket = this.stream.session?.socket;
    if (!(socket instanceof TLSSocket) || !socket.authorized) return {};
    const certificate = socket.getPeerCertificate();
    return { transportSecurityType: 'ssl', sslPeerCertificate: certificate.raw ? certificate : undefined };
  }

  received(chunk: Buffer): void {
    if (this.receiveCount !== undefined) countReceived(this.receiveCount, chunk.length);
    if (this.cancelledNow()) return;
    // A message spread over many DATA frames (a 1 MiB put arrives in 16 KiB pieces) is joined
    // once, when enough has arrived to make progress, not once per piece.
    if (this.pending.length > 0 || chunk.length < MESSAGE_PREFIX_BYTES) {
      this.pending.push(chunk);
      this.pendingBytes += chunk.length;
      if (this.pendingBytes < this.needed) return;
      chunk = Buffer.concat(this.pending, this.pendingBytes);
      this.pending = [];
      this.pendingBytes = 0;
    }
    this.readMessages(chunk);
  }

  /** The whole messages in `bytes` (the rest kept for later), as grpc-js's decoder reads them. */
  private readMessages(bytes: Buffer): void {
    // grpc-js decodes the whole chunk before looking at any message in it: an oversized prefix
    // anywhere in it fails the call and the messages before it are never read.
    let first: Buffer | undefined;
    let more: Buffer[] | undefined;
    let rest = bytes;
    this.needed = MESSAGE_PREFIX_BYTES;
    while (rest.length >= MESSAGE_PREFIX_BYTES) {
      const length = rest.readUInt32BE(1);
      const max = this.limits.maxReceiveMessageBytes;
      if (max !== -1 && length > max) {
        this.sendStatus(grpc.status.RESOURCE_EXHAUSTED, `Received message larger than max (${length} vs ${max})`, null);
        return;
      }
      if (rest.length < MESSAGE_PREFIX_BYTES + length) {
        this.needed = MESSAGE_PREFIX_BYTES + length;
        break;
      }
      const message = rest.subarray(MESSAGE_PREFIX_BYTES, MESSAGE_PREFIX_BYTES + length);
      if (first === undefined) first = message;
      else if (more === undefined) more = [message];
      else more.push(message);
      rest = rest.subarray(MESSAGE_PREFIX_BYTES + length);
    }
    if (rest.length > 0) {
      this.pending.push(rest);
      this.pendingBytes = rest.length;
    }
    if (first !== undefined) this.message(first);
    if (more !== undefined) for (const message of more) this.message(message);
  }

  private message(bytes: Buffer): void {
    if (this.done) return;
    let request: unknown;
    try {
      request = this.method.deserialize(bytes);
    } catch {
      // The client's bytes do not decode: grpc-js's answer (its debug variant names the error).
      this.sendStatus(grpc.status.INTERNAL, 'Error deserializing request', null);
      return;
    }
    if (this.hasRequest) {
      this.sendStatus(grpc.status.UNIMPLEMENTED, `Received a second request message for server streaming method ${this.method.path}`, null);
      return;
    }
    this.request = request;
    this.hasRequest = true;
  }

  halfClosed(): void {
    if (this.receiveCount !== undefined) releaseReceived(this.receiveCount);
    if (this.cancelledNow()) return;
    if (!this.hasRequest) {
      this.sendStatus(grpc.status.UNIMPLEMENTED, `Received no request message for server streaming method ${this.method.path}`, null);
      return;
    }
    const call = new StreamUnaryCall(this.request, this);
    this.call = call;
    this.method.handler(call as unknown as grpc.ServerUnaryCall<unknown, unknown>, (error, value, trailer) => this.answer(error ?? null, value, trailer));
  }

  closed(): void {
    if (this.receiveCount !== undefined) releaseReceived(this.receiveCount);
    if (this.done) return;
    this.done = true;
    this.cancelled();
  }

  deadlineExceeded(): void {
    this.timer = undefined;
    this.sendStatus(grpc.status.DEADLINE_EXCEEDED, 'Deadline exceeded', null);
    // grpc-js tells the handler's call once its status is out.
    this.call?.cancelUnary();
  }

  /** The handler's callback (grpc-js's sendUnaryData). */
  answer(error: HandlerError | null, value?: unknown, trailer?: grpc.Metadata): void {
    if (error) {
      const status = statusOf(error, trailer);
      this.sendStatus(status.code, status.details, status.metadata);
      return;
    }
    if (this.cancelledNow()) return;
    const message = this.method.serialize(value);
    const framed = Buffer.allocUnsafe(message.length + MESSAGE_PREFIX_BYTES);
    framed[0] = 0;
    framed.writeUInt32BE(message.length, 1);
    framed.set(message, MESSAGE_PREFIX_BYTES);
    const max = this.limits.maxSendMessageBytes;
    if (max !== -1 && message.length > max) {
      this.sendStatus(grpc.status.RESOURCE_EXHAUSTED, `Sent message larger than max (${framed.length} vs. ${max})`, null);
      return;
    }
    this.sendHeaders(null);
    // The message and the end of the stream in one step (grpc-js writes the message and ends the
    // stream once that write completed: a second socket write and a callback per call). The
    // client gets the same headers, message and trailers; keepalive policing noted the
    // respond() just made, so the write needs no note of its own.
    this.sendStatus(grpc.status.OK, 'OK', trailer ?? null, framed);
  }

  /** Response headers, once (grpc-js's sendMetadata). */
  sendHeaders(metadata: grpc.Metadata | null): void {
    if (this.headersSent || this.cancelledNow()) return;
    this.headersSent = true;
    const headers = metadata === null ? RESPONSE_HEADERS : { ...RESPONSE_HEADERS, ...metadata.toHttp2Headers() };
    this.stream.respond(headers, WITH_TRAILERS);
  }

  sendTrailers(): void {
    const status = this.trailers;
    if (status === undefined) return;
    this.trailers = undefined;
    if (status === OK_STATUS) {
      this.stream.sendTrailers(OK_TRAILERS);
      return;
    }
    this.stream.sendTrailers({ 'grpc-status': status.code, 'grpc-message': encodeURI(status.details), ...status.metadata?.toHttp2Headers() });
  }

  /** The call's status (after `last`, the framed response, when there is one); the first wins. */
  private sendStatus(code: grpc.status, details: string, metadata: grpc.Metadata | null, last?: Buffer): void {
    if (this.cancelledNow()) return;
    this.done = true;
    if (this.timer !== undefined) clearTimeout(this.timer);
    const status = code === grpc.status.OK && metadata === null ? OK_STATUS : { code, details, metadata };
    if (this.headersSent) {
      this.trailers = status;
      this.stream.on('wantTrailers', onWantTrailers);
      this.stream.end(last);
      return;
    }
    // Trailers-Only, in grpc-js's header order.
    this.stream.respond(
      {
        'grpc-status': code,
        'grpc-message': encodeURI(details),
        ':status': 200,
        'content-type': 'application/grpc+proto',
        ...metadata?.toHttp2Headers(),
      },
      { endStream: true },
    );
  }

  /** grpc-js's checkCancelled: a stream may be destroyed before its 'close' event comes. */
  private cancelledNow(): boolean {
    if (!this.done && (this.stream.destroyed || this.stream.closed)) this.closed();
    return this.done;
  }

  private cancelled(): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
    this.call?.cancelUnary();
  }

  private armDeadline(header: string): void {
    const match = TIMEOUT_PATTERN.exec(header) as RegExpExecArray;
    const timeoutMs = (Number(match[1]) * (TIMEOUT_UNIT_MS[match[2] as string] as number)) | 0;
    this.deadline = Date.now() + timeoutMs;
    this.timer = setTimeout(onDeadline, timeoutMs, this);
  }
}

// What every successful call sends, as grpc-js sends it, built once: Node copies the headers
// it is given (respond() and sendTrailers() both), so one frozen object serves every stream.
const RESPONSE_HEADERS: http2.OutgoingHttpHeaders = Object.freeze({
  ':status': 200,
  'content-type': 'application/grpc+proto',
  'grpc-accept-encoding': 'identity,deflate,gzip',
  'grpc-encoding': 'identity',
});
const WITH_TRAILERS: http2.ServerStreamResponseOptions = Object.freeze({ waitForTrailers: true });
const OK_STATUS: Status = Object.freeze({ code: grpc.status.OK, details: 'OK', metadata: null });
const OK_TRAILERS: http2.OutgoingHttpHeaders = Object.freeze({ 'grpc-status': grpc.status.OK, 'grpc-message': 'OK' });

/** grpc-js's serverErrorToStatus: the code if it is an integer, else UNKNOWN with the message. */
export function statusOf(error: HandlerError, trailer: grpc.Metadata | undefined): Status {
  const metadata = trailer ?? error.metadata ?? null;
  if (typeof error.code === 'number' && Number.isInteger(error.code)) {
    const details = typeof error.details === 'string' ? error.details : 'message' in error ? error.message : 'Unknown Error';
    return { code: error.code, details, metadata };
  }
  return { code: grpc.status.UNKNOWN, details: 'message' in error ? error.message : 'Unknown Error', metadata };
}

/** The call object the handler gets: GatewayCallBase, whose sendMetadata sends the headers. */
class StreamUnaryCall extends GatewayCallBase {
  constructor(
    request: unknown,
    private readonly exchange: UnaryExchange,
  ) {
    super(request, exchange);
  }

  override sendMetadata(metadata?: grpc.Metadata): void {
    this.exchange.sendHeaders(metadata ?? null);
  }
}
