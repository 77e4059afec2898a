// Composition root: the only place that constructs and wires MetaStore's parts.
//
// Start-up order: parse the command line (a bad config stops here with one line and exit 2),
// open the backend (a data dir of another format stops here), restore the state, bind the
// client port, then log "ready to serve client requests" (the line etcd logs, which scripts
// and tests wait for); the health and metrics side ports are up before that line. SIGTERM/SIGINT
// first turn /readiness to 503 (so a balancer drains the member), then stop accepting, let
// in-flight requests finish within the graceful shutdown timeout, flush and close the
// database, and exit 0.

import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseCommandLine } from './cli.js';
import { ConfigError } from './config/parse-config.js';
import type { Config } from './config/schema.js';
import { formatUrl } from './config/values.js';
import { startGrpcServer } from './grpc/grpc-server.js';
import { setAdmission, setCallHooks, setRequestLimits } from './grpc/handler.js';
import { ETCD_COMPATIBLE_VERSION } from './grpc/maintenance-service.js';
import { TokenBucket, rateLimitMessage } from './grpc/rate-limit.js';
import type { HealthSources } from './http/health.js';
import { startHealthServer, startMetricsServer, type RunningHttpServer } from './http/health-server.js';
import { countGrpcConnections } from './metrics/grpc-connections.js';
import { createMetrics, type MetricsSources } from './metrics/metrics.js';
import { CompactedError } from './mvcc/errors.js';
import { AutoCompactor, startAutoCompactor, type CompactionSchedule } from './server/maintenance/auto-compactor.js';
import type { Message } from './raft/types.js';
import { initialMembership, type ClusterMembership } from './server/membership/cluster-members.js';
import { rangeRequest } from './mvcc/types.js';
import { AlarmAction, AlarmType, alarmName } from './server/apply/alarms.js';
import { checkInitialHashes } from './server/maintenance/corruption-check.js';
import { clients } from './grpc/proto.js';
import * as grpc from '@grpc/grpc-js';
import { KvServer, type ReplicationOptions } from './server/member/kv-server.js';
import { tokenProvider } from './server/member/auth-token.js';
import { createLogging, slowRequestFields } from './logging/logging.js';
import { clientPortTls, peerPortTls, TlsSetupError } from './tls/tls.js';
import { PeerTransport } from './transport/peer-transport.js';
import { SeededRandom } from './util/random.js';
import { Backend, KeySpace, StorageFormatError } from './storage/backend.js';

function packageVersion(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 4; i++) {
    try {
      return (JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { version: string }).version;
    } catch {
      dir = dirname(dir);
    }
  }
  return 'unknown';
}

/** The initial membership: from etcd's --initial-cluster or the YAML raft peers. */
function membershipOf(config: Config): ClusterMembership {
  return initialMembership({
    name: config.name,
    token: config.initialClusterToken,
    initialCluster: config.initialCluster.map((m) => ({ name: m.name, peerUrls: m.peerUrls.map(formatUrl) })),
    advertisePeerUrls: config.raft.advertiseUrls.map(formatUrl),
    peers: config.raft.peers,
    memberId: config.memberId,
    clusterId: config.clusterId,
  });
}

/** The identity is fixed at first start and read back afterwards, as etcd does. */
async function loadOrStoreIdentity(backend: Backend, derived: { memberId: bigint; clusterId: bigint }) {
  const stored = backend.get(KeySpace.members, 'local');
  if (stored !== undefined) return { memberId: stored.readBigUInt64BE(0), clusterId: stored.readBigUInt64BE(8) };
  await storeIdentity(backend, derived);
  return { ...derived };
}

async function storeIdentity(backend: Backend, identity: { memberId: bigint; clusterId: bigint }): Promise<void> {
  const value = Buffer.alloc(16);
  value.writeBigUInt64BE(identity.memberId, 0);
  value.writeBigUInt64BE(identity.clusterId, 8);
  await backend.write([{ type: 'put', key: Buffer.concat([Buffer.from([KeySpace.members]), Buffer.from('local')]), value }], { sync: true });
}

