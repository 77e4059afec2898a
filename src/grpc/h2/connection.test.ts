// Our HTTP/2 server connection against Node's own HTTP/2 client (http2.connect) over real
// sockets on 127.0.0.1: headers, bodies both ways, trailers, concurrency, flow control with the
// client's default 64 KiB windows, resets, GOAWAY, PING, MAX_CONCURRENT_STREAMS, shutdown.

import http2 from 'node:http2';
import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { serveH2Connection } from './connection.js';
import type { H2Connection, H2ConnectionOptions, H2ServerStream, HeaderField } from './h2-stream.js';

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
