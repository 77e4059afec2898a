// MetaStore's compact binary encoding of Raft messages and of the frames that carry them
// between peers (layout documented in proto/metastore/raftpb/peer.proto, version 1).
//
// This runs for every replicated entry on the leader's main thread, so the encoder measures a
// batch first and writes it into one exactly-sized buffer (one copy of each entry's data, no
// growth, no BigInt for terms and indexes), and the decoder hands out entry data and contexts
// as views into the received buffer instead of copies.
//
// Invariants:
// - A decoded message holds views into the buffer it was decoded from: that buffer must not be
//   reused or mutated afterwards (gRPC hands every received frame its own buffer).
// - Snapshot data is never part of a message encoding; a decoded snapshot has empty data and
//   the transport attaches the reassembled data (see peer-transport.ts).
// - Bad bytes from the network raise FrameDecodeError, never an assertion: they are not bugs.

import { assert } from '../util/assert.js';
import { EntryType, MessageType, type ConfState, type Entry, type Message, type Snapshot } from '../raft/types.js';

export const CODEC_VERSION = 1;

/** A frame's routing header: the receiver drops frames whose cluster or receiver is not its own. */
export interface FrameHeader {
  clusterId: bigint;
  fromId: bigint;
  toId: bigint;
}

export interface Frame extends FrameHeader {
  messages: Message[];
}

/** Malformed bytes from a peer: reported and dropped, never trusted. */
export class FrameDecodeError extends Error {
  override name = 'FrameDecodeError';
  readonly code = 'TRANSPORT_BAD_FRAME';
}

const FLAG_REJECT = 1;
const FLAG_SNAPSHOT = 2;
const FLAG_CONTEXT = 4;

/** type, flags, to, from, term, logTerm, index, commit, rejectHint, entry count. */
const MESSAGE_FIXED_BYTES = 1 + 1 + 8 + 8 + 5 * 8 + 4;
/** term, index, type, data length. */
const ENTRY_FIXED_BYTES = 8 + 8 + 1 + 4;
/** version, cluster, sender, receiver, message count. */
export const FRAME_HEADER_BYTES = 1 + 8 + 8 + 8 + 4;
/** Protobuf tag of PeerFrame.frame (field 1, length-delimited). */
const PEER_FRAME_TAG = 0x0a;

const TWO_POW_32 = 4294967296;
/** High word limit of a safe integer (2^53 - 1 has high word 2^21 - 1). */
const MAX_SAFE_HIGH_WORD = 0x1fffff;
const MESSAGE_TYPE_COUNT = Object.keys(MessageType).length;
const EMPTY = new Uint8Array(0);

/** Bytes the message takes inside a frame; used for batching and queue bounds. */
export function messageEncodedSize(m: Message): number {
  let size = MESSAGE_FIXED_BYTES;
  const entries = m.entries;
  for (let i = 0; i < entries.length; i++) size += ENTRY_FIXED_BYTES + entries[i]!.data.length;
  if (m.snapshot !== undefined) {
    const cs = m.snapshot.metadata.confState;
    size += 8 + 8 + 4 + 8 * cs.voters.length + 4 + 8 * cs.learners.length;
  }
  if (m.context !== undefined) size += 4 + m.context.length;
  return size;
}

function varintBytes(value: number): number {
  let n = 1;
  while (value >= 0x80) {
    value = Math.floor(value / 128);
    n++;
  }
  return n;
}

function writeVarint(buf: Buffer, offset: number, value: number): number {
  while (value >= 0x80) {
    buf[offset++] = (value % 128) | 0x80;
    value = Math.floor(value / 128);
  }
  buf[offset++] = value;
  return offset;
}

/** Writes a non-negative safe integer as a big-endian u64 without going through BigInt. */
function writeU53(buf: Buffer, offset: number, value: number, what: string): number {
  assert(value >= 0 && Number.isSafeInteger(value), `${what} is not a non-negative safe integer: ${value}`);
  buf.writeUInt32BE(Math.floor(value / TWO_POW_32), offset);
  buf.writeUInt32BE(value >>> 0, offset + 4);
  return offset + 8;
}

