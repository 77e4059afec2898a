// What happens to one accepted client connection: TLS termination (on a secure address), the
// CRL refusal, then the hand-over to gRPC or HTTP/1.1 by protocol (protocol-router.ts), with
// plain-text HTTP/2 passing through the authority shim. The client listener runs it in the
// process that accepted the connection; with edge processes, each edge runs it on the sockets
// the primary hands it (so TLS and HTTP/2 cost the edges, not the primary).
//
// Connections that arrive before both handlers are attached wait, unread.

import type net from 'node:net';
import tls from 'node:tls';
import { shimAuthority } from './authority-shim.js';
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
  /** Plain-text HTTP/2 goes through the authority shim (grpc-js on Node's HTTP/2 needs it). */
  private shim = true;
  private http1: ConnectionHandler | undefined;

  constructor(private readonly options: ConnectionRouterOptions) {
    options.tls?.on('secureConnection', (socket: tls.TLSSocket) => {
      const refusal = options.refuseTls?.(socket);
      if (refusal === undefined) return this.dispatch(socket);
      options.onTlsRefused?.(socket.remoteAddress, refusal);
      socket.destroy();
    });
  }

  /**
   * Where HTTP/2 (gRPC) connections go; with serveHttp1, starts routing. `authorityShim: false`
   * for a server whose HPACK takes any :authority (src/grpc/h2): plain sockets go to it as they are.
   */
  serveGrpc(handler: ConnectionHandler, options: { authorityShim?: boolean } = {}): void {
    this.grpc = handler;
    this.shim = options.authorityShim !== false;
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
        if (s instanceof tls.TLSSocket) return grpc(s);
        if (this.shim) shimAuthority(s, grpc);
        else grpc(s);
        s.resume();
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
