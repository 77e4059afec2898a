// etcd's --grpc-keepalive-min-time|interval|timeout on the client port, served by the member
// itself and by an edge (server.grpc.workers > 0; in process here), which serve connections
// alike (grpc-server.ts serveGrpcConnections): a client pinging more often than allowed gets GOAWAY ENHANCE_YOUR_CALM "too_many_pings" as
// from grpc-go, one pinging slowly enough keeps its connection, the server pings idle clients
// every interval and drops one that never answers within the timeout.

import http2 from 'node:http2';
import net from 'node:net';
import { once } from 'node:events';
import { afterEach, describe, expect, it } from 'vitest';
import type { GrpcServerOptions } from '../../src/grpc/grpc-server.js';
import { encodeMessage } from '../../src/grpc/proto.js';
import { framed } from '../support/grpc-frames.js';
import { startInProcessMember, type InProcessMember } from './in-process.js';

let member: InProcessMember | undefined;
const sessions: http2.ClientHttp2Session[] = [];

afterEach(async () => {
  for (const session of sessions.splice(0)) session.destroy();
  await member?.close();
  member = undefined;
});

async function start(options: Partial<GrpcServerOptions> & { edge?: boolean }): Promise<string> {
  const { edge, ...grpc } = options;
  member = await startInProcessMember({ grpc, edge });
  return member.endpoint;
}

async function connect(endpoint: string): Promise<http2.ClientHttp2Session> {
  const session = http2.connect(`http://${endpoint}`);
  session.on('error', () => {});
  sessions.push(session);
  await once(session, 'connect');
  return session;
}

function ping(session: http2.ClientHttp2Session): Promise<void> {
  return new Promise((resolve, reject) => {
    const sent = session.ping((error) => (error ? reject(error) : resolve()));
    if (!sent) reject(new Error('ping not sent'));
  });
}

/** Opens a Watch call and leaves it open: the connection then has an active stream. */
async function openWatch(session: http2.ClientHttp2Session): Promise<void> {
  const stream = session.request({ ':method': 'POST', ':path': '/etcdserverpb.Watch/Watch', 'content-type': 'application/grpc', te: 'trailers' });
  stream.on('error', () => {});
  // One gRPC message: WatchRequest{create_request{key: "a"}}; the server answers "created".
  stream.write(Buffer.from([0, 0, 0, 0, 5, 0x0a, 0x03, 0x0a, 0x01, 0x61]));
  await once(stream, 'response');
}

interface GoAway {
  code: number;
  data: string;
}

function goAway(session: http2.ClientHttp2Session): Promise<GoAway> {
  return new Promise((resolve) =>
    session.once('goaway', (code: number, _last: number, data?: Buffer) => resolve({ code, data: data?.toString('latin1') ?? '' })),
  );
}

/** Pings one after another (each after the previous answer) until the server says GOAWAY. */
async function pingUntilGoAway(session: http2.ClientHttp2Session): Promise<{ goAway: GoAway; pings: number }> {
  const told = goAway(session);
  let said: GoAway | undefined;
  void told.then((g) => (said = g));
  let pings = 0;
  while (said === undefined && pings < 20) {
    pings++;
    await ping(session).catch(() => {});
  }
  return { goAway: await told, pings };
}

const TOO_MANY_PINGS = { code: http2.constants.NGHTTP2_ENHANCE_YOUR_CALM, data: 'too_many_pings' };

/** Who serves the client connections: the member's own server, or an edge relaying to it. */
const SERVERS = [
  ['member', { edge: false }],
  ['edge', { edge: true }],
] as const;

describe.each(SERVERS)('keepalive enforcement (%s)', (_name, server) => {
  it('a client pinging without an open call is sent GOAWAY too_many_pings after three strikes', async () => {
    const closed: (string | undefined)[] = [];
    const endpoint = await start({ ...server, onTooManyPings: (address) => closed.push(address) });
    const session = await connect(endpoint);
    const { goAway: said, pings } = await pingUntilGoAway(session);
    expect(said).toEqual(TOO_MANY_PINGS);
    expect(pings).toBeGreaterThanOrEqual(4); // the first ping is free, then three strikes
    await new Promise((resolve) => session.once('close', resolve));
    expect(closed).toEqual(['127.0.0.1']);
  });

  it('with a call open, pings closer than keepalive min time are struck', async () => {
    const endpoint = await start({ ...server, keepalive: { minTimeMs: 60_000 } });
    const session = await connect(endpoint);
    await openWatch(session);
    expect((await pingUntilGoAway(session)).goAway).toEqual(TOO_MANY_PINGS);
  });
});

