// The client port's listening sockets: every client URL (etcd's --listen-client-urls may name
// several; kubeadm gives two; unix and unixs URLs are unix socket files), one connection limit
// across them, TLS termination, and the hand-over of each connection to gRPC or to HTTP/1.1
// (connection-router.ts, protocol-router.ts).
//
// - Bound early: main binds the client URLs before opening storage (a taken port stops start-up
//   at once, and a port-0 URL's real port is known before the member publishes its URLs).
//   Connections accepted before both servers are attached wait, unread.
// - Connection limit (server.limits.max_connections): counted are open TCP connections, idle
//   or busy, on all URLs together; one beyond the limit is closed right after accept, before a
//   byte is read, and the client sees the connection reset (gRPC UNAVAILABLE).
// - TLS is terminated here, with a Node TLS server that src/tls builds (it follows certificate
//   rotation and verifies client certificates). ALPN offers h2 and http/1.1. A connection
//   refuseTls() refuses (its client certificate is on the CRL) is closed after the handshake,
//   before any routing, as etcd's TLS listener does. The gRPC server gets the decrypted TLS
//   socket, so a call's auth context still carries the verified peer certificate (its CN is
//   the user name with --client-cert-auth).
// - Hand-off (edge processes, server.grpc.workers > 0): accepted connections are counted here
//   and handed, unread, to the edge that serves them (serveRaw); TLS and routing then happen in
//   the edge (connection-router.ts), which reports when each connection closes (release).
//
// Invariants: close() stops accepting at once; open connections are left to the servers that
// own them (the gRPC server's shutdown, the HTTP server's close).

import net from 'node:net';
import type tls from 'node:tls';
import { assert } from '../util/assert.js';
import { listenErrorOf, socketListenErrorOf } from '../util/listen-error.js';
import { type ConnectionHandler, ConnectionRouter } from './connection-router.js';

export type { ConnectionHandler } from './connection-router.js';

export interface ListenAddress {
  readonly host: string;
  /** 0 picks a free port; the bound one is in `ports`. */
  readonly port: number;
  /** TLS on this address (https or unixs URL): needs the listener's `tls`. */
  readonly secure: boolean;
  /**
   * A unix socket file to listen on instead of host:port (a unix or unixs URL). As etcd's client
   * listener, a file already there is not removed: listening fails (EADDRINUSE). Closing the
   * listener removes the file (libuv unlinks it).
   */
  readonly socketPath?: string;
}

export interface ClientListenerOptions {
  readonly addresses: readonly ListenAddress[];
  readonly maxConnections: number;
  /** Terminates TLS on the secure addresses. */
  readonly tls?: tls.Server;
  /** Called for each refused connection (for a rate-limited log line or a counter). */
  readonly onRefused?: (remoteAddress: string | undefined) => void;
  /**
   * Checked on each connection once TLS is established, before a byte is routed: a string is
   * why it is refused (a CRL-listed certificate), and the connection is closed.
   */
  readonly refuseTls?: (socket: tls.TLSSocket) => string | undefined;
  /** Told about each connection refuseTls refused. */
  readonly onTlsRefused?: (remoteAddress: string | undefined, reason: string) => void;
  /** Connections go unread to another process (serveRaw): accepted paused, never routed here. */
  readonly handOff?: boolean;
}

/** Takes an accepted connection unread; calls `release` once when it has closed. */
export type RawConnectionHandler = (socket: net.Socket, secure: boolean, release: () => void) => void;

export class ClientListener {
  private readonly router: ConnectionRouter;
  private readonly heldRaw: Array<{ socket: net.Socket; secure: boolean }> = [];
  private raw: RawConnectionHandler | undefined;
  private openCount = 0;
  private refusedCount = 0;

  private constructor(
    private readonly servers: readonly net.Server[],
    readonly ports: readonly number[],
    options: ClientListenerOptions,
  ) {
    this.router = new ConnectionRouter(options);
  }

  /** Listens on every address; throws ListenError for one that cannot be listened on. */
  static async listen(options: ClientListenerOptions): Promise<ClientListener> {
    const servers: net.Server[] = [];
    const ports: number[] = [];
    try {
      for (const address of options.addresses) {
        assert(!address.secure || options.tls !== undefined, `TLS address ${address.host}:${address.port} without a TLS server`);
        const server = net.createServer({ noDelay: true, pauseOnConnect: options.handOff === true });
        ports.push(await listenOn(server, address));
        servers.push(server);
      }
    } catch (error) {
      for (const server of servers) server.close();
      throw error;
    }
    const listener = new ClientListener(servers, ports, options);
    listener.accept(options);
    return listener;
  }

  /** Where HTTP/2 (gRPC) connections go; with serveHttp1, starts routing (ConnectionRouter.serveGrpc). */
  serveGrpc(handler: ConnectionHandler): void {
    this.router.serveGrpc(handler);
  }

  /** Where HTTP/1.1 connections go; with serveGrpc, starts routing. */
  serveHttp1(handler: ConnectionHandler): void {
    this.router.serveHttp1(handler);
  }

  /** Hand-off mode: where every accepted connection goes, unread. */
  serveRaw(handler: RawConnectionHandler): void {
    this.raw = handler;
    for (const { socket, secure } of this.heldRaw.splice(0)) {
      if (socket.destroyed) this.openCount--;
      else this.handOver(socket, secure);
    }
  }

  /** Client TCP connections open right now (accepted and not yet closed). */
  get open(): number {
    return this.openCount;
  }

  /** Connections refused so far because the limit was reached. */
  get refused(): number {
    return this.refusedCount;
  }

  /** Stops accepting; held connections are dropped, routed ones left to their servers. */
  async close(): Promise<void> {
    for (const server of this.servers) server.close();
    this.router.dropHeld();
    for (const { socket } of this.heldRaw.splice(0)) socket.destroy();
  }

  private accept(options: ClientListenerOptions): void {
    for (const [i, server] of this.servers.entries()) {
      const secure = options.addresses[i]?.secure === true;
      server.on('connection', (socket) => {
        if (this.openCount >= options.maxConnections) {
          this.refusedCount++;
          options.onRefused?.(socket.remoteAddress);
          socket.destroy();
          return;
        }
        this.openCount++;
        if (options.handOff === true) {
          if (this.raw === undefined) this.heldRaw.push({ socket, secure });
          else this.handOver(socket, secure);
          return;
        }
        socket.once('close', () => this.openCount--);
        this.router.route(socket, secure);
      });
    }
  }

  private handOver(socket: net.Socket, secure: boolean): void {
    let released = false;
    this.raw?.(socket, secure, () => {
      if (released) return;
      released = true;
      this.openCount--;
    });
  }
}

/** Listens; the bound TCP port (a unix socket address keeps the port its URL names). */
async function listenOn(server: net.Server, address: ListenAddress): Promise<number> {
  const socketPath = address.socketPath;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(socketPath !== undefined ? { path: socketPath } : { host: address.host, port: address.port }, () => {
      server.off('error', reject);
      resolve();
    });
  }).catch((error: unknown) => {
    throw socketPath !== undefined ? socketListenErrorOf(error, socketPath) : listenErrorOf(error, address.host, address.port);
  });
  if (socketPath !== undefined) return address.port;
  const bound = server.address();
  if (bound === null || typeof bound === 'string') throw new Error('client listener has no TCP address');
  return bound.port;
}
