// Robustness of the connection's input side, in process (a Duplex stands in for the socket):
// whatever follows the client preface (random bytes, or frames of random type, flags, stream and
// payload), nothing throws out of the connection, and what it writes is well-formed frames; a
// valid exchange fed one byte at a time is answered as when fed whole.

import { Duplex } from 'node:stream';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { serveH2Connection } from './connection.js';
import { CLIENT_PREFACE, encodeFrame, Flag, FrameType, parseFrames } from './frames.js';
import type { H2Connection, H2ServerStream, HeaderField } from './h2-stream.js';
import { encodedBound, encodeFields } from './hpack.js';

class FakeSocket extends Duplex {
  readonly written: Buffer[] = [];
  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    this.written.push(chunk);
    callback();
  }
  override _writev(chunks: Array<{ chunk: Buffer }>, callback: (error?: Error | null) => void): void {
    for (const c of chunks) this.written.push(c.chunk);
    callback();
  }
  override _read(): void {}
  feed(bytes: Buffer): void {
    this.emit('data', bytes);
  }
  output(): Buffer {
    return Buffer.concat(this.written);
  }
}

let answered = 0;

function answer(stream: H2ServerStream): void {
  stream.handlers = {
    data: () => {},
    end: () => {
      answered++;
      stream.respond([[':status', '200']]);
      stream.write(Buffer.from('ok'));
      stream.end([['grpc-status', '0']]);
    },
    aborted: () => {},
    drain: () => {},
  };
}

function open(): { socket: FakeSocket; conn: H2Connection; closed: () => number } {
  const socket = new FakeSocket();
  let closed = 0;
  const conn = serveH2Connection(socket as never, {
    onStream: answer,
    maxConcurrentStreams: 10,
    maxHeaderListBytes: 4096,
    receiveWindowBytes: 65535,
    ping: () => true,
    closed: () => closed++,
  });
  return { socket, conn, closed: () => closed };
}

const turn = () => new Promise((resolve) => setImmediate(resolve));

function headers(streamId: number, fields: HeaderField[], flags: number): Buffer {
  const block = Buffer.alloc(encodedBound(fields));
  return encodeFrame(FrameType.HEADERS, flags, streamId, block.subarray(0, encodeFields(fields, block, 0)));
}

const REQUEST: HeaderField[] = [
  [':method', 'POST'],
  [':scheme', 'http'],
  [':path', '/p'],
  [':authority', 'a'],
];

const anyFrame = fc
  .record({
    type: fc.integer({ min: 0, max: 11 }),
    flags: fc.integer({ min: 0, max: 255 }),
    stream: fc.integer({ min: 0, max: 9 }),
    payload: fc.uint8Array({ maxLength: 64 }),
  })
  .map((f) => encodeFrame(f.type, f.flags, f.stream, f.payload));

const chunk = fc.oneof(
  anyFrame,
  fc.uint8Array({ maxLength: 40 }).map((b) => Buffer.from(b)),
  fc.integer({ min: 1, max: 9 }).map((id) => headers(id * 2 - 1, REQUEST, Flag.END_HEADERS | Flag.END_STREAM)),
  fc.constant(encodeFrame(FrameType.SETTINGS, 0, 0)),
);

/** A peer that does not read: writes are never completed until release(). */
class StuckSocket extends FakeSocket {
  private held: Array<() => void> = [];
  private stuck = true;
  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    this.written.push(chunk);
    if (this.stuck) this.held.push(callback);
    else callback();
  }
  override _writev(chunks: Array<{ chunk: Buffer }>, callback: (error?: Error | null) => void): void {
    for (const c of chunks) this.written.push(c.chunk);
    if (this.stuck) this.held.push(callback);
    else callback();
  }
  /** The peer reads again: every held write completes, and later ones at once. */
  release(): void {
    this.stuck = false;
    for (const callback of this.held.splice(0)) callback();
  }
}