function writeMessage(buf: Buffer, offset: number, m: Message): number {
  let flags = 0;
  if (m.reject) flags |= FLAG_REJECT;
  if (m.snapshot !== undefined) flags |= FLAG_SNAPSHOT;
  if (m.context !== undefined) flags |= FLAG_CONTEXT;
  buf[offset] = m.type;
  buf[offset + 1] = flags;
  offset += 2;
  // writeBigUInt64BE throws on IDs outside uint64: wrapping an ID silently would be a data bug.
  buf.writeBigUInt64BE(m.to, offset);
  buf.writeBigUInt64BE(m.from, offset + 8);
  offset += 16;
  offset = writeU53(buf, offset, m.term, 'term');
  offset = writeU53(buf, offset, m.logTerm, 'logTerm');
  offset = writeU53(buf, offset, m.index, 'index');
  offset = writeU53(buf, offset, m.commit, 'commit');
  offset = writeU53(buf, offset, m.rejectHint, 'rejectHint');
  const entries = m.entries;
  buf.writeUInt32BE(entries.length, offset);
  offset += 4;
  for (let i = 0; i < entries.length; i++) {
    const e = entries[i]!;
    offset = writeU53(buf, offset, e.term, 'entry term');
    offset = writeU53(buf, offset, e.index, 'entry index');
    buf[offset] = e.type;
    buf.writeUInt32BE(e.data.length, offset + 1);
    offset += 5;
    buf.set(e.data, offset);
    offset += e.data.length;
  }
  if (m.snapshot !== undefined) {
    const md = m.snapshot.metadata;
    offset = writeU53(buf, offset, md.index, 'snapshot index');
    offset = writeU53(buf, offset, md.term, 'snapshot term');
    offset = writeIds(buf, offset, md.confState.voters);
    offset = writeIds(buf, offset, md.confState.learners);
  }
  if (m.context !== undefined) {
    buf.writeUInt32BE(m.context.length, offset);
    offset += 4;
    buf.set(m.context, offset);
    offset += m.context.length;
  }
  return offset;
}

function writeIds(buf: Buffer, offset: number, ids: readonly bigint[]): number {
  buf.writeUInt32BE(ids.length, offset);
  offset += 4;
  for (const id of ids) {
    buf.writeBigUInt64BE(id, offset);
    offset += 8;
  }
  return offset;
}

/** One message on its own: a version byte, then the message as laid out inside a frame. */
export function encodeMessage(m: Message): Buffer {
  const size = 1 + messageEncodedSize(m);
  const buf = Buffer.allocUnsafe(size);
  buf[0] = CODEC_VERSION;
  const end = writeMessage(buf, 1, m);
  assert(end === size, `message encoding wrote ${end} bytes, measured ${size}`);
  return buf;
}

export function decodeMessage(buf: Buffer): Message {
  const reader = new Reader(buf);
  const version = reader.u8();
  if (version !== CODEC_VERSION) throw new FrameDecodeError(`unsupported message encoding version ${version}`);
  const m = reader.message();
  reader.expectEnd();
  return m;
}

/** Bytes of a gRPC message prefix: the compressed flag and the message length. */
export const GRPC_PREFIX_BYTES = 5;

/**
 * Encodes messages[start, end) as a PeerFrame protobuf message (field 1 wrapping the binary
 * frame), ready to hand to gRPC as is, or with `grpcPrefix` behind its gRPC length prefix,
 * ready to write to an HTTP/2 stream. `sizes[i]`, when given, must be
 * messageEncodedSize(messages[i]); the transport measures once on enqueue and passes them in.
 */
export function encodePeerFrame(
  header: FrameHeader,
  messages: readonly Message[],
  range: { start?: number; end?: number; sizes?: readonly number[]; grpcPrefix?: boolean } = {},
): Buffer {
  const start = range.start ?? 0;
  const end = range.end ?? messages.length;
  const sizes = range.sizes;
  let frameBytes = FRAME_HEADER_BYTES;
  for (let i = start; i < end; i++) frameBytes += sizes !== undefined ? sizes[i]! : messageEncodedSize(messages[i]!);
  // With grpcPrefix, the gRPC message prefix (uncompressed flag, 4-byte big-endian length)
  // comes first, so the buffer is written to an HTTP/2 stream as it is.
  const prefix = range.grpcPrefix === true ? GRPC_PREFIX_BYTES : 0;
  const message = 1 + varintBytes(frameBytes) + frameBytes;
  const total = prefix + message;
  const buf = Buffer.allocUnsafe(total);
  if (prefix !== 0) {
    buf[0] = 0;
    buf.writeUInt32BE(message, 1);
  }
  buf[prefix] = PEER_FRAME_TAG;
  let offset = writeVarint(buf, prefix + 1, frameBytes);
  buf[offset] = CODEC_VERSION;
  offset += 1;
  buf.writeBigUInt64BE(header.clusterId, offset);
  buf.writeBigUInt64BE(header.fromId, offset + 8);
  buf.writeBigUInt64BE(header.toId, offset + 16);
  buf.writeUInt32BE(end - start, offset + 24);
  offset += 28;
  for (let i = start; i < end; i++) offset = writeMessage(buf, offset, messages[i]!);
  // A size mismatch would send garbage to a peer; it can only come from a bug in this file.
  assert(offset === total, `frame encoding wrote ${offset} bytes, measured ${total}`);
  return buf;
}