/** A serializable single-key read: what the health checks ask of the store. */
const HEALTH_PROBE = rangeRequest(Buffer.from('health'), undefined, { limit: 1, keysOnly: true });

/** Open client connections: counted at the client listener once it is up (channelz misses
 * connections the listener still holds before handing them to grpc-js). */
let clientConnections: () => number = () => countGrpcConnections();

/** What the side ports read from the member. A single member always leads itself. */
function opsSources(kv: KvServer, shuttingDown: () => boolean): HealthSources & MetricsSources {
  return {
    hasLeader: () => (kv.raft ? kv.raft.leader !== 0n : true),
    isLeader: () => (kv.raft ? kv.raft.isLeader : true),
    appliedIndex: () => kv.appliedIndex,
    committedIndex: () => kv.commitIndex,
    pendingProposals: () => Math.max(0, kv.lastIndex - kv.appliedIndex),
    alarms: () => kv.applier.alarms.all.map((a) => alarmName(a.alarm)),
    shuttingDown,
    checkRead: async () => void kv.range(HEALTH_PROBE),
    currentRevision: () => kv.currentRevision,
    compactedRevision: () => kv.compactedRevision,
    // O(keys) per scrape until the MVCC store keeps a live-key count.
    keysTotal: () => kv.range(rangeRequest(Buffer.from([0]), Buffer.from([0]), { countOnly: true })).result.count,
    dbSizeBytes: () => kv.backend.sizeBytes(),
    dbSizeInUseBytes: () => kv.backend.spaceSizeBytes(KeySpace.mvcc),
    activeConnections: () => clientConnections(),
    watchers: () => {
      const counts = kv.watchHub.counts;
      return counts.synced + counts.unsynced;
    },
  };
}

function compactionSchedule(config: Config): CompactionSchedule | undefined {
  if (config.compaction.mode === 'revision') {
    return config.compaction.retentionRevisions > 0 ? { mode: 'revision', retentionRevisions: config.compaction.retentionRevisions } : undefined;
  }
  return config.compaction.retentionMs > 0 ? { mode: 'periodic', retentionMs: config.compaction.retentionMs } : undefined;
}

