// Our HTTP/2 server connection against Node's own HTTP/2 client (http2.connect) over real
// sockets on 127.0.0.1: headers, bodies both ways, trailers, concurrency, flow control with the
// client's default 64 KiB windows, resets, GOAWAY, PING, MAX_CONCURRENT_STREAMS, shutdown; a raw
// client for what Node's client will not do (frame-level checks, protocol errors); TLS with ALPN.

import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import http2 from 'node:http2';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tls from 'node:tls';
import { afterEach, describe, expect, it } from 'vitest';
import { routeByProtocol } from '../protocol-router.js';
import { serveH2Connection, writeQueuedOutput } from './connection.js';
import { CLIENT_PREFACE, ErrorCode, encodeFrame, Flag, FrameType, type ParsedFrame, parseFrames } from './frames.js';
import type { H2Connection, H2ConnectionOptions, H2ServerStream, HeaderField } from './h2-stream.js';
import { encodedBound, encodeFields, HpackDecoder } from './hpack.js';

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

interface Served {
  port: number;
  connections: H2Connection[];
  /** Resolves when the n-th connection (1-based) has called closed(). */
  closed(n?: number): Promise<void>;
}

/** A TCP server whose connections are ours; `onStream` serves every stream. */
async function serve(onStream: (stream: H2ServerStream) => void, options: Partial<H2ConnectionOptions> = {}): Promise<Served> {
  const connections: H2Connection[] = [];
  const sockets = new Set<net.Socket>();
  const closedWaiters: Array<{ resolve: () => void; promise: Promise<void> }> = [];
  const closedSlot = (i: number) => {
    while (closedWaiters.length <= i) {
      let resolve!: () => void;
      const promise = new Promise<void>((r) => (resolve = r));
      closedWaiters.push({ resolve, promise });
    }
    return closedWaiters[i]!;
  };
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    const index = connections.length;
    connections.push(
      serveH2Connection(socket, {
        onStream,
        maxConcurrentStreams: 100,
        maxHeaderListBytes: 16 * 1024,
        receiveWindowBytes: 1024 * 1024,
        ping: () => true,
        closed: () => closedSlot(index).resolve(),
        ...options,
      }),
    );
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  cleanups.push(async () => {
    for (const s of sockets) s.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });
  return {
    port: (server.address() as net.AddressInfo).port,
    connections,
    closed: (n = 1) => closedSlot(n - 1).promise,
  };
}

function connect(port: number, options: http2.SecureClientSessionOptions = {}): http2.ClientHttp2Session {
  const session = http2.connect(`http://127.0.0.1:${port}`, options);
  session.on('error', () => {});
  cleanups.push(() => {
    if (!session.destroyed) session.destroy();
  });
  return session;
}

interface Reply {
  status: number;
  headers: http2.IncomingHttpHeaders;
  body: Buffer;
  trailers: http2.IncomingHttpHeaders | undefined;
}

function request(session: http2.ClientHttp2Session, headers: http2.OutgoingHttpHeaders, body?: Buffer): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = session.request(headers, { endStream: body === undefined });
    const chunks: Buffer[] = [];
    let status = 0;
    let responseHeaders: http2.IncomingHttpHeaders = {};
    let trailers: http2.IncomingHttpHeaders | undefined;
    req.on('response', (h) => {
      status = Number(h[':status']);
      responseHeaders = h;
    });
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('trailers', (t) => (trailers = t));
    req.on('end', () => resolve({ status, headers: responseHeaders, body: Buffer.concat(chunks), trailers }));
    req.on('error', reject);
    if (body !== undefined) req.end(body);
  });
}

/** Echo: collects the request body, answers headers + the body + trailers. */
function echo(stream: H2ServerStream): void {
  const chunks: Buffer[] = [];
  stream.handlers = {
    data: (chunk) => chunks.push(Buffer.from(chunk)),
    end: () => {
      stream.respond([
        [':status', '200'],
        ['content-type', 'application/octet-stream'],
        ['x-path', fieldOf(stream.fields, ':path') ?? ''],
      ]);
      stream.write(Buffer.concat(chunks));
      stream.end([['x-trailer', 'done']]);
    },
    aborted: () => {},
    drain: () => {},
  };
}

function fieldOf(fields: readonly HeaderField[], name: string): string | undefined {
  return fields.find((f) => f[0] === name)?.[1];
}

