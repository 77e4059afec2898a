// Authority shim: lets clients that send a URL as the HTTP/2 `:authority` reach the gRPC server.
//
// etcdctl 3.4 (grpc-go) sends the endpoint string verbatim as `:authority` for `endpoint
// status|health|hashkv` and `--cluster`, e.g. "http://127.0.0.1:2379". etcd (Go) accepts it;
// Node's HTTP/2 (nghttp2) rejects an authority containing '/' and resets the stream with
// PROTOCOL_ERROR. nghttp2 has no switch for that check, so we fix the bytes before it sees them.
//
// How: for each accepted socket, before it is handed to grpc-js, we read the client preface and
// the client's first SETTINGS, answer with one empty server SETTINGS (grpc-go sends no request
// before it has the server's SETTINGS), and read on until the first HEADERS frame. If that
// frame's `:authority` value contains "://", its '/' bytes become '.' ("http:..127.0.0.1:2379"),
// written as a plain string literal. Then the socket gets its bytes back (unshift) and goes to
// grpc-js; Node's Http2Session feeds a socket's already-buffered bytes to nghttp2 before the
// native reads take over, so the raw socket stays on Node's native fast path.
//
// Invariants:
// - nghttp2 sees a valid HTTP/2 stream: the client's ACK of OUR empty SETTINGS is removed
//   (nghttp2 never sent that SETTINGS; it would take the ACK for its own, and the real ACK of its
//   own would then be an "unexpected ACK", a connection error). nghttp2 sends its own SETTINGS
//   after takeover; a second server SETTINGS is legal and its ACK reaches nghttp2 normally.
// - The rewritten value has the same decoded length as the original, so the HPACK dynamic table
//   (entry size = name + value + 32) evolves identically in the client's encoder and nghttp2's
//   decoder; later requests that index the entry simply get the rewritten value. Only the first
//   HEADERS frame is touched; its length field is updated to the new payload size.
// - Anything we do not fully understand (no preface, a first frame that is not SETTINGS, a
//   HEADERS needing CONTINUATION, an unexpected frame type, an unparseable header block, a rewrite
//   that would exceed the default max frame size, more than maxBufferedBytes, or timeoutMs without
//   a HEADERS frame) ends the shim: the bytes go to nghttp2 unmodified (apart from our ACK), and
//   nghttp2 answers as it always did.
// - While the shim holds a socket it has an 'error' listener (no uncaught errors); a socket that
//   ends, errs or closes before hand-over is destroyed and never reaches grpc-js.

import type net from 'node:net';
import { huffmanDecode } from './hpack-huffman.js';

const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');
const FRAME_HEADER_BYTES = 9;
const FRAME_HEADERS = 0x1;
const FRAME_PRIORITY = 0x2;
const FRAME_SETTINGS = 0x4;
const FRAME_PING = 0x6;
const FRAME_WINDOW_UPDATE = 0x8;
const FLAG_ACK = 0x1;
const FLAG_END_HEADERS = 0x4;
const FLAG_PADDED = 0x8;
const FLAG_PRIORITY = 0x20;
/** SETTINGS_MAX_FRAME_SIZE's initial value: nghttp2 enforces it until its own SETTINGS is ACKed. */
const DEFAULT_MAX_FRAME_SIZE = 16_384;
/** Frames a client may legitimately send between its SETTINGS and its first request. */
const BEFORE_HEADERS_OK = new Set([FRAME_SETTINGS, FRAME_WINDOW_UPDATE, FRAME_PING, FRAME_PRIORITY]);
/** An empty SETTINGS frame: length 0, type SETTINGS, no flags, stream 0. */
const EMPTY_SETTINGS = Buffer.from([0, 0, 0, FRAME_SETTINGS, 0, 0, 0, 0, 0]);
/** `:authority` is entry 1 of HPACK's static table (RFC 7541 Appendix A). */
const AUTHORITY_INDEX = 1;
const AUTHORITY_NAME = Buffer.from(':authority', 'latin1');
/** Larger HPACK integers than this are treated as garbage (no header field is that long). */
const MAX_HPACK_INTEGER = 1 << 24;

