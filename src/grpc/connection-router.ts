// What happens to one accepted client connection: TLS termination (on a secure address), the
// CRL refusal, then the hand-over to gRPC or HTTP/1.1 by protocol (protocol-router.ts), with
// plain-text HTTP/2 passing through the authority shim. The client listener runs it in the
// process that accepted the connection; with edge processes, each edge runs it on the sockets
// the primary hands it (so TLS and HTTP/2 cost the edges, not the primary).
//
// Connections that arrive before both handlers are attached wait, unread. A plain-text HTTP/2
// connection reaches its handler with its first bytes put back (unshift): a reader of the
// socket's 'data' (our HTTP/2 connection, src/grpc/h2) gets them; Node's http2 server, which
// reads below the socket, would not.

import type net from 'node:net';
import tls from 'node:tls';
import { routeByProtocol } from './protocol-router.js';

export type ConnectionHandler = (socket: net.Socket) => void;

export interface ConnectionRouterOptions {
  /** Terminates TLS on connections from secure addresses. */
  readonly tls?: tls.Server;
  /**
   * Checked on each connection once TLS is established, before a byte is routed: a string is
   * why it is refused (a CRL-listed certificate), and the connection is closed.
   */
  readonly refuseTls?: (socket: tls.TLSSocket) => string | undefined;
  /** Told about each connection refuseTls refused. */
  readonly onTlsRefused?: (remoteAddress: string | undefined, reason: string) => void;
}

export class ConnectionRouter {
  private readonly held: net.Socket[] = [];
  private grpc: ConnectionHandler | undefined;
  private http1: ConnectionHandler | undefined;

  constructor(private readonly options: ConnectionRouterOptions) {
    options.tls?.on('secureConnection', (socket: tls.TLSSocket) => {
      const refusal = options.refuseTls?.(socket);
      if (refusal === undefined) return this.dispatch(socket);
      options.onTlsRefused?.(socket.remoteAddress, refusal);
      socket.destroy();
    });
  }

  /** Where HTTP/2 (gRPC) connections go; with serveHttp1, starts routing. */
  serveGrpc(handler: ConnectionHandler): void {
    this.grpc = handler;
    this.releaseHeld();
  }

  /** Where HTTP/1.1 connections go; with serveGrpc, starts routing. */
  serveHttp1(handler: ConnectionHandler): void {
    this.http1 = handler;
    this.releaseHeld();
  }

  /** Takes one accepted connection (from a secure address: TLS is terminated first). */
  route(socket: net.Socket, secure: boolean): void {
    if (secure && this.options.tls !== undefined) this.options.tls.emit('connection', socket);
    else this.dispatch(socket);
  }

  /** Drops the connections still waiting for a handler. */
  dropHeld(): void {
    for (const socket of this.held.splice(0)) socket.destroy();
  }

  private dispatch(socket: net.Socket): void {
    if (this.grpc === undefined || this.http1 === undefined) {
      this.held.push(socket);
      return;
    }
    const grpc = this.grpc;
    const http1 = this.http1;
    routeByProtocol(socket, {
      http2: (s) => {
        grpc(s);
        if (!(s instanceof tls.TLSSocket)) s.resume();
      },
      http1: (s) => {
        http1(s);
        s.resume();
      },
    });
  }

  private releaseHeld(): void {
    if (this.grpc === undefined || this.http1 === undefined) return;
    for (const socket of this.held.splice(0)) if (!socket.destroyed) this.dispatch(socket);
  }
}
