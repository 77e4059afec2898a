// gRPC calls on MetaStore's own HTTP/2 streams (h2-stream.ts): every method of the client port,
// unary and streaming, answered as grpc-js 1.14 answers it, with the SAME handlers grpc-js would
// call (leaderGuard-wrapped, with withRequestSizes' codecs: grpc-server.ts builds the table).
// Every client port serves its calls here (a member's client listener, an edge process's
// connections), and so does the peer port (src/transport, with its own method table); the
// differential test (test/grpc/h2-grpc-calls.test.ts) holds it to grpc-js.
//
// A stream is checked, in grpc-js's order: receive admission (receive-admission.ts, before
// anything else, as on the Node path), then :method (POST; anything else :status 405, where
// grpc-js does not look), content-type (not starting with application/grpc: :status 415, as
// grpc-js), then :path (unknown: Trailers-Only UNIMPLEMENTED "The server does not implement the
// method <path>", its text not percent-encoded, as grpc-js).
//
// Then one H2Call per stream (it is the stream's handlers too: no closure per call):
// - metadata: grpc.Metadata.fromHttp2Headers of the request's fields (duplicates joined with
//   ", " as Node joins them) without grpc-timeout, grpc-encoding, grpc-accept-encoding,
//   accept-encoding, te and content-type; built when a handler first reads it;
// - grpc-timeout: parsed as grpc-js parses it (an unparsable one is INTERNAL
//   `Invalid grpc-timeout value "<v>"`); at the deadline DEADLINE_EXCEEDED "Deadline exceeded",
//   then the handler's call is cancelled;
// - framing: a prefix announcing more than grpc.max_receive_message_length is
//   RESOURCE_EXHAUSTED "Received message larger than max (N vs M)"; an undecodable message
//   INTERNAL "Error deserializing request"; a compressed message (flag 1) is inflated
//   (synchronously: grpc-js does it asynchronously, the client cannot tell) per grpc-encoding
//   gzip or deflate, "Failed to decompress message" (INTERNAL) when it does not inflate,
//   "Received message that decompresses to a size larger than M" (RESOURCE_EXHAUSTED) when too
//   large, and UNIMPLEMENTED `Received message compressed with unsupported encoding "<e>"` for
//   any other encoding;
// - unary and server-streaming calls: the handler runs at the request's half close with its one
//   message (a second is UNIMPLEMENTED "Received a second request message for server streaming
//   method <path>", none UNIMPLEMENTED "Received no request message for ..."), as grpc-js runs
//   them; bidi calls (Watch, LeaseKeepAlive): the handler runs at once, each message is emitted
//   as 'data' on its GatewayStreamCall, the half close as 'end'; client-streaming calls (the peer
//   port's Stream and Snapshot, src/transport; etcd's client API has none): the handler runs at
//   once with its call and callback, as grpc-js runs it, each message emitted as 'data' on the
//   call, the half close as 'end', and its callback answers as a unary handler's does;
// - answers: response headers (:status 200, content-type application/grpc+proto,
//   grpc-accept-encoding identity,deflate,gzip, grpc-encoding identity, then the handler's
//   metadata) before the first message; a unary answer's headers, message and trailers in one
//   synchronous run (so one socket write); trailers grpc-status, grpc-message (encodeURI), then
//   the status's metadata; a status before any header is a Trailers-Only answer (:status 200,
//   grpc-status, grpc-message, content-type, metadata); a message over
//   grpc.max_send_message_length is RESOURCE_EXHAUSTED "Sent message larger than max (N+5 vs. M)";
// - the client's RST_STREAM or a lost connection: the call is cancelled ('cancelled' on a unary
//   call, cancel() on a stream call) and nothing more is written. The first status wins.
// - stream backpressure: a stream call's write() returns what the H2 stream's write() returns
//   (false over its high-water mark); 'drain' is emitted when the stream drains. A write's
//   `written` callback runs once its bytes were handed on: on the next tick while the stream is
//   under its high-water mark, else at the drain.
// Request bytes handed in by the connection may be views into its read buffer: what outlives
// the data() callback (a partial message, a message decoded into a request whose byte fields
// may be views of it) is copied first.

