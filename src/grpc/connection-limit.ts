// The client port with a connection limit (server.limits.max_connections).
//
// grpc-js has no connection limit and no connection callback. Instead of bindAsync, we listen
// with our own net.Server and hand every accepted socket to the gRPC server through its public
// connection injector (Server.createConnectionInjector). Node's net.Server.maxConnections does
// the refusing: a connection beyond the limit is closed right after accept, before any HTTP/2
// byte, and the client sees the connection reset (gRPC UNAVAILABLE), as with a full listen
// backlog. The accepted socket is the very socket grpc-js would have had from bindAsync, so a
// request costs nothing extra; only the accept path runs one more listener.
//
// Invariants:
// - Counted are open TCP connections, idle or busy; a closed connection frees its slot at
//   once (Node decrements on socket close).
// - close() stops accepting; the gRPC server's own shutdown drains the injected sessions.

import net from 'node:net';
import type * as grpc from '@grpc/grpc-js';
import { shimAuthority } from './authority-shim.js';

export interface LimitedListener {
  readonly port: number;
  /** Client TCP connections open right now (accepted and not yet closed). */
  readonly open: number;
  /** Connections refused so far because the limit was reached. */
  readonly refused: number;
  /** Stops accepting new connections (open ones are left to the gRPC server's shutdown). */
  close(): Promise<void>;
}

export interface LimitedListenOptions {
  host: string;
  port: number;
  maxConnections: number;
  credentials: grpc.ServerCredentials;
  /** Called for each refused connection (for a rate-limited log line or a counter). */
  onRefused?: (remoteAddress: string | undefined) => void;
}

export async function listenWithConnectionLimit(server: grpc.Server, options: LimitedListenOptions): Promise<LimitedListener> {
  const injector = server.createConnectionInjector(options.credentials);
  const listener = net.createServer({ noDelay: true });
  listener.maxConnections = options.maxConnections;
  let refused = 0;
  let open = 0;
  listener.on('drop', (data?: { remoteAddress?: string }) => {
    refused++;
    options.onRefused?.(data?.remoteAddress);
  });
  listener.on('connection', (socket) => {
    open++;
    socket.once('close', () => open--);
  });
  listener.on('connection', (socket) => shimAuthority(socket, (ready) => injector.injectConnection(ready)));
  await new Promise<void>((resolve, reject) => {
    listener.once('error', reject);
    listener.listen({ host: options.host, port: options.port }, () => {
      listener.off('error', reject);
      resolve();
    });
  });
  const address = listener.address();
  if (address === null || typeof address === 'string') throw new Error('client listener has no TCP address');
  return {
    port: address.port,
    get refused() {
      return refused;
    },
    get open() {
      return open;
    },
    close: async () => {
      // close()'s callback waits for every open connection; stopping the accept is immediate.
      listener.close();
    },
  };
}