describe('HTTP/2 server connection against Node http2 client', () => {
  it('answers a request with headers, body and trailers', async () => {
    const served = await serve(echo);
    const session = connect(served.port);
    const reply = await request(session, { ':method': 'POST', ':path': '/echo/1' }, Buffer.from('hello'));
    expect(reply.status).toBe(200);
    expect(reply.headers['content-type']).toBe('application/octet-stream');
    expect(reply.headers['x-path']).toBe('/echo/1');
    expect(reply.body.toString()).toBe('hello');
    expect(reply.trailers?.['x-trailer']).toBe('done');
  });

  it('serves many concurrent streams on one connection', async () => {
    const served = await serve(echo);
    const session = connect(served.port);
    const replies = await Promise.all(
      Array.from({ length: 200 }, (_, i) => request(session, { ':method': 'POST', ':path': `/n/${i}` }, Buffer.from(`body-${i}`))),
    );
    replies.forEach((reply, i) => {
      expect(reply.body.toString()).toBe(`body-${i}`);
      expect(reply.headers['x-path']).toBe(`/n/${i}`);
      expect(reply.trailers?.['x-trailer']).toBe('done');
    });
    expect(served.connections).toHaveLength(1);
  });

  it('moves 5 MiB each way through the default 64 KiB client windows', async () => {
    const served = await serve(echo, { receiveWindowBytes: 65535 });
    const session = connect(served.port);
    const body = Buffer.alloc(5 * 1024 * 1024);
    for (let i = 0; i < body.length; i += 4) body.writeUInt32BE(i, i);
    const reply = await request(session, { ':method': 'POST', ':path': '/big' }, body);
    expect(reply.body.length).toBe(body.length);
    expect(reply.body.equals(body)).toBe(true);
    expect(reply.trailers?.['x-trailer']).toBe('done');
  });
});

/** A raw HTTP/2 client on a plain socket: hand-built frames out, parsed frames in. */
class RawClient {
  readonly frames: ParsedFrame[] = [];
  chunks = 0;
  private rest = Buffer.alloc(0);
  private waiters: Array<{ test: () => boolean; resolve: () => void }> = [];
  closed = false;

  constructor(readonly socket: net.Socket) {
    socket.on('data', (chunk: Buffer) => {
      this.chunks++;
      const { frames, rest } = parseFrames(Buffer.concat([this.rest, chunk]));
      this.rest = Buffer.from(rest);
      this.frames.push(...frames);
      this.check();
    });
    socket.on('error', () => {});
    socket.on('close', () => {
      this.closed = true;
      this.check();
    });
  }

  static async open(port: number, settings: Buffer = Buffer.alloc(0)): Promise<RawClient> {
    const socket = net.connect(port, '127.0.0.1');
    await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
    cleanups.push(() => {
      socket.destroy();
    });
    const client = new RawClient(socket);
    socket.write(Buffer.concat([CLIENT_PREFACE, encodeFrame(FrameType.SETTINGS, 0, 0, settings)]));
    // Our SETTINGS and the ACK of the client's.
    await client.until(() => client.frames.some((f) => f.type === FrameType.SETTINGS && f.flags & Flag.ACK));
    socket.write(encodeFrame(FrameType.SETTINGS, Flag.ACK, 0));
    return client;
  }

  send(...frames: Buffer[]): void {
    this.socket.write(Buffer.concat(frames));
  }

  until(test: () => boolean): Promise<void> {
    if (test()) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push({ test, resolve }));
  }

  private check(): void {
    this.waiters = this.waiters.filter((w) => {
      if (!w.test()) return true;
      w.resolve();
      return false;
    });
  }
}

/** Counts the socket's write() calls (once per socket). */
function countWrites(socket: net.Socket, counted: () => void): void {
  if ((socket as { counting?: boolean }).counting) return;
  (socket as { counting?: boolean }).counting = true;
  const write = socket.write.bind(socket) as (...args: unknown[]) => boolean;
  socket.write = ((...args: unknown[]) => {
    counted();
    return write(...args);
  }) as typeof socket.write;
}

function headersFrame(streamId: number, fields: HeaderField[], flags = Flag.END_HEADERS | Flag.END_STREAM): Buffer {
  const block = Buffer.alloc(encodedBound(fields));
  const n = encodeFields(fields, block, 0);
  return encodeFrame(FrameType.HEADERS, flags, streamId, block.subarray(0, n));
}

const GET: HeaderField[] = [
  [':method', 'POST'],
  [':scheme', 'http'],
  [':path', '/x'],
  [':authority', 'localhost'],
];