// ---------------------------------------------------------------------------------------------
// HPACK header block (RFC 7541 §5, §6)

interface Decoded {
  value: number;
  next: number;
}

/** Reads an HPACK integer with an N-bit prefix at `pos` (RFC 7541 §5.1). */
function readInteger(buf: Uint8Array, pos: number, end: number, prefixBits: number): Decoded | undefined {
  if (pos >= end) return undefined;
  const max = (1 << prefixBits) - 1;
  let value = buf[pos]! & max;
  let next = pos + 1;
  if (value < max) return { value, next };
  let shift = 0;
  for (;;) {
    if (next >= end) return undefined;
    const byte = buf[next++]!;
    value += (byte & 0x7f) * 2 ** shift;
    if (value > MAX_HPACK_INTEGER) return undefined;
    if ((byte & 0x80) === 0) return { value, next };
    shift += 7;
  }
}

/** Encodes an HPACK integer with an N-bit prefix; `firstByteBits` are the representation's flag bits. */
function writeInteger(value: number, prefixBits: number, firstByteBits: number): Buffer {
  const max = (1 << prefixBits) - 1;
  if (value < max) return Buffer.from([firstByteBits | value]);
  const bytes = [firstByteBits | max];
  let rest = value - max;
  while (rest >= 0x80) {
    bytes.push((rest & 0x7f) | 0x80);
    rest = Math.floor(rest / 0x80);
  }
  bytes.push(rest);
  return Buffer.from(bytes);
}

interface StringLiteral {
  /** Where the literal starts (its H bit and length prefix) and ends in the block. */
  start: number;
  end: number;
  huffman: boolean;
  /** The octets after the length prefix, as sent. */
  dataStart: number;
}

function readString(buf: Uint8Array, pos: number, end: number): StringLiteral | undefined {
  if (pos >= end) return undefined;
  const huffman = (buf[pos]! & 0x80) !== 0;
  const length = readInteger(buf, pos, end, 7);
  if (length === undefined || length.next + length.value > end) return undefined;
  return { start: pos, end: length.next + length.value, huffman, dataStart: length.next };
}

function stringValue(buf: Uint8Array, literal: StringLiteral): Buffer | undefined {
  if (literal.huffman) return huffmanDecode(buf, literal.dataStart, literal.end);
  return Buffer.from(buf.subarray(literal.dataStart, literal.end));
}

export interface AuthorityField {
  /** The value's string literal (H bit, length, octets) within the block. */
  literal: StringLiteral;
  /** The decoded value. */
  value: Buffer;
}

/**
 * Walks a complete header block and returns the first `:authority` field sent as a literal
 * (name by static index 1, or as a literal name). Undefined when there is none or the block is
 * malformed. Every representation is parsed, since fields have no length of their own.
 */
export function findAuthority(block: Uint8Array): AuthorityField | undefined {
  let pos = 0;
  const end = block.length;
  while (pos < end) {
    const first = block[pos]!;
    if (first & 0x80) {
      // Indexed header field (1xxxxxxx): a table reference, no literal to read.
      const index = readInteger(block, pos, end, 7);
      if (index === undefined) return undefined;
      pos = index.next;
      continue;
    }
    if ((first & 0xe0) === 0x20) {
      // Dynamic table size update (001xxxxx).
      const size = readInteger(block, pos, end, 5);
      if (size === undefined) return undefined;
      pos = size.next;
      continue;
    }
    // Literal: with incremental indexing (01xxxxxx, 6-bit index), else without indexing
    // (0000xxxx) or never indexed (0001xxxx), both with a 4-bit index.
    const prefixBits = (first & 0xc0) === 0x40 ? 6 : 4;
    const index = readInteger(block, pos, end, prefixBits);
    if (index === undefined) return undefined;
    pos = index.next;
    let isAuthority = index.value === AUTHORITY_INDEX;
    if (index.value === 0) {
      const name = readString(block, pos, end);
      if (name === undefined) return undefined;
      const nameValue = stringValue(block, name);
      if (nameValue === undefined) return undefined;
      isAuthority = nameValue.equals(AUTHORITY_NAME);
      pos = name.end;
    }
    const literal = readString(block, pos, end);
    if (literal === undefined) return undefined;
    if (isAuthority) {
      const value = stringValue(block, literal);
      return value === undefined ? undefined : { literal, value };
    }
    pos = literal.end;
  }
  return undefined;
}