/** Decodes a PeerFrame protobuf message (as received from gRPC) into its header and messages. */
export function decodePeerFrame(wire: Buffer): Frame {
  const body = unwrapPeerFrame(wire);
  const reader = new Reader(body);
  const version = reader.u8();
  if (version !== CODEC_VERSION) throw new FrameDecodeError(`unsupported frame version ${version}`);
  const clusterId = reader.id();
  const fromId = reader.id();
  const toId = reader.id();
  const count = reader.u32();
  // Every message takes at least MESSAGE_FIXED_BYTES: reject absurd counts before allocating.
  reader.need(count * MESSAGE_FIXED_BYTES);
  const messages: Message[] = new Array(count);
  for (let i = 0; i < count; i++) messages[i] = reader.message();
  reader.expectEnd();
  return { clusterId, fromId, toId, messages };
}

/**
 * Finds field 1 of a PeerFrame. Other fields are skipped so that a later version may add some;
 * an absent field 1 reads as an empty frame, which fails the version check.
 */
function unwrapPeerFrame(wire: Buffer): Buffer {
  // Fast path: what encodePeerFrame writes.
  if (wire.length > 1 && wire[0] === PEER_FRAME_TAG) {
    const [length, offset] = readVarint(wire, 1);
    if (offset + length === wire.length) return wire.subarray(offset);
  }
  let frame: Buffer = Buffer.alloc(0);
  for (const field of protobufFields(wire)) {
    if (field.number === 1 && field.bytes !== undefined) frame = field.bytes;
  }
  return frame;
}

// ---- minimal protobuf wire reading (for PeerFrame and SnapshotChunk) -------------------------

export interface ProtobufField {
  number: number;
  /** Value of a varint field (safe integers only). */
  varint?: number;
  /** View of a length-delimited field. */
  bytes?: Buffer;
}

export function readVarint(buf: Buffer, offset: number): [value: number, next: number] {
  let value = 0;
  let scale = 1;
  for (let i = 0; i < 8; i++) {
    if (offset >= buf.length) throw new FrameDecodeError('truncated varint');
    const byte = buf[offset++]!;
    value += (byte & 0x7f) * scale;
    if (byte < 0x80) {
      if (!Number.isSafeInteger(value)) throw new FrameDecodeError('varint is not a safe integer');
      return [value, offset];
    }
    scale *= 128;
  }
  throw new FrameDecodeError('varint too long');
}

export function* protobufFields(buf: Buffer): Generator<ProtobufField> {
  let offset = 0;
  while (offset < buf.length) {
    const [key, afterKey] = readVarint(buf, offset);
    const number = Math.floor(key / 8);
    const wireType = key % 8;
    offset = afterKey;
    if (wireType === 0) {
      const [value, next] = readVarint(buf, offset);
      offset = next;
      yield { number, varint: value };
    } else if (wireType === 2) {
      const [length, next] = readVarint(buf, offset);
      if (next + length > buf.length) throw new FrameDecodeError(`truncated field ${number}`);
      offset = next + length;
      yield { number, bytes: buf.subarray(next, offset) };
    } else if (wireType === 1 || wireType === 5) {
      offset += wireType === 1 ? 8 : 4;
      if (offset > buf.length) throw new FrameDecodeError(`truncated field ${number}`);
    } else {
      throw new FrameDecodeError(`unsupported protobuf wire type ${wireType}`);
    }
  }
}

