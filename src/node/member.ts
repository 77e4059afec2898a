// The member: the KvServer over the opened storage, with its Raft driver, quota, leases and auth,
// then (once the peers are wired) its start: publish itself through the log, the corruption
// checks, and the auth bootstrap from the configuration. It owns the dialer through which it
// calls other members' client ports (with its client TLS settings): the corruption checks here,
// the leader forwarding and lease relays of the client edge (main.ts hands it over).
//
// Every member runs Raft, a single one too (it elects itself at once), so a one-member cluster
// can grow with `etcdctl member add` like etcd's. A failure in the Raft loop, or an initial
// corruption check that finds differing data, stops the process through `failStop`.

import type { Logger } from 'pino';
import type { Config } from '../config/schema.js';
import { memberCredentials } from '../grpc/auth-check.js';
import { MemberDialer } from '../grpc/member-dialer.js';
import { peerHashKvOver } from '../grpc/peer-hash-kv.js';
import type { Message } from '../raft/types.js';
import { initialCorruptCheck } from '../server/maintenance/corruption-check.js';
import { PeriodicCorruptCheck, startPeriodicCorruptCheck } from '../server/maintenance/periodic-corruption-check.js';
import type { ClusterMembership } from '../server/membership/cluster-members.js';
import { tokenProvider } from '../server/member/auth-token.js';
import { KvServer, type ReplicationOptions } from '../server/member/kv-server.js';
import type { PeerSender } from '../server/member/raft-node.js';
import { raftTiming as replicationTiming } from '../server/member/replication.js';
import { memberChannelTls, type MemberChannelTls } from '../tls/member-channel-tls.js';
import { SeededRandom } from '../util/random.js';
import type { MetricProbes } from './metric-probes.js';
import type { NodeStorage } from './storage.js';

export type MemberConfig = Pick<Config, 'name' | 'raft' | 'limits' | 'grpc' | 'auth' | 'reliability' | 'initialClusterState' | 'forceNewCluster' | 'storage'>;

export interface MemberOptions {
  config: MemberConfig;
  storage: NodeStorage;
  cluster: ClusterMembership;
  /** The client URLs this member publishes (advertised ones, with bound ports for port 0). */
  clientUrls: readonly string[];
  probes: MetricProbes;
  /** Where Raft's outgoing messages go (the peer transport, attached once it is up). */
  sender: PeerSender;
  logger: Logger;
  /** Stops the process after a fatal error already logged (flushes the log, exits 1). */
  failStop(): never;
}

/** The Raft timing a configuration asks for (replication.ts: ticks of a tenth of a heartbeat). */
export function raftTiming(config: Pick<Config, 'raft' | 'limits'>) {
  return {
    ...replicationTiming(config.raft, config.limits.requestTimeoutMs),
    preVote: config.raft.preVote,
    snapshotCount: config.raft.snapshotCount,
    maxWritesInFlight: config.raft.maxWritesInFlight,
  };
}

function replicationOptions(options: MemberOptions): ReplicationOptions | undefined {
  const { config, storage, cluster, probes } = options;
  if (cluster.members.length === 0) return undefined;
  const memberId = storage.identity.memberId;
  const raftLog = options.logger.child({ component: 'raft' });
  return {
    memberId,
    initialVoters: cluster.members.map((m) => m.id),
    ...raftTiming(config),
    limits: config.limits,
    random: new SeededRandom(Number(memberId % 2147483647n) ^ Date.now()),
    sender: { send: (messages: Message[]) => options.sender.send(messages) },
    joinExisting: config.initialClusterState === 'existing',
    logDb: storage.raftLogDb,
    forceNewCluster: config.forceNewCluster,
    onForcedRestart: ({ removed, discarded, commit }) =>
      raftLog.warn(
        { removed: removed.map((id) => id.toString(16)), discardedUncommittedEntries: discarded, commitIndex: commit },
        'forcing restart as a one-member cluster (--force-new-cluster); remove the flag for later starts',
      ),
    onLeaderChange: (lead, term) => {
      raftLog.info({ leader: lead.toString(16), term }, 'leader changed');
      if (lead !== 0n) probes.leaderChanged();
    },
    onPeerRoundTrip: probes.peerRoundTrip,
    onSnapshotInstalled: (snapshotIndex, appliedIndex) => raftLog.info({ snapshotIndex, appliedIndex }, 'installed snapshot from leader'),
    onSnapshotSent: (to, snapshotIndex, bytes) => raftLog.info({ to: to.toString(16), snapshotIndex, bytes }, 'sending snapshot'),
    onStorageFailure: storage.onFailure,
    onFatal: (error) => {
      raftLog.fatal({ err: error }, 'raft loop failed; stopping the member');
      options.failStop();
    },
  };
}

