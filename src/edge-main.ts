// Entry point of an edge process (server.grpc.workers > 0; forked by node/edge-pool.ts with
// the member's own command line, so it reads the same configuration). An edge serves the
// client connections the primary hands it (TLS, HTTP/2, gRPC, the JSON gateway) and relays
// every call over its binary channel (file descriptor 4, a socket pair made at fork) to the
// primary, which owns Raft, MVCC and the database. Its log lines go to the primary's log.
//
// It exits when the primary tells it to stop (after its calls finish, within the grace
// period), or at once when its channel or IPC to the primary is gone.

import net from 'node:net';
import { pino } from 'pino';
import { parseCommandLine } from './cli.js';
import { ConnectionRouter } from './grpc/connection-router.js';
import { EdgeRelay } from './grpc/edge/edge-relay.js';
import { startEdgeServer } from './grpc/edge/edge-server.js';
import { clientPortTls } from './tls/tls.js';
import { listenHosts } from './node/listen-hosts.js';
import { tierUpSooner } from './node/v8-tiering.js';
import { type EdgeMessage, EDGE_CHANNEL_FD, GATEWAY_BODY_FACTOR, GATEWAY_BODY_HEADROOM } from './node/edge-protocol.js';

function send(message: EdgeMessage): void {
  process.send?.(message);
}

function main(): void {
  tierUpSooner();
  const command = parseCommandLine(process.argv.slice(2));
  if (command.command !== 'serve') throw new Error(`edge process started for "${command.command}"`);
  const config = command.config;
  // Lines go to the primary, which writes them to the member's log with this edge's pid.
  const logger = pino(
    { level: config.log.level === 'panic' ? 'fatal' : config.log.level, base: { pid: process.pid } },
    { write: (line: string) => send({ kind: 'log', line }) },
  );
  const clientTls = clientPortTls(config.grpc.tls, { dataDir: config.dataDir, hosts: listenHosts(config.grpc), logger: logger.child({ component: 'tls' }) });
  const router = new ConnectionRouter({
    tls: clientTls?.tlsServer,
    ...(clientTls !== undefined && {
      refuseTls: (socket) => clientTls.refusalOf(socket),
      onTlsRefused: (remoteAddress, reason) => logger.warn({ component: 'grpc', remoteAddress, reason }, 'rejected client connection'),
    }),
  });
  const channel = new net.Socket({ fd: EDGE_CHANNEL_FD, readable: true, writable: true });
  const relay = new EdgeRelay(channel, () => process.exit(1));
  const grpcLog = logger.child({ component: 'grpc' });
  const server = startEdgeServer(relay, router, {
    maxRequestBytes: config.limits.maxRequestBytes,
    maxReceiveMessageBytes: config.grpc.maxRecvMsgSize,
    maxSendMessageBytes: config.grpc.maxSendMsgSize,
    maxConcurrentStreams: config.grpc.maxConcurrentStreams,
    // The edges receive the bodies: each admits its share, so together they keep the one bound.
    maxReceivingRequestBytes: Math.floor(config.limits.maxReceivingRequestBytes / config.grpc.workers),
    keepalive: { minTimeMs: config.grpc.keepaliveMinTimeMs, intervalMs: config.grpc.keepaliveIntervalMs, timeoutMs: config.grpc.keepaliveTimeoutMs },
    onTooManyPings: (remoteAddress) => grpcLog.warn({ remoteAddress }, 'closed client connection: too many pings (GOAWAY too_many_pings)'),
    ...(config.grpc.enableGateway && { gateway: { maxBodyBytes: GATEWAY_BODY_FACTOR * config.limits.maxRequestBytes + GATEWAY_BODY_HEADROOM } }),
  });
  process.on('message', (message: EdgeMessage, handle: unknown) => {
    if (message.kind === 'connection' && handle instanceof net.Socket) {
      handle.once('close', () => send({ kind: 'closed', connection: message.connection }));
      router.route(handle, message.secure);
    } else if (message.kind === 'stop') {
      void server.close(message.graceMs).then(() => {
        relay.close();
        process.exit(0);
      });
    }
  });
  // SIGINT from a terminal reaches the whole process group: the primary decides when edges stop.
  process.on('SIGINT', () => undefined);
  process.on('SIGTERM', () => undefined);
  send({ kind: 'ready' });
}

main();
