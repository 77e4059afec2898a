// Interop with a real gRPC client: grpc-js over plain TCP talks to a tiny echo service served
// by our HTTP/2 connection with hand-written gRPC framing (5-byte message prefix, trailers with
// grpc-status). Unary, server streaming, and a status error.

import * as grpc from '@grpc/grpc-js';
import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { serveH2Connection } from './connection.js';
import type { H2ServerStream } from './h2-stream.js';

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

function frame(message: Buffer): Buffer {
  const out = Buffer.allocUnsafe(5 + message.length);
  out[0] = 0;
  out.writeUInt32BE(message.length, 1);
  message.copy(out, 5);
  return out;
}

/** Serves /echo.Echo/Unary, /echo.Echo/Stream (3 copies) and /echo.Echo/Fail (status 5). */
function echoService(stream: H2ServerStream): void {
  const path = stream.fields.find((f) => f[0] === ':path')?.[1];
  const chunks: Buffer[] = [];
  stream.handlers = {
    data: (chunk) => chunks.push(Buffer.from(chunk)),
    end: () => {
      const body = Buffer.concat(chunks);
      const message = body.subarray(5, 5 + body.readUInt32BE(1));
      if (path === '/echo.Echo/Fail') {
        stream.end([
          [':status', '200'],
          ['content-type', 'application/grpc'],
          ['grpc-status', '5'],
          ['grpc-message', 'not%20here'],
        ]);
        return;
      }
      stream.respond([
        [':status', '200'],
        ['content-type', 'application/grpc'],
      ]);
      const copies = path === '/echo.Echo/Stream' ? 3 : 1;
      for (let i = 0; i < copies; i++) stream.write(frame(Buffer.concat([message, Buffer.from(`#${i}`)])));
      stream.end([['grpc-status', '0']]);
    },
    aborted: () => {},
    drain: () => {},
  };
}

async function startServer(): Promise<number> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    serveH2Connection(socket, {
      onStream: echoService,
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
  return (server.address() as net.AddressInfo).port;
}

const identity = (b: Buffer): Buffer => b;

function client(port: number): grpc.Client {
  const c = new grpc.Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
  cleanups.push(() => c.close());
  return c;
}

function unary(c: grpc.Client, path: string, message: Buffer): Promise<Buffer> {
  return new Promise((resolve, reject) =>
    c.makeUnaryRequest(path, identity, identity, message, (err: grpc.ServiceError | null, value?: Buffer) => (err ? reject(err) : resolve(value!))),
  );
}

describe('grpc-js client against our HTTP/2 connection', () => {
  it('unary calls, many at once', async () => {
    const c = client(await startServer());
    expect((await unary(c, '/echo.Echo/Unary', Buffer.from('hi'))).toString()).toBe('hi#0');
    const replies = await Promise.all(Array.from({ length: 50 }, (_, i) => unary(c, '/echo.Echo/Unary', Buffer.from(`m${i}`))));
    expect(replies.map((r) => r.toString())).toEqual(Array.from({ length: 50 }, (_, i) => `m${i}#0`));
  });

  it('a server-streaming call', async () => {
    const c = client(await startServer());
    const call = c.makeServerStreamRequest('/echo.Echo/Stream', identity, identity, Buffer.from('s'));
    const got: string[] = [];
    call.on('data', (b: Buffer) => got.push(b.toString()));
    const status = await new Promise<grpc.StatusObject>((resolve) => call.on('status', resolve));
    expect(status.code).toBe(grpc.status.OK);
    expect(got).toEqual(['s#0', 's#1', 's#2']);
  });

  it('a Trailers-Only error status', async () => {
    const c = client(await startServer());
    const err = await unary(c, '/echo.Echo/Fail', Buffer.from('x')).then(
      () => null,
      (e: grpc.ServiceError) => e,
    );
    expect(err?.code).toBe(grpc.status.NOT_FOUND);
    expect(err?.details).toBe('not here');
  });
});