import { TLSSocket } from 'node:tls';
import zlib from 'node:zlib';
import * as grpc from '@grpc/grpc-js';
import { type Caller, GatewayCallBase, GatewayStreamCall, type StreamSink } from '../gateway/gateway-call.js';
import { firstOversized, MESSAGE_PREFIX_BYTES } from '../message-frames.js';
import { countReceived, type ReceivedBytes, releaseReceived, TOO_MANY_REQUESTS } from '../receive-admission.js';
import { statusOf, TIMEOUT_PATTERN, TIMEOUT_UNIT_MS } from '../call-status.js';
import type { H2ServerStream, H2StreamHandlers, HeaderField } from './h2-stream.js';

export type GrpcMethodKind = 'unary' | 'serverStream' | 'clientStream' | 'bidi';

/** One served method: the handler and codecs grpc-js would use for it. */
export interface GrpcMethod {
  readonly path: string;
  readonly kind: GrpcMethodKind;
  readonly handler: grpc.UntypedHandleCall;
  readonly deserialize: (bytes: Buffer) => unknown;
  readonly serialize: (value: unknown) => Buffer;
}

export interface GrpcCallLimits {
  /** grpc.max_receive_message_length (-1 = none). */
  readonly maxReceiveMessageBytes: number;
  /** grpc.max_send_message_length (-1 = none). */
  readonly maxSendMessageBytes: number;
}

/** Receive admission for one stream: its count, undefined (not counted), or null (refused). */
export type ReceiveAdmission = (path: string) => ReceivedBytes | undefined | null;

const NO_ERROR = 0x0;
const EMPTY = Buffer.alloc(0);

/** Serves the gRPC calls of every stream handed to onStream. */
export class GrpcCalls {
  constructor(
    private readonly methods: ReadonlyMap<string, GrpcMethod>,
    readonly limits: GrpcCallLimits,
    private readonly admit?: ReceiveAdmission,
  ) {}

  /** The connection's onStream (h2-stream.ts). */
  onStream(stream: H2ServerStream): void {
    const request = requestHeaders(stream.fields);
    const path = request.path;
    let count: ReceivedBytes | undefined;
    if (this.admit !== undefined) {
      const admitted = this.admit(path);
      if (admitted === null) {
        refuse(stream);
        return;
      }
      count = admitted;
    }
    const contentType = request.contentType;
    const method = this.methods.get(path);
    if (request.method !== 'POST') answerOnly(stream, STATUS_405, count);
    else if (contentType === undefined || !contentType.startsWith('application/grpc')) answerOnly(stream, STATUS_415, count);
    else if (method === undefined) answerOnly(stream, unimplemented(path), count);
    else new H2Call(stream, request, method, this.limits, count).start();
  }
}

/** grpc-js's answer to a path it serves no method at (its text not percent-encoded). */
function unimplemented(path: string): HeaderField[] {
  return [
    [':status', '200'],
    ['grpc-status', String(grpc.status.UNIMPLEMENTED)],
    ['grpc-message', `The server does not implement the method ${path}`],
    ['content-type', 'application/grpc+proto'],
  ];
}

/** What the call layer reads of a request's header block at once (the rest when asked). */
interface RequestHeaders {
  method: string | undefined;
  path: string;
  contentType: string | undefined;
  timeout: string | undefined;
  encoding: string | undefined;
}

function requestHeaders(fields: readonly HeaderField[]): RequestHeaders {
  const headers: RequestHeaders = { method: undefined, path: '', contentType: undefined, timeout: undefined, encoding: undefined };
  for (const [name, value] of fields) {
    switch (name) {
      case ':method':
        headers.method = value;
        break;
      case ':path':
        headers.path = value;
        break;
      case 'content-type':
        headers.contentType ??= value;
        break;
      case 'grpc-timeout':
        headers.timeout ??= value;
        break;
      case 'grpc-encoding':
        headers.encoding ??= value;
        break;
      default:
        break;
    }
  }
  return headers;
}

const STATUS_405: readonly HeaderField[] = Object.freeze([[':status', '405']] as HeaderField[]);
const STATUS_415: readonly HeaderField[] = Object.freeze([[':status', '415']] as HeaderField[]);