async function serve(config: Config, notes: readonly string[]): Promise<void> {
  const logging = createLogging({
    level: config.log.level,
    format: config.log.format,
    output: config.log.output,
    maxSizeBytes: config.log.maxSize,
    maxBackups: config.log.maxBackups,
    maxAgeDays: config.log.maxAgeDays,
    base: { name: config.name },
  });
  const log = logging.logger;
  // logrotate's postrotate sends SIGHUP: reopen the log file at its configured path.
  process.on('SIGHUP', () => {
    logging.reopen();
    log.info({ output: config.log.output }, 'reopened log output on SIGHUP');
  });
  for (const note of notes) log.warn(note);
  // The metrics are created once the identity is known; the backend reports to them from then on.
  let onBackendWrite: ((seconds: number, synced: boolean) => void) | undefined;
  // Metrics are built after the node; these forward to them once they exist.
  let onLeaderChanged = (): void => {};
  let onPeerRoundTrip = (_peer: bigint, _seconds: number): void => {};
  const backend = await Backend.open(config.dataDir, {
    cacheSizeBytes: config.storage.blockCacheSize,
    writeBufferSizeBytes: config.storage.writeBufferSize,
    maxOpenFiles: config.storage.maxOpenFiles,
    compression: config.storage.compression,
    onWrite: (seconds, synced) => onBackendWrite?.(seconds, synced),
  });
  const membership = membershipOf(config);
  const identityStored = backend.get(KeySpace.members, 'local') !== undefined;
  const identity = await loadOrStoreIdentity(backend, { memberId: membership.selfId, clusterId: membership.clusterId });
  const raftLog = log.child({ component: 'raft' });
  // The transport is created after the node (it delivers to it); messages go through this.
  let transport: PeerTransport | undefined;
  // Every member runs Raft, a single one too (it elects itself at once), so a one-member
  // cluster can grow with `etcdctl member add` like etcd's.
  const replication: ReplicationOptions | undefined =
    membership.members.length > 0
      ? {
          memberId: identity.memberId,
          initialVoters: membership.members.map((m) => m.id),
          tickMs: config.raft.heartbeatIntervalMs,
          electionTicks: Math.max(2, Math.round(config.raft.electionTimeoutMs / config.raft.heartbeatIntervalMs)),
          heartbeatTicks: 1,
          preVote: config.raft.preVote,
          requestTimeoutMs: Math.min(config.limits.requestTimeoutMs, 5000 + 2 * config.raft.electionTimeoutMs),
          snapshotCount: config.raft.snapshotCount,
          random: new SeededRandom(Number(identity.memberId % 2147483647n) ^ Date.now()),
          sender: { send: (messages: Message[]) => transport?.send(messages) },
          joinExisting: config.initialClusterState === 'existing',
          onLeaderChange: (lead, term) => {
            raftLog.info({ leader: lead.toString(16), term }, 'leader changed');
            if (lead !== 0n) onLeaderChanged();
          },
          onPeerRoundTrip: (peer, seconds) => onPeerRoundTrip(peer, seconds),
          onSnapshotInstalled: (snapshotIndex, appliedIndex) => raftLog.info({ snapshotIndex, appliedIndex }, 'installed snapshot from leader'),
          onSnapshotSent: (to, snapshotIndex, bytes) => raftLog.info({ to: to.toString(16), snapshotIndex, bytes }, 'sending snapshot'),
          // The raft log writes to the same LevelDB outside the backend's queue: count them too.
          onLogWrite: (seconds, synced) => onBackendWrite?.(seconds, synced),
          onFatal: (error) => {
            raftLog.fatal({ err: error }, 'raft loop failed; stopping the member');
            logging.flushSync();
            process.exit(1);
          },
        }
      : undefined;
  const leaseLog = log.child({ component: 'lease' });
  const self = membership.members.find((m) => m.id === identity.memberId);
  const clientScheme = config.grpc.tls.enabled ? 'https' : 'http';
  const clientUrls = config.grpc.advertiseUrls.length > 0 ? config.grpc.advertiseUrls.map(formatUrl) : [`${clientScheme}://${config.grpc.address}:${config.grpc.port}`];
  const tlsLog = log.child({ component: 'tls' });
  const authLog = log.child({ component: 'auth' });
  const listenHosts = (section: Config['grpc'] | Config['raft']): string[] =>
    section.listenUrls.length > 0 ? section.listenUrls.map((u) => u.host) : [section.address];
  const kv = await KvServer.open(backend, {
    replication,
    members: {
      selfId: identity.memberId,
      initial: membership.members.map((m) => ({ id: m.id, name: m.name, peerUrls: m.peerUrls })),
      clusterToken: config.initialClusterToken,
      maxLearners: config.raft.maxLearners,
      name: self?.name ?? config.name,
      clientUrls,
    },
    lease: {
      electionTimeoutMs: config.raft.electionTimeoutMs,
      memberId: identity.memberId,
      onError: (error: unknown) => leaseLog.warn({ err: error }, 'lease expiry or checkpoint proposal failed'),
    },
    auth: {
      tokens: tokenProvider(config.auth.token, config.auth.tokenTtlMs),
      clientCertAuth: config.grpc.tls.clientCertAuth,
      // The user name and why; never the password or a token.
      onLoginFailed: (user, reason) => authLog.warn({ user, reason }, 'authentication failed'),
    },
  });
  kv.setQuota(config.limits.quotaBackendBytes, identity.memberId);
  kv.strictReconfigCheck = config.raft.strictReconfigCheck;
  if (kv.raft) {
    const raft = kv.raft;
    const peerTls = peerPortTls(config.raft.tls, { dataDir: config.dataDir, hosts: listenHosts(config.raft), logger: tlsLog });
    transport = await PeerTransport.start({
      credentials: peerTls?.credentials,
      authorizePeer: peerTls ? (call) => peerTls.authorizePeer(call) : undefined,
      // A member joining an existing cluster learns the cluster's ID from its peers.
      clusterId: config.initialClusterState === 'existing' && !identityStored ? 0n : identity.clusterId,
      onClusterId: (clusterId) => {
        identity.clusterId = clusterId;
        void storeIdentity(backend, identity);
      },
      memberId: identity.memberId,
      listenHost: config.raft.address,
      listenPort: config.raft.port,
      peers: new Map(membership.members.filter((m) => m.id !== identity.memberId).map((m) => [m.id, m.peerAddress])),
      onMessages: (messages) => raft.receive(messages),
      isRemoved: (id) => kv.membership.wasRemoved(id),
      onRemoved: (byPeer) => {
        raftLog.warn({ peer: byPeer.toString(16) }, 'this member was removed from the cluster (told by a peer); stopping');
        process.kill(process.pid, 'SIGTERM');
      },
      onUnreachable: (peer) => raft.reportUnreachable(peer),
      onSnapshotStatus: (peer, ok) => raft.reportSnapshot(peer, ok),
      logger: log.child({ component: 'transport' }),
    });
    // Members added, updated or removed through the log become (or stop being) peers.
    const peerTransport = transport;
    const peerAddresses = new Map(membership.members.filter((m) => m.id !== identity.memberId).map((m) => [m.id, m.peerAddress]));
    kv.membership.onChange((members) => {
      const wanted = new Map(
        members.filter((m) => m.id !== identity.memberId && m.peerUrls[0] !== undefined).map((m) => [m.id, m.peerUrls[0]!.replace(/^https?:\/\//, '').replace(/\/$/, '')]),
      );
      for (const [id, address] of wanted) {
        if (peerAddresses.get(id) === address) continue;
        peerAddresses.set(id, address);
        peerTransport.updatePeer(id, address);
      }
      for (const id of [...peerAddresses.keys()]) {
        if (wanted.has(id)) continue;
        peerAddresses.delete(id);
        peerTransport.removePeer(id);
      }
      if (!members.some((m) => m.id === identity.memberId) && kv.membership.wasRemoved(identity.memberId)) {
        raftLog.warn('this member was removed from the cluster; stopping');
        process.kill(process.pid, 'SIGTERM');
      }
    });
  }
  // As etcd, serve clients once this member has published itself through the log (a lone
  // voter elects itself at once, so that is immediate); give up waiting after a while so a
  // member without quorum still serves serializable reads and health checks.
  await kv.start({ publishTimeoutMs: Math.max(5000, 5 * config.raft.electionTimeoutMs) });
  if (config.reliability.initialCorruptCheck) await initialCorruptCheck(kv, identity.memberId, raftLog, () => logging.flushSync());
  const stopCorruptChecker =
    config.reliability.corruptCheckTimeMs > 0 ? startCorruptChecker(kv, identity.memberId, config.reliability.corruptCheckTimeMs, raftLog) : () => {};
  // server.auth.root_password / server.auth.enabled: bootstrap root, then switch auth on.
  if (config.auth.rootPassword !== '' || config.auth.enabled) {
    try {
      if (config.auth.rootPassword !== '') await kv.auth.bootstrapRoot(config.auth.rootPassword);
      if (config.auth.enabled && !kv.auth.enabled) await kv.auth.enable(undefined);
    } catch (error) {
      authLog.warn({ err: error }, 'auth bootstrap from the configuration failed');
    }
  }
  log.info(
    {
      memberId: identity.memberId.toString(16),
      clusterId: identity.clusterId.toString(16),
      members: membership.members.length,
      revision: kv.currentRevision,
      appliedIndex: kv.appliedIndex,
    },
    'recovered state',
  );

  let stopping = false;
  const sources = opsSources(kv, () => stopping);
  const metrics = config.monitoring.enablePrometheus
    ? createMetrics({
        serverVersion: ETCD_COMPATIBLE_VERSION,
        memberId: identity.memberId,
        sources,
        quotaBackendBytes: config.limits.quotaBackendBytes === 0 ? 2 * 1024 ** 3 : config.limits.quotaBackendBytes,
      })
    : undefined;
  if (metrics) {
    // One LevelDB holds both the raft log and the state: a synced batch is the WAL fsync, and
    // every batch is a backend commit.
    const { walFsync, backendCommit } = metrics;
    onBackendWrite = (seconds, synced) => {
      backendCommit.observe(seconds);
      if (synced) walFsync.observe(seconds);
    };
  }
  if (metrics) {
    const { leaderChanges, peerRoundTrip } = metrics;
    onLeaderChanged = () => leaderChanges.inc();
    onPeerRoundTrip = (peer, seconds) => peerRoundTrip(peer.toString(16), seconds);
    // A leader elected while the member was starting was seen before the metrics existed.
    if (kv.raft && kv.raft.leader !== 0n) leaderChanges.inc();
  }

  const grpcLog = log.child({ component: 'grpc' });
  // At most one warning per second about refused connections, with the count since the last.
  let refusedSinceLog = 0;
  let lastRefusalLogMs = 0;
  const refusedConnection = (remoteAddress: string | undefined): void => {
    refusedSinceLog++;
    const now = Date.now();
    if (now - lastRefusalLogMs < 1000) return;
    grpcLog.warn({ remoteAddress, refused: refusedSinceLog, maxConnections: config.limits.maxConnections }, 'refused client connection: max_connections reached');
    refusedSinceLog = 0;
    lastRefusalLogMs = now;
  };
  setCallHooks(metrics?.observeCall, (method, error) => grpcLog.error({ method, err: error }, 'internal error in request handler'));
  if (config.grpc.enableRateLimit) {
    const limit = { qps: config.grpc.rateLimitQps, burst: config.grpc.rateLimitBurst };
    const bucket = new TokenBucket(limit);
    const refusal = rateLimitMessage(limit);
    setAdmission(() => (bucket.tryTake() ? undefined : refusal));
  }
  const slowLog = log.child({ component: 'grpc', slow: true });
  setRequestLimits({
    timeoutMs: config.limits.requestTimeoutMs,
    slowMs: config.monitoring.slowRequestThresholdMs,
    onSlow: (method, request, tookMs, code) =>
      slowLog.warn({ method, ...slowRequestFields(request), code, tookMs: Math.round(tookMs * 10) / 10 }, 'slow request'),
  });
  const clientTls = clientPortTls(config.grpc.tls, { dataDir: config.dataDir, hosts: listenHosts(config.grpc), logger: tlsLog });
  const grpcServer = await startGrpcServer(kv, {
    credentials: clientTls?.credentials,
    host: config.grpc.address,
    port: config.grpc.port,
    maxRequestBytes: config.limits.maxRequestBytes,
    maxTxnOps: config.limits.maxTxnOps,
    maxSendMessageBytes: Math.max(config.grpc.maxSendMsgSize, 2 * config.limits.maxRequestBytes),
    maxConcurrentStreams: config.grpc.maxConcurrentStreams,
    identity,
    maxConnections: config.limits.maxConnections,
    onConnectionRefused: (remoteAddress) => refusedConnection(remoteAddress),
  });
  clientConnections = () => grpcServer.openConnections() ?? countGrpcConnections();

  const schedule = compactionSchedule(config);
  let stopCompactor = (): void => {};
  if (schedule) {
    const compactorLog = log.child({ component: 'compactor' });
    const compactor = new AutoCompactor(
      schedule,
      {
        currentRevision: () => kv.currentRevision,
        compact: async (revision) => void (await kv.compact(revision, false)),
        isCompactedError: (error) => error instanceof CompactedError,
      },
      Date.now(),
      (revision, error) =>
        error ? compactorLog.warn({ revision, err: error }, 'auto compaction failed') : compactorLog.info({ revision }, 'auto compaction done'),
    );
    stopCompactor = startAutoCompactor(compactor, schedule);
  }

  const httpLog = log.child({ component: 'http' });
  const sidePorts: RunningHttpServer[] = [];
  sidePorts.push(await startHealthServer({ host: config.grpc.address, port: config.health.port, sources, logger: httpLog }));
  if (metrics) {
    const versions = { etcdserver: ETCD_COMPATIBLE_VERSION, etcdcluster: '3.4.0' };
    sidePorts.push(await startMetricsServer({ host: config.grpc.address, port: config.monitoring.prometheusPort, sources, metrics, versions, logger: httpLog }));
  }
  httpLog.info({ healthPort: sidePorts[0]!.port, metricsPort: sidePorts[1]?.port }, 'serving health and metrics');

  log.info({ address: `${config.grpc.address}:${grpcServer.port}` }, 'ready to serve client requests');

  const shutdown = async (signal: string): Promise<void> => {
    if (stopping) return;
    stopping = true; // from here on /readiness answers 503
    log.info({ signal }, 'shutting down; readiness reports not ready');
    stopCompactor();
    stopCorruptChecker();
    await handOffLeadership(kv, Math.min(config.reliability.gracefulShutdownTimeoutMs, 2 * config.raft.electionTimeoutMs), raftLog);
    await grpcServer.close(config.reliability.gracefulShutdownTimeoutMs);
    log.info('client port closed');
    await Promise.all(sidePorts.map((server) => server.close()));
    await kv.close();
    await transport?.close();
    log.info('stopped');
    logging.flushSync();
    process.exit(0);
  };
  process.on('SIGTERM', () => void shutdown('SIGTERM'));
  process.on('SIGINT', () => void shutdown('SIGINT'));
}

/** A peer's HashKV at a revision, over its client port. */
function peerHashKv(address: string, revision: number): Promise<{ hash: number; compactRevision: number }> {
  return new Promise((resolve, reject) => {
    const client = new clients.Maintenance(address, grpc.credentials.createInsecure()) as unknown as {
      HashKV(request: object, options: object, callback: (error: Error | null, response?: { hash: number; compactRevision: string }) => void): void;
      close(): void;
    };
    client.HashKV({ revision }, { deadline: Date.now() + 5000 }, (error, response) => {
      client.close();
      if (error || response === undefined) reject(error ?? new Error('no answer'));
      else resolve({ hash: response.hash, compactRevision: Number(response.compactRevision) });
    });
  });
}

/**
 * --experimental-corrupt-check-time: the leader compares its HashKV with every member's at its
 * revision; a member whose history differs gets the CORRUPT alarm through Raft (etcd 3.4's
 * periodic check does the same), after which the cluster refuses requests until an operator
 * acts. Returns a stop function.
 */
function startCorruptChecker(kv: KvServer, selfId: bigint, periodMs: number, log: { warn(fields: object, message: string): void; error(fields: object, message: string): void }): () => void {
  let running = false;
  const timer = setInterval(() => {
    if (running || kv.raft === undefined || !kv.raft.isLeader) return;
    running = true;
    const peers = kv
      .listMembers()
      .filter((m) => m.id !== selfId && m.clientUrls[0] !== undefined)
      .map((m) => ({ id: m.id, address: m.clientUrls[0]!.replace(/^https?:\/\//, '').replace(/\/$/, '') }));
    void checkInitialHashes({
      local: { backend: kv.backend, applier: kv.applier, currentRevision: kv.currentRevision, compactedRevision: kv.compactedRevision },
      peers,
      fetch: peerHashKv,
    })
      .then(async (result) => {
        for (const mismatch of result.mismatched) {
          log.error({ member: mismatch.id.toString(16), revision: result.revision, localHash: mismatch.localHash, peerHash: mismatch.peerHash }, 'member history differs from the leader\'s; raising CORRUPT');
          await kv.alarm(AlarmAction.ACTIVATE, mismatch.id, AlarmType.CORRUPT);
        }
      })
      .catch((error: unknown) => log.warn({ err: error }, 'corruption check failed'))
      .finally(() => (running = false));
  }, periodMs);
  timer.unref();
  return () => clearInterval(timer);
}

/**
 * --experimental-initial-corrupt-check: before serving clients, compare HashKV with every
 * reachable peer at this member's revision; on a mismatch, stop instead of serving data that
 * differs from the cluster's (etcd refuses to start the same way).
 */
async function initialCorruptCheck(
  kv: KvServer,
  selfId: bigint,
  log: { info(fields: object, message: string): void; fatal(fields: object, message: string): void },
  flush: () => void,
): Promise<void> {
  const peers = kv
    .listMembers()
    .filter((m) => m.id !== selfId && m.clientUrls[0] !== undefined)
    .map((m) => ({ id: m.id, address: m.clientUrls[0]!.replace(/^https?:\/\//, '').replace(/\/$/, '') }));
  const result = await checkInitialHashes({
    local: { backend: kv.backend, applier: kv.applier, currentRevision: kv.currentRevision, compactedRevision: kv.compactedRevision },
    peers,
    fetch: peerHashKv,
  });
  const summary = { revision: result.revision, compared: result.compared.map((id) => id.toString(16)), skipped: result.skipped.map((s) => ({ id: s.id.toString(16), reason: s.reason })) };
  if (result.mismatched.length > 0) {
    log.fatal({ ...summary, mismatched: result.mismatched.map((m) => ({ id: m.id.toString(16), localHash: m.localHash, peerHash: m.peerHash })) }, 'found data inconsistency with peers; stopping');
    flush();
    process.exit(1);
  }
  log.info(summary, 'initial corruption check passed');
}

/**
 * A leader that stops hands leadership to its most caught-up voter first, so the cluster does
 * not sit through an election timeout without a leader (etcd does the same on shutdown).
 */
async function handOffLeadership(kv: KvServer, timeoutMs: number, log: { info(fields: object, message: string): void; warn(message: string): void }): Promise<void> {
  const raft = kv.raft;
  if (raft === undefined || !raft.isLeader) return;
  const status = raft.status();
  let target: bigint | undefined;
  let best = -1;
  for (const [id, progress] of status.progress) {
    if (id === raft.memberId || progress.isLearner) continue;
    if (progress.match > best) {
      best = progress.match;
      target = id;
    }
  }
  if (target === undefined) return;
  log.info({ to: target.toString(16) }, 'handing leadership over before shutting down');
  raft.transferLeadership(target);
  const deadline = Date.now() + timeoutMs;
  while (raft.isLeader && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 10));
  if (raft.isLeader) log.warn('leadership hand-off did not complete in time; stopping anyway');
}

async function main(argv: readonly string[]): Promise<void> {
  let command;
  try {
    command = parseCommandLine(argv);
  } catch (error) {
    if (error instanceof ConfigError) {
      process.stderr.write(`${error.message}\n`);
      process.exit(2);
    }
    throw error;
  }
  switch (command.command) {
    case 'version':
      process.stdout.write(`metastore ${packageVersion()} (etcd API 3.4)\n`);
      return;
    case 'help':
      process.stdout.write(command.text.endsWith('\n') ? command.text : `${command.text}\n`);
      return;
    case 'snapshot-restore': {
      // Loaded only for this command; the server code above never needs it.
      const { restoreSnapshot } = await import('./server/maintenance/backup.js');
      try {
        const restored = await restoreSnapshot({
          snapshotFile: command.snapshotFile,
          dataDir: command.dataDir,
          name: command.name,
          initialCluster: command.initialCluster.map((m) => ({ name: m.name, peerUrls: m.peerUrls.map(formatUrl) })),
          initialClusterToken: command.initialClusterToken,
          advertisePeerUrls: command.initialAdvertisePeerUrls.map(formatUrl),
          skipHashCheck: command.skipHashCheck,
        });
        process.stdout.write(
          `restored snapshot ${command.snapshotFile} (revision ${restored.header.revision}, ${restored.entries} entries) into ${command.dataDir}: ` +
            `member ${restored.memberId.toString(16)} of new cluster ${restored.clusterId.toString(16)}\n`,
        );
      } catch (error) {
        if (error instanceof Error && (error.name === 'SnapshotFileError' || error instanceof StorageFormatError || (error as NodeJS.ErrnoException).code === 'ENOENT')) {
          process.stderr.write(`snapshot restore failed: ${error.message}\n`);
          process.exit(1);
        }
        throw error;
      }
      return;
    }
    case 'serve':
      try {
        await serve(command.config, command.notes);
      } catch (error) {
        if (error instanceof StorageFormatError || error instanceof TlsSetupError) {
          process.stderr.write(`${error.message}\n`);
          process.exit(2);
        }
        throw error;
      }
  }
}

await main(process.argv.slice(2));