/**
 * The authority nghttp2 will accept for `value`, or undefined when it needs no change: a value
 * with a scheme ("://") gets every '/' replaced by '.', keeping its length.
 */
export function sanitizedAuthority(value: Buffer): Buffer | undefined {
  if (value.indexOf('://', 0, 'latin1') < 0) return undefined;
  const out = Buffer.from(value);
  for (let i = 0; i < out.length; i++) if (out[i] === 0x2f) out[i] = 0x2e;
  return out;
}

/**
 * Returns `block` with its `:authority` value sanitized and re-encoded as a plain (non-Huffman)
 * string literal, the representation and name unchanged; undefined when nothing changes or the
 * block cannot be parsed.
 */
export function rewriteHeaderBlock(block: Uint8Array): Buffer | undefined {
  const field = findAuthority(block);
  if (field === undefined) return undefined;
  const value = sanitizedAuthority(field.value);
  if (value === undefined) return undefined;
  return Buffer.concat([block.subarray(0, field.literal.start), writeInteger(value.length, 7, 0x00), value, block.subarray(field.literal.end)]);
}

/**
 * Rewrites one complete HEADERS frame (9-byte header included) whose block carries an
 * `:authority` with a scheme. PADDED and PRIORITY fields are kept as they are; the length field
 * is set to the new payload size. Undefined when the frame is left alone: not HEADERS, no
 * END_HEADERS (the block continues in CONTINUATION frames), malformed, nothing to rewrite, or a
 * result larger than the default maximum frame size.
 */
export function rewriteHeadersFrame(frame: Uint8Array): Buffer | undefined {
  if (frame.length < FRAME_HEADER_BYTES) return undefined;
  const length = (frame[0]! << 16) | (frame[1]! << 8) | frame[2]!;
  const type = frame[3]!;
  const flags = frame[4]!;
  if (type !== FRAME_HEADERS || (flags & FLAG_END_HEADERS) === 0 || frame.length !== FRAME_HEADER_BYTES + length) return undefined;
  let blockStart = FRAME_HEADER_BYTES;
  let padding = 0;
  if (flags & FLAG_PADDED) {
    if (length < 1) return undefined;
    padding = frame[blockStart]!;
    blockStart += 1;
  }
  if (flags & FLAG_PRIORITY) blockStart += 5; // stream dependency (4) + weight (1)
  const blockEnd = frame.length - padding;
  if (blockEnd < blockStart) return undefined;
  const block = rewriteHeaderBlock(frame.subarray(blockStart, blockEnd));
  if (block === undefined) return undefined;
  const newLength = blockStart - FRAME_HEADER_BYTES + block.length + padding;
  if (newLength > DEFAULT_MAX_FRAME_SIZE) return undefined;
  const header = Buffer.from(frame.subarray(0, blockStart));
  header.writeUIntBE(newLength, 0, 3);
  return Buffer.concat([header, block, frame.subarray(blockEnd)]);
}

// ---------------------------------------------------------------------------------------------
// Connection hand-over

/** The most a client may send before acknowledging our SETTINGS (its window allows ~64 KiB). */
const HARD_LIMIT_BYTES = 1024 * 1024;

/** The longest a client may take to acknowledge our SETTINGS before it is disconnected. */
const ACK_WAIT_MS = 30_000;

