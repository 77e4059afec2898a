// The binary framing of the channel between an edge process and the primary (edge-channel.ts):
// each frame is [u32 length of what follows][u32 call ID][u8 kind][body]. Bodies of the data
// path are raw protobuf bytes; the few structured bodies (a call's start, its status, an HTTP
// request relayed) are encoded here with length-prefixed strings, no JSON on the data path.
//
// Invariant: FrameReader yields exactly the frames written, in order, whatever the chunking
// of the byte stream (partial frames wait for the rest, one chunk may hold many frames).

import { assert } from '../../util/assert.js';

/** What a frame says; edge -> primary below 16, primary -> edge from 16. */
export const FrameKind = {
  /** A call begins: method, caller identity, and (for single-request methods) the request. */
  start: 1,
  /** One request message of a client-streaming call. */
  message: 2,
  /** The client will send no more (its end of a bidi stream). */
  halfClose: 3,
  /** The client went away (or the edge gave up on the call). */
  cancel: 4,
  /** The edge handed this many bytes of a stream's responses to HTTP/2. */
  written: 5,
  /** An HTTP/1.1 request for the primary's endpoints (health, metrics, version). */
  httpRequest: 6,
  /** What is the member state the edge answers from by itself (answered by a state frame)? */
  stateQuery: 7,
  /** The response of a unary call. */
  reply: 16,
  /** One response message of a streaming call. */
  streamMessage: 17,
  /** The call's status: OK ends a stream; anything else fails the call. */
  status: 18,
  /** The answer to an httpRequest. */
  httpResponse: 19,
  /** Member state the edge answers from by itself, answering a stateQuery. */
  state: 20,
  /** Several response messages of a streaming call, framed as on the gRPC stream (message-frames.ts), for one write. */
  streamFramed: 21,
} as const;

export type FrameKindValue = (typeof FrameKind)[keyof typeof FrameKind];

export interface Frame {
  readonly callId: number;
  readonly kind: number;
  readonly body: Buffer;
}

const HEADER_BYTES = 9;
/** Frames larger than this are a bug (gRPC messages are limited far below it). */
const MAX_FRAME_BYTES = 2 ** 31;

export function frameHeader(callId: number, kind: number, bodyLength: number): Buffer {
  const header = Buffer.allocUnsafe(HEADER_BYTES);
  header.writeUInt32BE(bodyLength + 5, 0);
  header.writeUInt32BE(callId, 4);
  header.writeUInt8(kind, 8);
  return header;
}

/** Turns a byte stream back into frames, whatever its chunking. */
export class FrameReader {
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  /** Bytes the first pending frame needs in all, once its length is known (else 0). */
  private needed = 0;

  /** The complete frames that `chunk` finishes, in order. */
  push(chunk: Buffer): Frame[] {
    this.pending.push(chunk);
    this.pendingBytes += chunk.length;
    // A large frame arriving in many chunks is joined once, when it is complete.
    if (this.pendingBytes < Math.max(HEADER_BYTES, this.needed)) return [];
    const data = this.pending.length === 1 ? chunk : Buffer.concat(this.pending, this.pendingBytes);
    const frames: Frame[] = [];
    let offset = 0;
    this.needed = 0;
    while (data.length - offset >= 4) {
      const length = data.readUInt32BE(offset);
      assert(length >= 5 && length < MAX_FRAME_BYTES, `edge channel: bad frame length ${length}`);
      if (data.length - offset - 4 < length) {
        this.needed = 4 + length;
        break;
      }
      frames.push({ callId: data.readUInt32BE(offset + 4), kind: data.readUInt8(offset + 8), body: data.subarray(offset + HEADER_BYTES, offset + 4 + length) });
      offset += 4 + length;
    }
    const rest = data.subarray(offset);
    this.pending = rest.length === 0 ? [] : [rest];
    this.pendingBytes = rest.length;
    return frames;
  }
}

// ---------------------------------------------------------------- structured bodies

/** Appends fields to a body: u32-length-prefixed strings, numbers, then raw bytes last. */
export class BodyWriter {
  private readonly parts: Buffer[] = [];

