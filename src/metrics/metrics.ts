// MetaStore's Prometheus registry: the names the deployment guide promises, etcd's own names
// (so etcd dashboards and alerts work unchanged), and prom-client's process/Node metrics.
//
// Two kinds of values:
// - Recorded on the hot path (finished gRPC calls, fsync and commit durations, failed
//   proposals, leader changes): fast collectors (fast-collectors.ts) whose recording is a few
//   array stores. Callers get plain functions/objects to bump; nothing here imports them.
// - Living elsewhere (indexes, revisions, sizes, leadership, connections): read at scrape time
//   through prom-client gauges' collect() callbacks, from the narrow getters in
//   MetricsSources. src/node/ops-sources.ts fills those from the member; this module never
//   imports server internals.
//
// Histogram buckets: etcd's disk histograms keep etcd's exact buckets (1 ms doubling to
// 8.192 s) so etcd's dashboards and alert thresholds line up; gRPC durations start at 0.5 ms
// (a single-member read answers in well under a millisecond) and double up to ~8 s.

import { Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { CallStats, FastCounter, FastHistogram, exponentialBuckets } from './fast-collectors.js';

/** Values read when Prometheus scrapes. Each getter must be cheap and must not throw. */
export interface MetricsSources {
  hasLeader(): boolean;
  isLeader(): boolean;
  /** Last raft index applied to the state machine (etcd's consistent index). */
  appliedIndex(): number;
  /** Last raft index known committed. */
  committedIndex(): number;
  /** Proposals accepted but not yet applied. */
  pendingProposals(): number;
  currentRevision(): number;
  /** -1 before the first compaction (etcd reports 0 then; so do we). */
  compactedRevision(): number;
  /** Live keys (not deleted) at the current revision. */
  keysTotal(): number;
  dbSizeBytes(): Promise<number> | number;
  dbSizeInUseBytes(): Promise<number> | number;
  /** Open client connections to the gRPC server. */
  activeConnections(): number;
  /** Watchers on this member (etcd_debugging_mvcc_watcher_total). */
  watchers?(): number;
}

export interface MetricsOptions {
  /** etcd_server_version's label: the etcd release whose API we serve. */
  serverVersion: string;
  memberId: bigint;
  sources: MetricsSources;
  /** etcd_server_quota_backend_bytes: the backend quota; negative = no quota (not exported). */
  quotaBackendBytes?: number;
  /** prom-client's process_* and nodejs_* metrics (default true). */
  processMetrics?: boolean;
}

/** A duration histogram handed to code that times something (seconds). */
export interface DurationRecorder {
  observe(seconds: number): void;
}

/** A monotonically increasing count handed to code that counts something. */
export interface CountRecorder {
  inc(by?: number): void;
}

export interface Metrics {
  readonly registry: Registry;
  /** Shaped as the gRPC layer's call observer: give it to setCallHooks. */
  readonly observeCall: (method: string, code: number, seconds: number) => void;
  /** etcd_disk_wal_fsync_duration_seconds: a synced log write. */
  readonly walFsync: DurationRecorder;
  /** etcd_disk_backend_commit_duration_seconds: a backend batch commit. */
  readonly backendCommit: DurationRecorder;
  readonly proposalsFailed: CountRecorder;
  readonly leaderChanges: CountRecorder;
  /** etcd_network_peer_round_trip_time_seconds{To}: a heartbeat's round trip to a peer (a few a second per peer). */
  readonly peerRoundTrip: (peer: string, seconds: number) => void;
  /** The Prometheus text exposition of everything. */
  text(): Promise<string>;
  readonly contentType: string;
}

export const GRPC_DURATION_BUCKETS_SECONDS = exponentialBuckets(0.0005, 2, 15);
export const ETCD_DISK_BUCKETS_SECONDS = exponentialBuckets(0.001, 2, 14);

/**
 * A gauge whose value is read from `read` at scrape time. A getter that fails (say, a size
 * read racing shutdown) keeps the previous value rather than failing the whole scrape.
 */
function liveGauge(registry: Registry, name: string, help: string, read: () => number | Promise<number>): void {
  new Gauge({
    name,
    help,
    registers: [registry],
    async collect() {
      try {
        this.set(await read());
      } catch {
        // Keep the last value; the other metrics of the scrape still matter.
      }
    },
  });
}

/** A gauge that is always 1 with one informational label (etcd's version and id gauges). */
function infoGauge(registry: Registry, name: string, help: string, label: string, value: string): void {
  const gauge = new Gauge({ name, help, labelNames: [label], registers: [registry] });
  gauge.set({ [label]: value }, 1);
}

/** The names the MetaStore deployment guide promises: gRPC calls and connections, applied index, revision. */
function registerGuideMetrics(registry: Registry, s: MetricsSources): CallStats {
  const calls = new CallStats(
    {
      counter: 'grpc_server_request_total',
      counterHelp: 'Finished gRPC requests by method and status code.',
      histogram: 'grpc_server_request_duration_seconds',
      histogramHelp: 'Time from receiving a gRPC request to sending its answer, by method.',
    },
    GRPC_DURATION_BUCKETS_SECONDS,
  );
  calls.counter.registerIn(registry);
  calls.histogram.registerIn(registry);
  liveGauge(registry, 'grpc_server_active_connections', 'Open client connections to the gRPC server.', () => s.activeConnections());
  liveGauge(registry, 'raft_applied_index', 'Last raft index applied to the state machine.', () => s.appliedIndex());
  liveGauge(registry, 'mvcc_current_revision', 'Current revision of the key-value store.', () => s.currentRevision());
  return calls;
}

/** etcd's etcd_server_* leadership and proposal metrics (help texts say what etcd's do). */
function registerServerMetrics(registry: Registry, s: MetricsSources): Pick<Metrics, 'leaderChanges' | 'proposalsFailed'> {
  liveGauge(registry, 'etcd_server_has_leader', 'Whether or not a leader exists. 1 is existence, 0 is not.', () => (s.hasLeader() ? 1 : 0));
  liveGauge(registry, 'etcd_server_is_leader', 'Whether or not this member is a leader. 1 if is, 0 otherwise.', () => (s.isLeader() ? 1 : 0));
  const leaderChanges = new FastCounter('etcd_server_leader_changes_seen_total', 'The number of leader changes seen.').registerIn(registry);
  // etcd exposes these two "_total" names as gauges set to the raft indexes; so do we.
  liveGauge(registry, 'etcd_server_proposals_committed_total', 'The total number of consensus proposals committed.', () => s.committedIndex());
  liveGauge(registry, 'etcd_server_proposals_applied_total', 'The total number of consensus proposals applied.', () => s.appliedIndex());
  liveGauge(registry, 'etcd_server_proposals_pending', 'The current number of pending proposals to commit.', () => s.pendingProposals());
  const proposalsFailed = new FastCounter('etcd_server_proposals_failed_total', 'The total number of failed proposals seen.').registerIn(registry);
  return { leaderChanges, proposalsFailed };
}

/** etcd's disk and database-size metrics, with the backend quota when there is one. */
function registerDiskMetrics(registry: Registry, s: MetricsSources, quotaBackendBytes: number | undefined): Pick<Metrics, 'walFsync' | 'backendCommit'> {
  const walFsync = new FastHistogram(
    'etcd_disk_wal_fsync_duration_seconds',
    'The latency distributions of fsync called by WAL.',
    ETCD_DISK_BUCKETS_SECONDS,
  ).registerIn(registry);
  const backendCommit = new FastHistogram(
    'etcd_disk_backend_commit_duration_seconds',
    'The latency distributions of commit called by backend.',
    ETCD_DISK_BUCKETS_SECONDS,
  ).registerIn(registry);
  liveGauge(registry, 'etcd_mvcc_db_total_size_in_bytes', 'Total size of the underlying database physically allocated in bytes.', () => s.dbSizeBytes());
  liveGauge(registry, 'etcd_mvcc_db_total_size_in_use_in_bytes', 'Total size of the underlying database logically in use in bytes.', () =>
    s.dbSizeInUseBytes(),
  );
  if (quotaBackendBytes !== undefined && quotaBackendBytes >= 0) {
    const quota = new Gauge({ name: 'etcd_server_quota_backend_bytes', help: 'Current backend storage quota size in bytes.', registers: [registry] });
    quota.set(quotaBackendBytes);
  }
  return { walFsync, backendCommit };
}

/** etcd's version and member ID gauges. */
function registerIdentityGauges(registry: Registry, serverVersion: string, memberId: bigint): void {
  infoGauge(registry, 'etcd_server_version', "Which version is running. 1 for 'server_version' label with current version.", 'server_version', serverVersion);
  infoGauge(
    registry,
    'etcd_server_id',
    "Server or member ID in hexadecimal format. 1 for 'server_id' label with current ID.",
    'server_id',
    memberId.toString(16),
  );
}

export function createMetrics(options: MetricsOptions): Metrics {
  const registry = new Registry();
  const s = options.sources;
  const calls = registerGuideMetrics(registry, s);
  const server = registerServerMetrics(registry, s);
  const disk = registerDiskMetrics(registry, s, options.quotaBackendBytes);
  liveGauge(registry, 'etcd_debugging_mvcc_keys_total', 'Total number of keys.', () => s.keysTotal());
  liveGauge(registry, 'etcd_debugging_mvcc_watcher_total', 'Total number of watchers.', () => s.watchers?.() ?? 0);
  // etcd's buckets: 0.1 ms doubling 16 times. Heartbeats are rare enough for a labelled
  // prom-client histogram.
  const peerRtt = new Histogram({
    name: 'etcd_network_peer_round_trip_time_seconds',
    help: 'Round-Trip-Time histogram between peers.',
    labelNames: ['To'],
    buckets: Array.from({ length: 16 }, (_, i) => 0.0001 * 2 ** i),
    registers: [registry],
  });
  liveGauge(registry, 'etcd_debugging_mvcc_current_revision', 'The current revision of store.', () => s.currentRevision());
  liveGauge(registry, 'etcd_debugging_mvcc_compact_revision', 'The revision of the last compaction in store.', () => Math.max(0, s.compactedRevision()));
  registerIdentityGauges(registry, options.serverVersion, options.memberId);

  // The event-loop delay monitor samples on a timer of its own: at prom-client's default 10 ms
  // it woke every idle member ~100 times a second (~3 ms of CPU a second, S14-H1's strace in
  // bench/RESULTS.md); 100 ms still sees every stall long enough to matter to a client.
  if (options.processMetrics ?? true) collectDefaultMetrics({ register: registry, eventLoopMonitoringPrecision: 100 });

  return {
    registry,
    observeCall: calls.observe,
    ...server,
    ...disk,
    peerRoundTrip: (peer, seconds) => peerRtt.observe({ To: peer }, seconds),
    text: () => registry.metrics(),
    contentType: registry.contentType,
  };
}