export class MemberUnit {
  private stopCorruptCheck = (): void => {};

  private constructor(
    readonly kv: KvServer,
    /** Channels to other members' client ports (the client edge relays through it too). */
    readonly dialer: MemberDialer,
    private readonly channelTls: MemberChannelTls | undefined,
    private readonly options: MemberOptions,
  ) {}

  static async open(options: MemberOptions): Promise<MemberUnit> {
    const { config, storage, cluster, logger } = options;
    const memberId = storage.identity.memberId;
    const self = cluster.members.find((m) => m.id === memberId);
    // Before the KvServer opens: unusable certificate files stop the start (TlsSetupError, exit 2).
    const channelTls = memberChannelTls(config.grpc.tls, { logger: logger.child({ component: 'tls' }) });
    const leaseLog = logger.child({ component: 'lease' });
    const authLog = logger.child({ component: 'auth' });
    const kv = await KvServer.open(storage.backend, {
      valueCacheBytes: config.storage.valueCacheSize,
      replication: replicationOptions(options),
      members: {
        selfId: memberId,
        initial: cluster.members.map((m) => ({ id: m.id, name: m.name, peerUrls: m.peerUrls })),
        maxLearners: config.raft.maxLearners,
        name: self?.name ?? config.name,
        clientUrls: [...options.clientUrls],
      },
      lease: {
        electionTimeoutMs: config.raft.electionTimeoutMs,
        memberId,
        onError: (error: unknown) => leaseLog.warn({ err: error }, 'lease expiry or checkpoint proposal failed'),
      },
      auth: {
        tokens: tokenProvider(config.auth.token, config.auth.tokenTtlMs),
        clientCertAuth: config.grpc.tls.clientCertAuth,
        // The user name and why; never the password or a token.
        onLoginFailed: (user, reason) => authLog.warn({ user, reason }, 'authentication failed'),
      },
    });
    kv.setQuota(config.limits.quotaBackendBytes, memberId);
    kv.strictReconfigCheck = config.raft.strictReconfigCheck;
    return new MemberUnit(kv, new MemberDialer(channelTls?.credentials), channelTls, options);
  }

  /** Starts serving: published, checked against the peers, auth bootstrapped; logs "recovered state". */
  async start(): Promise<void> {
    const { config, storage, cluster, logger } = this.options;
    const kv = this.kv;
    const selfId = storage.identity.memberId;
    const raftLog = logger.child({ component: 'raft' });
    // As etcd, serve clients once this member has published itself through the log (a lone
    // voter elects itself at once, so that is immediate); give up waiting after a while so a
    // member without quorum still serves serializable reads and health checks.
    await kv.start({ publishTimeoutMs: Math.max(5000, 5 * config.raft.electionTimeoutMs) });
    const fetch = peerHashKvOver(this.dialer, () => memberCredentials(kv.auth));
    if (config.reliability.initialCorruptCheck && !(await initialCorruptCheck(kv, selfId, fetch, raftLog))) this.options.failStop();
    if (config.reliability.corruptCheckTimeMs > 0) {
      const check = new PeriodicCorruptCheck({ member: kv, selfId, fetch, log: raftLog });
      this.stopCorruptCheck = startPeriodicCorruptCheck(check, config.reliability.corruptCheckTimeMs);
    }
    await this.bootstrapAuth(logger.child({ component: 'auth' }));
    const { identity } = storage;
    const fields = { memberId: identity.memberId.toString(16), clusterId: identity.clusterId.toString(16), members: cluster.members.length };
    logger.info({ ...fields, revision: kv.currentRevision, appliedIndex: kv.appliedIndex }, 'recovered state');
  }

  /** server.auth.root_password / server.auth.enabled: bootstrap root, then switch auth on. */
  private async bootstrapAuth(authLog: Logger): Promise<void> {
    const { auth } = this.options.config;
    if (auth.rootPassword === '' && !auth.enabled) return;
    try {
      if (auth.rootPassword !== '') await this.kv.auth.bootstrapRoot(auth.rootPassword);
      if (auth.enabled && !this.kv.auth.enabled) await this.kv.auth.enable(undefined);
    } catch (error) {
      authLog.warn({ err: error }, 'auth bootstrap from the configuration failed');
    }
  }

  /** Stops the periodic corruption check: the first thing shutdown does, before the hand-off. */
  stopTimers(): void {
    this.stopCorruptCheck();
  }

  async close(): Promise<void> {
    this.stopTimers();
    this.dialer.close();
    this.channelTls?.close();
    await this.kv.close();
    // The backend is closed by now; the wal dir's database, if any, is not the KvServer's.
    await this.options.storage.close();
  }
}
