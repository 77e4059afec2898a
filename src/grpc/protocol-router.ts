// The client port speaks two protocols, as etcd's does: gRPC (HTTP/2) and HTTP/1.1 (health,
// version and metrics endpoints; later the JSON gateway). A connection is routed once, by how
// it starts:
// - TLS: by the protocol agreed in the handshake (ALPN). "h2" is gRPC; "http/1.1" or none is
//   HTTP/1.1. The decrypted stream is not read here: nghttp2 must take over a TLS socket
//   before anything reads it (a read-then-unshift TLS socket breaks the HTTP/2 session).
// - Plain text: by its first bytes. HTTP/2 with prior knowledge starts with the connection
//   preface "PRI * HTTP/2.0"; no HTTP/1.1 method starts with "PRI ", so four bytes decide.
//   The bytes read are put back (unshift) before the socket is handed on.
//
// Invariant: a route receives the socket with nothing consumed (a plain one paused); the route
// resumes it once its own reader is attached. A socket that ends or fails before it is routed is
// destroyed and reaches no route.

import type net from 'node:net';
import tls from 'node:tls';

export interface ProtocolRoutes {
  /** HTTP/2: gRPC. */
  http2(socket: net.Socket): void;
  /** Anything else: HTTP/1.1. */
  http1(socket: net.Socket): void;
}

const HTTP2_START = Buffer.from('PRI ', 'latin1');

export function routeByProtocol(socket: net.Socket, routes: ProtocolRoutes): void {
  if (socket instanceof tls.TLSSocket) {
    if (socket.alpnProtocol === 'h2') routes.http2(socket);
    else routes.http1(socket);
    return;
  }
  let received: Buffer = Buffer.alloc(0);
  const onGone = (): void => {
    detach();
    socket.destroy();
  };
  const onData = (chunk: Buffer): void => {
    received = received.length === 0 ? chunk : Buffer.concat([received, chunk]);
    const have = Math.min(received.length, HTTP2_START.length);
    const http2 = received.subarray(0, have).equals(HTTP2_START.subarray(0, have));
    if (http2 && have < HTTP2_START.length) return;
    // Paused before the 'data' listener goes: a flowing stream without listeners drops data.
    socket.pause();
    detach();
    socket.unshift(received);
    if (http2) routes.http2(socket);
    else routes.http1(socket);
  };
  const detach = (): void => {
    socket.off('data', onData);
    socket.off('end', onGone);
    socket.off('error', onGone);
  };
  socket.on('data', onData);
  socket.on('end', onGone);
  socket.on('error', onGone);
}