function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n);
  return b;
}

/** A stream that never answers, recording what happens to it. */
function holder(log: { streams: H2ServerStream[]; aborted: Array<[number, number]> }) {
  return (stream: H2ServerStream) => {
    log.streams.push(stream);
    stream.handlers = {
      data: () => {},
      end: () => {},
      aborted: (code) => log.aborted.push([stream.id, code]),
      drain: () => {},
    };
  };
}

describe('HTTP/2 server connection: stream and connection lifecycle', () => {
  it('sends a Trailers-Only response (end() without respond())', async () => {
    const served = await serve((stream) => {
      stream.end([
        [':status', '200'],
        ['grpc-status', '12'],
      ]);
    });
    const session = connect(served.port);
    const req = session.request({ ':path': '/missing' });
    const headers = await new Promise<http2.IncomingHttpHeaders>((resolve) => req.on('response', resolve));
    req.resume();
    await new Promise((resolve) => req.on('end', resolve));
    expect(headers[':status']).toBe(200);
    expect(headers['grpc-status']).toBe('12');
  });

  it('accepts an :authority with "://" (etcdctl 3.4 sends one)', async () => {
    const served = await serve(echo);
    const session = connect(served.port);
    const reply = await request(session, { ':method': 'POST', ':path': '/a', ':authority': 'http://127.0.0.1:2379' }, Buffer.from('x'));
    expect(reply.body.toString()).toBe('x');
  });

  it('client RST_STREAM mid-response: aborted() with its code', async () => {
    const log = { aborted: [] as number[] };
    let drained = 0;
    const served = await serve((stream) => {
      stream.handlers = {
        data: () => {},
        end: () => {},
        aborted: (code) => log.aborted.push(code),
        drain: () => drained++,
      };
      stream.respond([[':status', '200']]);
      // More than the client's 64 KiB window: the rest waits, queued.
      expect(stream.write(Buffer.alloc(256 * 1024))).toBe(false);
    });
    const session = connect(served.port);
    const req = session.request({ ':path': '/big' }, { endStream: false });
    await new Promise((resolve) => req.once('data', resolve));
    req.close(http2.constants.NGHTTP2_CANCEL);
    await new Promise((resolve) => req.on('close', resolve));
    await until(() => log.aborted.length > 0);
    expect(log.aborted).toEqual([http2.constants.NGHTTP2_CANCEL]);
    expect(served.connections[0]!.activeStreams).toBe(0);
    expect(drained).toBe(0);
  });

  it('client closes the socket: open streams aborted(-1), then closed()', async () => {
    const log = { streams: [] as H2ServerStream[], aborted: [] as Array<[number, number]> };
    const served = await serve(holder(log));
    const client = await RawClient.open(served.port);
    client.send(headersFrame(1, GET, Flag.END_HEADERS), headersFrame(3, GET));
    await until(() => log.streams.length === 2);
    client.socket.destroy();
    await served.closed();
    expect(log.aborted.sort()).toEqual([
      [1, -1],
      [3, -1],
    ]);
  });

  it('Node client session.destroy(): every stream ends (reset or aborted), then closed()', async () => {
    const log = { streams: [] as H2ServerStream[], aborted: [] as Array<[number, number]> };
    const served = await serve(holder(log));
    const session = connect(served.port);
    session.request({ ':path': '/1' }, { endStream: false });
    session.request({ ':path': '/2' });
    await until(() => log.streams.length === 2);
    session.destroy();
    await served.closed();
    // Node resets the stream it was still sending on (code 0), the other dies with the socket.
    expect(log.aborted.map((a) => a[0]).sort()).toEqual([1, 3]);
    expect(served.connections[0]!.activeStreams).toBe(0);
  });

  it('client GOAWAY (session.close()): the open stream still finishes, then the connection closes', async () => {
    const log = { streams: [] as H2ServerStream[], aborted: [] as Array<[number, number]> };
    const served = await serve(holder(log));
    const session = connect(served.port);
    const pending = request(session, { ':method': 'POST', ':path': '/slow' });
    await until(() => log.streams.length === 1);
    session.close();
    const stream = log.streams[0]!;
    stream.respond([[':status', '200']]);
    stream.write(Buffer.from('late'));
    stream.end([['x-trailer', 'after-goaway']]);
    const reply = await pending;
    expect(reply.body.toString()).toBe('late');
    expect(reply.trailers?.['x-trailer']).toBe('after-goaway');
    await served.closed();
    expect(log.aborted).toEqual([]);
  });

  it('answers a PING when ping() allows it', async () => {
    const served = await serve(echo);
    const session = connect(served.port);
    await new Promise<void>((resolve) => session.once('connect', () => resolve()));
    const payload = Buffer.from('abcdefgh');
    const echoed = await new Promise<Buffer>((resolve, reject) => session.ping(payload, (err, _ms, p) => (err ? reject(err) : resolve(p))));
    expect(echoed.equals(payload)).toBe(true);
    expect(served.connections).toHaveLength(1);
  });

  it('tells ping() whether a HEADERS or DATA frame went out since the previous PING', async () => {
    const seen: boolean[] = [];
    const served = await serve(echo, {
      ping: (wrote) => {
        seen.push(wrote);
        return true;
      },
    });
    const session = connect(served.port);
    await new Promise<void>((resolve) => session.once('connect', () => resolve()));
    const ping = () => new Promise<void>((resolve, reject) => session.ping((err) => (err ? reject(err) : resolve())));
    await ping();
    await request(session, { ':method': 'POST', ':path': '/echo' }, Buffer.from('x'));
    await ping();
    await ping();
    expect(seen).toEqual([false, true, false]);
  });

  it('refuses a PING with GOAWAY ENHANCE_YOUR_CALM "too_many_pings" and closes', async () => {
    const served = await serve(echo, { ping: () => false });
    const session = connect(served.port);
    const goaway = new Promise<[number, Buffer | undefined]>((resolve) => session.on('goaway', (code, _last, data) => resolve([code, data])));
    await new Promise<void>((resolve) => session.once('connect', () => resolve()));
    session.ping(() => {});
    const [code, data] = await goaway;
    expect(code).toBe(http2.constants.NGHTTP2_ENHANCE_YOUR_CALM);
    expect(data?.toString()).toBe('too_many_pings');
    await served.closed();
  });

  it('sendPing: the callback runs on the ACK', async () => {
    const served = await serve(echo);
    const session = connect(served.port);
    await request(session, { ':method': 'POST', ':path': '/' }, Buffer.from('warm'));
    await new Promise<void>((resolve) => served.connections[0]!.sendPing(resolve));
  });

  it('refuses streams beyond MAX_CONCURRENT_STREAMS with REFUSED_STREAM', async () => {
    const log = { streams: [] as H2ServerStream[], aborted: [] as Array<[number, number]> };
    const served = await serve(holder(log), { maxConcurrentStreams: 2 });
    const client = await RawClient.open(served.port);
    expect(client.frames.find((f) => f.type === FrameType.SETTINGS && !(f.flags & Flag.ACK))?.payload.toString('hex')).toContain('000300000002');
    client.send(headersFrame(1, GET, Flag.END_HEADERS), headersFrame(3, GET, Flag.END_HEADERS), headersFrame(5, GET, Flag.END_HEADERS));
    await client.until(() => client.frames.some((f) => f.type === FrameType.RST_STREAM));
    const rst = client.frames.find((f) => f.type === FrameType.RST_STREAM)!;
    expect(rst.streamId).toBe(5);
    expect(rst.payload.readUInt32BE(0)).toBe(ErrorCode.REFUSED_STREAM);
    expect(log.streams.map((s) => s.id)).toEqual([1, 3]);
    // A slot frees up: the next stream is served.
    log.streams[0]!.reset(ErrorCode.CANCEL);
    client.send(headersFrame(7, GET, Flag.END_HEADERS));
    await until(() => log.streams.length === 3);
    expect(log.streams[2]!.id).toBe(7);
  });

  it('shutdown(): GOAWAY, the open stream finishes, new streams are refused, then the socket ends', async () => {
    const log = { streams: [] as H2ServerStream[], aborted: [] as Array<[number, number]> };
    const served = await serve(holder(log));
    const client = await RawClient.open(served.port);
    client.send(headersFrame(1, GET));
    await until(() => log.streams.length === 1);
    served.connections[0]!.shutdown();
    await client.until(() => client.frames.some((f) => f.type === FrameType.GOAWAY));
    const goaway = client.frames.find((f) => f.type === FrameType.GOAWAY)!;
    expect(goaway.payload.readUInt32BE(0)).toBe(1);
    expect(goaway.payload.readUInt32BE(4)).toBe(ErrorCode.NO_ERROR);
    client.send(headersFrame(3, GET));
    await client.until(() => client.frames.some((f) => f.type === FrameType.RST_STREAM && f.streamId === 3));
    expect(client.closed).toBe(false);
    const stream = log.streams[0]!;
    stream.respond([[':status', '200']]);
    stream.write(Buffer.from('bye'));
    stream.end([['grpc-status', '0']]);
    await client.until(() => client.closed);
    const last = client.frames.filter((f) => f.streamId === 1).at(-1)!;
    expect(last.type).toBe(FrameType.HEADERS);
    expect(last.flags & Flag.END_STREAM).toBe(Flag.END_STREAM);
    await served.closed();
    expect(log.streams).toHaveLength(1);
  });

  it('a lone answer (respond + write + end in one run) leaves in ONE socket write', async () => {
    let writes = 0;
    const served = await serve((stream) => {
      stream.handlers = {
        data: () => {},
        end: () => {
          stream.respond([
            [':status', '200'],
            ['content-type', 'application/grpc'],
          ]);
          stream.write(Buffer.from('0000000003616263', 'hex'));
          stream.end([
            ['grpc-status', '0'],
            ['grpc-message', ''],
          ]);
        },
        aborted: () => {},
        drain: () => {},
      };
      const socket = stream.socket;
      if (!(socket as { counted?: boolean }).counted) {
        (socket as { counted?: boolean }).counted = true;
        const write = socket.write.bind(socket) as (...args: unknown[]) => boolean;
        socket.write = ((...args: unknown[]) => {
          writes++;
          return write(...args);
        }) as typeof socket.write;
      }
    });
    const client = await RawClient.open(served.port);
    const chunksBefore = client.chunks;
    client.send(headersFrame(1, GET, Flag.END_HEADERS), encodeFrame(FrameType.DATA, Flag.END_STREAM, 1, Buffer.from('0000000001ff', 'hex')));
    await client.until(() => client.frames.some((f) => f.streamId === 1 && f.type === FrameType.HEADERS && f.flags & Flag.END_STREAM));
    expect(writes).toBe(1);
    expect(client.chunks - chunksBefore).toBe(1);
    const frames = client.frames.filter((f) => f.streamId === 1).map((f) => f.type);
    expect(frames).toEqual([FrameType.HEADERS, FrameType.DATA, FrameType.HEADERS]);
  });

  it('writeQueuedOutput() hands what is queued to the socket at once; what follows leaves at the end of the turn', async () => {
    let writes = 0;
    let writesAtOnce = -1;
    const served = await serve((stream) => {
      countWrites(stream.socket, () => writes++);
      stream.handlers = {
        data: () => {},
        end: () => {
          stream.respond([[':status', '200']]);
          stream.write(Buffer.from('0000000003616263', 'hex'));
          const before = writes;
          writeQueuedOutput();
          writesAtOnce = writes - before;
          stream.end([['grpc-status', '0']]);
        },
        aborted: () => {},
        drain: () => {},
      };
    });
    const client = await RawClient.open(served.port);
    client.send(headersFrame(1, GET));
    await client.until(() => client.frames.some((f) => f.streamId === 1 && f.type === FrameType.HEADERS && f.flags & Flag.END_STREAM));
    expect(writesAtOnce).toBe(1);
    expect(writes).toBe(2);
    const frames = client.frames.filter((f) => f.streamId === 1).map((f) => f.type);
    expect(frames).toEqual([FrameType.HEADERS, FrameType.DATA, FrameType.HEADERS]);
  });

  it('answers on two connections in one synchronous run leave in one socket write each, at the end of the turn', async () => {
    const writes = new Map<net.Socket, number>();
    const held: H2ServerStream[] = [];
    let writesInTheRun = -1;
    let firstHeld!: () => void;
    const oneHeld = new Promise<void>((resolve) => (firstHeld = resolve));
    const answer = (stream: H2ServerStream): void => {
      stream.respond([[':status', '200']]);
      stream.write(Buffer.from('0000000001ff', 'hex'));
      stream.end([['grpc-status', '0']]);
    };
    const served = await serve((stream) => {
      const socket = stream.socket;
      writes.set(socket, 0);
      countWrites(socket, () => writes.set(socket, (writes.get(socket) ?? 0) + 1));
      stream.handlers = {
        data: () => {},
        end: () => {
          held.push(stream);
          if (held.length < 2) {
            firstHeld();
            return;
          }
          for (const s of held) answer(s);
          writesInTheRun = [...writes.values()].reduce((a, b) => a + b, 0);
        },
        aborted: () => {},
        drain: () => {},
      };
    });
    const one = await RawClient.open(served.port);
    const two = await RawClient.open(served.port);
    const ended = (client: RawClient) =>
      client.until(() => client.frames.some((f) => f.streamId === 1 && f.type === FrameType.HEADERS && f.flags & Flag.END_STREAM));
    one.send(headersFrame(1, GET));
    await oneHeld;
    two.send(headersFrame(1, GET));
    await Promise.all([ended(one), ended(two)]);
    expect(writesInTheRun).toBe(0);
    expect([...writes.values()]).toEqual([1, 1]);
  });

  it('connection errors: GOAWAY with the code, then close', async () => {
    const cases: Array<[string, Buffer, number]> = [
      ['PUSH_PROMISE', encodeFrame(FrameType.PUSH_PROMISE, Flag.END_HEADERS, 1, u32(2)), ErrorCode.PROTOCOL_ERROR],
      ['even stream id', headersFrame(2, GET), ErrorCode.PROTOCOL_ERROR],
      ['bad HPACK', encodeFrame(FrameType.HEADERS, Flag.END_HEADERS, 1, Buffer.from([0x80])), ErrorCode.COMPRESSION_ERROR],
      ['frame above 16384', encodeFrame(FrameType.DATA, 0, 1, Buffer.alloc(16385)), ErrorCode.FRAME_SIZE_ERROR],
      ['DATA on idle stream', encodeFrame(FrameType.DATA, 0, 9, Buffer.alloc(1)), ErrorCode.PROTOCOL_ERROR],
      ['window overflow', encodeFrame(FrameType.WINDOW_UPDATE, 0, 0, u32(0x7fffffff)), ErrorCode.FLOW_CONTROL_ERROR],
      ['CONTINUATION out of place', encodeFrame(FrameType.CONTINUATION, Flag.END_HEADERS, 1, Buffer.from([0x82])), ErrorCode.PROTOCOL_ERROR],
    ];
    for (const [name, frame, code] of cases) {
      const served = await serve(echo);
      const client = await RawClient.open(served.port);
      client.send(frame);
      await client.until(() => client.closed);
      const goaway = client.frames.find((f) => f.type === FrameType.GOAWAY);
      expect(goaway?.payload.readUInt32BE(4), name).toBe(code);
      await served.closed();
    }
  });

  it('rapid reset: more than 1000 streams reset before their answer is ENHANCE_YOUR_CALM', async () => {
    const log = { streams: [] as H2ServerStream[], aborted: [] as Array<[number, number]> };
    const served = await serve(holder(log));
    const client = await RawClient.open(served.port);
    const frames: Buffer[] = [];
    // 3000: the bucket refills 33 tokens a second while they are read, far fewer than 2000.
    for (let i = 0; i < 3000; i++) {
      const id = 2 * i + 1;
      frames.push(headersFrame(id, GET), encodeFrame(FrameType.RST_STREAM, 0, id, u32(ErrorCode.CANCEL)));
    }
    client.send(...frames);
    await client.until(() => client.closed);
    const goaway = client.frames.find((f) => f.type === FrameType.GOAWAY);
    expect(goaway?.payload.readUInt32BE(4)).toBe(ErrorCode.ENHANCE_YOUR_CALM);
    expect(goaway?.payload.subarray(8).toString()).toBe('too many stream resets');
    const cancelled = log.aborted.filter(([, code]) => code === ErrorCode.CANCEL).length;
    expect(cancelled).toBeGreaterThanOrEqual(1000);
    expect(cancelled).toBeLessThan(3000);
    await served.closed();
  });

  it('a request beyond our receive window is a flow-control error', async () => {
    const log = { streams: [] as H2ServerStream[], aborted: [] as Array<[number, number]> };
    const served = await serve(holder(log), { receiveWindowBytes: 1000 });
    const client = await RawClient.open(served.port);
    client.send(headersFrame(1, GET, Flag.END_HEADERS), encodeFrame(FrameType.DATA, 0, 1, Buffer.alloc(1001)));
    await client.until(() => client.frames.some((f) => f.type === FrameType.RST_STREAM || f.type === FrameType.GOAWAY));
    const err = client.frames.find((f) => f.type === FrameType.RST_STREAM || f.type === FrameType.GOAWAY)!;
    const code = err.type === FrameType.RST_STREAM ? err.payload.readUInt32BE(0) : err.payload.readUInt32BE(4);
    expect(code).toBe(ErrorCode.FLOW_CONTROL_ERROR);
    expect(log.aborted).toEqual([[1, ErrorCode.FLOW_CONTROL_ERROR]]);
  });
});

