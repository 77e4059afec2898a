// MetaStore's own HTTP/2 server connection (RFC 9113): one client connection of the client
// port, served without Node's HTTP/2. It reads frames from the socket, decodes request headers
// (hpack.ts), hands each new stream to options.onStream (the gRPC call layer), and writes the
// streams' responses with flow control.
//
// Why: Node's HTTP/2 (its JS, nghttp2, a Duplex per stream) costs ~50 us of main-thread CPU per
// call and writes a call's trailers in a second socket write (bench/RESULTS.md, "Unary calls
// answered below grpc-js, on Node's HTTP/2 stream" and "The lone put on the wire"). Here a
// stream is one small object, a request whose headers hit the HPACK tables allocates little,
// and everything the streams queue in one turn leaves in one socket write.
//
// How:
// - Input: 'data' chunks are parsed in place (a frame split across chunks is joined from the
//   bytes it lacks, the rest of the chunk parsed in place);
//   DATA payloads are handed to the stream as views of the chunk. Received bytes are given
//   back to the peer (WINDOW_UPDATE) as soon as they are delivered, batched: a stream's or the
//   connection's window is refilled once half of it is used.
// - Output: frames are written into a slab (one Buffer filled front to back; a written region is
//   never reused, so a pending socket write may keep pointing at it); DATA payloads above
//   SMALL_COPY bytes are passed by reference. A flush is scheduled on the first queued byte: one
//   process.nextTick for every connection with output, which runs after the current callback and
//   after every promise continuation queued so far, so all the answers one turn produces leave in
//   one write per connection (writev when there are several pieces). writeQueuedOutput() flushes
//   them at once instead (the watch fan-out: its events must not wait for the rest of the turn).
// - Send flow control: DATA waits for the stream's and the connection's send windows; streams
//   with queued DATA sit in a FIFO (`sendList`) served round robin one frame per stream per pass.
//   write() on a stream with nothing queued, when the windows and the socket allow and no other
//   stream waits, goes straight to the output (the unary answer's path).
//   A stream's trailers leave after its last DATA. Socket backpressure (write() false) stops the
//   pump until 'drain'; so does more than OUTPUT_CAP bytes waiting in the output. A peer that
//   sends without reading makes us stop reading once READ_PAUSE_BYTES wait in the socket.
// - Floods: PINGs are policed by options.ping(); streams reset by the peer before we answered
//   them by a token bucket (RESET_BURST, RESET_RATE), as nghttp2 does. Not policed here: the work
//   a reset stream started (the handler's to drop), SETTINGS floods (each is ACKed; the read pause
//   bounds what waits), idle connections that never send the preface (only the listener's
//   connection limit bounds them, as with Node's server).
//
// Invariants:
// - Frames of one stream leave in the order queued: HEADERS, DATA..., trailers (END_STREAM).
// - A connection error (RFC 9113 §5.4.1) sends GOAWAY with the code, stops reading, aborts every
//   stream (-1) and ends the socket; a stream error (§5.4.2) sends RST_STREAM and aborts only that
//   stream with the code. Nothing the peer sends can make this code throw out of a socket event.
// - After end() or reset() a stream's handlers are never called again; after it is done (closed,
//   reset, aborted) its methods are no-ops. options.closed() runs once, after every open stream got
//   aborted(-1).
// - No timer per stream; one timer per connection only while it ends (destroy if the peer never
//   closes).

import type net from 'node:net';
import {
  CLIENT_PREFACE,
  DEFAULT_MAX_FRAME_SIZE,
  DEFAULT_WINDOW,
  ErrorCode,
  FRAME_HEADER_BYTES,
  Flag,
  FrameType,
  MAX_FRAME_SIZE_LIMIT,
  MAX_WINDOW,
  Setting,
  writeFrameHeader,
} from './frames.js';
import type { H2Connection, H2ConnectionOptions, H2ServerStream, H2StreamHandlers, HeaderField } from './h2-stream.js';
import { encodedBlock, HpackDecoder } from './hpack.js';

/** A stream's queued-but-unsent bytes above which write() returns false. */
export const STREAM_HIGH_WATER = 64 * 1024;
/** DATA payloads up to this size are copied into the output slab (one contiguous write). */
const SMALL_COPY = 2048;
/** The output slab's size (a bigger frame gets a slab of its own size). */
const SLAB_BYTES = 32 * 1024;
/** The pump stops moving DATA to the output beyond this many bytes waiting for the flush. */
const OUTPUT_CAP = 256 * 1024;
/**
 * Bytes waiting in the socket (the peer is not reading) beyond which we stop reading from it until
 * 'drain': DATA already waits for the socket, but HEADERS, trailers and control-frame answers
 * (PING and SETTINGS ACKs) do not, so a peer that sends without reading would grow them unbounded.
 */
const READ_PAUSE_BYTES = 1024 * 1024;
/**
 * Streams the peer may reset before we answered them: a token bucket of RESET_BURST tokens refilled
 * at RESET_RATE per second, as nghttp2 (so Node's HTTP/2) does against "rapid reset" (CVE-2023-44487:
 * open and cancel streams faster than the server can drop the work they started). Beyond it, a
 * connection error ENHANCE_YOUR_CALM.
 */
const RESET_BURST = 1000;
const RESET_RATE = 33;
/** After we end the socket, destroy it if the peer has not closed within this time. */
const END_TIMEOUT_MS = 5000;
/** Our PING payloads start with this (the other 4 bytes count). */
const PING_MARK = 0x4d535047;

const NOOP_HANDLERS: H2StreamHandlers = {
  data() {},
  end() {},
  aborted() {},
  drain() {},
};

/** One request stream. Fields only: no closures per stream. */
class Stream implements H2ServerStream {
  handlers: H2StreamHandlers = NOOP_HANDLERS;
  /** The peer sent END_STREAM. */
  remoteClosed = false;
  /** respond() was called (HEADERS queued). */
  responded = false;
  /** end() or reset() was called: no handler runs any more. */
  ended = false;
  /** Gone from the connection (both sides closed, reset, or the connection closed). */
  done = false;
  sendWindow: number;
  /** What the peer may still send on this stream, and what it sent that we have not given back. */
  recvWindow: number;
  recvUnacked = 0;
  /** DATA waiting to be sent: queue[0] from queueOffset on, then the rest. */
  queue: Buffer[] = [];
  queueOffset = 0;
  queuedBytes = 0;
  /** Trailers passed to end() while DATA was still queued. */
  trailers: readonly HeaderField[] | null = null;
  /** write() returned false: drain() is owed. */
  needDrain = false;
  /** In the connection's sendList. */
  scheduled = false;

