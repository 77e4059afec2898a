// The HTTP side ports (fastify): MetaStore's health port and etcd's metrics port.
//
//   health port (server.health.port, 8080)
//     GET /health      {"status":"healthy|degraded|unhealthy","checks":{store,raft,disk,server}}
//                      200, or 503 when unhealthy
//     GET /readiness   200 {"status":"ready"} only when the member serves; else
//                      503 {"status":"not ready","reasons":[...]} (HAProxy's check)
//     GET /liveness    200 {"status":"alive"} while the event loop runs
//   metrics port (server.monitoring.prometheus_port, 9090; etcd's --listen-metrics-urls)
//     GET /metrics     Prometheus text
//     GET /health      etcd's {"health":"true","reason":""} / 503 {"health":"false",...}
//                      (?exclude=NOSPACE, ?serializable=true)
//     GET /livez /readyz [/<check>]   "ok" / 503 "health check failed"; ?verbose lists each
//                      check as "[+]name ok"; ?exclude=name skips one
//     GET /version     {"etcdserver":"3.4.23","etcdcluster":"3.4.0"}
//
// The decisions live in health.ts; this file only maps them to HTTP. Request logging is off
// (probes arrive every second or two; DESIGN.md §8: no info logs in hot loops).

import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { listenErrorOf } from '../util/listen-error.js';
import Fastify, { type FastifyBaseLogger, type FastifyInstance, type FastifyReply } from 'fastify';
import { DEFAULT_HEALTH_OPTIONS, checkHealth, checkReadiness, etcdHealth, runEtcdChecks, type HealthOptions, type HealthSources } from './health.js';

/** The metrics text source; the metrics module's Metrics satisfies it. */
export interface MetricsText {
  text(): Promise<string>;
  readonly contentType: string;
}

export interface EtcdVersions {
  etcdserver: string;
  etcdcluster: string;
}

export interface RunningHttpServer {
  readonly port: number;
  close(): Promise<void>;
}

export interface HealthServerOptions {
  host: string;
  port: number;
  sources: HealthSources;
  health?: Partial<HealthOptions>;
  logger?: FastifyBaseLogger;
}

export interface EtcdEndpointsOptions {
  sources: HealthSources;
  health?: Partial<HealthOptions>;
  logger?: FastifyBaseLogger;
  /** /metrics is served only with metrics. */
  metrics?: MetricsText;
  versions: EtcdVersions;
}

export interface MetricsServerOptions extends HealthServerOptions, EtcdEndpointsOptions {}

const TEXT = 'text/plain; charset=utf-8';

function newApp(logger: FastifyBaseLogger | undefined): FastifyInstance {
  const app = (logger === undefined ? Fastify({ logger: false }) : Fastify({ loggerInstance: logger })) as unknown as FastifyInstance;
  // Probes and scrapes are frequent; per-request logs (info) would drown everything else.
  // Errors thrown by a route are still logged.
  app.addHook('onRoute', (route) => {
    route.logLevel = 'warn';
  });
  return app;
}

function healthOptions(overrides: Partial<HealthOptions> | undefined): HealthOptions {
  return { ...DEFAULT_HEALTH_OPTIONS, ...overrides };
}

/** Values of a repeatable query parameter (`?exclude=a&exclude=b`). */
function queryList(query: unknown, name: string): Set<string> {
  const value = (query as Record<string, unknown> | undefined)?.[name];
  const list = Array.isArray(value) ? value : value === undefined ? [] : [value];
  return new Set(list.map(String).filter((v) => v.length > 0));
}

function queryHas(query: unknown, name: string): boolean {
  return (query as Record<string, unknown> | undefined)?.[name] !== undefined;
}

/** MetaStore's probes a balancer uses: /readiness and /liveness. */
function addProbes(app: FastifyInstance, sources: HealthSources, tuning: HealthOptions): void {
  app.get('/readiness', async (_request, reply) => {
    const readiness = await checkReadiness(sources, tuning);
    if (readiness.ready) return reply.code(200).send({ status: 'ready' });
    return reply.code(503).send({ status: 'not ready', reasons: readiness.reasons });
  });

  app.get('/liveness', async (_request, reply) => reply.code(200).send({ status: 'alive' }));
}

/** MetaStore's health port: /health, /readiness, /liveness. */
export function buildHealthApp(options: Omit<HealthServerOptions, 'host' | 'port'>): FastifyInstance {
  const app = newApp(options.logger);
  const { sources } = options;
  const tuning = healthOptions(options.health);

  app.get('/health', async (_request, reply) => {
    const report = await checkHealth(sources, tuning);
    return reply.code(report.status === 'unhealthy' ? 503 : 200).send(report);
  });
  addProbes(app, sources, tuning);
  return app;
}

async function sendEtcdChecks(
  endpoint: 'livez' | 'readyz',
  sources: HealthSources,
  tuning: HealthOptions,
  query: unknown,
  only: string | undefined,
  reply: FastifyReply,
): Promise<FastifyReply> {
  const report = await runEtcdChecks(endpoint, sources, { exclude: queryList(query, 'exclude'), only }, tuning);
  if (report === undefined) return reply.code(404).type(TEXT).send('404 page not found\n');
  if (!report.ok)
    return reply
      .code(503)
      .type(TEXT)
      .send(`${report.lines.join('\n')}\nhealth check failed\n`);
  const body = queryHas(query, 'verbose') ? `${report.lines.join('\n')}\nok\n` : 'ok';
  return reply.code(200).type(TEXT).send(body);
}