/** Waits for a condition that a socket event will make true (polls on setImmediate, no sleep). */
async function until(test: () => boolean): Promise<void> {
  while (!test()) await new Promise((resolve) => setImmediate(resolve));
}

function settingsPayload(entries: Array<[number, number]>): Buffer {
  const b = Buffer.alloc(entries.length * 6);
  entries.forEach(([k, v], i) => {
    b.writeUInt16BE(k, i * 6);
    b.writeUInt32BE(v, i * 6 + 2);
  });
  return b;
}

function dataBytes(client: RawClient, streamId: number): number {
  return client.frames.filter((f) => f.type === FrameType.DATA && f.streamId === streamId).reduce((n, f) => n + f.payload.length, 0);
}

describe('HTTP/2 server connection: send flow control and framing', () => {
  it('a raised SETTINGS_INITIAL_WINDOW_SIZE releases queued DATA, then the trailers', async () => {
    const served = await serve((stream) => {
      stream.respond([[':status', '200']]);
      stream.write(Buffer.alloc(1000, 1));
      stream.end([['grpc-status', '0']]);
    });
    const client = await RawClient.open(served.port, settingsPayload([[0x4, 100]]));
    client.send(headersFrame(1, GET));
    await client.until(() => dataBytes(client, 1) === 100);
    expect(client.frames.some((f) => f.streamId === 1 && f.type === FrameType.HEADERS && f.flags & Flag.END_STREAM)).toBe(false);
    client.send(encodeFrame(FrameType.SETTINGS, 0, 0, settingsPayload([[0x4, 1000]])));
    await client.until(() => client.frames.some((f) => f.streamId === 1 && f.type === FrameType.HEADERS && f.flags & Flag.END_STREAM));
    expect(dataBytes(client, 1)).toBe(1000);
  });

  it('DATA frames stay within the peer max frame size; a large header block goes out as HEADERS + CONTINUATION', async () => {
    const longMessage = 'm'.repeat(40_000);
    const served = await serve((stream) => {
      stream.respond([[':status', '200']]);
      stream.write(Buffer.alloc(40_000, 2));
      stream.end([['grpc-message', longMessage]]);
    });
    const client = await RawClient.open(served.port, settingsPayload([[0x4, 1 << 20]]));
    client.send(encodeFrame(FrameType.WINDOW_UPDATE, 0, 0, u32(1 << 20)), headersFrame(1, GET));
    await client.until(() => client.frames.some((f) => f.streamId === 1 && f.type === FrameType.CONTINUATION && f.flags & Flag.END_HEADERS));
    const frames = client.frames.filter((f) => f.streamId === 1);
    expect(frames.every((f) => f.payload.length <= 16384)).toBe(true);
    expect(dataBytes(client, 1)).toBe(40_000);
    const trailerFrames = frames.slice(frames.findIndex((f, i) => i > 0 && f.type === FrameType.HEADERS));
    expect(trailerFrames[0]!.flags & Flag.END_STREAM).toBe(Flag.END_STREAM);
    expect(trailerFrames.slice(1).every((f) => f.type === FrameType.CONTINUATION)).toBe(true);
    const block = Buffer.concat(trailerFrames.map((f) => f.payload));
    expect(new HpackDecoder().decode(block, 0, block.length, 1 << 20)).toEqual([['grpc-message', longMessage]]);
  });

  it('streams share a closed connection window round robin', async () => {
    const served = await serve((stream) => {
      stream.respond([[':status', '200']]);
      stream.write(Buffer.alloc(60_000, 3));
      stream.end([['grpc-status', '0']]);
    });
    // Stream windows closed until both streams have queued their DATA; then opened wide, with the
    // connection window left at 65535.
    const client = await RawClient.open(served.port, settingsPayload([[0x4, 0]]));
    client.send(headersFrame(1, GET), headersFrame(3, GET));
    await client.until(() => client.frames.filter((f) => f.type === FrameType.HEADERS).length === 2);
    client.send(encodeFrame(FrameType.SETTINGS, 0, 0, settingsPayload([[0x4, 1 << 20]])));
    await client.until(() => dataBytes(client, 1) + dataBytes(client, 3) === 65535);
    // Both got a share of the window (one frame each per pass), not the first all of it.
    expect(dataBytes(client, 1)).toBeGreaterThan(16_000);
    expect(dataBytes(client, 3)).toBeGreaterThan(16_000);
    client.send(encodeFrame(FrameType.WINDOW_UPDATE, 0, 0, u32(1 << 20)));
    await client.until(() => client.frames.filter((f) => f.type === FrameType.HEADERS && f.flags & Flag.END_STREAM).length === 2);
    expect(dataBytes(client, 1)).toBe(60_000);
    expect(dataBytes(client, 3)).toBe(60_000);
  });

  it('write() returns false above the high-water mark; drain() follows once the client takes the bytes', async () => {
    const events: string[] = [];
    const served = await serve((stream) => {
      const payload = Buffer.alloc(200 * 1024, 4);
      stream.handlers = {
        data: () => {},
        end: () => {},
        aborted: () => events.push('aborted'),
        drain: () => {
          events.push('drain');
          stream.end([['grpc-status', '0']]);
        },
      };
      stream.respond([[':status', '200']]);
      events.push(`write ${stream.write(payload)}`);
    });
    const session = connect(served.port);
    const reply = await request(session, { ':method': 'POST', ':path': '/drain' });
    expect(reply.body.length).toBe(200 * 1024);
    expect(events).toEqual(['write false', 'drain']);
  });
});

