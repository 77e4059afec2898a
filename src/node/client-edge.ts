// The client edge: the client URLs' listener (bound first, see bindClientPort), then the etcd
// v3 gRPC server and the HTTP/1.1 endpoints beside it on those URLs, with TLS, limits (request
// size, txn ops, connections, concurrent streams), the optional rate limit, the request hooks
// (metrics, internal-error and slow-request logs) and a rate-limited log of connections refused
// at --max-connections.

import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { clientAdvertiseUrls, clientListenUrls, type Config } from '../config/schema.js';
import { bindHost, formatUrl, isSecureScheme, unixSocketPath, type Url } from '../config/values.js';
import { ClientListener } from '../grpc/client-listener.js';
import { JsonGateway } from '../grpc/gateway/gateway.js';
import { type RunningGrpcServer, startGrpcServer } from '../grpc/grpc-server.js';
import type { MemberDialer } from '../grpc/member-dialer.js';
import { setAdmission, setCallHooks, setRequestLimits } from '../grpc/handler.js';
import { TokenBucket, rateLimitMessage } from '../grpc/rate-limit.js';
import { buildClientPortApp, serveInjected } from '../http/health-server.js';
import type { HealthSources } from '../http/health.js';
import { LogBudget } from '../logging/log-budget.js';
import { slowRequestFields } from '../logging/logging.js';
import type { Metrics } from '../metrics/metrics.js';
import type { KvServer } from '../server/member/kv-server.js';
import { clientPortTls } from '../tls/tls.js';
import { EdgePool } from './edge-pool.js';
import { GATEWAY_BODY_FACTOR, GATEWAY_BODY_HEADROOM } from './edge-protocol.js';
import { listenHosts } from './listen-hosts.js';
import { RefusedConnectionLog } from './refused-connection-log.js';
import { etcdVersions } from './side-ports.js';
import { listeningFor } from './startup-error.js';
import type { Identity } from './storage.js';

type EdgeConfig = Pick<Config, 'grpc' | 'http' | 'limits' | 'monitoring' | 'dataDir' | 'raft' | 'reliability'>;

export interface BoundClientPort {
  readonly listener: ClientListener;
  /** The URLs bound, with the real port where the config asked for port 0. */
  readonly urls: readonly string[];
  /** The client URLs to publish: the advertised ones, else the bound ones. */
  readonly advertisedUrls: readonly string[];
  /** The HTTP API port's listener (server.http.port), when set. */
  readonly httpApi: ClientListener | undefined;
}

/** The key (and etcd flag) a client listen failure is reported under. */
function clientListenKey(config: EdgeConfig): string {
  return config.grpc.listenUrls.length > 0 ? 'server.grpc.listen_urls (--listen-client-urls)' : 'server.grpc.port';
}

/**
 * Listens on every client URL, before storage opens (as etcd does): a taken port stops start-up
 * with one line (StartupError), and a port-0 URL's real port is known before the member
 * publishes its client URLs. Connections wait until startClientEdge serves them.
 */
export async function bindClientPort(config: EdgeConfig, logger: Logger): Promise<BoundClientPort> {
  const refusals = new RefusedConnectionLog({ logger: logger.child({ component: 'grpc' }), maxConnections: config.limits.maxConnections });
  const clientTls = clientPortTls(config.grpc.tls, {
    dataDir: config.dataDir,
    hosts: listenHosts(config.grpc),
    logger: logger.child({ component: 'tls' }),
  });
  const wanted = clientListenUrls(config as Config);
  const listener = await listeningFor(clientListenKey(config), () =>
    ClientListener.listen({
      addresses: wanted.map((url) => ({ host: bindHost(url.host), port: url.port, secure: isSecureScheme(url.scheme), socketPath: unixSocketPath(url) })),
      maxConnections: config.limits.maxConnections,
      tls: clientTls?.tlsServer,
      // With edge processes, connections are handed to them unread (node/edge-pool.ts).
      handOff: config.grpc.workers > 0,
      onRefused: (remoteAddress) => refusals.refused(remoteAddress),
      ...(clientTls !== undefined && {
        refuseTls: (socket) => clientTls.refusalOf(socket),
        // One line per refusal, as etcd's "rejected connection" warning.
        onTlsRefused: (remoteAddress, reason) => logger.warn({ component: 'grpc', remoteAddress, reason }, 'rejected client connection'),
      }),
    }),
  );
  const bound = wanted.map((url, i) => ({ ...url, port: listener.ports[i] ?? url.port }));
  const urls = bound.map(formatUrl);
  for (const url of urls) logger.info({ component: 'grpc', address: url }, 'listening for client traffic (gRPC and HTTP/1.1)');
  const advertiseGiven = config.grpc.advertiseUrls.length > 0 || config.grpc.advertiseAddress !== '';
  const advertisedUrls = advertiseGiven ? clientAdvertiseUrls(config as Config).map((url) => formatUrl(withBoundPort(url, wanted, bound))) : urls;
  const httpApi = await bindHttpApiPort(config, logger, refusals);
  return { listener, urls, advertisedUrls, httpApi };
}