export interface AuthorityShimOptions {
  /** How long to wait for the first HEADERS frame before handing over as is (default 1000 ms). */
  timeoutMs?: number;
  /** Most bytes held before handing over as is (default 64 KiB). */
  maxBufferedBytes?: number;
}

/**
 * Takes an accepted socket, fixes the first request's `:authority` if needed, and then calls
 * `handOver(socket)` with the socket paused and its (possibly modified) first bytes unshifted
 * back, ready for `injector.injectConnection`.
 */
export function shimAuthority(socket: net.Socket, handOver: (socket: net.Socket) => void, options: AuthorityShimOptions = {}): void {
  new HeldConnection(socket, handOver, options).start();
}

/** One accepted socket from accept to hand-over (or destruction); see the invariants above. */
class HeldConnection {
  private readonly timeoutMs: number;
  private readonly maxBufferedBytes: number;
  private received: Buffer = Buffer.alloc(0);
  /** Offset of the first frame not yet looked at (0 until the preface is complete). */
  private parsed = 0;
  private settingsSent = false;
  private headersSeen = false;
  /** Offset of the client's ACK of our SETTINGS, dropped at hand-over. */
  private ackAt: number | undefined;
  private rewrite: { start: number; end: number; frame: Buffer } | undefined;
  private done = false;
  /** The HEADERS wait timed out; hand over as soon as the client's ACK has been taken out. */
  private ackOnly = false;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly socket: net.Socket,
    private readonly handOver: (socket: net.Socket) => void,
    options: AuthorityShimOptions,
  ) {
    this.timeoutMs = options.timeoutMs ?? 1000;
    this.maxBufferedBytes = options.maxBufferedBytes ?? 65_536;
  }

  start(): void {
    this.timer = setTimeout(this.onTimeout, this.timeoutMs);
    // A connection waiting here must not keep a shutting-down process alive.
    this.timer.unref();
    this.socket.on('data', this.onData);
    this.socket.on('end', this.onGone);
    this.socket.on('error', this.onGone);
    this.socket.on('close', this.onGone);
  }

  private readonly onData = (chunk: Buffer): void => {
    this.received = this.received.length === 0 ? chunk : Buffer.concat([this.received, chunk]);
    this.step();
  };

  private readonly onGone = (): void => {
    if (this.done) return;
    this.done = true;
    this.detach();
    this.socket.destroy();
  };

  // After timeoutMs without a request, hand over — but never between our SETTINGS and the
  // client's ACK of it: nghttp2 would see that ACK as unexpected and close the connection
  // (seen under load, when a client took over a second to answer). A client that never
  // acknowledges within ACK_WAIT_MS is broken: drop it.
  private readonly onTimeout = (): void => {
    if (!this.settingsSent || this.ackAt !== undefined) {
      this.finish();
      return;
    }
    this.ackOnly = true;
    this.timer = setTimeout(this.onGone, ACK_WAIT_MS);
    this.timer.unref();
  };

  private detach(): void {
    clearTimeout(this.timer);
    this.socket.off('data', this.onData);
    this.socket.off('end', this.onGone);
    this.socket.off('error', this.onGone);
    this.socket.off('close', this.onGone);
  }

  private finish(): void {
    if (this.done) return;
    this.done = true;
    // Paused before the 'data' listener goes: a flowing stream without listeners drops data.
    this.socket.pause();
    this.detach();
    const bytes = this.editedBytes();
    if (bytes.length > 0) this.socket.unshift(bytes);
    this.handOver(this.socket);
  }

  /** What nghttp2 gets: the bytes received, without our ACK and with the rewritten HEADERS. */
  private editedBytes(): Buffer {
    const edits = [
      ...(this.ackAt === undefined ? [] : [{ start: this.ackAt, end: this.ackAt + FRAME_HEADER_BYTES, frame: Buffer.alloc(0) }]),
      ...(this.rewrite === undefined ? [] : [this.rewrite]),
    ].sort((a, b) => a.start - b.start);
    const pieces: Buffer[] = [];
    let from = 0;
    for (const edit of edits) {
      pieces.push(this.received.subarray(from, edit.start), edit.frame);
      from = edit.end;
    }
    pieces.push(this.received.subarray(from));
    return Buffer.concat(pieces);
  }

  private step(): void {
    if (this.parsed === 0 && !this.takePreface()) return;
    while (this.received.length - this.parsed >= FRAME_HEADER_BYTES) {
      const start = this.parsed;
      const end = start + FRAME_HEADER_BYTES + this.received.readUIntBE(start, 3);
      // Past the limit, hand over at once — except while our SETTINGS awaits its ACK: then
      // keep reading frames (the ACK may come after the request's DATA), see overLimit().
      if (end > this.maxBufferedBytes && (!this.settingsSent || this.ackAt !== undefined)) {
        this.finish();
        return;
      }
      if (this.received.length < end) {
        this.overLimit();
        return;
      }
      this.parsed = end;
      if (!this.takeFrame(start, end)) {
        this.finish();
        return;
      }
      // The ACK follows our SETTINGS within a round trip, so waiting for it costs at most that
      // for a client that sent its request without waiting for the server's SETTINGS.
      if ((this.headersSeen || this.ackOnly) && this.ackAt !== undefined) {
        this.finish();
        return;
      }
    }
    if (this.received.length >= this.maxBufferedBytes) this.overLimit();
  }

  /** True once the client preface is complete; hands over a client that does not send one. */
  private takePreface(): boolean {
    const have = Math.min(this.received.length, PREFACE.length);
    // Not HTTP/2 with prior knowledge: nghttp2 says so itself.
    if (!this.received.subarray(0, have).equals(PREFACE.subarray(0, have))) {
      this.finish();
      return false;
    }
    if (have < PREFACE.length) return false;
    this.parsed = PREFACE.length;
    return true;
  }

  /** Looks at one complete frame; false when the connection should be handed over now. */
  private takeFrame(start: number, end: number): boolean {
    const length = end - start - FRAME_HEADER_BYTES;
    const type = this.received[start + 3]!;
    const flags = this.received[start + 4]!;
    if (!this.settingsSent) {
      // The preface's SETTINGS must come first (RFC 9113 §3.4); otherwise leave it to nghttp2.
      if (type !== FRAME_SETTINGS || flags & FLAG_ACK) return false;
      this.socket.write(EMPTY_SETTINGS);
      this.settingsSent = true;
      return true;
    }
    if (type === FRAME_SETTINGS && flags & FLAG_ACK && this.ackAt === undefined) {
      // Only our SETTINGS is outstanding, so this ACK answers it. One with a payload is a
      // client error that nghttp2 should judge; stop here and pass it on.
      if (length !== 0) return false;
      this.ackAt = start;
    } else if (!this.headersSeen) {
      if (type === FRAME_HEADERS) {
        this.headersSeen = true;
        const frame = rewriteHeadersFrame(this.received.subarray(start, end));
        if (frame !== undefined) this.rewrite = { start, end, frame };
      } else if (!BEFORE_HEADERS_OK.has(type)) {
        // DATA, CONTINUATION, RST_STREAM, GOAWAY, unknown types: not ours to interpret.
        this.headersSeen = true;
      }
    }
    return true;
  }

  /**
   * Too much held: hand over — unless our SETTINGS is still unacknowledged (a client may send
   * its first request's DATA before the ACK): handing over then would let nghttp2 see that ACK
   * as unexpected and close the connection. The client's initial flow-control window (64 KiB)
   * bounds what it can send meanwhile; a client that goes past HARD_LIMIT_BYTES is dropped.
   */
  private overLimit(): void {
    if (this.received.length < this.maxBufferedBytes) return;
    if (!this.settingsSent || this.ackAt !== undefined) {
      this.finish();
      return;
    }
    if (this.received.length > HARD_LIMIT_BYTES) this.onGone();
  }
}