/** Handlers of a stream answered at once: nothing it sends matters any more. */
const IGNORING: H2StreamHandlers = Object.freeze({ data() {}, end() {}, aborted() {}, drain() {} });

/** Counting handlers of a stream answered at once whose request is still counted by admission. */
class Released implements H2StreamHandlers {
  constructor(private readonly count: ReceivedBytes) {}
  data(chunk: Buffer): void {
    countReceived(this.count, chunk.length);
  }
  end(): void {
    releaseReceived(this.count);
  }
  aborted(): void {
    releaseReceived(this.count);
  }
  drain(): void {}
}

function answerOnly(stream: H2ServerStream, fields: readonly HeaderField[], count: ReceivedBytes | undefined): void {
  // Answered, the request's count is released at once: it takes no receiving place.
  if (count !== undefined) releaseReceived(count);
  stream.handlers = count === undefined ? IGNORING : new Released(count);
  stream.end(fields);
}

/** Receive admission's refusal: Trailers-Only RESOURCE_EXHAUSTED, then RST_STREAM(NO_ERROR). */
function refuse(stream: H2ServerStream): void {
  stream.handlers = IGNORING;
  stream.end([
    [':status', '200'],
    ['content-type', 'application/grpc'],
    ['grpc-status', String(grpc.status.RESOURCE_EXHAUSTED)],
    ['grpc-message', TOO_MANY_REQUESTS],
  ]);
  // "Stop sending, the answer is complete" (the Node path's stream.close(NO_ERROR)).
  stream.reset(NO_ERROR);
}

/** Headers grpc-js takes out of the metadata it hands to handlers. */
const NOT_METADATA = new Set(['grpc-timeout', 'grpc-encoding', 'grpc-accept-encoding', 'accept-encoding', 'te', 'content-type']);

/** What a handler may give its callback as an error (grpc-js's ServerErrorResponse | ServerStatusResponse). */
type HandlerError = Parameters<grpc.sendUnaryData<unknown>>[0] & object;

function onDeadline(call: H2Call): void {
  call.deadlineExceeded();
}
function runWritten(callbacks: Array<() => void>): void {
  for (const callback of callbacks) callback();
}

/** One gRPC call on one HTTP/2 stream, from its headers to its status; its Caller and its stream's handlers. */
class H2Call implements Caller, H2StreamHandlers, StreamSink {
  deadline: grpc.Deadline = Infinity;
  private timer: NodeJS.Timeout | undefined;
  /** A message prefix split over DATA frames: its first bytes (copies). */
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  /** A message arriving over several DATA frames, prefix included: copied once, into its place. */
  private assembly: Buffer | undefined;
  private assembled = 0;
  private request: unknown;
  private hasRequest = false;
  private call: H2UnaryCall | GatewayStreamCall | undefined;
  private headersSent = false;
  /** A status went out, or the client went away: nothing more is written or read. */
  private done = false;
  private metadataRead: grpc.Metadata | undefined;
  /** `written` callbacks of stream writes not yet handed on (run at the next tick or the drain). */
  private writtenWaiting: Array<() => void> | undefined;
  private full = false;

  constructor(
    private readonly stream: H2ServerStream,
    private readonly headers: RequestHeaders,
    private readonly method: GrpcMethod,
    private readonly limits: GrpcCallLimits,
    private readonly receiveCount: ReceivedBytes | undefined,
  ) {}

  start(): void {
    this.stream.handlers = this;
    const timeout = this.headers.timeout;
    if (timeout !== undefined) {
      const match = TIMEOUT_PATTERN.exec(timeout);
      if (match === null) {
        this.sendStatus(grpc.status.INTERNAL, `Invalid grpc-timeout value "${timeout}"`, null);
        return;
      }
      const timeoutMs = (Number(match[1]) * (TIMEOUT_UNIT_MS[match[2] as string] as number)) | 0;
      this.deadline = Date.now() + timeoutMs;
      this.timer = setTimeout(onDeadline, timeoutMs, this);
    }
    if (this.method.kind === 'bidi') {
      const call = new GatewayStreamCall(undefined, this, this);
      this.call = call;
      (this.method.handler as grpc.handleBidiStreamingCall<unknown, unknown>)(call as unknown as grpc.ServerDuplexStream<unknown, unknown>);
    } else if (this.method.kind === 'clientStream') {
      const call = new H2UnaryCall(undefined, this);
      this.call = call;
      (this.method.handler as grpc.handleClientStreamingCall<unknown, unknown>)(
        call as unknown as grpc.ServerReadableStream<unknown, unknown>,
        (error, value, trailer) => this.answer(error ?? null, value, trailer),
      );
    }
  }

