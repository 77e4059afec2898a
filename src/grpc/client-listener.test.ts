// The client listener routes each connection by protocol (HTTP/2 preface -> gRPC side, anything
// else -> HTTP/1.1 side), holds connections accepted before both sides are attached, and refuses
// connections beyond the limit across all its addresses.

import http from 'node:http';
import http2 from 'node:http2';
import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { ClientListener } from './client-listener.js';
import { serveH2Connection } from './h2/connection.js';
import type { H2ServerStream } from './h2/h2-stream.js';

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function listener(addresses: number, maxConnections = 100): Promise<ClientListener> {
  const bound = await ClientListener.listen({
    addresses: Array.from({ length: addresses }, () => ({ host: '127.0.0.1', port: 0, secure: false })),
    maxConnections,
  });
  cleanups.push(() => bound.close());
  return bound;
}

/** An HTTP/1.1 server and the client port's HTTP/2 connection fed by the listener, each saying who answered. */
function serveBoth(bound: ClientListener): void {
  const h1 = http.createServer((_request, response) => response.end('http1'));
  const answer = (stream: H2ServerStream): void => {
    stream.handlers = {
      data: () => undefined,
      end: () => {
        stream.respond([[':status', '200']]);
        stream.write(Buffer.from('http2'));
        stream.end([]);
      },
      aborted: () => undefined,
      drain: () => undefined,
    };
  };
  const options = {
    onStream: answer,
    maxConcurrentStreams: 100,
    maxHeaderListBytes: 65_535,
    receiveWindowBytes: 65_535,
    ping: () => true,
    closed: () => undefined,
  };
  cleanups.push(() => {
    h1.closeAllConnections();
  });
  bound.serveGrpc((socket) => serveH2Connection(socket, options));
  bound.serveHttp1((socket) => h1.emit('connection', socket));
}

function http2Get(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const session = http2.connect(`http://127.0.0.1:${port}`);
    session.on('error', reject);
    const request = session.request({ ':path': '/' });
    let body = '';
    request.setEncoding('utf8');
    request.on('data', (chunk: string) => (body += chunk));
    request.on('end', () => {
      session.close();
      resolve(body);
    });
    request.on('error', reject);
  });
}

describe('client listener', () => {
  it('routes HTTP/2 and HTTP/1.1 on every address to their servers', async () => {
    const bound = await listener(2);
    serveBoth(bound);
    for (const port of bound.ports) {
      expect(await (await fetch(`http://127.0.0.1:${port}/health`)).text()).toBe('http1');
      expect(await http2Get(port)).toBe('http2');
    }
  });

  it('holds connections made before both servers are attached, then serves them', async () => {
    const bound = await listener(1);
    const early = fetch(`http://127.0.0.1:${bound.ports[0]}/`).then((r) => r.text());
    await new Promise<void>((resolve) => setImmediate(resolve));
    serveBoth(bound);
    expect(await early).toBe('http1');
  });

  it('refuses connections beyond the limit, counted across addresses', async () => {
    const bound = await listener(2, 1);
    serveBoth(bound);
    const first = net.connect(bound.ports[0]!, '127.0.0.1');
    cleanups.push(() => void first.destroy());
    await new Promise((resolve) => first.once('connect', resolve));
    const second = net.connect(bound.ports[1]!, '127.0.0.1');
    await new Promise((resolve) => second.once('close', resolve));
    expect([bound.open, bound.refused]).toEqual([1, 1]);
  });
});