describe('HTTP/2 server connection over TLS (ALPN h2)', () => {
  it('serves a Node http2 client on a TLSSocket', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'h2-tls-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    execFileSync(
      'openssl',
      [
        'req',
        '-x509',
        '-newkey',
        'ec',
        '-pkeyopt',
        'ec_paramgen_curve:prime256v1',
        '-nodes',
        '-days',
        '1',
        '-subj',
        '/CN=127.0.0.1',
        '-addext',
        'subjectAltName=IP:127.0.0.1',
        '-keyout',
        join(dir, 'key.pem'),
        '-out',
        join(dir, 'cert.pem'),
      ],
      { stdio: 'ignore' },
    );
    const key = readFileSync(join(dir, 'key.pem'));
    const cert = readFileSync(join(dir, 'cert.pem'));
    const sockets = new Set<net.Socket>();
    const server = tls.createServer({ key, cert, ALPNProtocols: ['h2'] }, (socket) => {
      sockets.add(socket);
      socket.on('close', () => sockets.delete(socket));
      serveH2Connection(socket, {
        onStream: echo,
        maxConcurrentStreams: 100,
        maxHeaderListBytes: 16 * 1024,
        receiveWindowBytes: 1024 * 1024,
        ping: () => true,
        closed: () => {},
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    cleanups.push(async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    });
    const session = http2.connect(`https://127.0.0.1:${(server.address() as net.AddressInfo).port}`, { ca: cert });
    session.on('error', () => {});
    cleanups.push(() => {
      if (!session.destroyed) session.destroy();
    });
    const body = Buffer.alloc(1024 * 1024, 9);
    const reply = await request(session, { ':method': 'POST', ':path': '/tls' }, body);
    expect(reply.body.equals(body)).toBe(true);
    expect(reply.trailers?.['x-trailer']).toBe('done');
  });
});

describe('HTTP/2 server connection behind the protocol router', () => {
  it('takes a plain socket whose first bytes were read and put back (unshift), paused', async () => {
    const sockets = new Set<net.Socket>();
    let closed = 0;
    const server = net.createServer((socket) => {
      sockets.add(socket);
      socket.on('close', () => sockets.delete(socket));
      routeByProtocol(socket, {
        http2: (s) =>
          serveH2Connection(s, {
            onStream: echo,
            maxConcurrentStreams: 100,
            maxHeaderListBytes: 16 * 1024,
            receiveWindowBytes: 1024 * 1024,
            ping: () => true,
            closed: () => closed++,
          }),
        http1: (s) => s.destroy(),
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    cleanups.push(async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    });
    const session = connect((server.address() as net.AddressInfo).port);
    const reply = await request(session, { ':method': 'POST', ':path': '/routed' }, Buffer.from('through the router'));
    expect(reply.body.toString()).toBe('through the router');
    expect(reply.trailers?.['x-trailer']).toBe('done');
    session.close();
    await until(() => closed === 1);
  });
});