/** Bytes of a protobuf key + length prefix for a length-delimited field. */
export function lengthDelimitedPrefix(fieldNumber: number, length: number): Buffer {
  const prefix = Buffer.allocUnsafe(1 + varintBytes(length));
  prefix[0] = (fieldNumber << 3) | 2;
  writeVarint(prefix, 1, length);
  return prefix;
}

export function varintField(fieldNumber: number, value: number): Buffer {
  assert(value >= 0 && Number.isSafeInteger(value), `varint field value ${value}`);
  const buf = Buffer.allocUnsafe(1 + varintBytes(value));
  buf[0] = fieldNumber << 3;
  writeVarint(buf, 1, value);
  return buf;
}

// ---- binary frame reading -------------------------------------------------------------------

class Reader {
  private offset = 0;

  constructor(private readonly buf: Buffer) {}

  need(bytes: number): void {
    if (this.offset + bytes > this.buf.length) {
      throw new FrameDecodeError(`truncated frame: need ${bytes} bytes at offset ${this.offset} of ${this.buf.length}`);
    }
  }

  expectEnd(): void {
    if (this.offset !== this.buf.length) {
      throw new FrameDecodeError(`${this.buf.length - this.offset} trailing bytes after frame`);
    }
  }

  u8(): number {
    this.need(1);
    return this.buf[this.offset++]!;
  }

  u32(): number {
    this.need(4);
    const value = this.buf.readUInt32BE(this.offset);
    this.offset += 4;
    return value;
  }

  u53(what: string): number {
    this.need(8);
    const high = this.buf.readUInt32BE(this.offset);
    const low = this.buf.readUInt32BE(this.offset + 4);
    this.offset += 8;
    if (high > MAX_SAFE_HIGH_WORD) throw new FrameDecodeError(`${what} exceeds 2^53`);
    return high * TWO_POW_32 + low;
  }

  id(): bigint {
    this.need(8);
    const value = this.buf.readBigUInt64BE(this.offset);
    this.offset += 8;
    return value;
  }

  ids(): bigint[] {
    const count = this.u32();
    this.need(count * 8);
    const ids: bigint[] = new Array(count);
    for (let i = 0; i < count; i++) ids[i] = this.id();
    return ids;
  }

  /** A length-prefixed byte string as a view (no copy). */
  bytes(): Buffer {
    const length = this.u32();
    this.need(length);
    const value = this.buf.subarray(this.offset, this.offset + length);
    this.offset += length;
    return value;
  }

  message(): Message {
    this.need(MESSAGE_FIXED_BYTES);
    const type = this.u8();
    if (type >= MESSAGE_TYPE_COUNT) throw new FrameDecodeError(`unknown message type ${type}`);
    const flags = this.u8();
    if (flags > 7) throw new FrameDecodeError(`unknown message flags ${flags}`);
    const to = this.id();
    const from = this.id();
    const term = this.u53('term');
    const logTerm = this.u53('logTerm');
    const index = this.u53('index');
    const commit = this.u53('commit');
    const rejectHint = this.u53('rejectHint');
    const count = this.u32();
    this.need(count * ENTRY_FIXED_BYTES);
    const entries: Entry[] = new Array(count);
    for (let i = 0; i < count; i++) {
      const entryTerm = this.u53('entry term');
      const entryIndex = this.u53('entry index');
      const entryType = this.u8();
      if (entryType !== EntryType.Normal && entryType !== EntryType.ConfChange) {
        throw new FrameDecodeError(`unknown entry type ${entryType}`);
      }
      entries[i] = { term: entryTerm, index: entryIndex, type: entryType, data: this.bytes() };
    }
    const m: Message = {
      type: type as MessageType,
      to,
      from,
      term,
      logTerm,
      index,
      entries,
      commit,
      reject: (flags & FLAG_REJECT) !== 0,
      rejectHint,
    };
    if ((flags & FLAG_SNAPSHOT) !== 0) m.snapshot = this.snapshotMetadata();
    if ((flags & FLAG_CONTEXT) !== 0) m.context = this.bytes();
    return m;
  }

  private snapshotMetadata(): Snapshot {
    const index = this.u53('snapshot index');
    const term = this.u53('snapshot term');
    const confState: ConfState = { voters: this.ids(), learners: this.ids() };
    return { metadata: { index, term, confState }, data: EMPTY };
  }
}