  constructor(
    private readonly conn: ServerConnection,
    readonly id: number,
    readonly fields: readonly HeaderField[],
    sendWindow: number,
    recvWindow: number,
  ) {
    this.sendWindow = sendWindow;
    this.recvWindow = recvWindow;
  }

  get socket(): net.Socket {
    return this.conn.socket;
  }

  respond(fields: readonly HeaderField[]): void {
    if (this.ended || this.done || this.responded) return;
    this.responded = true;
    this.conn.emitHeaders(this.id, fields, false);
    this.conn.scheduleFlush();
  }

  write(data: Buffer): boolean {
    if (this.ended || this.done) return false;
    if (!this.responded) this.respond(DEFAULT_RESPONSE);
    if (data.length > 0 && !(this.queuedBytes === 0 && this.conn.sendNow(this, data))) {
      this.queue.push(data);
      this.queuedBytes += data.length;
      this.conn.schedule(this);
    }
    if (this.queuedBytes > STREAM_HIGH_WATER) {
      this.needDrain = true;
      return false;
    }
    return true;
  }

  end(trailers: readonly HeaderField[]): void {
    if (this.ended || this.done) return;
    this.ended = true;
    if (this.queuedBytes === 0) this.conn.finish(this, trailers);
    else this.trailers = trailers;
  }

  reset(code: number): void {
    if (this.done) return;
    this.ended = true;
    this.conn.resetStream(this, code);
  }
}

const DEFAULT_RESPONSE: readonly HeaderField[] = [[':status', '200']];

/**
 * How many bytes of `chunk` complete the frame that `rest` (an incomplete frame) begins; -1 when
 * `rest` and `chunk` together do not even hold its 9-byte header.
 */
function bytesToComplete(rest: Buffer, chunk: Buffer): number {
  if (rest.length + chunk.length < FRAME_HEADER_BYTES) return -1;
  const at = (i: number): number => (i < rest.length ? rest[i]! : chunk[i - rest.length]!);
  const length = (at(0) << 16) | (at(1) << 8) | at(2);
  return FRAME_HEADER_BYTES + length - rest.length;
}

/** Copies src[from, to) to dst at `at`: a plain loop for the small copies (cheaper than Buffer.copy's call). */
function copyBytes(src: Buffer, from: number, to: number, dst: Buffer, at: number): void {
  if (to - from > 64) {
    src.copy(dst, at, from, to);
    return;
  }
  for (let i = from; i < to; i++) dst[at++] = src[i]!;
}

/**
 * Connections with output queued this turn, flushed together by one process.nextTick
 * (flushQueuedTick) or earlier by writeQueuedOutput(). A connection is in the list while its
 * flushScheduled is set (it may appear twice after a direct flush(); the second finds nothing).
 */
let queued: ServerConnection[] = [];
let queuedTick = false;

function flushQueuedTick(): void {
  queuedTick = false;
  writeQueuedOutput();
}

/**
 * Hands every connection's queued output to its socket now, instead of at the end of this
 * turn's callbacks and promise continuations. For output that must not wait for the JS still
 * to run in this turn: the watch fan-out calls it after each stream's flush, so a revision's
 * events leave before the put answers and other continuations of the same apply run
 * (bench/RESULTS.md, "Watch latency at 100 watchers: a fresh map").
 */
export function writeQueuedOutput(): void {
  if (queued.length === 0) return;
  const connections = queued;
  queued = [];
  for (const conn of connections) if (conn.flushScheduled) conn.flush();
}

class ServerConnection implements H2Connection {
  private readonly streams = new Map<number, Stream>();
  private readonly decoder = new HpackDecoder();
  private readonly maxHeaderListBytes: number;
  private readonly recvWindowTarget: number;

  // Input state.
  private rest: Buffer | null = null;
  private prefaceDone = false;
  private gotSettings = false;
  private ourSettingsAcked = false;
  private lastPeerStreamId = 0;
  /** A header block in CONTINUATIONs: its stream (0 when none), END_STREAM, the parts so far. */
  private blockStream = 0;
  private blockEndStream = false;
  private blockParts: Buffer[] = [];
  private blockBytes = 0;
  private connRecvWindow: number;
  private connRecvUnacked = 0;

  // Peer settings and send windows.
  private peerInitialWindow = DEFAULT_WINDOW;
  private peerMaxFrame = DEFAULT_MAX_FRAME_SIZE;
  private connSendWindow = DEFAULT_WINDOW;
  private readonly sendList: Stream[] = [];

  // Output.
  private slab: Buffer = Buffer.allocUnsafe(SLAB_BYTES);
  private slabStart = 0;
  private slabPos = 0;
  private pieces: Buffer[] = [];
  private outBytes = 0;
  /** In `queued`: a flush is due at the next writeQueuedOutput. */
  flushScheduled = false;
  /** The socket accepted our last write without backpressure. */
  private writable = true;
  /** We paused reading: more than READ_PAUSE_BYTES wait in the socket. */
  private readPaused = false;
  private drainOwed: Stream[] = [];

  // Lifecycle.
  /** No more input is processed (connection error, refused ping, destroy). */
  private dead = false;
  private goawaySent = false;
  private peerGoaway = false;
  private ending = false;
  private endWhenFlushed = false;
  private closedDone = false;
  private endTimer: NodeJS.Timeout | null = null;
  private pingCount = 0;
  /** A HEADERS or DATA frame was queued since the peer's last PING (ping()'s argument). */
  private wroteSincePing = false;
  private resetTokens = RESET_BURST;
  private resetTokensAt = 0;
  private readonly pings = new Map<number, () => void>();