  u8(value: number): this {
    const b = Buffer.allocUnsafe(1);
    b.writeUInt8(value, 0);
    this.parts.push(b);
    return this;
  }

  u32(value: number): this {
    const b = Buffer.allocUnsafe(4);
    b.writeUInt32BE(value, 0);
    this.parts.push(b);
    return this;
  }

  f64(value: number): this {
    const b = Buffer.allocUnsafe(8);
    b.writeDoubleBE(value, 0);
    this.parts.push(b);
    return this;
  }

  string(value: string): this {
    const bytes = Buffer.from(value, 'utf8');
    this.u32(bytes.length);
    this.parts.push(bytes);
    return this;
  }

  bytes(value: Buffer): this {
    this.parts.push(value);
    return this;
  }

  build(): Buffer {
    return Buffer.concat(this.parts);
  }
}

/** Reads a body written by BodyWriter, field by field, in the same order. */
export class BodyReader {
  private offset = 0;

  constructor(private readonly body: Buffer) {}

  u8(): number {
    const value = this.body.readUInt8(this.offset);
    this.offset += 1;
    return value;
  }

  u32(): number {
    const value = this.body.readUInt32BE(this.offset);
    this.offset += 4;
    return value;
  }

  f64(): number {
    const value = this.body.readDoubleBE(this.offset);
    this.offset += 8;
    return value;
  }

  string(): string {
    const length = this.u32();
    assert(this.offset + length <= this.body.length, 'edge channel: string past the end of its frame');
    const value = this.body.toString('utf8', this.offset, this.offset + length);
    this.offset += length;
    return value;
  }

  /** Everything not read yet. */
  rest(): Buffer {
    return this.body.subarray(this.offset);
  }
}

/** Who is calling, as the service handlers read it from a grpc-js call. */
export interface CallStart {
  /** Index in the method table (edge-methods.ts). */
  readonly method: number;
  /** Absolute deadline in ms since the epoch; Infinity for none. */
  readonly deadline: number;
  readonly peer: string;
  /** CN of the client's verified TLS certificate (as auth-check.ts reads it); '' for none. */
  readonly certificateCn: string;
  /** The call's text metadata (authorization token, hasleader, ...), as key/value pairs. */
  readonly metadata: readonly (readonly [string, string])[];
  /** The request of a single-request method; undefined for a client-streaming one. */
  readonly request: Buffer | undefined;
}

export function encodeStart(start: CallStart): Buffer {
  const writer = new BodyWriter().u32(start.method).f64(start.deadline).string(start.peer).string(start.certificateCn).u32(start.metadata.length);
  for (const [key, value] of start.metadata) writer.string(key).string(value);
  writer.u8(start.request === undefined ? 0 : 1);
  if (start.request !== undefined) writer.bytes(start.request);
  return writer.build();
}

export function decodeStart(body: Buffer): CallStart {
  const reader = new BodyReader(body);
  const method = reader.u32();
  const deadline = reader.f64();
  const peer = reader.string();
  const certificateCn = reader.string();
  const count = reader.u32();
  const metadata: (readonly [string, string])[] = [];
  for (let i = 0; i < count; i++) metadata.push([reader.string(), reader.string()]);
  const request = reader.u8() === 1 ? reader.rest() : undefined;
  return { method, deadline, peer, certificateCn, metadata, request };
}

export interface CallStatus {
  readonly code: number;
  readonly details: string;
}

export function encodeStatus(status: CallStatus): Buffer {
  return new BodyWriter().u32(status.code).bytes(Buffer.from(status.details, 'utf8')).build();
}

export function decodeStatus(body: Buffer): CallStatus {
  const reader = new BodyReader(body);
  return { code: reader.u32(), details: reader.rest().toString('utf8') };
}

/** An HTTP/1.1 request or response head (JSON: off the data path) with its body. */
export function encodeHttp(head: object, body: Buffer): Buffer {
  return new BodyWriter().string(JSON.stringify(head)).bytes(body).build();
}

export function decodeHttp<Head>(frameBody: Buffer): { head: Head; body: Buffer } {
  const reader = new BodyReader(frameBody);
  const head = JSON.parse(reader.string()) as Head;
  return { head, body: reader.rest() };
}
