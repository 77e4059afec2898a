// Composition root: parses the command line, then starts MetaStore's units (src/node) in order
// and wires them to each other. Nothing else constructs the parts of a running member.
//
// Start-up order: a bad config stops at parsing (one line, exit 2); the client URLs are bound
// (as etcd binds its listeners first: a taken port is one line naming its key, exit 2; a port-0
// URL's real port is what the member publishes); storage opens (a data dir of another format
// or a TLS set-up error also exit 2) and fixes the identity (a member joining a running
// cluster asks its peers for it at first start; when none answers or the cluster does not
// match its --initial-cluster, exit 2 with etcd's message); the member opens,
// the peer transport starts, the member publishes itself and runs its checks; the metrics, the
// client port and the side ports come up; then "ready to serve client requests" (the line etcd
// logs, which scripts and tests wait for). As etcd, a member with peers says so only once it
// knows a leader; one that gave up waiting (no quorum) serves serializable reads and health
// checks meanwhile and says that instead. Shutdown on SIGTERM/SIGINT: see node/signals.ts.

import type { Logger } from 'pino';
import { parseCommandLine } from './cli.js';
import { ConfigError } from './config/parse-config.js';
import type { Config } from './config/schema.js';
import { handOffLeadership } from './server/maintenance/leadership-handoff.js';
import { createLogging } from './logging/logging.js';
import { bindClientPort, startClientEdge } from './node/client-edge.js';
import { startCompactor } from './node/compactor.js';
import { importEtcdDataDirOnce } from './node/etcd-data-dir-import.js';
import { initialClusterOf } from './node/initial-cluster.js';
import { learnClusterFromPeers, learnsIdentityFromCluster } from './node/join-cluster.js';
import { MemberUnit } from './node/member.js';
import { MetricProbes } from './node/metric-probes.js';
import { NodeStatus, opsSources } from './node/ops-sources.js';
import { packageVersion } from './node/package-version.js';
import { PeerOutbox, startPeers } from './node/peers.js';
import { createNodeMetrics, startSidePorts } from './node/side-ports.js';
import { reopenLogOnHangup, shutdownOnSignals, stopSelf } from './node/signals.js';
import { StartupError } from './node/startup-error.js';
import { openStorage, storageFailStop } from './node/storage.js';
import { StorageFormatError } from './storage/backend.js';
import { StorageError } from './storage/storage-error.js';
import { TlsSetupError } from './tls/tls.js';
import { tierUpSooner } from './node/v8-tiering.js';

/** How long the graceful shutdown waits for a log write in flight before it exits anyway. */
const LOG_FLUSH_WAIT_MS = 1000;