  constructor(
    readonly socket: net.Socket,
    private readonly options: H2ConnectionOptions,
  ) {
    this.maxHeaderListBytes = options.maxHeaderListBytes;
    this.recvWindowTarget = Math.min(Math.max(options.receiveWindowBytes, 1), MAX_WINDOW);
    this.connRecvWindow = DEFAULT_WINDOW;
    socket.setNoDelay?.(true);
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('drain', () => this.onDrain());
    socket.on('end', () => this.onEnd());
    socket.on('error', () => {});
    socket.on('close', () => this.onClose());
    if (socket.destroyed) {
      // Gone before it was handed over: its 'close' may have been emitted already.
      process.nextTick(() => this.onClose());
      return;
    }
    this.sendPreface();
    socket.resume();
  }

  get activeStreams(): number {
    return this.streams.size;
  }

  // ---------------------------------------------------------------- public API

  sendPing(acked: () => void): void {
    if (this.dead || this.closedDone) return;
    const n = ++this.pingCount >>> 0;
    this.pings.set(n, acked);
    const pos = this.reserve(FRAME_HEADER_BYTES + 8);
    writeFrameHeader(this.slab, pos, 8, FrameType.PING, 0, 0);
    this.slab.writeUInt32BE(PING_MARK, pos + 9);
    this.slab.writeUInt32BE(n, pos + 13);
    this.commit(pos + 17);
    this.scheduleFlush();
  }

  shutdown(): void {
    if (this.goawaySent || this.dead || this.closedDone) return;
    this.emitGoaway(this.lastPeerStreamId, ErrorCode.NO_ERROR, '');
    this.endWhenFlushed = this.streams.size === 0;
    this.flushSoon();
  }

  destroy(): void {
    if (this.closedDone) return;
    this.dead = true;
    this.abortAll();
    this.socket.destroy();
  }

  // ---------------------------------------------------------------- input

  private onData(chunk: Buffer): void {
    if (this.dead) return;
    try {
      let buf = chunk;
      let pos = 0;
      const rest = this.rest;
      if (rest !== null) {
        this.rest = null;
        // A frame began in the last chunk: join only the bytes that complete it (not the whole
        // chunk), parse it, then go on in this chunk in place.
        const take = this.prefaceDone ? bytesToComplete(rest, chunk) : -1;
        if (take < 0 || take > chunk.length) {
          buf = Buffer.concat([rest, chunk]);
        } else {
          this.parse(Buffer.concat([rest, chunk.subarray(0, take)]), 0);
          pos = take;
        }
      }
      if (!this.dead && !this.prefaceDone) {
        const n = Math.min(buf.length - pos, CLIENT_PREFACE.length);
        if (buf.compare(CLIENT_PREFACE, 0, n, pos, pos + n) !== 0) {
          this.connectionError(ErrorCode.PROTOCOL_ERROR, 'bad client preface');
        } else if (n < CLIENT_PREFACE.length) {
          this.rest = buf.subarray(pos);
          return;
        } else {
          this.prefaceDone = true;
          pos += CLIENT_PREFACE.length;
        }
      }
      if (!this.dead) {
        pos = this.parse(buf, pos);
        if (!this.dead && pos < buf.length) this.rest = buf.subarray(pos);
      }
    } catch {
      // Only a bug of ours gets here (handlers' exceptions are caught per call).
      this.connectionError(ErrorCode.INTERNAL_ERROR, 'internal error');
    }
    if (this.outBytes > 0) this.scheduleFlush();
  }

  /** Handles the whole frames of buf from `pos` on; returns where the first incomplete one starts. */
  private parse(buf: Buffer, pos: number): number {
    while (!this.dead) {
      if (buf.length - pos < FRAME_HEADER_BYTES) break;
      const length = (buf[pos]! << 16) | (buf[pos + 1]! << 8) | buf[pos + 2]!;
      if (length > DEFAULT_MAX_FRAME_SIZE) {
        this.connectionError(ErrorCode.FRAME_SIZE_ERROR, 'frame too large');
        break;
      }
      const start = pos + FRAME_HEADER_BYTES;
      const end = start + length;
      if (end > buf.length) break;
      const type = buf[pos + 3]!;
      const flags = buf[pos + 4]!;
      const streamId = buf.readUInt32BE(pos + 5) & 0x7fffffff;
      pos = end;
      this.onFrame(type, flags, streamId, buf, start, end);
    }
    return pos;
  }

  private onFrame(type: number, flags: number, id: number, buf: Buffer, start: number, end: number): void {
    if (!this.gotSettings && type !== FrameType.SETTINGS) {
      this.connectionError(ErrorCode.PROTOCOL_ERROR, 'SETTINGS expected first');
      return;
    }
    if (this.blockStream !== 0 && type !== FrameType.CONTINUATION) {
      this.connectionError(ErrorCode.PROTOCOL_ERROR, 'CONTINUATION expected');
      return;
    }
    switch (type) {
      case FrameType.DATA:
        this.onDataFrame(flags, id, buf, start, end);
        return;
      case FrameType.HEADERS:
        this.onHeadersFrame(flags, id, buf, start, end);
        return;
      case FrameType.PRIORITY:
        if (id === 0) this.connectionError(ErrorCode.PROTOCOL_ERROR, 'PRIORITY on stream 0');
        else if (end - start !== 5) this.streamError(id, ErrorCode.FRAME_SIZE_ERROR);
        return;
      case FrameType.RST_STREAM:
        this.onRstStream(id, buf, start, end);
        return;
      case FrameType.SETTINGS:
        this.onSettings(flags, id, buf, start, end);
        return;
      case FrameType.PUSH_PROMISE:
        this.connectionError(ErrorCode.PROTOCOL_ERROR, 'PUSH_PROMISE from a client');
        return;
      case FrameType.PING:
        this.onPing(flags, id, buf, start, end);
        return;
      case FrameType.GOAWAY:
        if (id !== 0) this.connectionError(ErrorCode.PROTOCOL_ERROR, 'GOAWAY on a stream');
        else if (end - start < 8) this.connectionError(ErrorCode.FRAME_SIZE_ERROR, 'short GOAWAY');
        else this.onGoaway();
        return;
      case FrameType.WINDOW_UPDATE:
        this.onWindowUpdate(id, buf, start, end);
        return;
      case FrameType.CONTINUATION:
        this.onContinuation(flags, id, buf, start, end);
        return;
      default:
        // Unknown frame types are ignored (RFC 9113 §4.1).
        return;
    }
  }