  // ------------------------------------------------------------------ Caller

  get metadata(): grpc.Metadata {
    if (this.metadataRead === undefined) {
      const headers: Record<string, string> = {};
      for (const [name, value] of this.stream.fields) {
        if (name.startsWith(':') || NOT_METADATA.has(name)) continue;
        const existing = headers[name];
        headers[name] = existing === undefined ? value : `${existing}, ${value}`;
      }
      this.metadataRead = grpc.Metadata.fromHttp2Headers(headers);
    }
    return this.metadataRead;
  }

  get peer(): string {
    const socket = this.stream.socket;
    if (socket.remoteAddress === undefined) return 'unknown';
    return socket.remotePort ? `${socket.remoteAddress}:${socket.remotePort}` : socket.remoteAddress;
  }

  get path(): string {
    return this.method.path;
  }

  authContext(): ReturnType<Caller['authContext']> {
    const socket = this.stream.socket;
    if (!(socket instanceof TLSSocket) || !socket.authorized) return {};
    const certificate = socket.getPeerCertificate();
    return { transportSecurityType: 'ssl', sslPeerCertificate: certificate.raw ? certificate : undefined };
  }

  // ------------------------------------------------------------------ H2StreamHandlers

  data(chunk: Buffer): void {
    if (this.receiveCount !== undefined) countReceived(this.receiveCount, chunk.length);
    if (this.done) return;
    // A message spread over many DATA frames (a 1 MiB put arrives in 16 KiB pieces) is copied
    // piece by piece into one buffer of its size, known from its prefix. What is kept is copied:
    // the connection may reuse its buffer after this returns.
    let bytes = chunk;
    let owned = false;
    let completed: Buffer | undefined;
    const assembly = this.assembly;
    if (assembly !== undefined) {
      const take = Math.min(bytes.length, assembly.length - this.assembled);
      bytes.copy(assembly, this.assembled, 0, take);
      this.assembled += take;
      if (this.assembled < assembly.length) return;
      this.assembly = undefined;
      this.assembled = 0;
      completed = assembly;
      bytes = bytes.subarray(take);
    }
    if (this.pending.length > 0 || (bytes.length > 0 && bytes.length < MESSAGE_PREFIX_BYTES)) {
      this.pending.push(Buffer.from(bytes));
      this.pendingBytes += bytes.length;
      if (this.pendingBytes < MESSAGE_PREFIX_BYTES) {
        if (completed !== undefined) this.readMessages(EMPTY, true, completed);
        return;
      }
      bytes = Buffer.concat(this.pending, this.pendingBytes);
      owned = true;
      this.pending = [];
      this.pendingBytes = 0;
    }
    this.readMessages(bytes, owned, completed);
  }

  end(): void {
    if (this.receiveCount !== undefined) releaseReceived(this.receiveCount);
    if (this.done) return;
    if (this.method.kind === 'bidi' || this.method.kind === 'clientStream') {
      this.call?.emit('end');
      return;
    }
    if (!this.hasRequest) {
      this.sendStatus(grpc.status.UNIMPLEMENTED, `Received no request message for server streaming method ${this.method.path}`, null);
      return;
    }
    if (this.method.kind === 'unary') {
      const call = new H2UnaryCall(this.request, this);
      this.call = call;
      (this.method.handler as grpc.handleUnaryCall<unknown, unknown>)(call as unknown as grpc.ServerUnaryCall<unknown, unknown>, (error, value, trailer) =>
        this.answer(error ?? null, value, trailer),
      );
      return;
    }
    const call = new GatewayStreamCall(this.request, this, this);
    this.call = call;
    (this.method.handler as grpc.handleServerStreamingCall<unknown, unknown>)(call as unknown as grpc.ServerWritableStream<unknown, unknown>);
  }