async function serve(config: Config): Promise<void> {
  const { level, format, output, maxSize, maxBackups, maxAgeDays } = config.log;
  const logging = createLogging({ level, format, output, maxSizeBytes: maxSize, maxBackups, maxAgeDays, base: { name: config.name } });
  const log = logging.logger;
  reopenLogOnHangup(logging, output);
  const failStop = (code = 1): never => {
    logging.flushSync();
    process.exit(code);
  };

  const clientPort = await bindClientPort(config, log);
  const probes = new MetricProbes();
  // A joiner's first start replaces the derived IDs with the running cluster's (join-cluster.ts).
  let cluster = initialClusterOf(config);
  await importEtcdDataDirOnce(
    config,
    cluster.members.map((m) => m.id),
    log,
  );
  const onFailure = storageFailStop(log, failStop);
  const storage = await openStorage({
    dataDir: config.dataDir,
    walDir: config.walDir,
    storage: config.storage,
    firstStart: async () => {
      if (learnsIdentityFromCluster(config)) cluster = await learnClusterFromPeers(config, cluster, log);
      return { memberId: cluster.selfId, clusterId: cluster.clusterId };
    },
    onWrite: probes.backendWrite,
    onJournalSync: probes.journalSync,
    onFailure,
    logger: log,
  });
  const outbox = new PeerOutbox();
  const member = await MemberUnit.open({ config, storage, cluster, clientUrls: clientPort.advertisedUrls, probes, sender: outbox, logger: log, failStop });
  const kv = member.kv;
  const peers = await startPeers({ config, storage, cluster, kv, outbox, logger: log, stopSelf });
  await member.start();

  const status = new NodeStatus();
  const sources = opsSources(kv, status);
  const metrics = createNodeMetrics(config, sources, storage.identity.memberId);
  if (metrics) probes.attach(metrics, kv.raft !== undefined && kv.raft.leader !== 0n);
  const edge = await startClientEdge({
    config,
    bound: clientPort,
    kv,
    identity: storage.identity,
    metrics,
    sources,
    logger: log,
    memberDialer: member.dialer,
    failStop,
  });
  status.clientConnections = () => edge.openConnections();
  const compactor = startCompactor(config.compaction, kv, log);
  const sidePorts = await startSidePorts({ config, sources, metrics, logger: log });
  announceServing(kv.raft, log, { address: `${config.grpc.address}:${edge.port}`, urls: clientPort.urls });

  const { gracefulShutdownTimeoutMs } = config.reliability;
  const handOffTimeoutMs = Math.min(gracefulShutdownTimeoutMs, 2 * config.raft.electionTimeoutMs);
  shutdownOnSignals(
    {
      markNotReady: () => {
        status.shuttingDown = true;
      },
      stopTimers: () => {
        compactor.close();
        member.stopTimers();
      },
      handOffLeadership: () => handOffLeadership(kv.raft, handOffTimeoutMs, log.child({ component: 'raft' })),
      closeClientPort: () => edge.close(gracefulShutdownTimeoutMs),
      closeSidePorts: () => sidePorts.close(),
      closeMember: () => member.close(),
      closeTransport: async () => await peers?.close(),
    },
    { logger: log, flushLog: () => logging.flushInOrder(LOG_FLUSH_WAIT_MS), exit: (code) => process.exit(code) },
  );
}

/** etcd's "ready to serve" line, once a leader is known (scripts and tests wait for it). */
function announceServing(raft: { leader: bigint; leaderKnown(): Promise<void> } | undefined, log: Logger, serving: object): void {
  if (raft === undefined || raft.leader !== 0n) {
    log.info(serving, 'ready to serve client requests');
    return;
  }
  log.warn(serving, 'serving client requests without a leader (no quorum yet): serializable reads and health checks only until one is elected');
  void raft.leaderKnown().then(
    () => log.info(serving, 'ready to serve client requests'),
    () => undefined,
  );
}

async function main(argv: readonly string[]): Promise<void> {
  let command: ReturnType<typeof parseCommandLine>;
  try {
    command = parseCommandLine(argv);
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    process.stderr.write(`${error.message}\n`);
    process.exit(2);
  }
  switch (command.command) {
    case 'version':
      process.stdout.write(`metastore ${packageVersion()} (etcd API 3.4)\n`);
      return;
    case 'help':
      process.stdout.write(command.text.endsWith('\n') ? command.text : `${command.text}\n`);
      return;
    // The offline commands are loaded only when run; serving never needs them.
    case 'snapshot-restore':
      return (await import('./node/snapshot-restore-command.js')).runSnapshotRestore(command);
    case 'snapshot-status':
      return (await import('./node/snapshot-status-command.js')).runSnapshotStatus(command);
    case 'migrate':
      return (await import('./node/snapshot-restore-command.js')).runMigrate(command);
    case 'serve':
      // A server wants its steady-state speed soon after start (node/v8-tiering.ts).
      tierUpSooner();
      try {
        await serve(command.config);
      } catch (error) {
        if (!(error instanceof StorageFormatError || error instanceof StorageError || error instanceof TlsSetupError || error instanceof StartupError))
          throw error;
        process.stderr.write(`${error.message}\n`);
        process.exit(2);
      }
  }
}

await main(process.argv.slice(2));