  private onDataFrame(flags: number, id: number, buf: Buffer, start: number, end: number): void {
    if (id === 0) {
      this.connectionError(ErrorCode.PROTOCOL_ERROR, 'DATA on stream 0');
      return;
    }
    const length = end - start;
    // The whole payload (padding too) counts against the windows.
    if (length > this.connRecvWindow) {
      this.connectionError(ErrorCode.FLOW_CONTROL_ERROR, 'connection window exceeded');
      return;
    }
    this.connRecvWindow -= length;
    this.connRecvUnacked += length;
    if (this.connRecvUnacked >= this.recvWindowTarget / 2) this.refillConnectionWindow();
    let dataStart = start;
    let dataEnd = end;
    if (flags & Flag.PADDED) {
      if (length < 1) {
        this.connectionError(ErrorCode.FRAME_SIZE_ERROR, 'DATA padding length missing');
        return;
      }
      const pad = buf[start]!;
      dataStart++;
      if (pad > dataEnd - dataStart) {
        this.connectionError(ErrorCode.PROTOCOL_ERROR, 'DATA padding too long');
        return;
      }
      dataEnd -= pad;
    }
    const s = this.streams.get(id);
    if (s === undefined) {
      if (id > this.lastPeerStreamId) this.connectionError(ErrorCode.PROTOCOL_ERROR, 'DATA on an idle stream');
      // Else a stream we closed or reset: frames in flight are ignored (§5.1 "closed").
      return;
    }
    if (s.remoteClosed) {
      this.streamError(id, ErrorCode.STREAM_CLOSED);
      return;
    }
    if (length > s.recvWindow) {
      this.streamError(id, ErrorCode.FLOW_CONTROL_ERROR);
      return;
    }
    s.recvWindow -= length;
    const endStream = (flags & Flag.END_STREAM) !== 0;
    if (endStream) s.remoteClosed = true;
    if (!s.ended && dataEnd > dataStart) {
      try {
        s.handlers.data(buf.subarray(dataStart, dataEnd));
      } catch {
        this.handlerFailed(s);
        return;
      }
    }
    if (s.done) return;
    if (endStream) {
      this.remoteEnded(s);
    } else {
      s.recvUnacked += length;
      if (s.recvUnacked >= this.recvWindowTarget / 2) {
        this.emitWindowUpdate(s.id, s.recvUnacked);
        s.recvWindow += s.recvUnacked;
        s.recvUnacked = 0;
      }
    }
  }

  private onHeadersFrame(flags: number, id: number, buf: Buffer, start: number, end: number): void {
    if (id === 0) {
      this.connectionError(ErrorCode.PROTOCOL_ERROR, 'HEADERS on stream 0');
      return;
    }
    let blockStart = start;
    let blockEnd = end;
    if (flags & Flag.PADDED) {
      if (blockEnd - blockStart < 1) {
        this.connectionError(ErrorCode.FRAME_SIZE_ERROR, 'HEADERS padding length missing');
        return;
      }
      const pad = buf[blockStart]!;
      blockStart++;
      if (pad > blockEnd - blockStart) {
        this.connectionError(ErrorCode.PROTOCOL_ERROR, 'HEADERS padding too long');
        return;
      }
      blockEnd -= pad;
    }
    if (flags & Flag.PRIORITY) {
      if (blockEnd - blockStart < 5) {
        this.connectionError(ErrorCode.FRAME_SIZE_ERROR, 'HEADERS priority missing');
        return;
      }
      blockStart += 5;
    }
    const endStream = (flags & Flag.END_STREAM) !== 0;
    if (flags & Flag.END_HEADERS) {
      this.onHeaderBlock(id, endStream, buf, blockStart, blockEnd);
      return;
    }
    this.blockStream = id;
    this.blockEndStream = endStream;
    this.blockParts = [Buffer.from(buf.subarray(blockStart, blockEnd))];
    this.blockBytes = blockEnd - blockStart;
  }

  private onContinuation(flags: number, id: number, buf: Buffer, start: number, end: number): void {
    if (this.blockStream === 0 || id !== this.blockStream) {
      this.connectionError(ErrorCode.PROTOCOL_ERROR, 'unexpected CONTINUATION');
      return;
    }
    this.blockBytes += end - start;
    // A compressed block cannot be much bigger than the header list it decodes to.
    if (this.blockBytes > 2 * Math.max(this.maxHeaderListBytes, DEFAULT_MAX_FRAME_SIZE)) {
      this.connectionError(ErrorCode.ENHANCE_YOUR_CALM, 'header block too large');
      return;
    }
    this.blockParts.push(Buffer.from(buf.subarray(start, end)));
    if ((flags & Flag.END_HEADERS) === 0) return;
    const block = Buffer.concat(this.blockParts);
    this.blockStream = 0;
    this.blockParts = [];
    this.blockBytes = 0;
    this.onHeaderBlock(id, this.blockEndStream, block, 0, block.length);
  }

