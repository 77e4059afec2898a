// Keepalive enforcement on the client port (etcd's --grpc-keepalive-min-time): grpc-js servers
// answer every client PING and never police them, so we judge each PING ourselves
// (ping-strikes.ts) and close a connection that pings too often as grpc-go does: GOAWAY
// ENHANCE_YOUR_CALM with debug data "too_many_pings", then the connection goes.
//
// Reaching the connections: grpc-js creates one Node HTTP/2 server per bound port or connection
// injector and keeps them in its Server's `http2Servers` map, which is not public API. We take
// the servers created by our own listen call from that map and listen to their public
// 'session' event; each Http2Session then reports PINGs ('ping'), streams and bytes written
// through Node's public API. grpc-js is pinned by package-lock; should a grpc-js upgrade drop
// the map, newHttp2Servers() fails an assertion at start instead of leaving the option silently
// without effect (and the keepalive tests fail).
//
// "The server wrote headers or data since the previous ping" (which forgives a ping in grpc-go)
// is read from the connection: a stream opened since then (its response headers follow), or
// more bytes written than ping answers and flow-control frames account for.

import http2 from 'node:http2';
import type * as grpc from '@grpc/grpc-js';
import { assert } from '../util/assert.js';
import { PingStrikes } from './ping-strikes.js';

type NodeHttp2Server = http2.Http2Server | http2.Http2SecureServer;

/** Bytes a server writes between two pings without sending headers or data: PING ACK (17),
 * its own keepalive PING (17), SETTINGS ACK (9), a couple of WINDOW_UPDATEs (13 each). */
const CONTROL_FRAME_BYTES = 17 + 17 + 9 + 13 + 13;
/** How long a connection closed for too many pings may take to flush its GOAWAY and end. */
const CLOSE_GRACE_MS = 1000;
const TOO_MANY_PINGS = Buffer.from('too_many_pings', 'latin1');

/** The Node HTTP/2 servers grpc-js holds for `server` right now. */
export function http2ServersOf(server: grpc.Server): Set<NodeHttp2Server> {
  const servers = (server as unknown as { http2Servers?: unknown }).http2Servers;
  assert(servers instanceof Map, 'grpc-js Server.http2Servers is not a Map: keepalive enforcement cannot reach client connections');
  return new Set(servers.keys() as IterableIterator<NodeHttp2Server>);
}

/** The servers grpc-js created since `before` was taken; at least one (a listen call creates one). */
export function newHttp2Servers(server: grpc.Server, before: ReadonlySet<NodeHttp2Server>): NodeHttp2Server[] {
  const created = [...http2ServersOf(server)].filter((s) => !before.has(s));
  assert(created.length > 0, 'grpc-js created no HTTP/2 server for the client port: keepalive enforcement cannot reach its connections');
  return created;
}

export interface PingPolicy {
  /** etcd --grpc-keepalive-min-time; 0 = grpc-go's default (5 minutes). */
  minTimeMs: number;
  /** Told about each connection closed for pinging too often. */
  onTooManyPings?: (remoteAddress: string | undefined) => void;
}

/** Judges the PINGs of every connection `http2Server` accepts from now on. */
export function enforcePingPolicy(http2Server: NodeHttp2Server, policy: PingPolicy): void {
  http2Server.on('session', (session: http2.ServerHttp2Session) => watchSession(session, policy));
}

function watchSession(session: http2.ServerHttp2Session, policy: PingPolicy): void {
  const strikes = new PingStrikes(policy.minTimeMs);
  let openStreams = 0;
  let lastStreamId = 0;
  let streamSincePing = false;
  let bytesAtPing = session.socket.bytesWritten;
  session.on('stream', (stream: http2.ServerHttp2Stream) => {
    openStreams++;
    streamSincePing = true;
    lastStreamId = Math.max(lastStreamId, stream.id ?? 0);
    stream.once('close', () => openStreams--);
  });
  session.on('ping', () => {
    const bytes = session.socket.bytesWritten;
    const serverWrote = streamSincePing || bytes - bytesAtPing > CONTROL_FRAME_BYTES;
    streamSincePing = false;
    bytesAtPing = bytes;
    if (!strikes.ping({ nowMs: performance.now(), openStreams, serverWrote })) return;
    policy.onTooManyPings?.(session.socket.remoteAddress);
    closeForTooManyPings(session, lastStreamId);
  });
}

function closeForTooManyPings(session: http2.ServerHttp2Session, lastStreamId: number): void {
  if (session.closed || session.destroyed) return;
  session.goaway(http2.constants.NGHTTP2_ENHANCE_YOUR_CALM, lastStreamId, TOO_MANY_PINGS);
  // grpc-go drops the connection right after its GOAWAY; give the frame a moment to leave.
  session.close();
  setTimeout(() => session.destroy(), CLOSE_GRACE_MS).unref();
}
