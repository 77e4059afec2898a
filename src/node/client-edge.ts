// The client edge: the etcd v3 gRPC server on the client port, with its TLS, its limits
// (request size, txn ops, connections, concurrent streams), the optional rate limit, the
// request hooks (metrics, internal-error and slow-request logs) and a rate-limited log of
// connections refused at --max-connections.

import type { Logger } from 'pino';
import type { Config } from '../config/schema.js';
import { startGrpcServer, type RunningGrpcServer } from '../grpc/grpc-server.js';
import { setAdmission, setCallHooks, setRequestLimits } from '../grpc/handler.js';
import { TokenBucket, rateLimitMessage } from '../grpc/rate-limit.js';
import { slowRequestFields } from '../logging/logging.js';
import type { Metrics } from '../metrics/metrics.js';
import type { KvServer } from '../server/member/kv-server.js';
import { clientPortTls } from '../tls/tls.js';
import { listenHosts } from './listen-hosts.js';
import { RefusedConnectionLog } from './refused-connection-log.js';
import type { Identity } from './storage.js';

export interface ClientEdgeOptions {
  config: Pick<Config, 'grpc' | 'limits' | 'monitoring' | 'dataDir' | 'raft' | 'reliability'>;
  kv: KvServer;
  /** Read live: a joining member's cluster ID is learnt after the edge starts. */
  identity: Identity;
  metrics: Metrics | undefined;
  logger: Logger;
  /** Stops the process (exit 1) after flushing the log: an unexpected handler error does this
   * when server.reliability.enable_panic_recovery is false. */
  failStop: () => never;
}

/**
 * What an unexpected error in a request handler (a bug) does: with panic recovery (etcd's and
 * MetaStore's default) it is logged and the call answered INTERNAL; without, the member stops
 * as a Go server without recovery would: one fatal line, exit 1.
 */
export function internalErrorSink(recover: boolean, grpcLog: Pick<Logger, 'error' | 'fatal'>, failStop: () => never) {
  if (recover) return (method: string, error: unknown) => grpcLog.error({ method, err: error }, 'internal error in request handler');
  return (method: string, error: unknown): never => {
    grpcLog.fatal({ method, err: error }, 'unexpected error in request handler; stopping (server.reliability.enable_panic_recovery is false)');
    return failStop();
  };
}

/** Handler-wide settings: hooks, admission (rate limit), timeouts and the slow-request log. */
function configureHandlers(options: ClientEdgeOptions, grpcLog: Logger): void {
  const { config, metrics, logger } = options;
  setCallHooks(metrics?.observeCall, internalErrorSink(config.reliability.enablePanicRecovery, grpcLog, options.failStop));
  if (config.grpc.enableRateLimit) {
    const limit = { qps: config.grpc.rateLimitQps, burst: config.grpc.rateLimitBurst };
    const bucket = new TokenBucket(limit);
    const refusal = rateLimitMessage(limit);
    setAdmission(() => (bucket.tryTake() ? undefined : refusal));
  }
  const slowLog = logger.child({ component: 'grpc', slow: true });
  setRequestLimits({
    timeoutMs: config.limits.requestTimeoutMs,
    slowMs: config.monitoring.slowRequestThresholdMs,
    onSlow: (method, request, tookMs, code) =>
      slowLog.warn({ method, ...slowRequestFields(request), code, tookMs: Math.round(tookMs * 10) / 10 }, 'slow request'),
  });
}

/** Binds the client port; the handle's `close(graceMs)` lets in-flight calls finish first. */
export async function startClientEdge(options: ClientEdgeOptions): Promise<RunningGrpcServer> {
  const { config, logger } = options;
  const grpcLog = logger.child({ component: 'grpc' });
  const refusals = new RefusedConnectionLog({ logger: grpcLog, maxConnections: config.limits.maxConnections });
  configureHandlers(options, grpcLog);
  const tlsLog = logger.child({ component: 'tls' });
  const clientTls = clientPortTls(config.grpc.tls, { dataDir: config.dataDir, hosts: listenHosts(config.grpc), logger: tlsLog });
  return startGrpcServer(options.kv, {
    credentials: clientTls?.credentials,
    host: config.grpc.address,
    port: config.grpc.port,
    maxRequestBytes: config.limits.maxRequestBytes,
    maxTxnOps: config.limits.maxTxnOps,
    maxReceiveMessageBytes: config.grpc.maxRecvMsgSize,
    maxSendMessageBytes: config.grpc.maxSendMsgSize,
    maxConcurrentStreams: config.grpc.maxConcurrentStreams,
    identity: options.identity,
    maxConnections: config.limits.maxConnections,
    onConnectionRefused: (remoteAddress) => refusals.refused(remoteAddress),
    watchProgressNotifyIntervalMs: config.grpc.watchProgressNotifyIntervalMs,
    electionTimeoutMs: config.raft.electionTimeoutMs,
    keepalive: { minTimeMs: config.grpc.keepaliveMinTimeMs, intervalMs: config.grpc.keepaliveIntervalMs, timeoutMs: config.grpc.keepaliveTimeoutMs },
    onTooManyPings: (remoteAddress) => grpcLog.warn({ remoteAddress }, 'closed client connection: too many pings (GOAWAY too_many_pings)'),
  });
}