  private onHeaderBlock(id: number, endStream: boolean, buf: Buffer, start: number, end: number): void {
    // Decode first, whatever becomes of the stream: the dynamic table must stay in step.
    const fields = this.decoder.decode(buf, start, end, this.maxHeaderListBytes);
    if (fields === null) {
      this.connectionError(ErrorCode.COMPRESSION_ERROR, 'bad header block');
      return;
    }
    const existing = this.streams.get(id);
    if (existing !== undefined) {
      // Trailers: they must end the stream. Their fields are not passed on.
      if (!endStream) this.streamError(id, ErrorCode.PROTOCOL_ERROR);
      else if (existing.remoteClosed) this.streamError(id, ErrorCode.STREAM_CLOSED);
      else {
        existing.remoteClosed = true;
        this.remoteEnded(existing);
      }
      return;
    }
    if (id <= this.lastPeerStreamId) {
      // A stream already closed (§5.1: we may have reset it; frames in flight are ignored).
      return;
    }
    if ((id & 1) === 0) {
      this.connectionError(ErrorCode.PROTOCOL_ERROR, 'even stream id from a client');
      return;
    }
    this.lastPeerStreamId = id;
    if (this.goawaySent || this.peerGoaway || this.streams.size >= this.options.maxConcurrentStreams) {
      this.emitRst(id, ErrorCode.REFUSED_STREAM);
      return;
    }
    if (this.decoder.tooLarge) {
      this.emitRst(id, ErrorCode.ENHANCE_YOUR_CALM);
      return;
    }
    const recvWindow = this.ourSettingsAcked ? this.recvWindowTarget : Math.max(this.recvWindowTarget, DEFAULT_WINDOW);
    const s = new Stream(this, id, fields, this.peerInitialWindow, recvWindow);
    this.streams.set(id, s);
    if (endStream) s.remoteClosed = true;
    try {
      this.options.onStream(s);
    } catch {
      this.handlerFailed(s);
      return;
    }
    if (endStream && !s.done) this.remoteEnded(s);
  }

  /** The peer half-closed `s` (it stays until we end it too): tell the handlers. */
  private remoteEnded(s: Stream): void {
    if (!s.ended) {
      try {
        s.handlers.end();
      } catch {
        this.handlerFailed(s);
      }
    }
  }

  private onRstStream(id: number, buf: Buffer, start: number, end: number): void {
    if (id === 0) {
      this.connectionError(ErrorCode.PROTOCOL_ERROR, 'RST_STREAM on stream 0');
      return;
    }
    if (end - start !== 4) {
      this.connectionError(ErrorCode.FRAME_SIZE_ERROR, 'RST_STREAM size');
      return;
    }
    if (id > this.lastPeerStreamId) {
      this.connectionError(ErrorCode.PROTOCOL_ERROR, 'RST_STREAM on an idle stream');
      return;
    }
    const s = this.streams.get(id);
    if (s === undefined) return;
    const code = buf.readUInt32BE(start);
    const wasEnded = s.ended;
    if (!wasEnded && !this.takeResetToken()) {
      this.connectionError(ErrorCode.ENHANCE_YOUR_CALM, 'too many stream resets');
      return;
    }
    this.removeStream(s);
    if (!wasEnded) {
      try {
        s.handlers.aborted(code);
      } catch {
        // The stream is gone already; nothing more to undo.
      }
    }
  }

  /** One token of the reset bucket (see RESET_BURST); false when there is none. */
  private takeResetToken(): boolean {
    const now = performance.now();
    if (this.resetTokens < RESET_BURST) {
      this.resetTokens = Math.min(RESET_BURST, this.resetTokens + ((now - this.resetTokensAt) / 1000) * RESET_RATE);
    }
    this.resetTokensAt = now;
    if (this.resetTokens < 1) return false;
    this.resetTokens--;
    return true;
  }

  private onSettings(flags: number, id: number, buf: Buffer, start: number, end: number): void {
    if (id !== 0) {
      this.connectionError(ErrorCode.PROTOCOL_ERROR, 'SETTINGS on a stream');
      return;
    }
    const length = end - start;
    if (flags & Flag.ACK) {
      if (length !== 0) this.connectionError(ErrorCode.FRAME_SIZE_ERROR, 'SETTINGS ACK with payload');
      else this.ourSettingsAcked = true;
      return;
    }
    if (length % 6 !== 0) {
      this.connectionError(ErrorCode.FRAME_SIZE_ERROR, 'SETTINGS size');
      return;
    }
    this.gotSettings = true;
    let windowGrew = false;
    for (let p = start; p < end; p += 6) {
      const key = buf.readUInt16BE(p);
      const value = buf.readUInt32BE(p + 2);
      switch (key) {
        case Setting.ENABLE_PUSH:
          if (value > 1) {
            this.connectionError(ErrorCode.PROTOCOL_ERROR, 'ENABLE_PUSH not 0 or 1');
            return;
          }
          break;
        case Setting.INITIAL_WINDOW_SIZE: {
          if (value > MAX_WINDOW) {
            this.connectionError(ErrorCode.FLOW_CONTROL_ERROR, 'INITIAL_WINDOW_SIZE too large');
            return;
          }
          const delta = value - this.peerInitialWindow;
          this.peerInitialWindow = value;
          for (const s of this.streams.values()) {
            s.sendWindow += delta;
            if (s.sendWindow > MAX_WINDOW) {
              this.connectionError(ErrorCode.FLOW_CONTROL_ERROR, 'stream window overflow');
              return;
            }
          }
          if (delta > 0) windowGrew = true;
          break;
        }
        case Setting.MAX_FRAME_SIZE:
          if (value < DEFAULT_MAX_FRAME_SIZE || value > MAX_FRAME_SIZE_LIMIT) {
            this.connectionError(ErrorCode.PROTOCOL_ERROR, 'MAX_FRAME_SIZE out of range');
            return;
          }
          this.peerMaxFrame = value;
          break;
        default:
          // HEADER_TABLE_SIZE: our encoder never indexes. MAX_CONCURRENT_STREAMS: we never push.
          // MAX_HEADER_LIST_SIZE: advisory. Unknown settings are ignored.
          break;
      }
    }
    const pos = this.reserve(FRAME_HEADER_BYTES);
    writeFrameHeader(this.slab, pos, 0, FrameType.SETTINGS, Flag.ACK, 0);
    this.commit(pos + FRAME_HEADER_BYTES);
    if (windowGrew) this.pump();
  }

