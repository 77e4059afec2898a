// Tests of the metrics registry: every promised name is exposed, recording counts, scrape-time
// getters are read live, and the cost of recording on the hot path (printed, and bounded
// loosely so a regression to label hashing fails).

import * as grpc from '@grpc/grpc-js';
import { Counter, Histogram, Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { countGrpcConnections } from './grpc-connections.js';
import { waitFor } from '../../test/support/wait.js';
import { createMetrics, type MetricsSources } from './metrics.js';

function fakeSources(overrides: Partial<MetricsSources> = {}): MetricsSources & { state: Record<string, number> } {
  const state = { applied: 7, committed: 9, revision: 5, compacted: -1, keys: 3, db: 4096, inUse: 1024, connections: 2 };
  return {
    state,
    hasLeader: () => true,
    isLeader: () => true,
    appliedIndex: () => state.applied,
    committedIndex: () => state.committed,
    pendingProposals: () => state.committed - state.applied,
    currentRevision: () => state.revision,
    compactedRevision: () => state.compacted,
    keysTotal: () => state.keys,
    dbSizeBytes: async () => state.db,
    dbSizeInUseBytes: () => state.inUse,
    activeConnections: () => state.connections,
    ...overrides,
  };
}

/** The value of one sample line `name{labels} value` in Prometheus text, or undefined. */
function sample(text: string, series: string): number | undefined {
  for (const line of text.split('\n')) {
    if (line.startsWith(`${series} `)) return Number(line.slice(series.length + 1));
  }
  return undefined;
}

const PROMISED = [
  'grpc_server_request_total',
  'grpc_server_request_duration_seconds',
  'grpc_server_active_connections',
  'raft_applied_index',
  'mvcc_current_revision',
  'etcd_server_has_leader',
  'etcd_server_is_leader',
  'etcd_server_leader_changes_seen_total',
  'etcd_server_proposals_committed_total',
  'etcd_server_proposals_applied_total',
  'etcd_server_proposals_pending',
  'etcd_server_proposals_failed_total',
  'etcd_disk_wal_fsync_duration_seconds',
  'etcd_disk_backend_commit_duration_seconds',
  'etcd_mvcc_db_total_size_in_bytes',
  'etcd_mvcc_db_total_size_in_use_in_bytes',
  'etcd_debugging_mvcc_keys_total',
  'etcd_debugging_mvcc_current_revision',
  'etcd_debugging_mvcc_compact_revision',
  'etcd_server_version',
  'etcd_server_id',
  'process_cpu_seconds_total',
  'process_resident_memory_bytes',
  'nodejs_eventloop_lag_seconds',
  'nodejs_heap_size_used_bytes',
];

describe('metrics registry', () => {
  it('exposes every promised name with HELP and TYPE', async () => {
    const metrics = createMetrics({ serverVersion: '3.4.23', memberId: 0x8e9e05c52164694dn, sources: fakeSources() });
    const text = await metrics.text();
    for (const name of PROMISED) {
      expect(text, name).toContain(`# TYPE ${name} `);
      expect(text, name).toContain(`# HELP ${name} `);
    }
    expect(text).toContain('# TYPE etcd_disk_wal_fsync_duration_seconds histogram');
    expect(text).toContain('# TYPE grpc_server_request_total counter');
    expect(sample(text, 'etcd_server_version{server_version="3.4.23"}')).toBe(1);
    expect(sample(text, 'etcd_server_id{server_id="8e9e05c52164694d"}')).toBe(1);
    expect(metrics.contentType).toContain('text/plain');
  });

  it('counts calls by method and code, and buckets their durations', async () => {
    const metrics = createMetrics({ serverVersion: '3.4.23', memberId: 1n, sources: fakeSources(), processMetrics: false });
    metrics.observeCall('Put', grpc.status.OK, 0.0004);
    metrics.observeCall('Put', grpc.status.OK, 0.003);
    metrics.observeCall('Put', grpc.status.RESOURCE_EXHAUSTED, 0.0001);
    metrics.observeCall('Range', grpc.status.OUT_OF_RANGE, 20); // beyond the last bucket
    metrics.observeCall('Range', 99, 0.001); // an unknown code counts as UNKNOWN
    const text = await metrics.text();
    expect(sample(text, 'grpc_server_request_total{method="Put",code="OK"}')).toBe(2);
    expect(sample(text, 'grpc_server_request_total{method="Put",code="RESOURCE_EXHAUSTED"}')).toBe(1);
    expect(sample(text, 'grpc_server_request_total{method="Range",code="OUT_OF_RANGE"}')).toBe(1);
    expect(sample(text, 'grpc_server_request_total{method="Range",code="UNKNOWN"}')).toBe(1);
    expect(sample(text, 'grpc_server_request_duration_seconds_bucket{method="Put",le="0.0005"}')).toBe(2);
    expect(sample(text, 'grpc_server_request_duration_seconds_bucket{method="Put",le="0.004"}')).toBe(3);
    expect(sample(text, 'grpc_server_request_duration_seconds_bucket{method="Put",le="+Inf"}')).toBe(3);
    expect(sample(text, 'grpc_server_request_duration_seconds_count{method="Put"}')).toBe(3);
    expect(sample(text, 'grpc_server_request_duration_seconds_sum{method="Put"}')).toBeCloseTo(0.0035, 9);
    expect(sample(text, 'grpc_server_request_duration_seconds_bucket{method="Range",le="8.192"}')).toBe(1);
    expect(sample(text, 'grpc_server_request_duration_seconds_bucket{method="Range",le="+Inf"}')).toBe(2);
  });

  it('records disk durations with etcd buckets, failed proposals and leader changes', async () => {
    const metrics = createMetrics({ serverVersion: '3.4.23', memberId: 1n, sources: fakeSources(), processMetrics: false });
    metrics.walFsync.observe(0.0015);
    metrics.walFsync.observe(0.0005);
    metrics.backendCommit.observe(0.1);
    metrics.proposalsFailed.inc();
    metrics.leaderChanges.inc();
    metrics.leaderChanges.inc();
    const text = await metrics.text();
    expect(sample(text, 'etcd_disk_wal_fsync_duration_seconds_bucket{le="0.001"}')).toBe(1);
    expect(sample(text, 'etcd_disk_wal_fsync_duration_seconds_bucket{le="0.002"}')).toBe(2);
    expect(sample(text, 'etcd_disk_wal_fsync_duration_seconds_bucket{le="8.192"}')).toBe(2);
    expect(sample(text, 'etcd_disk_wal_fsync_duration_seconds_count')).toBe(2);
    expect(sample(text, 'etcd_disk_backend_commit_duration_seconds_bucket{le="0.064"}')).toBe(0);
    expect(sample(text, 'etcd_disk_backend_commit_duration_seconds_bucket{le="0.128"}')).toBe(1);
    expect(sample(text, 'etcd_server_proposals_failed_total')).toBe(1);
    expect(sample(text, 'etcd_server_leader_changes_seen_total')).toBe(2);
    metrics.registry.resetMetrics();
    expect(sample(await metrics.text(), 'etcd_server_leader_changes_seen_total')).toBe(0);
  });

  it('reads live values through the getters at each scrape', async () => {
    const sources = fakeSources();
    const metrics = createMetrics({ serverVersion: '3.4.23', memberId: 1n, sources, processMetrics: false });
    let text = await metrics.text();
    expect(sample(text, 'raft_applied_index')).toBe(7);
    expect(sample(text, 'etcd_server_proposals_committed_total')).toBe(9);
    expect(sample(text, 'etcd_server_proposals_pending')).toBe(2);
    expect(sample(text, 'mvcc_current_revision')).toBe(5);
    expect(sample(text, 'etcd_debugging_mvcc_compact_revision')).toBe(0);
    expect(sample(text, 'etcd_mvcc_db_total_size_in_bytes')).toBe(4096);
    expect(sample(text, 'etcd_mvcc_db_total_size_in_use_in_bytes')).toBe(1024);
    expect(sample(text, 'grpc_server_active_connections')).toBe(2);
    Object.assign(sources.state, { applied: 20, committed: 20, revision: 11, compacted: 4, keys: 8, db: 8192, connections: 0 });
    text = await metrics.text();
    expect(sample(text, 'raft_applied_index')).toBe(20);
    expect(sample(text, 'etcd_server_proposals_pending')).toBe(0);
    expect(sample(text, 'mvcc_current_revision')).toBe(11);
    expect(sample(text, 'etcd_debugging_mvcc_current_revision')).toBe(11);
    expect(sample(text, 'etcd_debugging_mvcc_compact_revision')).toBe(4);
    expect(sample(text, 'etcd_debugging_mvcc_keys_total')).toBe(8);
    expect(sample(text, 'etcd_mvcc_db_total_size_in_bytes')).toBe(8192);
    expect(sample(text, 'grpc_server_active_connections')).toBe(0);
  });

  it('keeps the previous value when a getter fails, and still answers the scrape', async () => {
    let fail = false;
    const sources = fakeSources({
      dbSizeBytes: async () => {
        if (fail) throw new Error('closed');
        return 123;
      },
    });
    const metrics = createMetrics({ serverVersion: '3.4.23', memberId: 1n, sources, processMetrics: false });
    expect(sample(await metrics.text(), 'etcd_mvcc_db_total_size_in_bytes')).toBe(123);
    fail = true;
    const text = await metrics.text();
    expect(sample(text, 'etcd_mvcc_db_total_size_in_bytes')).toBe(123);
    expect(sample(text, 'raft_applied_index')).toBe(7);
  });

  it('has leader gauges follow the getters', async () => {
    let leader = false;
    const metrics = createMetrics({
      serverVersion: '3.4.23',
      memberId: 1n,
      sources: fakeSources({ hasLeader: () => leader, isLeader: () => leader }),
      processMetrics: false,
    });
    expect(sample(await metrics.text(), 'etcd_server_has_leader')).toBe(0);
    leader = true;
    const text = await metrics.text();
    expect(sample(text, 'etcd_server_has_leader')).toBe(1);
    expect(sample(text, 'etcd_server_is_leader')).toBe(1);
  });
});

describe('grpc_server_active_connections source', () => {
  it('counts open client connections of a grpc-js server through channelz', async () => {
    const server = new grpc.Server();
    const port = await new Promise<number>((resolve, reject) =>
      server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))),
    );
    const before = countGrpcConnections();
    // Each client gets its own subchannel pool, hence its own connection (clients of one target
    // otherwise share one).
    const clients = [0, 1, 2].map(() => new grpc.Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure(), { 'grpc.use_local_subchannel_pool': 1 }));
    try {
      await Promise.all(clients.map((c) => new Promise<void>((resolve, reject) => c.waitForReady(Date.now() + 5000, (e) => (e ? reject(e) : resolve())))));
      // The server learns of a session when the HTTP/2 handshake reaches it; wait for that.
      await waitFor(() => countGrpcConnections() >= before + 3, { what: 'the server to count 3 new connections', timeoutMs: 5000, intervalMs: 1 });
      expect(countGrpcConnections()).toBe(before + 3);
    } finally {
      for (const c of clients) c.close();
      await new Promise<void>((resolve) => server.tryShutdown(() => resolve()));
    }
    expect(countGrpcConnections()).toBe(before);
  });
});