  aborted(): void {
    if (this.receiveCount !== undefined) releaseReceived(this.receiveCount);
    if (this.done) return;
    this.done = true;
    this.cancelCall();
  }

  drain(): void {
    this.full = false;
    const waiting = this.writtenWaiting;
    this.writtenWaiting = undefined;
    if (waiting !== undefined) runWritten(waiting);
    if (!this.done) this.call?.emit('drain');
  }

  // ------------------------------------------------------------------ reading

  /**
   * The whole messages in `bytes` (the rest kept for later), after `before` (a message just
   * assembled, which came first), as grpc-js's decoder reads them.
   */
  private readMessages(bytes: Buffer, owned: boolean, before?: Buffer): void {
    // grpc-js decodes the whole chunk before looking at any message in it: an oversized prefix
    // anywhere in it fails the call and the messages before it are never read.
    let first: Buffer | undefined;
    let more: Buffer[] | undefined;
    let rest = bytes;
    while (rest.length >= MESSAGE_PREFIX_BYTES) {
      const length = rest.readUInt32BE(1);
      const max = this.limits.maxReceiveMessageBytes;
      if (max !== -1 && length > max) {
        this.sendStatus(grpc.status.RESOURCE_EXHAUSTED, `Received message larger than max (${length} vs ${max})`, null);
        return;
      }
      if (rest.length < MESSAGE_PREFIX_BYTES + length) {
        this.assembly = Buffer.allocUnsafe(MESSAGE_PREFIX_BYTES + length);
        this.assembled = rest.copy(this.assembly);
        rest = EMPTY;
        break;
      }
      // The flag byte stays with the message (it says whether to inflate it).
      const message = rest.subarray(0, MESSAGE_PREFIX_BYTES + length);
      if (first === undefined) first = message;
      else if (more === undefined) more = [message];
      else more.push(message);
      rest = rest.subarray(MESSAGE_PREFIX_BYTES + length);
    }
    if (rest.length > 0) {
      this.pending.push(owned ? rest : Buffer.from(rest));
      this.pendingBytes = rest.length;
    }
    if (before !== undefined) this.readMessage(before, true);
    if (first !== undefined) this.readMessage(first, owned);
    if (more !== undefined) for (const message of more) this.readMessage(message, owned);
  }

  /** One framed message (prefix included). */
  private readMessage(framed: Buffer, owned: boolean): void {
    if (this.done) return;
    let bytes: Buffer;
    if (framed[0] === 1) {
      const inflated = this.inflate(framed.subarray(MESSAGE_PREFIX_BYTES));
      if (inflated === undefined) return;
      bytes = inflated;
    } else {
      // Decoded byte fields may be views of these bytes: a copy when they are the connection's.
      bytes = owned ? framed.subarray(MESSAGE_PREFIX_BYTES) : Buffer.from(framed.subarray(MESSAGE_PREFIX_BYTES));
    }
    let request: unknown;
    try {
      request = this.method.deserialize(bytes);
    } catch {
      // The client's bytes do not decode: grpc-js's answer (its debug variant names the error).
      this.sendStatus(grpc.status.INTERNAL, 'Error deserializing request', null);
      return;
    }
    if (this.method.kind === 'bidi' || this.method.kind === 'clientStream') {
      this.call?.emit('data', request);
      return;
    }
    if (this.hasRequest) {
      this.sendStatus(grpc.status.UNIMPLEMENTED, `Received a second request message for server streaming method ${this.method.path}`, null);
      return;
    }
    this.request = request;
    this.hasRequest = true;
  }