/** etcd's endpoints: /metrics (when metrics are on), /health, /livez, /readyz, /version. */
function addEtcdEndpoints(app: FastifyInstance, options: EtcdEndpointsOptions): void {
  const { sources, metrics, versions } = options;
  const tuning = healthOptions(options.health);

  if (metrics !== undefined) {
    app.get('/metrics', async (_request, reply) =>
      reply
        .code(200)
        .type(metrics.contentType)
        .send(await metrics.text()),
    );
  }

  app.get('/health', async (request, reply) => {
    const query = request.query;
    const result = await etcdHealth(
      sources,
      { exclude: queryList(query, 'exclude'), serializable: (query as Record<string, unknown>).serializable === 'true' },
      tuning,
    );
    // etcd 3.4.23's shape: {"health":"true"} (the reason field came with 3.5; it is logged here
    // instead). etcd writes it without a content type, which Go's server sniffs as text/plain;
    // a failure goes through Go's http.Error, which adds a newline and nosniff.
    const body = JSON.stringify({ health: result.health });
    if (result.health === 'true') return reply.code(200).type(TEXT).send(body);
    options.logger?.warn({ reason: result.reason }, '/health check failed');
    return reply.code(503).type(TEXT).header('x-content-type-options', 'nosniff').send(`${body}\n`);
  });

  // etcd's /health takes GET only; other methods get Go's http.Error 405.
  app.route({
    method: ['POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS'],
    url: '/health',
    handler: async (_request, reply) => reply.code(405).type(TEXT).header('x-content-type-options', 'nosniff').send('Method Not Allowed\n'),
  });

  for (const endpoint of ['livez', 'readyz'] as const) {
    app.get(`/${endpoint}`, async (request, reply) => sendEtcdChecks(endpoint, sources, tuning, request.query, undefined, reply));
    app.get<{ Params: { check: string } }>(`/${endpoint}/:check`, async (request, reply) =>
      sendEtcdChecks(endpoint, sources, tuning, request.query, request.params.check, reply),
    );
  }

  // etcd's content type carries no charset; a Buffer keeps Fastify from adding one.
  app.get('/version', async (_request, reply) =>
    reply
      .code(200)
      .header('content-type', 'application/json')
      .send(Buffer.from(JSON.stringify(versions))),
  );
}

/** etcd's metrics port (--listen-metrics-urls, prometheus_port): /metrics, /health, /livez, /readyz, /version. */
export function buildMetricsApp(options: Omit<MetricsServerOptions, 'host' | 'port'>): FastifyInstance {
  const app = newApp(options.logger);
  addEtcdEndpoints(app, options);
  return app;
}

/** etcd's JSON gateway (src/grpc/gateway), served on the raw request under its prefixes. */
export interface RawHttpHandler {
  readonly prefixes: readonly string[];
  serve(request: IncomingMessage, reply: ServerResponse): void;
}

const ALL_METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS'];

/** Hands requests under the prefixes over untouched: the body unread, the reply raw. */
function addRawHandler(app: FastifyInstance, raw: RawHttpHandler): void {
  void app.register(async (scope) => {
    // Leave the body to the handler (it streams some bodies, and reports Go's JSON errors).
    scope.removeAllContentTypeParsers();
    scope.addContentTypeParser('*', (_request, _payload, done) => done(null));
    for (const prefix of raw.prefixes) {
      scope.route({
        method: ALL_METHODS,
        url: `${prefix}*`,
        handler: (request, reply) => {
          reply.hijack();
          raw.serve(request.raw, reply.raw);
        },
      });
    }
  });
}

/**
 * HTTP/1.1 on the client port, beside gRPC (as etcd serves it there): etcd's endpoints,
 * MetaStore's /readiness and /liveness, and etcd's JSON gateway when given. Connections come
 * from the client listener. Unknown paths get Go's "404 page not found", as from etcd.
 */
export function buildClientPortApp(options: EtcdEndpointsOptions & { gateway?: RawHttpHandler }): FastifyInstance {
  const app = newApp(options.logger);
  addEtcdEndpoints(app, options);
  addProbes(app, options.sources, healthOptions(options.health));
  if (options.gateway !== undefined) addRawHandler(app, options.gateway);
  app.setNotFoundHandler((_request, reply) => reply.code(404).type(TEXT).header('x-content-type-options', 'nosniff').send('404 page not found\n'));
  return app;
}

/** An app served on sockets handed to it (never listening itself). */
export interface InjectedHttpServer {
  handle(socket: Socket): void;
  close(): Promise<void>;
}

export async function serveInjected(app: FastifyInstance): Promise<InjectedHttpServer> {
  await app.ready();
  const server = app.server;
  return {
    handle: (socket) => void server.emit('connection', socket),
    close: async () => {
      server.closeAllConnections();
      await app.close();
    },
  };
}

/** Listens on host:port; a port that cannot be listened on throws ListenError. */
async function listen(app: FastifyInstance, host: string, port: number): Promise<RunningHttpServer> {
  try {
    await app.listen({ host, port });
  } catch (error) {
    await app.close();
    throw listenErrorOf(error, host, port);
  }
  const address = app.server.address();
  const boundPort = typeof address === 'object' && address !== null ? address.port : port;
  return { port: boundPort, close: () => app.close() };
}

export function startHealthServer(options: HealthServerOptions): Promise<RunningHttpServer> {
  return listen(buildHealthApp(options), options.host, options.port);
}

export function startMetricsServer(options: MetricsServerOptions): Promise<RunningHttpServer> {
  return listen(buildMetricsApp(options), options.host, options.port);
}