  private onPing(flags: number, id: number, buf: Buffer, start: number, end: number): void {
    if (id !== 0) {
      this.connectionError(ErrorCode.PROTOCOL_ERROR, 'PING on a stream');
      return;
    }
    if (end - start !== 8) {
      this.connectionError(ErrorCode.FRAME_SIZE_ERROR, 'PING size');
      return;
    }
    if (flags & Flag.ACK) {
      if (buf.readUInt32BE(start) !== PING_MARK) return;
      const n = buf.readUInt32BE(start + 4);
      const acked = this.pings.get(n);
      if (acked !== undefined) {
        this.pings.delete(n);
        acked();
      }
      return;
    }
    const wrote = this.wroteSincePing;
    this.wroteSincePing = false;
    if (!this.options.ping(wrote)) {
      this.emitGoaway(this.lastPeerStreamId, ErrorCode.ENHANCE_YOUR_CALM, 'too_many_pings');
      this.closeAfterFlush();
      return;
    }
    const pos = this.reserve(FRAME_HEADER_BYTES + 8);
    writeFrameHeader(this.slab, pos, 8, FrameType.PING, Flag.ACK, 0);
    buf.copy(this.slab, pos + FRAME_HEADER_BYTES, start, end);
    this.commit(pos + FRAME_HEADER_BYTES + 8);
  }

  private onGoaway(): void {
    this.peerGoaway = true;
    if (this.streams.size === 0) {
      this.endWhenFlushed = true;
      this.flushSoon();
    }
  }

  private onWindowUpdate(id: number, buf: Buffer, start: number, end: number): void {
    if (end - start !== 4) {
      this.connectionError(ErrorCode.FRAME_SIZE_ERROR, 'WINDOW_UPDATE size');
      return;
    }
    const increment = buf.readUInt32BE(start) & 0x7fffffff;
    if (id === 0) {
      if (increment === 0) {
        this.connectionError(ErrorCode.PROTOCOL_ERROR, 'WINDOW_UPDATE of 0');
        return;
      }
      this.connSendWindow += increment;
      if (this.connSendWindow > MAX_WINDOW) {
        this.connectionError(ErrorCode.FLOW_CONTROL_ERROR, 'connection window overflow');
        return;
      }
      this.pump();
      return;
    }
    const s = this.streams.get(id);
    if (s === undefined) {
      if (id > this.lastPeerStreamId) this.connectionError(ErrorCode.PROTOCOL_ERROR, 'WINDOW_UPDATE on an idle stream');
      return;
    }
    if (increment === 0) {
      this.streamError(id, ErrorCode.PROTOCOL_ERROR);
      return;
    }
    s.sendWindow += increment;
    if (s.sendWindow > MAX_WINDOW) {
      this.streamError(id, ErrorCode.FLOW_CONTROL_ERROR);
      return;
    }
    if (s.scheduled) this.pump();
  }

  private onDrain(): void {
    this.writable = true;
    if (this.readPaused) {
      this.readPaused = false;
      this.socket.resume();
    }
    this.pump();
    if (this.outBytes > 0) this.scheduleFlush();
  }

  private onEnd(): void {
    // The peer closed its side: nothing more will come. Streams end with the socket.
    if (!this.socket.writableEnded) this.endSocket();
  }

  private onClose(): void {
    if (this.closedDone) return;
    this.closedDone = true;
    this.dead = true;
    if (this.endTimer !== null) clearTimeout(this.endTimer);
    this.pings.clear();
    this.abortAll();
    this.pieces = [];
    this.outBytes = 0;
    this.options.closed();
  }

  // ---------------------------------------------------------------- errors

  /** RFC 9113 §5.4.1: GOAWAY with the code, stop reading, abort all streams, end the socket. */
  private connectionError(code: number, debug: string): void {
    if (this.dead) return;
    this.emitGoaway(this.lastPeerStreamId, code, debug);
    this.closeAfterFlush();
  }

  private closeAfterFlush(): void {
    this.dead = true;
    this.abortAll();
    this.endSocket();
  }

  /** RFC 9113 §5.4.2: RST_STREAM; the stream (if open) is aborted with the code. */
  private streamError(id: number, code: number): void {
    const s = this.streams.get(id);
    if (s === undefined) {
      this.emitRst(id, code);
      return;
    }
    const wasEnded = s.ended;
    this.resetStream(s, code);
    if (!wasEnded) {
      try {
        s.handlers.aborted(code);
      } catch {
        // The stream is gone already.
      }
    }
  }

  private handlerFailed(s: Stream): void {
    if (!s.done) {
      s.ended = true;
      this.resetStream(s, ErrorCode.INTERNAL_ERROR);
    }
  }

  private abortAll(): void {
    if (this.streams.size === 0) return;
    const open = [...this.streams.values()];
    for (const s of open) {
      const wasEnded = s.ended;
      this.removeStream(s);
      if (wasEnded) continue;
      try {
        s.handlers.aborted(-1);
      } catch {
        // Closing anyway: one handler's failure must not keep the others from hearing of it.
      }
    }
  }

  // ---------------------------------------------------------------- streams

  /** RST_STREAM for `s` and forget it (queued DATA dropped). */
  resetStream(s: Stream, code: number): void {
    if (s.done) return;
    this.removeStream(s);
    if (this.dead) return;
    this.emitRst(s.id, code);
    this.scheduleFlush();
  }

  private removeStream(s: Stream): void {
    if (s.done) return;
    s.done = true;
    s.ended = true;
    if (s.queuedBytes > 0) {
      s.queue = [];
      s.queuedBytes = 0;
    }
    s.trailers = null;
    this.streams.delete(s.id);
    // Going away and now idle: end the socket after the next flush (not from inside the pump).
    if (this.streams.size === 0 && (this.goawaySent || this.peerGoaway) && !this.dead) {
      this.endWhenFlushed = true;
      this.flushSoon();
    }
  }

  /** `s` has queued DATA: put it in the send list and move what the windows allow. */
  schedule(s: Stream): void {
    if (!s.scheduled) {
      s.scheduled = true;
      this.sendList.push(s);
    }
    this.pump();
  }

  /** The stream's last DATA is out (or there was none): trailers, then close it. */
  finish(s: Stream, trailers: readonly HeaderField[]): void {
    if (s.done || this.dead) return;
    if (trailers.length === 0) {
      this.wroteSincePing = true;
      const pos = this.reserve(FRAME_HEADER_BYTES);
      writeFrameHeader(this.slab, pos, 0, FrameType.DATA, Flag.END_STREAM, s.id);
      this.commit(pos + FRAME_HEADER_BYTES);
    } else {
      this.emitHeaders(s.id, trailers, true);
    }
    // A response complete before the request: ask the peer to stop sending (RFC 9113 §8.1).
    if (!s.remoteClosed) this.emitRst(s.id, ErrorCode.NO_ERROR);
    this.removeStream(s);
    this.scheduleFlush();
  }

