// The side ports, each reading the member through the ops sources:
// - MetaStore's health port (server.health.port: /health, /readiness, /liveness) and Prometheus
//   port (server.monitoring.prometheus_port, with enable_prometheus). With etcd's listen URL
//   flags they open only when set explicitly (config.health.open, openPrometheusPort), so an
//   etcd command line gets etcd's port footprint.
// - etcd's --listen-metrics-urls: /metrics, /health, /livez, /readyz, /version on each URL.
// The metrics are created here too, before the client edge (which records every call into them).

import type { Logger } from 'pino';
import type { Config } from '../config/schema.js';
import { bindHost, formatUrl } from '../config/values.js';
import { ETCD_COMPATIBLE_VERSION } from '../grpc/maintenance-service.js';
import type { HealthSources } from '../http/health.js';
import { startHealthServer, startMetricsServer, type EtcdVersions, type RunningHttpServer } from '../http/health-server.js';
import { createMetrics, type Metrics, type MetricsSources } from '../metrics/metrics.js';
import { listeningFor } from './startup-error.js';

/** What etcd_server_quota_backend_bytes shows when no quota is configured: etcd's 2 GiB default. */
const DEFAULT_QUOTA_BYTES = 2 * 1024 ** 3;

/** The cluster version etcd 3.4 reports on /version. */
const ETCD_CLUSTER_VERSION = '3.4.0';

/** What /version answers (etcd's shape). */
export function etcdVersions(): EtcdVersions {
  return { etcdserver: ETCD_COMPATIBLE_VERSION, etcdcluster: ETCD_CLUSTER_VERSION };
}

export function createNodeMetrics(config: Pick<Config, 'monitoring' | 'limits'>, sources: MetricsSources, memberId: bigint): Metrics | undefined {
  if (!config.monitoring.enablePrometheus) return undefined;
  return createMetrics({
    serverVersion: ETCD_COMPATIBLE_VERSION,
    memberId,
    sources,
    quotaBackendBytes: config.limits.quotaBackendBytes === 0 ? DEFAULT_QUOTA_BYTES : config.limits.quotaBackendBytes,
  });
}

export interface SidePortsOptions {
  config: Pick<Config, 'grpc' | 'health' | 'monitoring'>;
  sources: HealthSources & MetricsSources;
  metrics: Metrics | undefined;
  logger: Logger;
}

/** Binds the side ports that are on; logs each bound address. A taken port is a StartupError. */
export async function startSidePorts(options: SidePortsOptions): Promise<{ close(): Promise<void> }> {
  const { config, sources, metrics } = options;
  const logger = options.logger.child({ component: 'http' });
  const host = config.grpc.address;
  const versions = etcdVersions();
  const servers: RunningHttpServer[] = [];
  const opened = async (key: string, what: string, scheme: string, bindTo: string, open: () => Promise<RunningHttpServer>) => {
    const server = await listeningFor(key, open);
    servers.push(server);
    logger.info({ address: formatUrl({ scheme: scheme as 'http', host: bindTo, port: server.port }) }, `serving ${what}`);
  };
  try {
    if (config.health.open) {
      await opened('server.health.port', 'health checks', 'http', host, () => startHealthServer({ host, port: config.health.port, sources, logger }));
    }
    if (metrics && config.monitoring.openPrometheusPort) {
      await opened('server.monitoring.prometheus_port', 'metrics', 'http', host, () =>
        startMetricsServer({ host, port: config.monitoring.prometheusPort, sources, metrics, versions, logger }),
      );
    }
    for (const url of config.monitoring.listenMetricsUrls) {
      const bindTo = bindHost(url.host);
      await opened('server.monitoring.listen_metrics_urls (--listen-metrics-urls)', 'metrics and health (etcd)', url.scheme, bindTo, () =>
        startMetricsServer({ host: bindTo, port: url.port, sources, metrics, versions, logger }),
      );
    }
  } catch (error) {
    await Promise.all(servers.map((server) => server.close()));
    throw error;
  }
  return { close: async () => void (await Promise.all(servers.map((server) => server.close()))) };
}
