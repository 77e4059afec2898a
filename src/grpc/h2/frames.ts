// HTTP/2 frame layout (RFC 9113 §4.1, §6): type, flag, error and setting codes, the 9-byte frame
// header, and a frame builder for tests and benches. The connection (connection.ts) parses
// frames in place from its read buffer and writes them straight into its output slab; this file
// only holds what both sides of that share.

export const FRAME_HEADER_BYTES = 9;
/** The largest frame payload we accept (our SETTINGS_MAX_FRAME_SIZE is never raised). */
export const DEFAULT_MAX_FRAME_SIZE = 16384;
export const MAX_FRAME_SIZE_LIMIT = 0xffffff;
/** RFC 9113 §6.9.1: the largest flow-control window. */
export const MAX_WINDOW = 0x7fffffff;
/** RFC 9113 §6.9.2: every window starts at 65535 until SETTINGS say otherwise. */
export const DEFAULT_WINDOW = 65535;

export const CLIENT_PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');

export const FrameType = {
  DATA: 0x0,
  HEADERS: 0x1,
  PRIORITY: 0x2,
  RST_STREAM: 0x3,
  SETTINGS: 0x4,
  PUSH_PROMISE: 0x5,
  PING: 0x6,
  GOAWAY: 0x7,
  WINDOW_UPDATE: 0x8,
  CONTINUATION: 0x9,
} as const;

export const Flag = {
  END_STREAM: 0x1,
  ACK: 0x1,
  END_HEADERS: 0x4,
  PADDED: 0x8,
  PRIORITY: 0x20,
} as const;

export const ErrorCode = {
  NO_ERROR: 0x0,
  PROTOCOL_ERROR: 0x1,
  INTERNAL_ERROR: 0x2,
  FLOW_CONTROL_ERROR: 0x3,
  SETTINGS_TIMEOUT: 0x4,
  STREAM_CLOSED: 0x5,
  FRAME_SIZE_ERROR: 0x6,
  REFUSED_STREAM: 0x7,
  CANCEL: 0x8,
  COMPRESSION_ERROR: 0x9,
  CONNECT_ERROR: 0xa,
  ENHANCE_YOUR_CALM: 0xb,
  INADEQUATE_SECURITY: 0xc,
  HTTP_1_1_REQUIRED: 0xd,
} as const;

export const Setting = {
  HEADER_TABLE_SIZE: 0x1,
  ENABLE_PUSH: 0x2,
  MAX_CONCURRENT_STREAMS: 0x3,
  INITIAL_WINDOW_SIZE: 0x4,
  MAX_FRAME_SIZE: 0x5,
  MAX_HEADER_LIST_SIZE: 0x6,
} as const;

/** Writes a frame header at `pos` (the payload follows it). */
export function writeFrameHeader(out: Buffer, pos: number, length: number, type: number, flags: number, streamId: number): void {
  out[pos] = length >>> 16;
  out[pos + 1] = (length >>> 8) & 0xff;
  out[pos + 2] = length & 0xff;
  out[pos + 3] = type;
  out[pos + 4] = flags;
  out.writeUInt32BE(streamId & 0x7fffffff, pos + 5);
}

/** One whole frame in a new buffer (tests and benches; the connection writes into its slab). */
export function encodeFrame(type: number, flags: number, streamId: number, payload: Uint8Array = Buffer.alloc(0)): Buffer {
  const out = Buffer.allocUnsafe(FRAME_HEADER_BYTES + payload.length);
  writeFrameHeader(out, 0, payload.length, type, flags, streamId);
  out.set(payload, FRAME_HEADER_BYTES);
  return out;
}

/** A parsed frame, for tests reading what the connection wrote. */
export interface ParsedFrame {
  readonly type: number;
  readonly flags: number;
  readonly streamId: number;
  readonly payload: Buffer;
}

/** Splits `buf` into whole frames; returns them and the bytes left over (an incomplete frame). */
export function parseFrames(buf: Buffer): { frames: ParsedFrame[]; rest: Buffer } {
  const frames: ParsedFrame[] = [];
  let pos = 0;
  while (buf.length - pos >= FRAME_HEADER_BYTES) {
    const length = (buf[pos]! << 16) | (buf[pos + 1]! << 8) | buf[pos + 2]!;
    if (buf.length - pos - FRAME_HEADER_BYTES < length) break;
    frames.push({
      type: buf[pos + 3]!,
      flags: buf[pos + 4]!,
      streamId: buf.readUInt32BE(pos + 5) & 0x7fffffff,
      payload: buf.subarray(pos + FRAME_HEADER_BYTES, pos + FRAME_HEADER_BYTES + length),
    });
    pos += FRAME_HEADER_BYTES + length;
  }
  return { frames, rest: buf.subarray(pos) };
}