  /**
   * Moves queued DATA into the output while the windows, the socket and OUTPUT_CAP allow: one
   * frame per stream per pass over sendList, so streams share the connection window.
   */
  private pump(): void {
    if (this.dead) return;
    const list = this.sendList;
    let progress = true;
    while (progress && list.length > 0) {
      progress = false;
      for (let i = 0; i < list.length; i++) {
        const s = list[i]!;
        if (s.done || s.queuedBytes === 0) {
          if (!s.done && s.trailers !== null) {
            const trailers = s.trailers;
            s.trailers = null;
            this.finish(s, trailers);
          }
          s.scheduled = false;
          list.splice(i, 1);
          i--;
          continue;
        }
        if (!this.writable || this.outBytes >= OUTPUT_CAP || this.connSendWindow <= 0) break;
        const n = Math.min(s.queuedBytes, s.sendWindow, this.connSendWindow, this.peerMaxFrame);
        if (n <= 0) continue;
        this.emitData(s, n);
        progress = true;
        if (s.needDrain && s.queuedBytes <= STREAM_HIGH_WATER) {
          s.needDrain = false;
          this.drainOwed.push(s);
        }
        if (s.queuedBytes === 0) {
          // Done with this stream: trailers (if end() came) right behind its last DATA.
          s.scheduled = false;
          list.splice(i, 1);
          i--;
          if (s.trailers !== null) {
            const trailers = s.trailers;
            s.trailers = null;
            this.finish(s, trailers);
          }
        }
      }
    }
    if (this.outBytes > 0) this.scheduleFlush();
    if (this.drainOwed.length > 0) {
      const owed = this.drainOwed;
      this.drainOwed = [];
      for (const s of owed) {
        if (s.ended || s.done) continue;
        try {
          s.handlers.drain();
        } catch {
          this.handlerFailed(s);
        }
      }
    }
  }

  // ---------------------------------------------------------------- output

  /** Room for `n` bytes at the returned slab position; commit(end) after writing them. */
  private reserve(n: number): number {
    if (this.slab.length - this.slabPos < n) {
      this.cut();
      this.slab = Buffer.allocUnsafe(Math.max(SLAB_BYTES, n));
      this.slabStart = 0;
      this.slabPos = 0;
    }
    return this.slabPos;
  }

  private commit(end: number): void {
    this.outBytes += end - this.slabPos;
    this.slabPos = end;
  }

  /** Close the slab's current piece (the bytes written since the last cut). */
  private cut(): void {
    if (this.slabPos > this.slabStart) {
      this.pieces.push(this.slab.subarray(this.slabStart, this.slabPos));
      this.slabStart = this.slabPos;
    }
  }

  scheduleFlush(): void {
    if (this.outBytes > 0) this.flushSoon();
  }

  private flushSoon(): void {
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    queued.push(this);
    if (queuedTick) return;
    queuedTick = true;
    process.nextTick(flushQueuedTick);
  }

  flush(): void {
    this.flushScheduled = false;
    if (this.closedDone || this.socket.writableEnded || this.socket.destroyed) return;
    this.cut();
    const pieces = this.pieces;
    if (pieces.length === 0) {
      if (this.endWhenFlushed) this.endSocket();
      return;
    }
    this.pieces = [];
    this.outBytes = 0;
    let ok: boolean;
    if (pieces.length === 1) {
      ok = this.socket.write(pieces[0]!);
    } else {
      this.socket.cork();
      ok = true;
      for (const p of pieces) ok = this.socket.write(p);
      this.socket.uncork();
    }
    if (!ok) {
      this.writable = false;
      if (this.socket.writableLength > READ_PAUSE_BYTES && !this.readPaused) {
        this.readPaused = true;
        this.socket.pause();
      }
    } else if (this.sendList.length > 0 && !this.dead) this.pump();
    if (this.endWhenFlushed && this.outBytes === 0) this.endSocket();
  }

  private sendPreface(): void {
    const settings: Array<[number, number]> = [
      [Setting.MAX_CONCURRENT_STREAMS, this.options.maxConcurrentStreams],
      [Setting.INITIAL_WINDOW_SIZE, this.recvWindowTarget],
      [Setting.MAX_HEADER_LIST_SIZE, this.maxHeaderListBytes],
    ];
    const length = settings.length * 6;
    let pos = this.reserve(FRAME_HEADER_BYTES + length + FRAME_HEADER_BYTES + 4);
    writeFrameHeader(this.slab, pos, length, FrameType.SETTINGS, 0, 0);
    pos += FRAME_HEADER_BYTES;
    for (const [key, value] of settings) {
      this.slab.writeUInt16BE(key, pos);
      this.slab.writeUInt32BE(value >>> 0, pos + 2);
      pos += 6;
    }
    this.commit(pos);
    if (this.recvWindowTarget > DEFAULT_WINDOW) {
      const increment = this.recvWindowTarget - DEFAULT_WINDOW;
      this.emitWindowUpdate(0, increment);
      this.connRecvWindow += increment;
    }
    this.flush();
  }

  /** HEADERS (+ CONTINUATIONs when the block is larger than the peer's max frame size). */
  emitHeaders(id: number, fields: readonly HeaderField[], endStream: boolean): void {
    if (this.dead) return;
    this.wroteSincePing = true;
    const block = encodedBlock(fields);
    const blockLength = block.length;
    const endFlag = endStream ? Flag.END_STREAM : 0;
    if (blockLength <= this.peerMaxFrame) {
      const pos = this.reserve(FRAME_HEADER_BYTES + blockLength);
      writeFrameHeader(this.slab, pos, blockLength, FrameType.HEADERS, endFlag | Flag.END_HEADERS, id);
      copyBytes(block, 0, blockLength, this.slab, pos + FRAME_HEADER_BYTES);
      this.commit(pos + FRAME_HEADER_BYTES + blockLength);
      return;
    }
    let offset = 0;
    let type: number = FrameType.HEADERS;
    do {
      const n = Math.min(this.peerMaxFrame, blockLength - offset);
      const last = offset + n === blockLength;
      const flags = (type === FrameType.HEADERS ? endFlag : 0) | (last ? Flag.END_HEADERS : 0);
      const pos = this.reserve(FRAME_HEADER_BYTES + n);
      writeFrameHeader(this.slab, pos, n, type, flags, id);
      block.copy(this.slab, pos + FRAME_HEADER_BYTES, offset, offset + n);
      this.commit(pos + FRAME_HEADER_BYTES + n);
      offset += n;
      type = FrameType.CONTINUATION;
    } while (offset < blockLength);
  }