describe('HTTP/2 connection input robustness', () => {
  it('a peer that sends PINGs without reading: reading pauses past 1 MiB queued, resumes on drain', async () => {
    const socket = new StuckSocket();
    const conn = serveH2Connection(socket as never, {
      onStream: answer,
      maxConcurrentStreams: 10,
      maxHeaderListBytes: 4096,
      receiveWindowBytes: 65535,
      ping: () => true,
      closed: () => {},
    });
    socket.feed(Buffer.concat([CLIENT_PREFACE, encodeFrame(FrameType.SETTINGS, 0, 0)]));
    const pings = Buffer.concat(Array.from({ length: 4000 }, () => encodeFrame(FrameType.PING, 0, 0, Buffer.alloc(8))));
    let fed = 0;
    while (!socket.isPaused() && fed < 100) {
      socket.feed(pings);
      fed++;
      await turn();
    }
    expect(socket.isPaused()).toBe(true);
    expect(socket.writableLength).toBeGreaterThan(1024 * 1024);
    expect(fed).toBeLessThan(100);
    socket.release();
    await turn();
    expect(socket.isPaused()).toBe(false);
    conn.destroy();
  });

  it('random input after the preface never throws; output stays well-formed frames', async () => {
    await fc.assert(
      fc.asyncProperty(fc.boolean(), fc.array(chunk, { maxLength: 12 }), async (settingsFirst, chunks) => {
        const { socket, conn, closed } = open();
        const input = [CLIENT_PREFACE, ...(settingsFirst ? [encodeFrame(FrameType.SETTINGS, 0, 0)] : []), ...chunks];
        for (const c of input) socket.feed(c);
        await turn();
        const { rest } = parseFrames(socket.output());
        expect(rest.length).toBe(0);
        conn.destroy();
        await turn();
        expect(closed()).toBe(1);
      }),
      { numRuns: 400 },
    );
    // The generator reaches the streams, not only the frame checks.
    expect(answered).toBeGreaterThan(20);
  });

  it('a socket already destroyed when handed over: closed() once, nothing written', async () => {
    const socket = new FakeSocket();
    socket.destroy();
    await turn();
    let closed = 0;
    serveH2Connection(socket as never, {
      onStream: answer,
      maxConcurrentStreams: 10,
      maxHeaderListBytes: 4096,
      receiveWindowBytes: 65535,
      ping: () => true,
      closed: () => closed++,
    });
    await turn();
    expect(closed).toBe(1);
    expect(socket.written).toHaveLength(0);
  });

  it('an exchange fed one byte at a time is answered in full', async () => {
    const { socket, conn } = open();
    const input = Buffer.concat([
      CLIENT_PREFACE,
      encodeFrame(FrameType.SETTINGS, 0, 0),
      headers(1, REQUEST, Flag.END_HEADERS),
      encodeFrame(FrameType.DATA, Flag.END_STREAM | Flag.PADDED, 1, Buffer.from([3, 0x61, 0x62, 0, 0, 0])),
    ]);
    for (let i = 0; i < input.length; i++) socket.feed(input.subarray(i, i + 1));
    await turn();
    const types = parseFrames(socket.output())
      .frames.filter((f) => f.streamId === 1)
      .map((f) => f.type);
    expect(types).toEqual([FrameType.HEADERS, FrameType.DATA, FrameType.HEADERS]);
    conn.destroy();
  });

  it('a request body of large DATA frames, cut into chunks anywhere, arrives whole and in order', async () => {
    const body = Buffer.alloc(40_000);
    for (let i = 0; i < body.length; i++) body[i] = (i * 7) & 0xff;
    const input = Buffer.concat([
      CLIENT_PREFACE,
      encodeFrame(FrameType.SETTINGS, 0, 0),
      headers(1, REQUEST, Flag.END_HEADERS),
      encodeFrame(FrameType.DATA, 0, 1, body.subarray(0, 16384)),
      encodeFrame(FrameType.DATA, 0, 1, body.subarray(16384, 32768)),
      encodeFrame(FrameType.DATA, Flag.END_STREAM, 1, body.subarray(32768)),
    ]);
    await fc.assert(
      fc.asyncProperty(fc.uniqueArray(fc.integer({ min: 1, max: input.length - 1 }), { maxLength: 8 }), async (cuts) => {
        const socket = new FakeSocket();
        const received: Buffer[] = [];
        let ended = false;
        const conn = serveH2Connection(socket as never, {
          onStream(stream) {
            stream.handlers = {
              data: (chunk) => received.push(Buffer.from(chunk)),
              end: () => (ended = true),
              aborted: () => {},
              drain: () => {},
            };
          },
          maxConcurrentStreams: 10,
          maxHeaderListBytes: 4096,
          receiveWindowBytes: 65535,
          ping: () => true,
          closed: () => {},
        });
        const points = [0, ...cuts.sort((x, y) => x - y), input.length];
        for (let i = 1; i < points.length; i++) socket.feed(input.subarray(points[i - 1], points[i]));
        expect(ended).toBe(true);
        expect(Buffer.concat(received).equals(body)).toBe(true);
        conn.destroy();
        await turn();
      }),
      { numRuns: 300 },
    );
  });

  it('HEADERS with PADDED and PRIORITY: the block between is decoded; PRIORITY frames are ignored', async () => {
    const { socket, conn } = open();
    const block = Buffer.alloc(encodedBound(REQUEST));
    const n = encodeFields(REQUEST, block, 0);
    // Pad length 4, then stream dependency (4 bytes) + weight, then the block, then 4 bytes of padding.
    const payload = Buffer.concat([Buffer.from([4]), Buffer.from([0, 0, 0, 0, 15]), block.subarray(0, n), Buffer.alloc(4)]);
    socket.feed(
      Buffer.concat([
        CLIENT_PREFACE,
        encodeFrame(FrameType.SETTINGS, 0, 0),
        encodeFrame(FrameType.PRIORITY, 0, 3, Buffer.from([0, 0, 0, 1, 200])),
        encodeFrame(FrameType.HEADERS, Flag.END_HEADERS | Flag.END_STREAM | Flag.PADDED | Flag.PRIORITY, 1, payload),
      ]),
    );
    await turn();
    const frames = parseFrames(socket.output()).frames;
    expect(frames.some((f) => f.type === FrameType.GOAWAY)).toBe(false);
    expect(frames.filter((f) => f.streamId === 1).map((f) => f.type)).toEqual([FrameType.HEADERS, FrameType.DATA, FrameType.HEADERS]);
    conn.destroy();
  });

  it('a header block split into HEADERS + CONTINUATION is joined', async () => {
    const { socket, conn } = open();
    const block = Buffer.alloc(encodedBound(REQUEST));
    const n = encodeFields(REQUEST, block, 0);
    socket.feed(
      Buffer.concat([
        CLIENT_PREFACE,
        encodeFrame(FrameType.SETTINGS, 0, 0),
        encodeFrame(FrameType.HEADERS, Flag.END_STREAM, 1, block.subarray(0, 3)),
        encodeFrame(FrameType.CONTINUATION, 0, 1, block.subarray(3, 6)),
        encodeFrame(FrameType.CONTINUATION, Flag.END_HEADERS, 1, block.subarray(6, n)),
      ]),
    );
    await turn();
    const last = parseFrames(socket.output())
      .frames.filter((f) => f.streamId === 1)
      .at(-1);
    expect(last?.type).toBe(FrameType.HEADERS);
    expect(last!.flags & Flag.END_STREAM).toBe(Flag.END_STREAM);
    conn.destroy();
  });
});