describe('recording cost (micro-benchmark)', () => {
  const N = 1_000_000;
  const methods = ['Range', 'Put', 'DeleteRange', 'Txn'];

  /** Best of five timed runs (after a warm-up): a run slowed by a neighbour's load is left out. */
  function nsPerOp(run: () => void): number {
    run();
    let best = Infinity;
    for (let i = 0; i < 5; i++) {
      const started = process.hrtime.bigint();
      run();
      best = Math.min(best, Number(process.hrtime.bigint() - started) / N);
    }
    return best;
  }

  it('observeCall costs tens of nanoseconds, far below prom-client labelled metrics', () => {
    const metrics = createMetrics({ serverVersion: '3.4.23', memberId: 1n, sources: fakeSources(), processMetrics: false });
    const fast = nsPerOp(() => {
      for (let i = 0; i < N; i++) metrics.observeCall(methods[i & 3]!, 0, (i & 1023) * 1e-5);
    });
    const fsync = nsPerOp(() => {
      for (let i = 0; i < N; i++) metrics.walFsync.observe((i & 1023) * 1e-5);
    });

    // Reference: the same recording with prom-client's labelled Counter and Histogram.
    const registry = new Registry();
    const counter = new Counter({ name: 'c', help: 'c', labelNames: ['method', 'code'], registers: [registry] });
    const histogram = new Histogram({ name: 'h', help: 'h', labelNames: ['method'], buckets: [0.0005, 0.001, 0.002, 0.004, 0.008], registers: [registry] });
    const reference =
      nsPerOp(() => {
        for (let i = 0; i < N / 10; i++) {
          const method = methods[i & 3]!;
          counter.inc({ method, code: 'OK' });
          histogram.observe({ method }, (i & 1023) * 1e-5);
        }
      }) * 10;

    console.log(
      `metrics recording cost: observeCall ${fast.toFixed(1)} ns/op, walFsync.observe ${fsync.toFixed(1)} ns/op, ` +
        `prom-client labelled counter+histogram ${reference.toFixed(0)} ns/op (1M ops)`,
    );
    // Relative, not absolute (machines and their load vary): ~30x and ~90x apart when measured
    // here; a return to per-call label hashing would bring them within 5x of the reference.
    expect(fast * 5).toBeLessThan(reference);
    expect(fsync * 5).toBeLessThan(reference);
  });
});