  /** A compressed message inflated as grpc-js inflates it; undefined after failing the call. */
  private inflate(compressed: Buffer): Buffer | undefined {
    const encoding = this.headers.encoding ?? 'identity';
    if (encoding === 'identity') return Buffer.from(compressed);
    if (encoding !== 'gzip' && encoding !== 'deflate') {
      this.sendStatus(grpc.status.UNIMPLEMENTED, `Received message compressed with unsupported encoding "${encoding}"`, null);
      return undefined;
    }
    const max = this.limits.maxReceiveMessageBytes;
    const options = max === -1 ? {} : { maxOutputLength: max + 1 };
    let inflated: Buffer;
    try {
      inflated = encoding === 'gzip' ? zlib.gunzipSync(compressed, options) : zlib.inflateSync(compressed, options);
    } catch (error) {
      if (max !== -1 && (error as { code?: string }).code === 'ERR_BUFFER_TOO_LARGE') {
        this.sendStatus(grpc.status.RESOURCE_EXHAUSTED, `Received message that decompresses to a size larger than ${max}`, null);
      } else {
        this.sendStatus(grpc.status.INTERNAL, 'Failed to decompress message', null);
      }
      return undefined;
    }
    if (max !== -1 && inflated.length > max) {
      this.sendStatus(grpc.status.RESOURCE_EXHAUSTED, `Received message that decompresses to a size larger than ${max}`, null);
      return undefined;
    }
    return inflated;
  }

  // ------------------------------------------------------------------ answering

  deadlineExceeded(): void {
    this.timer = undefined;
    this.sendStatus(grpc.status.DEADLINE_EXCEEDED, 'Deadline exceeded', null);
    // grpc-js tells the handler's call once its status is out.
    this.cancelCall();
  }

  /** A unary handler's callback (grpc-js's sendUnaryData). */
  answer(error: HandlerError | null, value?: unknown, trailer?: grpc.Metadata): void {
    if (error) {
      const status = statusOf(error, trailer);
      this.sendStatus(status.code, status.details, status.metadata);
      return;
    }
    if (this.done) return;
    const framed = this.frame(value);
    if (framed === undefined) return;
    this.sendHeaders(null);
    // Headers, message and trailers in one synchronous run: one socket write.
    this.stream.write(framed);
    this.sendStatus(grpc.status.OK, 'OK', trailer ?? null);
  }

  /** The response framed, or undefined after failing the call (over the send limit). */
  private frame(value: unknown): Buffer | undefined {
    const message = this.method.serialize(value);
    const max = this.limits.maxSendMessageBytes;
    if (max !== -1 && message.length > max) {
      this.sendStatus(grpc.status.RESOURCE_EXHAUSTED, `Sent message larger than max (${message.length + MESSAGE_PREFIX_BYTES} vs. ${max})`, null);
      return undefined;
    }
    const framed = Buffer.allocUnsafe(message.length + MESSAGE_PREFIX_BYTES);
    framed[0] = 0;
    framed.writeUInt32BE(message.length, 1);
    framed.set(message, MESSAGE_PREFIX_BYTES);
    return framed;
  }

  /** Response headers, once (grpc-js's sendMetadata). */
  sendHeaders(metadata: grpc.Metadata | null): void {
    if (this.headersSent || this.done) return;
    this.headersSent = true;
    this.stream.respond(metadata === null ? RESPONSE_HEADERS : [...RESPONSE_HEADERS, ...metadataFields(metadata)]);
  }

  /** The call's status; the first wins. */
  private sendStatus(code: grpc.status, details: string, metadata: grpc.Metadata | null): void {
    if (this.done) return;
    this.done = true;
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
    // Answered before its request ended (a framing error, a deadline): the stream reports no
    // more data or end, so its receiving place, if it took one, is freed here.
    if (this.receiveCount !== undefined) releaseReceived(this.receiveCount);
    if (this.headersSent) {
      if (code === grpc.status.OK && metadata === null) this.stream.end(OK_TRAILERS);
      else this.stream.end([['grpc-status', String(code)], ['grpc-message', encodeURI(details)], ...metadataFields(metadata)]);
    } else {
      // Trailers-Only, pseudo-header first as Node puts it, then grpc-js's order.
      this.stream.end([
        [':status', '200'],
        ['grpc-status', String(code)],
        ['grpc-message', encodeURI(details)],
        ['content-type', 'application/grpc+proto'],
        ...metadataFields(metadata),
      ]);
    }
    // Callbacks of writes that will never drain now: their bytes are queued before the end.
    const waiting = this.writtenWaiting;
    this.writtenWaiting = undefined;
    if (waiting !== undefined) process.nextTick(runWritten, waiting);
  }

