// Keepalive enforcement on the client port (etcd's --grpc-keepalive-min-time): grpc-js servers
// answer every client PING and never police them, so we judge each PING ourselves
// (ping-strikes.ts) and close a connection that pings too often as grpc-go does: GOAWAY
// ENHANCE_YOUR_CALM with debug data "too_many_pings", then the connection goes. This serves
// grpc-js's servers (edge processes, the embedding path); a member's own client port judges
// PINGs on its own HTTP/2 connection (h2/grpc-connections.ts), with the same PingStrikes.
//
// Reaching the connections: grpc-js creates one Node HTTP/2 server per bound port or connection
// injector and keeps them in its Server's `http2Servers` map, which is not public API. We take
// the servers created by our own listen call from that map and listen to their public
// 'session' event; each Http2Session then reports PINGs ('ping') and streams through Node's
// public API. grpc-js is pinned by package-lock; should a grpc-js upgrade drop
// the map, newHttp2Servers() fails an assertion at start instead of leaving the option silently
// without effect (and the keepalive tests fail).
//
// "The server wrote headers or data since the previous ping" (which forgives a ping in grpc-go,
// where it is noted when the response is queued) is noted the same way here: each stream's
// respond() and write() are replaced by ones that note it (one pair per connection). Counting bytes on the socket instead cannot tell
// a small DATA frame (a watch's "created" answer is 44 bytes) from ping answers and window
// updates, and struck grpc-go's BDP pings, which follow each burst of data it receives.

import http2 from 'node:http2';
import type * as grpc from '@grpc/grpc-js';
import { assert } from '../util/assert.js';
import { PingStrikes } from './ping-strikes.js';

type NodeHttp2Server = http2.Http2Server | http2.Http2SecureServer;

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
  let serverWrote = false;
  // One set of functions per connection, shared by all its streams: a closure or once()
  // wrapper per stream was an allocation on every call (bench/RESULTS.md, "The client path").
  const noteWrite = (): void => {
    serverWrote = true;
  };
  const streamClosed = (): void => {
    openStreams--;
  };
  let writesNoted: WriteNoting | undefined;
  session.on('stream', (stream: http2.ServerHttp2Stream) => {
    openStreams++;
    // Its response headers are on their way (grpc-js may already have sent them).
    serverWrote = true;
    lastStreamId = Math.max(lastStreamId, stream.id ?? 0);
    writesNoted ??= writeNoting(stream, noteWrite);
    stream.respond = writesNoted.respond;
    stream.write = writesNoted.write;
    // 'close' comes once per stream: a plain listener does what once() did, without its wrapper.
    stream.on('close', streamClosed);
  });
  session.on('ping', () => {
    const wrote = serverWrote;
    serverWrote = false;
    if (!strikes.ping({ nowMs: performance.now(), openStreams, serverWrote: wrote })) return;
    policy.onTooManyPings?.(session.socket.remoteAddress);
    closeForTooManyPings(session, lastStreamId);
  });
}

interface WriteNoting {
  respond: http2.ServerHttp2Stream['respond'];
  write: http2.ServerHttp2Stream['write'];
}

/** respond() and write() for the streams of one connection: each calls `noted`, then the stream's own. */
function writeNoting(first: http2.ServerHttp2Stream, noted: () => void): WriteNoting {
  // Every server stream has the same methods (its class's): taken from the first one.
  const respond = first.respond;
  const write = first.write as (chunk: unknown, encoding?: unknown, callback?: unknown) => boolean;
  return {
    respond(this: http2.ServerHttp2Stream, headers?: http2.OutgoingHttpHeaders, options?: http2.ServerStreamResponseOptions) {
      noted();
      respond.call(this, headers, options);
    },
    write: function (this: http2.ServerHttp2Stream, chunk: unknown, encoding?: unknown, callback?: unknown) {
      noted();
      return write.call(this, chunk, encoding, callback);
    } as http2.ServerHttp2Stream['write'],
  };
}

function closeForTooManyPings(session: http2.ServerHttp2Session, lastStreamId: number): void {
  if (session.closed || session.destroyed) return;
  session.goaway(http2.constants.NGHTTP2_ENHANCE_YOUR_CALM, lastStreamId, TOO_MANY_PINGS);
  // grpc-go drops the connection right after its GOAWAY; give the frame a moment to leave.
  session.close();
  setTimeout(() => session.destroy(), CLOSE_GRACE_MS).unref();
}
