// The side ports: the health port (always) and the Prometheus metrics port (with
// monitoring.enable_prometheus), both reading the member through the ops sources. The metrics
// are created here too, before the client edge (which records every call into them).

import type { Logger } from 'pino';
import type { Config } from '../config/schema.js';
import { ETCD_COMPATIBLE_VERSION } from '../grpc/maintenance-service.js';
import type { HealthSources } from '../http/health.js';
import { startHealthServer, startMetricsServer, type RunningHttpServer } from '../http/health-server.js';
import { createMetrics, type Metrics, type MetricsSources } from '../metrics/metrics.js';

/** What etcd_server_quota_backend_bytes shows when no quota is configured: etcd's 2 GiB default. */
const DEFAULT_QUOTA_BYTES = 2 * 1024 ** 3;

/** The cluster version etcd 3.4 reports on /version. */
const ETCD_CLUSTER_VERSION = '3.4.0';

export function createNodeMetrics(
  config: Pick<Config, 'monitoring' | 'limits'>,
  sources: MetricsSources,
  memberId: bigint,
): Metrics | undefined {
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

/** Binds the health port and, with metrics, the metrics port; logs both ports once up. */
export async function startSidePorts(options: SidePortsOptions): Promise<{ close(): Promise<void> }> {
  const { config, sources, metrics } = options;
  const httpLog = options.logger.child({ component: 'http' });
  const host = config.grpc.address;
  const health = await startHealthServer({ host, port: config.health.port, sources, logger: httpLog });
  const ports: RunningHttpServer[] = [health];
  if (metrics) {
    const versions = { etcdserver: ETCD_COMPATIBLE_VERSION, etcdcluster: ETCD_CLUSTER_VERSION };
    ports.push(await startMetricsServer({ host, port: config.monitoring.prometheusPort, sources, metrics, versions, logger: httpLog }));
  }
  httpLog.info({ healthPort: health.port, metricsPort: ports[1]?.port }, 'serving health and metrics');
  return { close: async () => void (await Promise.all(ports.map((server) => server.close()))) };
}
