// The edge channel's framing: whatever the chunking of the byte stream, the reader yields
// exactly the frames written, and the structured bodies round-trip.
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { decodeStart, decodeStatus, encodeStart, encodeStatus, type Frame, FrameKind, FrameReader, frameHeader } from './frames.js';

function wire(frames: Frame[]): Buffer {
  return Buffer.concat(frames.flatMap((f) => [frameHeader(f.callId, f.kind, f.body.length), f.body]));
}

function readAll(bytes: Buffer, chunkSizes: (i: number) => number): Frame[] {
  const reader = new FrameReader();
  const out: Frame[] = [];
  let offset = 0;
  for (let i = 0; offset < bytes.length; i++) {
    const size = Math.max(1, chunkSizes(i));
    out.push(...reader.push(bytes.subarray(offset, offset + size)));
    offset += size;
  }
  return out;
}

/** Frames as comparable values (deep equality over megabytes of Buffer is slow in vitest). */
function summary(frames: Frame[]): Array<{ callId: number; kind: number; body: string }> {
  return frames.map((f) => ({ callId: f.callId, kind: f.kind, body: createHash('sha256').update(f.body).digest('hex') }));
}

const sample: Frame[] = [
  { callId: 1, kind: FrameKind.start, body: Buffer.from('first') },
  { callId: 2, kind: FrameKind.halfClose, body: Buffer.alloc(0) },
  { callId: 0xfffffffe, kind: FrameKind.streamMessage, body: Buffer.from([0, 1, 2, 255]) },
  { callId: 7, kind: FrameKind.reply, body: Buffer.alloc(3 * 1024 * 1024, 0xab) },
];

describe('edge channel framing', () => {
  it('yields many frames from one chunk', () => {
    expect(summary(readAll(wire(sample), () => Number.MAX_SAFE_INTEGER))).toEqual(summary(sample));
  });

  it('reassembles frames split at every byte, including inside headers', () => {
    const small = sample.slice(0, 3);
    expect(readAll(wire(small), () => 1)).toEqual(small);
  });

  it('reassembles a large message from uneven chunks', () => {
    expect(summary(readAll(wire(sample), (i) => [5, 4, 9, 65_536, 13][i % 5]!))).toEqual(summary(sample));
  });

  it('waits for the rest of a partial frame and keeps nothing extra', () => {
    const reader = new FrameReader();
    const bytes = wire(sample.slice(0, 2));
    expect(reader.push(bytes.subarray(0, bytes.length - 1))).toEqual([sample[0]]);
    expect(reader.push(bytes.subarray(bytes.length - 1))).toEqual([sample[1]]);
    expect(reader.push(Buffer.alloc(0))).toEqual([]);
  });

  it('refuses a frame length no writer produces', () => {
    const reader = new FrameReader();
    expect(() => reader.push(Buffer.from([0, 0, 0, 1, 0, 0, 0, 0, 0]))).toThrow(/bad frame length/);
  });

  it('round-trips a call start with identity, metadata and request', () => {
    const start = {
      method: 42,
      deadline: Date.now() + 5000,
      peer: '127.0.0.1:5555',
      certificateCn: 'root',
      metadata: [
        ['authorization', 'tok.en'],
        ['hasleader', 'true'],
        ['x', 'ü'],
      ] as const,
      request: Buffer.from([10, 1, 97]),
    };
    expect(decodeStart(encodeStart(start))).toEqual(start);
    const streaming = { ...start, deadline: Infinity, certificateCn: '', metadata: [], request: undefined };
    expect(decodeStart(encodeStart(streaming))).toEqual(streaming);
    // A single-request method with an empty request (all fields default) is not a streaming one.
    expect(decodeStart(encodeStart({ ...start, request: Buffer.alloc(0) })).request).toEqual(Buffer.alloc(0));
  });

  it('round-trips a status', () => {
    expect(decodeStatus(encodeStatus({ code: 9, details: 'etcdserver: no leader' }))).toEqual({ code: 9, details: 'etcdserver: no leader' });
  });
});