/**
 * The deployment guide's HTTP API port (server.http.port), bound with the client URLs; undefined
 * when off. It has the client port's TLS (certificate, client-certificate check, CRL) and
 * offers HTTP/1.1 only: it serves the HTTP/1.1 endpoints, not gRPC.
 */
async function bindHttpApiPort(config: EdgeConfig, logger: Logger, refusals: RefusedConnectionLog): Promise<ClientListener | undefined> {
  if (config.http.port === 0) return undefined;
  const host = bindHost(config.http.address !== '' ? config.http.address : config.grpc.address);
  const httpTls = clientPortTls(config.grpc.tls, { dataDir: config.dataDir, hosts: listenHosts(config.grpc), logger: logger.child({ component: 'tls' }) }, [
    'http/1.1',
  ]);
  const listener = await listeningFor('server.http.port', () =>
    ClientListener.listen({
      addresses: [{ host, port: config.http.port, secure: httpTls !== undefined }],
      maxConnections: config.limits.maxConnections,
      tls: httpTls?.tlsServer,
      onRefused: (remoteAddress) => refusals.refused(remoteAddress),
      ...(httpTls !== undefined && {
        refuseTls: (socket) => httpTls.refusalOf(socket),
        onTlsRefused: (remoteAddress, reason) => logger.warn({ component: 'http', remoteAddress, reason }, 'rejected HTTP API connection'),
      }),
    }),
  );
  const address = formatUrl({ scheme: httpTls !== undefined ? 'https' : 'http', host, port: listener.ports[0] ?? config.http.port });
  logger.info({ component: 'http', address }, 'serving the HTTP API (JSON gateway, /health)');
  return listener;
}

/**
 * An advertised client URL with port 0 (etcd accepts it and publishes port 0, which no client
 * can dial): when a port-0 listen URL has the same scheme and host, the port it got is
 * published instead; otherwise port 0 is published as etcd does.
 */
export function withBoundPort(advertised: Url, wanted: readonly Url[], bound: readonly Url[]): Url {
  if (advertised.port !== 0 || unixSocketPath(advertised) !== undefined) return advertised;
  const i = wanted.findIndex((url) => url.port === 0 && url.scheme === advertised.scheme && bindHost(url.host) === bindHost(advertised.host));
  return i < 0 ? advertised : { ...advertised, port: bound[i]?.port ?? 0 };
}

export interface ClientEdgeOptions {
  config: EdgeConfig;
  bound: BoundClientPort;
  kv: KvServer;
  /** Read live: a joining member's cluster ID is learnt after the edge starts. */
  identity: Identity;
  metrics: Metrics | undefined;
  /** What the HTTP/1.1 endpoints beside gRPC read. */
  sources: HealthSources;
  logger: Logger;
  /** Stops the process (exit 1) after flushing the log: an unexpected handler error does this
   * when server.reliability.enable_panic_recovery is false. */
  failStop: () => never;
  /** The member's channels to other members' client ports (leader forwarding, lease relays). */
  memberDialer: MemberDialer;
}

export interface RunningClientEdge {
  readonly port: number;
  /** Open client connections, counted at accept. */
  openConnections(): number;
  /** Process IDs of the edge processes (none with server.grpc.workers = 0). */
  edgePids(): number[];
  /** Stops accepting, lets in-flight calls finish for up to `graceMs`, then cuts the rest. */
  close(graceMs: number): Promise<void>;
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

/** Slow-request log lines per second at most (see configureHandlers). */
const SLOW_REQUEST_LINES_PER_SECOND = 10;

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
  // Under overload most requests are slow: a line each would add a synchronous stdout write to
  // every one of them. Ten a second, the next line counting those held back.
  const slowBudget = new LogBudget({ linesPerInterval: SLOW_REQUEST_LINES_PER_SECOND });
  setRequestLimits({
    timeoutMs: config.limits.requestTimeoutMs,
    slowMs: config.monitoring.slowRequestThresholdMs,
    onSlow: (method, request, tookMs, code) => {
      const heldBack = slowBudget.take();
      if (heldBack === undefined) return;
      const fields = { method, ...slowRequestFields(request), code, tookMs: Math.round(tookMs * 10) / 10 };
      slowLog.warn(heldBack > 0 ? { ...fields, slowRequestsNotLogged: heldBack } : fields, 'slow request');
    },
  });
}