describe.each(SERVERS)('keepalive within the limits (%s)', (_name, server) => {
  it("a client pinging each time it receives data (grpc-go's BDP pings) keeps its connection", async () => {
    const endpoint = await start({ ...server, keepalive: { minTimeMs: 60_000 } });
    const session = await connect(endpoint);
    let said = false;
    session.on('goaway', () => (said = true));
    const stream = session.request({ ':method': 'POST', ':path': '/etcdserverpb.Watch/Watch', 'content-type': 'application/grpc', te: 'trailers' });
    stream.on('error', () => {});
    // Each WatchRequest{create_request{key: "a"}} is answered by a small "created" message, as
    // clientv3 creates watchers one after another on one stream; grpc-go pings after each.
    for (let i = 0; i < 8; i++) {
      const answered = once(stream, 'data');
      stream.write(Buffer.from([0, 0, 0, 0, 5, 0x0a, 0x03, 0x0a, 0x01, 0x61]));
      await answered;
      await ping(session);
    }
    expect(said).toBe(false);
    expect(session.closed).toBe(false);
  });

  it('a client pinging after each DATA frame of one long response (BDP pings) keeps its connection: strikes are forgiven per frame sent', async () => {
    const endpoint = await start({ ...server, keepalive: { minTimeMs: 60_000 } });
    // One value of 400 KB: its Range answer is one message, one write, 25 DATA frames of 16 KiB.
    await member!.call('KV', 'put', { key: Buffer.from('long'), value: Buffer.alloc(400_000, 7) });
    // A 16 KiB stream window: the server sends a frame, then waits for the client's WINDOW_UPDATE.
    const session = http2.connect(`http://${endpoint}`, { settings: { initialWindowSize: 16 * 1024 } });
    session.on('error', () => {});
    sessions.push(session);
    await once(session, 'connect');
    let said = false;
    session.on('goaway', () => (said = true));
    const stream = session.request({ ':method': 'POST', ':path': '/etcdserverpb.KV/Range', 'content-type': 'application/grpc', te: 'trailers' });
    stream.on('error', () => {});
    let received = 0;
    let pings = 0;
    stream.on('data', (chunk: Buffer) => {
      received += chunk.length;
      pings++;
      void ping(session).catch(() => {});
    });
    let status: string | undefined;
    stream.on('trailers', (trailers) => (status = String(trailers['grpc-status'])));
    const closed = once(stream, 'close');
    stream.end(framed(encodeMessage('etcdserverpb.RangeRequest', { key: Buffer.from('long') })));
    await closed;
    // Struck per write() instead, the connection would be closed mid-answer with too_many_pings.
    expect(said).toBe(false);
    expect(status).toBe('0');
    expect(received).toBeGreaterThan(400_000);
    expect(pings).toBeGreaterThanOrEqual(10);
    await ping(session);
    expect(session.closed).toBe(false);
  });

  it('a client with an open call pinging less often than min time keeps its connection', async () => {
    const endpoint = await start({ ...server, keepalive: { minTimeMs: 20 } });
    const session = await connect(endpoint);
    let said = false;
    session.on('goaway', () => (said = true));
    await openWatch(session);
    for (let i = 0; i < 6; i++) {
      await ping(session);
      await new Promise((resolve) => setTimeout(resolve, 40)); // the client's own ping period
    }
    // The server still answers on this connection.
    await ping(session);
    expect(said).toBe(false);
    expect(session.closed).toBe(false);
  });

  it('the server pings an idle client every keepalive interval', async () => {
    const endpoint = await start({ ...server, keepalive: { intervalMs: 50, timeoutMs: 5000 } });
    const session = await connect(endpoint);
    const serverPings: number[] = [];
    await new Promise<void>((resolve) =>
      session.on('ping', () => {
        serverPings.push(serverPings.length);
        if (serverPings.length === 3) resolve();
      }),
    );
    expect(serverPings).toHaveLength(3);
  });

  it('an idle client that never answers the server ping is dropped after keepalive timeout', async () => {
    const endpoint = await start({ ...server, keepalive: { intervalMs: 50, timeoutMs: 200 } });
    const [host, port] = endpoint.split(':');
    const socket = net.connect({ host, port: Number(port) });
    socket.on('error', () => {});
    await once(socket, 'connect');
    // HTTP/2 preface, an empty SETTINGS and the ACK of the server's first SETTINGS; then silence:
    // no PING is ever acknowledged.
    const settings = Buffer.from([0, 0, 0, 4, 0, 0, 0, 0, 0]);
    const settingsAck = Buffer.from([0, 0, 0, 4, 1, 0, 0, 0, 0]);
    socket.write(Buffer.concat([Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1'), settings, settingsAck]));
    const received: Buffer[] = [];
    socket.on('data', (chunk: Buffer) => received.push(chunk));
    await once(socket, 'close');
    const frames = framesOf(Buffer.concat(received));
    expect(frames).toContain(6); // the server did ping (type 6) before giving up
  });
});

/** The frame types in a server's byte stream (after nothing: servers send no preface). */
function framesOf(bytes: Buffer): number[] {
  const types: number[] = [];
  for (let at = 0; at + 9 <= bytes.length; at += 9 + bytes.readUIntBE(at, 3)) types.push(bytes[at + 3]!);
  return types;
}