  private cancelCall(): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
    const call = this.call;
    if (call instanceof GatewayStreamCall) call.cancel();
    else call?.cancelUnary();
  }

  // ------------------------------------------------------------------ StreamSink (stream calls)

  message(response: unknown, written: () => void): boolean {
    if (this.done) return false;
    const framed = this.frame(response);
    if (framed === undefined) {
      this.cancelCall();
      return false;
    }
    return this.writeFramed(framed, written);
  }

  framed(framed: Buffer, written: () => void): boolean {
    if (this.done) return false;
    const oversized = firstOversized(framed, this.limits.maxSendMessageBytes);
    if (oversized !== undefined) {
      // grpc-js sends the messages before it, then fails the call with its own text.
      if (oversized.at > 0) this.writeFramed(framed.subarray(0, oversized.at), () => {});
      this.sendStatus(
        grpc.status.RESOURCE_EXHAUSTED,
        `Sent message larger than max (${oversized.length + MESSAGE_PREFIX_BYTES} vs. ${this.limits.maxSendMessageBytes})`,
        null,
      );
      this.cancelCall();
      return false;
    }
    return this.writeFramed(framed, written);
  }

  failed(status: Partial<grpc.ServiceError>): void {
    const { code, details, metadata } = statusOf(status as HandlerError, undefined);
    this.sendStatus(code, details, metadata);
  }

  ended(): void {
    this.sendStatus(grpc.status.OK, 'OK', null);
  }

  private writeFramed(framed: Buffer, written: () => void): boolean {
    this.sendHeaders(null);
    const below = this.stream.write(framed);
    if (this.writtenWaiting === undefined) {
      this.writtenWaiting = [written];
      // Under the high-water mark the bytes leave with this turn's socket write.
      if (below && !this.full) process.nextTick(() => this.handedOn());
    } else {
      this.writtenWaiting.push(written);
    }
    if (!below) this.full = true;
    return below;
  }

  /** The next tick after writes under the high-water mark: their callbacks run (unless a drain is awaited). */
  private handedOn(): void {
    if (this.full) return;
    const waiting = this.writtenWaiting;
    this.writtenWaiting = undefined;
    if (waiting !== undefined) runWritten(waiting);
  }
}

// What every successful call sends, as grpc-js sends it, built once.
const RESPONSE_HEADERS: readonly HeaderField[] = Object.freeze([
  [':status', '200'],
  ['content-type', 'application/grpc+proto'],
  ['grpc-accept-encoding', 'identity,deflate,gzip'],
  ['grpc-encoding', 'identity'],
] as HeaderField[]);
const OK_TRAILERS: readonly HeaderField[] = Object.freeze([
  ['grpc-status', '0'],
  ['grpc-message', 'OK'],
] as HeaderField[]);

/** Metadata as header fields, as Node sends grpc-js's toHttp2Headers() (one field per value). */
function metadataFields(metadata: grpc.Metadata | null): HeaderField[] {
  if (metadata === null) return [];
  const fields: HeaderField[] = [];
  for (const [name, value] of Object.entries(metadata.toHttp2Headers())) {
    if (Array.isArray(value)) for (const v of value) fields.push([name, String(v)]);
    else if (value !== undefined) fields.push([name, String(value)]);
  }
  return fields;
}

/**
 * A unary or client-streaming call's object: GatewayCallBase, whose sendMetadata sends the
 * headers; a client-streaming call's requests are emitted on it as 'data', the half close as
 * 'end', the client going away as 'cancelled' (grpc-js's ServerReadableStream, as the peer
 * port's handlers use it).
 */
class H2UnaryCall extends GatewayCallBase {
  constructor(
    request: unknown,
    private readonly exchange: H2Call,
  ) {
    super(request, exchange);
  }

  override sendMetadata(metadata?: grpc.Metadata): void {
    this.exchange.sendHeaders(metadata ?? null);
  }
}