/** Serves gRPC and the HTTP/1.1 endpoints on the bound client URLs. */
export async function startClientEdge(options: ClientEdgeOptions): Promise<RunningClientEdge> {
  const { config, logger, bound } = options;
  const grpcLog = logger.child({ component: 'grpc' });
  configureHandlers(options, grpcLog);
  const grpc = await startGrpcServer(options.kv, {
    host: config.grpc.address,
    port: config.grpc.port,
    listener: bound.listener,
    maxRequestBytes: config.limits.maxRequestBytes,
    maxReceivingRequestBytes: config.limits.maxReceivingRequestBytes,
    maxTxnOps: config.limits.maxTxnOps,
    maxReceiveMessageBytes: config.grpc.maxRecvMsgSize,
    maxSendMessageBytes: config.grpc.maxSendMsgSize,
    maxConcurrentStreams: config.grpc.maxConcurrentStreams,
    identity: options.identity,
    watchProgressNotifyIntervalMs: config.grpc.watchProgressNotifyIntervalMs,
    electionTimeoutMs: config.raft.electionTimeoutMs,
    memberDialer: options.memberDialer,
    keepalive: { minTimeMs: config.grpc.keepaliveMinTimeMs, intervalMs: config.grpc.keepaliveIntervalMs, timeoutMs: config.grpc.keepaliveTimeoutMs },
    onTooManyPings: (remoteAddress) => grpcLog.warn({ remoteAddress }, 'closed client connection: too many pings (GOAWAY too_many_pings)'),
  });
  const gateway = new JsonGateway(grpc.services, {
    maxBodyBytes: GATEWAY_BODY_FACTOR * config.limits.maxRequestBytes + GATEWAY_BODY_HEADROOM,
    refusesCertificateCn: () => config.grpc.tls.clientCertAuth && options.kv.auth.enabled,
  });
  // One gateway; a second app in front of it only when the HTTP API port needs the gateway
  // that --enable-grpc-gateway=false turned off on the client URLs.
  const app = clientPortApp(options, config.grpc.enableGateway ? gateway : undefined);
  const http1 = await serveInjected(app);
  bound.listener.serveHttp1((socket) => http1.handle(socket));
  const api = bound.httpApi === undefined || config.grpc.enableGateway ? http1 : await serveInjected(clientPortApp(options, gateway));
  bound.httpApi?.serveHttp1((socket) => api.handle(socket));
  // Plain-text HTTP/2 (gRPC with prior knowledge) is not served on the HTTP API port.
  bound.httpApi?.serveGrpc((socket) => socket.destroy());
  const edges = config.grpc.workers > 0 ? startEdges(options, grpc.services, app) : undefined;
  // "ready to serve client requests" comes after the edges serve: a client connecting at once
  // is not kept waiting for edges still loading.
  await edges?.ready();
  return {
    port: grpc.port,
    openConnections: () => bound.listener.open,
    edgePids: () => edges?.pids ?? [],
    close: async (graceMs) => {
      // Edges first: their calls run here, so the member's handlers must outlive them.
      await edges?.stop(graceMs);
      await bound.httpApi?.close();
      await Promise.all([grpc.close(graceMs), http1.close(), ...(api !== http1 ? [api.close()] : [])]);
    },
  };
}

/** The HTTP/1.1 endpoints of the client port (etcd's health and version endpoints, the gateway). */
function clientPortApp(options: ClientEdgeOptions, gateway: JsonGateway | undefined) {
  return buildClientPortApp({
    sources: options.sources,
    metrics: options.metrics,
    versions: etcdVersions(),
    logger: options.logger.child({ component: 'http' }),
    // etcd 3.4 serves /v3/ and its older /v3beta/ spelling (not /v3alpha/).
    gateway: gateway === undefined ? undefined : { prefixes: ['/v3/', '/v3beta/'], serve: (request, reply) => gateway.serve(request, reply) },
  });
}

/** Forks the edge processes; they serve the client port and relay every call to `services`. */
function startEdges(options: ClientEdgeOptions, services: RunningGrpcServer['services'], app: FastifyInstance): EdgePool {
  const { config, kv } = options;
  return new EdgePool({
    count: config.grpc.workers,
    listener: options.bound.listener,
    services,
    http: async (head, body) => {
      const response = await app.inject({ method: head.method as 'GET', url: head.url, headers: head.headers, payload: body.length > 0 ? body : undefined });
      return { head: { status: response.statusCode, headers: response.headers }, body: response.rawPayload };
    },
    state: () => ({ refusesCertificateCn: config.grpc.tls.clientCertAuth && kv.auth.enabled }),
    logger: options.logger,
  });
}
