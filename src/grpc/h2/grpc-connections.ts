// The client port's gRPC connections on MetaStore's own HTTP/2 connection (connection.ts), each
// stream served by grpc-calls.ts. Per connection:
// - keepalive enforcement (etcd's --grpc-keepalive-min-time): each client PING is judged by
//   PingStrikes; "the server wrote headers or data since the previous ping" is the
//   connection's own note of the HEADERS and DATA frames it sent (per frame, as grpc-go resets strikes:
//   a client's BDP pings during a long response are not strikes); too many strikes: the
//   connection answers GOAWAY ENHANCE_YOUR_CALM "too_many_pings" and closes (the contract's
//   ping() returning false);
// - server keepalive pings (etcd's --grpc-keepalive-interval / -timeout, as grpc-js's
//   keepalive_time_ms / keepalive_timeout_ms): a PING every interval, the connection destroyed
//   when one goes unanswered for the timeout;
// - graceful close: shutdown() every connection (GOAWAY, open calls finish), destroy() what is
//   left after the grace period.
// Invariant: a connection is in `open` from its accept to its closed() callback.

import type net from 'node:net';
import { type PingPolicy, PingStrikes } from '../ping-strikes.js';
import type { GrpcCalls } from './grpc-calls.js';
import type { H2Connection, H2ConnectionOptions } from './h2-stream.js';

export type ServeH2Connection = (socket: net.Socket, options: H2ConnectionOptions) => H2Connection;

export interface GrpcConnectionsOptions {
  readonly calls: GrpcCalls;
  /** serveH2Connection (connection.ts); a fake in unit tests. */
  readonly serve: ServeH2Connection;
  readonly maxConcurrentStreams: number;
  readonly maxHeaderListBytes: number;
  readonly receiveWindowBytes: number;
  readonly pingPolicy: PingPolicy;
  /** Server PINGs: every intervalMs, the connection closed when one is unanswered for timeoutMs. */
  readonly keepalive: { readonly intervalMs: number; readonly timeoutMs: number };
}

/** One connection's keepalive state; also its H2ConnectionOptions (no closure per callback). */
class Served implements H2ConnectionOptions {
  connection: H2Connection | undefined;
  private readonly strikes: PingStrikes;
  private pingTimer: NodeJS.Timeout | undefined;
  private ackTimer: NodeJS.Timeout | undefined;
  private gone = false;

  constructor(
    private readonly owner: GrpcConnections,
    private readonly options: GrpcConnectionsOptions,
    readonly socket: net.Socket,
  ) {
    this.strikes = new PingStrikes(options.pingPolicy.minTimeMs);
  }

  get maxConcurrentStreams(): number {
    return this.options.maxConcurrentStreams;
  }
  get maxHeaderListBytes(): number {
    return this.options.maxHeaderListBytes;
  }
  get receiveWindowBytes(): number {
    return this.options.receiveWindowBytes;
  }

  onStream(stream: Parameters<H2ConnectionOptions['onStream']>[0]): void {
    this.options.calls.onStream(stream);
  }

  ping(wrote: boolean): boolean {
    const openStreams = this.connection?.activeStreams ?? 0;
    if (!this.strikes.ping({ nowMs: performance.now(), openStreams, serverWrote: wrote })) return true;
    this.options.pingPolicy.onTooManyPings?.(this.socket.remoteAddress);
    return false;
  }

  closed(): void {
    this.gone = true;
    if (this.pingTimer !== undefined) clearTimeout(this.pingTimer);
    if (this.ackTimer !== undefined) clearTimeout(this.ackTimer);
    this.owner.forget(this);
  }

  /** The next server keepalive PING, intervalMs from now. */
  armKeepalive(): void {
    if (this.gone) return;
    this.pingTimer = setTimeout(() => this.sendKeepalive(), this.options.keepalive.intervalMs).unref();
  }

  private sendKeepalive(): void {
    this.pingTimer = undefined;
    const connection = this.connection;
    if (this.gone || connection === undefined) return;
    this.ackTimer = setTimeout(() => connection.destroy(), this.options.keepalive.timeoutMs).unref();
    connection.sendPing(() => {
      if (this.ackTimer !== undefined) clearTimeout(this.ackTimer);
      this.ackTimer = undefined;
      this.armKeepalive();
    });
  }
}

export class GrpcConnections {
  private readonly open = new Set<Served>();
  private closing = false;
  private allClosed: (() => void) | undefined;

  constructor(private readonly options: GrpcConnectionsOptions) {}

  /** Connections open now. */
  get size(): number {
    return this.open.size;
  }

  /** Serves one client connection (a plain or decrypted TLS socket, nothing read from it). */
  accept(socket: net.Socket): void {
    if (this.closing) {
      socket.destroy();
      return;
    }
    const served = new Served(this, this.options, socket);
    this.open.add(served);
    served.connection = this.options.serve(socket, served);
    served.armKeepalive();
  }

  /** Called by a connection's closed(). */
  forget(served: Served): void {
    this.open.delete(served);
    if (this.open.size === 0) this.allClosed?.();
  }

  /** GOAWAY on every connection; those still open after graceMs are destroyed. */
  close(graceMs: number): Promise<void> {
    this.closing = true;
    if (this.open.size === 0) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const force = setTimeout(() => {
        for (const served of [...this.open]) served.connection?.destroy();
      }, graceMs);
      this.allClosed = () => {
        clearTimeout(force);
        resolve();
      };
      for (const served of [...this.open]) served.connection?.shutdown();
    });
  }
}
