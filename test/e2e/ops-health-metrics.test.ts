// End to end: MetaStore as a real process (bin/metastore on dist/), written to by the real
// etcdctl, then asked over HTTP on both side ports what an operator's tools ask:
//   health port   /health, /readiness, /liveness             (HAProxy, Kubernetes probes)
//   metrics port  /metrics, /health, /readyz?verbose, /version (Prometheus, etcd tooling)
// and checked against what etcdctl saw (request counts, the revision). Shutdown order is
// checked from the server's log: readiness turns 503 before the client port closes (the
// flip itself is unit-tested in src/http/health.test.ts; observing it over HTTP here would
// need a timing race).

import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startMetaStore, type MetaStoreHandle } from '../support/servers.js';
import { etcdctl } from '../support/tools.js';

/** The value of one sample `series value` in Prometheus text, or undefined. */
function sample(text: string, series: string): number | undefined {
  for (const line of text.split('\n')) {
    if (line.startsWith(`${series} `)) return Number(line.slice(series.length + 1));
  }
  return undefined;
}

async function get(port: number, path: string): Promise<{ status: number; type: string; body: string }> {
  const response = await fetch(`http://127.0.0.1:${port}${path}`);
  return { status: response.status, type: response.headers.get('content-type') ?? '', body: await response.text() };
}

describe('ops: health and metrics side ports', () => {
  let server: MetaStoreHandle;
  const PUTS = 3;
  let revision = 0;

  beforeAll(async () => {
    server = await startMetaStore();
    for (let i = 0; i < PUTS; i++) {
      const put = await etcdctl(server.endpoint, ['put', `ops/k${i}`, `v${i}`]);
      expect(put.code, put.stderr).toBe(0);
    }
    const read = await etcdctl(server.endpoint, ['get', 'ops/k0', '-w', 'json']);
    expect(read.code, read.stderr).toBe(0);
    revision = (JSON.parse(read.stdout) as { header: { revision: number } }).header.revision;
    expect(revision).toBe(1 + PUTS);
  });

  afterAll(async () => {
    await server?.destroy();
  });

  it('health port: /health is healthy with all checks, /readiness ready, /liveness alive', async () => {
    const health = await get(server.healthPort, '/health');
    expect(health.status).toBe(200);
    const report = JSON.parse(health.body) as { status: string; checks: Record<string, { status: string }> };
    expect(report.status).toBe('healthy');
    expect(Object.keys(report.checks)).toEqual(expect.arrayContaining(['store', 'raft', 'disk']));
    expect(report.checks.store!.status).toBe('ok');
    expect(report.checks.raft).toMatchObject({ status: 'ok', hasLeader: true, applyLag: 0 });
    expect(report.checks.disk).toEqual({ status: 'ok', alarms: [] });

    const readiness = await get(server.healthPort, '/readiness');
    expect([readiness.status, JSON.parse(readiness.body)]).toEqual([200, { status: 'ready' }]);
    const liveness = await get(server.healthPort, '/liveness');
    expect([liveness.status, JSON.parse(liveness.body)]).toEqual([200, { status: 'alive' }]);
  });

  it('metrics port: /metrics counted the puts and reports the revision etcdctl saw', async () => {
    const metrics = await get(server.metricsPort, '/metrics');
    expect(metrics.status).toBe(200);
    expect(metrics.type).toContain('text/plain');
    expect(sample(metrics.body, 'grpc_server_request_total{method="Put",code="OK"}')).toBe(PUTS);
    expect(sample(metrics.body, 'grpc_server_request_duration_seconds_count{method="Put"}')).toBe(PUTS);
    expect(sample(metrics.body, 'mvcc_current_revision')).toBe(revision);
    expect(sample(metrics.body, 'etcd_debugging_mvcc_current_revision')).toBe(revision);
    expect(sample(metrics.body, 'etcd_debugging_mvcc_keys_total')).toBe(PUTS);
    expect(sample(metrics.body, 'raft_applied_index')).toBeGreaterThanOrEqual(PUTS);
    expect(sample(metrics.body, 'etcd_server_has_leader')).toBe(1);
    expect(sample(metrics.body, 'etcd_server_is_leader')).toBe(1);
    expect(sample(metrics.body, 'etcd_server_version{server_version="3.4.23"}')).toBe(1);
    expect(metrics.body).toMatch(/^etcd_server_id\{server_id="[0-9a-f]+"\} 1$/m);
    expect(metrics.body).toContain('# TYPE etcd_disk_wal_fsync_duration_seconds histogram');
    expect(metrics.body).toContain('# TYPE process_resident_memory_bytes gauge');
    expect(sample(metrics.body, 'etcd_mvcc_db_total_size_in_bytes')).toBeGreaterThan(0);
  });

  it('metrics port: grpc_server_active_connections counts an open client connection', async () => {
    const client = new grpc.Client(`127.0.0.1:${server.clientPort}`, grpc.credentials.createInsecure());
    try {
      await new Promise<void>((resolve, reject) => client.waitForReady(Date.now() + 10_000, (e) => (e ? reject(e) : resolve())));
      const metrics = await get(server.metricsPort, '/metrics');
      expect(sample(metrics.body, 'grpc_server_active_connections')).toBeGreaterThanOrEqual(1);
    } finally {
      client.close();
    }
  });

  it("metrics port: etcd's /health, /readyz?verbose, /livez and /version", async () => {
    const health = await get(server.metricsPort, '/health');
    expect([health.status, JSON.parse(health.body)]).toEqual([200, { health: 'true' }]);
    const readyz = await get(server.metricsPort, '/readyz?verbose');
    expect(readyz.status).toBe(200);
    expect(readyz.body.split('\n')).toEqual(['[+]data_corruption ok', '[+]serializable_read ok', '[+]linearizable_read ok', '[+]non_learner ok', 'ok', '']);
    const livez = await get(server.metricsPort, '/livez');
    expect([livez.status, livez.body]).toEqual([200, 'ok']);
    const version = await get(server.metricsPort, '/version');
    expect([version.status, JSON.parse(version.body)]).toEqual([200, { etcdserver: '3.4.23', etcdcluster: '3.4.0' }]);
  });

  it('on SIGTERM, readiness reports not ready before the client port closes, then the process exits', async () => {
    await server.stop();
    expect(server.isRunning()).toBe(false);
    const logs = server.logs();
    const flipped = logs.indexOf('readiness reports not ready');
    const closed = logs.indexOf('client port closed');
    expect(flipped, logs).toBeGreaterThan(-1);
    expect(closed, logs).toBeGreaterThan(flipped);
    expect(logs).toContain('"msg":"stopped"');
    // The side ports are closed with the process.
    await expect(fetch(`http://127.0.0.1:${server.healthPort}/liveness`)).rejects.toThrow();
  });
});