  /**
   * write()'s short cut for a stream with nothing queued: `data` as one DATA frame now, if the
   * windows, the frame size and the socket allow it and no other stream waits (their turn first).
   */
  sendNow(s: Stream, data: Buffer): boolean {
    const n = data.length;
    if (this.dead || !this.writable || this.outBytes >= OUTPUT_CAP || this.sendList.length > 0) return false;
    if (n > s.sendWindow || n > this.connSendWindow || n > this.peerMaxFrame) return false;
    s.sendWindow -= n;
    this.connSendWindow -= n;
    this.wroteSincePing = true;
    if (n > SMALL_COPY) {
      const pos = this.reserve(FRAME_HEADER_BYTES);
      writeFrameHeader(this.slab, pos, n, FrameType.DATA, 0, s.id);
      this.commit(pos + FRAME_HEADER_BYTES);
      this.cut();
      this.pieces.push(data);
      this.outBytes += n;
    } else {
      const pos = this.reserve(FRAME_HEADER_BYTES + n);
      writeFrameHeader(this.slab, pos, n, FrameType.DATA, 0, s.id);
      copyBytes(data, 0, n, this.slab, pos + FRAME_HEADER_BYTES);
      this.commit(pos + FRAME_HEADER_BYTES + n);
    }
    this.scheduleFlush();
    return true;
  }

  /** One DATA frame of `n` bytes from the front of `s`'s queue (n <= queued, windows, max frame). */
  private emitData(s: Stream, n: number): void {
    this.wroteSincePing = true;
    s.sendWindow -= n;
    this.connSendWindow -= n;
    s.queuedBytes -= n;
    const head = s.queue[0]!;
    const headLeft = head.length - s.queueOffset;
    if (n > SMALL_COPY && headLeft >= n) {
      // By reference: the frame header in the slab, the payload as its own piece.
      const pos = this.reserve(FRAME_HEADER_BYTES);
      writeFrameHeader(this.slab, pos, n, FrameType.DATA, 0, s.id);
      this.commit(pos + FRAME_HEADER_BYTES);
      this.cut();
      this.pieces.push(s.queueOffset === 0 && n === head.length ? head : head.subarray(s.queueOffset, s.queueOffset + n));
      this.outBytes += n;
      this.advanceQueue(s, n);
      return;
    }
    const pos = this.reserve(FRAME_HEADER_BYTES + n);
    writeFrameHeader(this.slab, pos, n, FrameType.DATA, 0, s.id);
    let at = pos + FRAME_HEADER_BYTES;
    let left = n;
    while (left > 0) {
      const b = s.queue[0]!;
      const take = Math.min(left, b.length - s.queueOffset);
      copyBytes(b, s.queueOffset, s.queueOffset + take, this.slab, at);
      at += take;
      left -= take;
      this.advanceQueue(s, take);
    }
    this.commit(at);
  }

  private advanceQueue(s: Stream, n: number): void {
    s.queueOffset += n;
    if (s.queueOffset >= s.queue[0]!.length) {
      s.queue.shift();
      s.queueOffset = 0;
    }
  }

  private emitRst(id: number, code: number): void {
    if (this.dead) return;
    const pos = this.reserve(FRAME_HEADER_BYTES + 4);
    writeFrameHeader(this.slab, pos, 4, FrameType.RST_STREAM, 0, id);
    this.slab.writeUInt32BE(code >>> 0, pos + FRAME_HEADER_BYTES);
    this.commit(pos + FRAME_HEADER_BYTES + 4);
  }

  private emitWindowUpdate(id: number, increment: number): void {
    const pos = this.reserve(FRAME_HEADER_BYTES + 4);
    writeFrameHeader(this.slab, pos, 4, FrameType.WINDOW_UPDATE, 0, id);
    this.slab.writeUInt32BE(increment, pos + FRAME_HEADER_BYTES);
    this.commit(pos + FRAME_HEADER_BYTES + 4);
  }

  private refillConnectionWindow(): void {
    this.emitWindowUpdate(0, this.connRecvUnacked);
    this.connRecvWindow += this.connRecvUnacked;
    this.connRecvUnacked = 0;
  }

  private emitGoaway(lastStreamId: number, code: number, debug: string): void {
    if (this.goawaySent && code === ErrorCode.NO_ERROR) return;
    this.goawaySent = true;
    const length = 8 + debug.length;
    const pos = this.reserve(FRAME_HEADER_BYTES + length);
    writeFrameHeader(this.slab, pos, length, FrameType.GOAWAY, 0, 0);
    this.slab.writeUInt32BE(lastStreamId, pos + FRAME_HEADER_BYTES);
    this.slab.writeUInt32BE(code >>> 0, pos + FRAME_HEADER_BYTES + 4);
    this.slab.write(debug, pos + FRAME_HEADER_BYTES + 8, 'latin1');
    this.commit(pos + FRAME_HEADER_BYTES + length);
  }

  /** Flush what is queued and end the socket (destroy it if the peer does not close in time). */
  private endSocket(): void {
    if (this.ending || this.closedDone) return;
    this.ending = true;
    this.flush();
    this.socket.end();
    this.endTimer = setTimeout(() => this.socket.destroy(), END_TIMEOUT_MS);
    this.endTimer.unref();
  }
}

/**
 * Serves one HTTP/2 client connection on `socket` (plain TCP, or TLS with ALPN h2 negotiated),
 * unread: the client preface is the first thing read. Our SETTINGS leave at once.
 */
export function serveH2Connection(socket: net.Socket, options: H2ConnectionOptions): H2Connection {
  return new ServerConnection(socket, options);
}
