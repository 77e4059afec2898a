// The edge processes (server.grpc.workers > 0): node:cluster workers running edge-main.ts.
// The primary keeps the client port's listening sockets (bound before storage opens, one
// connection count and limit across every edge) and hands each accepted connection, unread,
// to the next ready edge in turn — what cluster's own round-robin does, done here so the
// limit stays global. Each edge relays its calls to the primary over one binary channel (a
// socket pair at stdio 4), served by a PrimaryRelay here.
//
// A dead edge is replaced (one log line); its clients' connections dropped with it and their
// calls are cancelled here, so nothing a client saw acknowledged is lost (the primary applied
// it). stop() asks every edge to finish its calls within the grace period, then to exit.

import cluster, { type Worker } from 'node:cluster';
import type net from 'node:net';
import type { Duplex } from 'node:stream';
import { fileURLToPath } from 'node:url';
import type { Logger } from 'pino';
import type { ClientListener } from '../grpc/client-listener.js';
import type { GatewayServices } from '../grpc/gateway/gateway.js';
import { type HttpRelayHandler, PrimaryRelay } from '../grpc/edge/primary-relay.js';
import { EDGE_CHANNEL_FD, type EdgeMessage } from './edge-protocol.js';

export interface EdgePoolOptions {
  readonly count: number;
  readonly listener: ClientListener;
  /** The member's served handlers (leader-guarded), as the in-process gRPC server has them. */
  readonly services: GatewayServices;
  /** Answers the HTTP/1.1 requests edges relay (health, metrics, version). */
  readonly http: HttpRelayHandler;
  /** State edges answer from by themselves, asked for when needed. */
  readonly state: () => object;
  readonly logger: Logger;
}

interface Edge {
  readonly worker: Worker;
  readonly relay: PrimaryRelay;
  ready: boolean;
  /** Its open client connections: what each one's close gives back to the listener. */
  readonly connections: Map<number, () => void>;
}

const LEVELS: Record<number, 'debug' | 'info' | 'warn' | 'error' | 'fatal'> = { 20: 'debug', 30: 'info', 40: 'warn', 50: 'error', 60: 'fatal' };

export class EdgePool {
  private readonly edges = new Set<Edge>();
  private readonly waiting: Array<{ socket: net.Socket; secure: boolean; release: () => void }> = [];
  private next = 0;
  private connectionIds = 0;
  private stopping = false;
  private readonly allReady: Promise<void>;
  private markReady: () => void = () => undefined;

  constructor(private readonly options: EdgePoolOptions) {
    cluster.setupPrimary({
      exec: fileURLToPath(new URL('../edge-main.js', import.meta.url)),
      args: process.argv.slice(2),
      // stdin unused, stdout/stderr shared, IPC for control, a socket pair for the calls.
      stdio: ['ignore', 'inherit', 'inherit', 'ipc', 'pipe'],
    });
    this.allReady = new Promise((resolve) => {
      this.markReady = resolve;
    });
    for (let i = 0; i < options.count; i++) this.fork();
    options.listener.serveRaw((socket, secure, release) => this.handOver(socket, secure, release));
  }

  /** Resolves once as many edges as configured serve (the member then says it is ready). */
  ready(): Promise<void> {
    return this.allReady;
  }

  /** The edges' process IDs (ready or starting). */
  get pids(): number[] {
    return [...this.edges].map((edge) => edge.worker.process.pid ?? 0);
  }

  /** Asks every edge to stop: its calls get up to graceMs; resolves once all have exited. */
  async stop(graceMs: number): Promise<void> {
    this.stopping = true;
    for (const { socket, release } of this.waiting.splice(0)) {
      socket.destroy();
      release();
    }
    const exits = [...this.edges].map((edge) => new Promise<void>((resolve) => edge.worker.once('exit', () => resolve())));
    for (const edge of this.edges) {
      if (edge.worker.isConnected()) edge.worker.send({ kind: 'stop', graceMs } satisfies EdgeMessage);
      else edge.worker.kill('SIGKILL');
    }
    // An edge that does not finish in time is killed: its calls were given the grace period.
    const kill = setTimeout(() => {
      for (const edge of this.edges) edge.worker.kill('SIGKILL');
    }, graceMs + 1000);
    await Promise.all(exits);
    clearTimeout(kill);
  }

  private fork(): void {
    const worker = cluster.fork();
    const channel = worker.process.stdio[EDGE_CHANNEL_FD] as Duplex;
    const edge: Edge = {
      worker,
      relay: new PrimaryRelay(channel, this.options.services, this.options.http, this.options.state, () => undefined),
      ready: false,
      connections: new Map(),
    };
    this.edges.add(edge);
    worker.on('message', (message: EdgeMessage) => this.onMessage(edge, message));
    worker.on('exit', (code, signal) => this.onExit(edge, code, signal));
    this.options.logger.info({ component: 'edge', pid: worker.process.pid }, 'edge process started');
  }

  private onMessage(edge: Edge, message: EdgeMessage): void {
    switch (message.kind) {
      case 'ready':
        edge.ready = true;
        if ([...this.edges].filter((e) => e.ready).length >= this.options.count) this.markReady();
        for (const waiting of this.waiting.splice(0)) this.handOver(waiting.socket, waiting.secure, waiting.release);
        return;
      case 'closed':
        edge.connections.get(message.connection)?.();
        edge.connections.delete(message.connection);
        return;
      case 'log':
        this.logLine(edge, message.line);
        return;
      default:
        return;
    }
  }

  private onExit(edge: Edge, code: number | null, signal: string | null): void {
    this.edges.delete(edge);
    edge.relay.close();
    for (const release of edge.connections.values()) release();
    edge.connections.clear();
    if (this.stopping) return;
    this.options.logger.warn({ component: 'edge', pid: edge.worker.process.pid, code, signal }, 'edge process exited; starting a new one');
    this.fork();
  }

  private handOver(socket: net.Socket, secure: boolean, release: () => void): void {
    if (this.stopping) {
      // Shutting down: the listener closes next; a new connection would reach a closing edge.
      socket.destroy();
      release();
      return;
    }
    const ready = [...this.edges].filter((edge) => edge.ready && edge.worker.isConnected());
    if (ready.length === 0) {
      this.waiting.push({ socket, secure, release });
      return;
    }
    const edge = ready[this.next++ % ready.length]!;
    const connection = ++this.connectionIds;
    edge.connections.set(connection, release);
    edge.worker.send({ kind: 'connection', connection, secure } satisfies EdgeMessage, socket, (error) => {
      if (error === null) return;
      // The edge went away meanwhile: the client sees its connection closed and reconnects.
      socket.destroy();
      edge.connections.delete(connection);
      release();
    });
  }

  private logLine(edge: Edge, line: string): void {
    const { level, msg, time: _time, pid: _pid, hostname: _hostname, ...fields } = JSON.parse(line) as Record<string, unknown>;
    const name = LEVELS[typeof level === 'number' ? level : 30] ?? 'info';
    this.options.logger[name]({ ...fields, edgePid: edge.worker.process.pid }, typeof msg === 'string' ? msg : '');
  }
}
