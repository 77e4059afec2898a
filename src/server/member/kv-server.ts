// The member's KV state machine behind the gRPC edge: opens the backend, restores MVCC,
// recovers the log, and serves reads locally and writes through the log.
//
// Reads: a range (or a txn that only reads) is served from the in-memory MVCC store at once.
// On a single member every acknowledged write is already applied, so that is linearizable;
// the Raft-driven node adds a ReadIndex round before a linearizable read.
// Writes: proposed to the log; the answer carries the store revision right after the entry.

import type { Backend, BatchOp } from '../../storage/backend.js';
import { KeySpace, spaceKey } from '../../storage/backend.js';
import { MvccStore } from '../../mvcc/mvcc-store.js';
import { decodeRevisionKey, encodeRevisionKey } from '../../mvcc/revision.js';
import type {
  DeleteRangeRequest,
  DeleteRangeResult,
  PutRequest,
  PutResult,
  RangeRequest,
  RangeResult,
  RequestOp,
  TxnRequest,
  TxnResult,
} from '../../mvcc/types.js';
import { assert } from '../../util/assert.js';
import { RawNode } from '../../raft/raw-node.js';
import type { Random } from '../../util/random.js';
import { RaftLogStore } from '../../storage/raft-log-store.js';
import { ByteReader, ByteWriter } from '../../util/binary.js';
import { Applier, META_APPLIED_INDEX, META_COMPACTED_REVISION } from '../apply/applier.js';
import type { ApplyOutcome, ApplyValue } from '../apply/outcome.js';
import { RaftNode, type PeerSender } from './raft-node.js';
import { SoloLog } from './solo-log.js';
import { Membership, type Member, type MemberContext } from '../membership/membership.js';
import { AlarmAction, AlarmType, type AlarmMember } from '../apply/alarms.js';
import { deriveMemberId } from '../membership/member-id.js';
import { ServerError } from '../apply/errors.js';
import { ConfChangeType } from '../../raft/types.js';
import { WatchHub } from '../watch/watch-hub.js';
import { Lessor } from '../../lease/lessor.js';
import { LeaseApplier, restoreLeases } from '../apply/lease-apply.js';
import { LeaseServer } from './lease-server.js';
import { AuthStore, type AuthStamp } from '../../auth/auth-store.js';
import { AuthApplier, restoreAuth } from '../apply/auth-apply.js';
import { AuthServer, type AuthServerOptions } from './auth-server.js';
import { hashKv, hashState, type HashKvResult, type HashSource } from '../maintenance/maintenance-hash.js';
import { openSnapshot, type SnapshotStream } from '../maintenance/backup.js';

export interface Revisioned<T> {
  result: T;
  /** The store revision the answer's header reports. */
  revision: number;
}

export interface MemberIdentity {
  clusterId: bigint;
  memberId: bigint;
}

/** How this member takes part in a multi-member cluster (absent: a single member, SoloLog). */
export interface ReplicationOptions {
  memberId: bigint;
  /** Voters of a brand-new cluster (every initial member, this one included). */
  initialVoters: bigint[];
  tickMs: number;
  electionTicks: number;
  heartbeatTicks: number;
  preVote: boolean;
  requestTimeoutMs: number;
  snapshotCount: number;
  random: Random;
  /** Late-bound: the transport is created after the node, with the node as its receiver. */
  sender: PeerSender;
  /** Joining an existing cluster (--initial-cluster-state existing): no bootstrap. */
  joinExisting: boolean;
  onLeaderChange?(lead: bigint, term: number): void;
  onSnapshotInstalled?(snapshotIndex: number, appliedIndex: number): void;
  onSnapshotSent?(to: bigint, snapshotIndex: number, bytes: number): void;
  /** Each raft log write: how long it took and whether it was synced (fsync metrics). */
  onLogWrite?(seconds: number, synced: boolean): void;
  /** A heartbeat's round trip to a peer (etcd_network_peer_round_trip_time_seconds). */
  onPeerRoundTrip?(peer: bigint, seconds: number): void;
  onFatal(error: unknown): void;
}

/** Lease settings of a member (defaults: etcd's 1000 ms election timeout, member ID 0). */
/** The member list's starting point and rules (etcd's Cluster service). */
export interface MembershipOptions {
  selfId: bigint;
  /** Initial members of a new cluster (or this member alone). */
  initial: ReadonlyArray<{ id: bigint; name: string; peerUrls: string[] }>;
  /** Token used to derive IDs of added members from their peer URLs. */
  clusterToken: string;
  maxLearners: number;
  /** This member's own name and client URLs, published through the log at start. */
  name: string;
  clientUrls: string[];
}

export interface LeaseOptions {
  electionTimeoutMs?: number;
  memberId?: bigint;
  /** Monotonic milliseconds (default performance.now). */
  nowMs?: () => number;
  onError?: (error: unknown) => void;
}

/** Key spaces that make up the replicated state a snapshot carries. */
const SNAPSHOT_SPACES = [KeySpace.meta, KeySpace.mvcc, KeySpace.lease, KeySpace.auth, KeySpace.members];

/** Keys a snapshot neither carries nor replaces: they describe this member, not the cluster. */
function memberLocalKey(space: KeySpace, key: Buffer): boolean {
  const name = key.toString('latin1');
  return (space === KeySpace.meta && name === 'format') || (space === KeySpace.members && name === 'local');
}

function readMetaNumber(backend: Backend, key: string): number {
  const value = backend.get(KeySpace.meta, key);
  return value === undefined ? 0 : Number(value.readBigUInt64BE(0));
}

export function isReadOnlyTxn(txn: TxnRequest): boolean {
  const readOnly = (ops: readonly RequestOp[]): boolean =>
    ops.every((op) => op.kind === 'range' || (op.kind === 'txn' && isReadOnlyTxn(op.txn)));
  return readOnly(txn.success) && readOnly(txn.failure);
}

export class KvServer {
  /** Watchers of this member, fed by the applier (see watch-hub.ts). */
  readonly watchHub: WatchHub;

  /** Leases: grant/revoke/keep-alive/time-to-live and the leader's expiry loop. */
  leases!: LeaseServer;
  private lessor!: Lessor;
  private leaseNow!: () => number;

  /** Users, roles, permissions, tokens (src/auth, auth-server.ts). */
  auth!: AuthServer;

  /** The Raft node when this member is part of a multi-member cluster. */
  raft: RaftNode | undefined;
  /** The member list (etcd's Cluster service). */
  membership!: Membership;
  private membershipOptions: MembershipOptions | undefined;
  private log: SoloLog | RaftNode;

  private constructor(
    readonly backend: Backend,
    readonly mvcc: MvccStore,
    readonly applier: Applier,
    log: SoloLog | RaftNode | undefined,
  ) {
    this.log = log as SoloLog | RaftNode;
    this.watchHub = new WatchHub({ mvcc, backend });
    applier.addListener(this.watchHub);
  }

  static async open(
    backend: Backend,
    options: { replication?: ReplicationOptions; lease?: LeaseOptions; members?: MembershipOptions; auth?: AuthServerOptions } = {},
  ): Promise<KvServer> {
    const replication = options.replication;
    const membership = await Membership.load(backend);
    // A joining member seeds the list from its --initial-cluster too (etcd asks its peers for
    // it); the log then brings the changes since.
    if (options.members) await membership.seed(options.members.initial);
    const leaseNow = options.lease?.nowMs ?? (() => performance.now());
    const electionTimeoutMs = replication ? replication.tickMs * replication.electionTicks : (options.lease?.electionTimeoutMs ?? 1000);
    const lessor = new Lessor({ dirtyCheckpointMs: Math.max(1, Math.floor(electionTimeoutMs / 2)) });
    const mvcc = new MvccStore({ history: { readRecord: (rev) => backend.get(KeySpace.mvcc, encodeRevisionKey(rev)) }, leases: lessor });
    await restoreMvcc(backend, mvcc, lessor, leaseNow());
    const applier = new Applier(mvcc, backend, readMetaNumber(backend, META_APPLIED_INDEX));
    applier.setLeaseApplier(new LeaseApplier(lessor, mvcc, leaseNow));
    applier.setMembers(membership);
    applier.alarms.load((space, key) => backend.get(space, key));
    const authStore = new AuthStore();
    restoreAuth(backend, authStore);
    applier.setAuthApplier(new AuthApplier(authStore, (id) => lessor.timeToLive(id, 0, true)?.keys ?? []));
    const leaseServer = (server: KvServer): KvServer => {
      server.auth = new AuthServer(
        authStore,
        { propose: (request) => server.log.propose(request), readBarrier: () => server.readBarrier() },
        options.auth,
      );
      server.membership = membership;
      server.membershipOptions = options.members;
      server.lessor = lessor;
      server.leaseNow = leaseNow;
      server.leases = new LeaseServer(
        lessor,
        {
          propose: (request) => server.log.propose(request),
          leadership: { isLeader: () => (server.raft ? server.raft.isLeader : true) },
          currentRevision: () => mvcc.currentRevision,
        },
        { electionTimeoutMs, memberId: replication?.memberId ?? options.lease?.memberId ?? 0n, nowMs: leaseNow, onError: options.lease?.onError },
      );
      server.leases.start();
      return server;
    };
    if (replication === undefined) {
      return leaseServer(new KvServer(backend, mvcc, applier, await SoloLog.recover(backend, applier)));
    }
    const server = new KvServer(backend, mvcc, applier, undefined);
    const store = await RaftLogStore.open(backend.level, KeySpace.raftLog, { onWrite: replication.onLogWrite });
    const initial = store.initialState();
    // The configuration lives in the log: a founding member with an empty log bootstraps it;
    // on restart the core replays conf changes from its last snapshot (applied = snapshot
    // index), and the node skips the normal entries the state machine already holds.
    const freshLog = store.lastIndex() === 0 && store.snapshot().metadata.index === 0;
    const node = new RawNode({
      id: replication.memberId,
      electionTick: replication.electionTicks,
      heartbeatTick: replication.heartbeatTicks,
      storage: store,
      random: replication.random,
      applied: store.snapshot().metadata.index,
      checkQuorum: true,
      preVote: replication.preVote,
      peers: freshLog && !replication.joinExisting ? replication.initialVoters : undefined,
    });
    const raft = new RaftNode(
      node,
      store,
      applier,
      replication.sender,
      { dump: () => server.dumpState(), install: (data) => server.installState(data) },
      {
        memberId: replication.memberId,
        tickMs: replication.tickMs,
        requestTimeoutMs: replication.requestTimeoutMs,
        snapshotCount: replication.snapshotCount,
        snapshotCatchUpEntries: Math.min(5000, Math.max(1, Math.floor(replication.snapshotCount / 2))),
        onLeaderChange: replication.onLeaderChange,
        onConfChange: (type, nodeId, payload) => applyMembershipChange(membership, type, nodeId, payload),
        onSnapshotInstalled: replication.onSnapshotInstalled,
        onSnapshotSent: replication.onSnapshotSent,
        onPeerRoundTrip: replication.onPeerRoundTrip,
        onFatal: replication.onFatal,
      },
      { confState: initial.confState, snapshotIndex: store.snapshot().metadata.index, lastIndex: store.lastIndex() },
    );
    server.log = raft;
    server.raft = raft;
    return leaseServer(server);
  }

  /**
   * Starts the Raft node's clock (after the transport is up) and publishes this member;
   * resolves once published or after `publishTimeoutMs` (publishing goes on in the background).
   */
  async start(options: { publishTimeoutMs?: number } = {}): Promise<void> {
    this.raft?.start();
    const published = this.publishSelf();
    if (options.publishTimeoutMs === undefined) return;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([published, new Promise<void>((resolve) => (timer = setTimeout(resolve, options.publishTimeoutMs)))]);
    clearTimeout(timer);
  }

  /** etcd's publish: announce name and client URLs through the log, retrying until it lands. */
  private async publishSelf(): Promise<void> {
    const own = this.membershipOptions;
    if (own === undefined) return;
    const current = this.membership.get(own.selfId);
    if (current && current.name === own.name && current.clientUrls.join(',') === own.clientUrls.join(',')) return;
    for (let attempt = 0; attempt < 100; attempt++) {
      try {
        await this.log.propose({ kind: 'publishMember', memberId: own.selfId, name: own.name, clientUrls: own.clientUrls });
        return;
      } catch (error) {
        if (!(error instanceof ServerError) || error.etcdCode === 'Stopped') return;
        // No leader yet (an election is under way): try again shortly.
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    }
  }

  // ---------------------------------------------------------------- quota and alarms

  /** --quota-backend-bytes as etcd reads it: 0 = 2 GiB, negative = no quota. */
  private quotaBytes = 2 * 1024 ** 3;
  private sizeEstimate = { bytes: 0, writtenAtMeasure: 0 };
  private sizeTimer: NodeJS.Timeout | undefined;
  private raisingNoSpace = false;

  /** Sets the quota and starts sampling the database size (once a second). */
  setQuota(quotaBackendBytes: number, memberId: bigint): void {
    this.quotaBytes = quotaBackendBytes === 0 ? 2 * 1024 ** 3 : quotaBackendBytes < 0 ? Number.POSITIVE_INFINITY : quotaBackendBytes;
    this.quotaMemberId = memberId;
    if (!Number.isFinite(this.quotaBytes)) return;
    const sample = (): void => {
      void this.backend.stateSizeBytes().then((bytes) => (this.sizeEstimate = { bytes, writtenAtMeasure: this.backend.bytesWritten }));
    };
    sample();
    this.sizeTimer = setInterval(sample, 1000);
    this.sizeTimer.unref();
  }
  private quotaMemberId = 0n;

  /**
   * etcd's quota check before a write is proposed: with NOSPACE active, or when the write would
   * take the database past the quota (size on disk, measured again when the estimate from the
   * last measurement plus what was written since says so), refuse with "database space
   * exceeded" and raise the NOSPACE alarm through Raft.
   */
  async checkQuota(requestBytes: number): Promise<void> {
    if (this.applier.alarms.has(AlarmType.NOSPACE)) throw new ServerError('NoSpace');
    if (!Number.isFinite(this.quotaBytes)) return;
    const estimate = this.sizeEstimate.bytes + (this.backend.bytesWritten - this.sizeEstimate.writtenAtMeasure);
    if (estimate + requestBytes <= this.quotaBytes) return;
    // The estimate counts logical bytes written since the last measurement; LevelDB compresses
    // and compacts, so measure the files before refusing and raising an alarm.
    const bytes = await this.backend.stateSizeBytes();
    this.sizeEstimate = { bytes, writtenAtMeasure: this.backend.bytesWritten };
    if (bytes + requestBytes <= this.quotaBytes) return;
    if (!this.raisingNoSpace) {
      this.raisingNoSpace = true;
      void this.alarm(AlarmAction.ACTIVATE, this.quotaMemberId, AlarmType.NOSPACE)
        .catch(() => undefined)
        .finally(() => (this.raisingNoSpace = false));
    }
    throw new ServerError('NoSpace');
  }

  /** etcd's Alarm: GET lists; ACTIVATE/DEACTIVATE go through the log. */
  async alarm(action: number, memberId: bigint, alarm: number): Promise<AlarmMember[]> {
    if (action === AlarmAction.GET) {
      return this.applier.alarms.all.filter((a) => (memberId === 0n || a.memberId === memberId) && (alarm === AlarmType.NONE || a.alarm === alarm));
    }
    const { outcome } = await this.log.propose({ kind: 'alarm', action, memberId, alarm });
    const value = unwrap(outcome);
    assert(value.kind === 'alarm');
    return value.members;
  }

  // ---------------------------------------------------------------- Cluster service

  listMembers(): Member[] {
    return this.membership.list();
  }

  async addMember(peerUrls: string[], isLearner: boolean): Promise<{ member: Member; members: Member[] }> {
    const options = this.requireCluster();
    if (peerUrls.length === 0 || !peerUrls.every((url) => /^https?:\/\/[^/\s]+:\d+\/?$/.test(url))) throw new ServerError('MemberBadURLs');
    const taken = new Set(this.membership.list().flatMap((m) => m.peerUrls));
    if (peerUrls.some((url) => taken.has(url))) throw new ServerError('PeerURLExist');
    if (isLearner && this.membership.list().filter((m) => m.isLearner).length >= options.maxLearners) throw new ServerError('TooManyLearners');
    if (!isLearner) this.checkStartedQuorum(+1);
    const id = deriveMemberId(peerUrls, options.clusterToken);
    if (this.membership.get(id) !== undefined || this.membership.wasRemoved(id)) throw new ServerError('MemberExist');
    const context: MemberContext = { peerUrls, isLearner };
    await this.requireRaft().changeMembership(isLearner ? ConfChangeType.AddLearnerNode : ConfChangeType.AddNode, id, Buffer.from(JSON.stringify(context)));
    return { member: this.membership.get(id)!, members: this.membership.list() };
  }

  async removeMember(id: bigint): Promise<Member[]> {
    this.requireCluster();
    const member = this.membership.get(id);
    if (member === undefined) throw new ServerError('MemberNotFound');
    if (!member.isLearner) this.checkStartedQuorum(-1, id);
    await this.requireRaft().changeMembership(ConfChangeType.RemoveNode, id, Buffer.alloc(0));
    return this.membership.list();
  }

  async updateMember(id: bigint, peerUrls: string[]): Promise<Member[]> {
    this.requireCluster();
    const member = this.membership.get(id);
    if (member === undefined) throw new ServerError('MemberNotFound');
    const taken = new Set(this.membership.list().filter((m) => m.id !== id).flatMap((m) => m.peerUrls));
    if (peerUrls.some((url) => taken.has(url))) throw new ServerError('PeerURLExist');
    const context: MemberContext = { peerUrls, isLearner: member.isLearner };
    await this.requireRaft().changeMembership(ConfChangeType.UpdateNode, id, Buffer.from(JSON.stringify(context)));
    return this.membership.list();
  }

  async promoteMember(id: bigint): Promise<Member[]> {
    this.requireCluster();
    const member = this.membership.get(id);
    if (member === undefined) throw new ServerError('MemberNotFound');
    if (!member.isLearner) throw new ServerError('MemberNotLearner');
    const raft = this.requireRaft();
    // Only the leader knows how far the learner got; etcd requires 90% of the leader's log.
    if (!raft.isLeader) throw new ServerError('NotLeader');
    const status = raft.status();
    const progress = status.progress.get(id);
    if (progress === undefined || progress.match < Math.floor(status.lastIndex * 0.9)) throw new ServerError('LearnerNotReady');
    const context: MemberContext = { peerUrls: member.peerUrls, isLearner: false };
    await raft.changeMembership(ConfChangeType.AddNode, id, Buffer.from(JSON.stringify(context)));
    return this.membership.list();
  }

  /**
   * etcd's --strict-reconfig-check (on by default): refuse a voter change that would leave
   * fewer started voters (ones the leader heard from recently) than the new configuration's
   * quorum: "re-configuration failed due to not enough started members".
   */
  private checkStartedQuorum(voterDelta: 1 | -1, removing?: bigint): void {
    if (!this.strictReconfigCheck) return;
    const raft = this.requireRaft();
    const status = raft.status();
    if (status.progress.size === 0) return; // only the leader can tell; followers forward
    let voters = 0;
    let started = 0;
    for (const [id, progress] of status.progress) {
      if (progress.isLearner) continue;
      voters++;
      if (id === removing) continue;
      if (id === raft.memberId || progress.recentActive) started++;
    }
    const after = voters + voterDelta;
    // etcd's exception: a one-member cluster may always add its second member (growing a
    // restored or single-node cluster), though the pair has no quorum until it joins.
    if (voterDelta === 1 && started === 1 && after === 2) return;
    if (started < Math.floor(after / 2) + 1) throw new ServerError('MemberNotEnoughStarted');
  }

  /** etcd --strict-reconfig-check; main sets it from the config. */
  strictReconfigCheck = true;

  private requireCluster(): MembershipOptions {
    if (this.membershipOptions === undefined) throw new ServerError('NotCapable');
    return this.membershipOptions;
  }

  private requireRaft(): RaftNode {
    // A single member runs without Raft (SoloLog); growing it needs a restart in cluster mode.
    if (this.raft === undefined) throw new ServerError('NotCapable', 'membership changes need a member started with --initial-cluster of more than one member');
    return this.raft;
  }

  /**
   * Linearizable reads on a cluster member wait for a ReadIndex round; a single member has
   * every acknowledged write applied already.
   */
  readBarrier(): Promise<void> | undefined {
    return this.raft?.readBarrier();
  }

  /** A consistent dump of the replicated state (every snapshot key space), for a follower. */
  async dumpState(): Promise<{ appliedIndex: number; data: Uint8Array }> {
    await this.applier.flushed();
    const out = new ByteWriter(1 << 20);
    for (const space of SNAPSHOT_SPACES) {
      for await (const [key, value] of this.backend.scan(space)) {
        if (memberLocalKey(space, key)) continue;
        out.u8(space).bytes(key).bytes(value);
      }
    }
    return { appliedIndex: this.applier.appliedIndex, data: out.finish() };
  }

  /** Replaces the replicated state with a leader's dump; returns the applied index it holds. */
  async installState(data: Uint8Array): Promise<number> {
    await this.applier.flushed();
    const ops: BatchOp[] = [];
    for (const space of SNAPSHOT_SPACES) {
      for await (const [key] of this.backend.scan(space)) {
        if (memberLocalKey(space, key)) continue;
        ops.push({ type: 'del', key: spaceKey(space, key) });
      }
    }
    const input = new ByteReader(Buffer.from(data.buffer, data.byteOffset, data.byteLength));
    while (!input.done) {
      const space = input.u8() as KeySpace;
      ops.push({ type: 'put', key: spaceKey(space, input.bytes()), value: Buffer.from(input.bytes()) });
    }
    await this.backend.write(ops, { sync: true });
    this.mvcc.reset();
    this.lessor.reset();
    await restoreMvcc(this.backend, this.mvcc, this.lessor, this.leaseNow());
    const applied = readMetaNumber(this.backend, META_APPLIED_INDEX);
    this.applier.resetAppliedIndex(applied);
    restoreAuth(this.backend, this.auth.store);
    await this.membership.reload();
    this.applier.alarms.load((space, key) => this.backend.get(space, key));
    return applied;
  }

  // ---------------------------------------------------------------- Maintenance service

  /** Status' dbSize and dbSizeInUse: the database's files, and the MVCC key space in them. */
  async dbSizes(): Promise<{ dbSize: number; dbSizeInUse: number }> {
    const [dbSize, dbSizeInUse] = await Promise.all([this.backend.sizeBytes(), this.backend.spaceSizeBytes(KeySpace.mvcc)]);
    return { dbSize, dbSizeInUse };
  }

  /** etcd's Defragment: LevelDB compacts every key range, giving back the space of deleted data. */
  defragment(): Promise<void> {
    return this.backend.compactAll();
  }

  /** etcd's Hash: a checksum of the whole replicated state. */
  hash(): Promise<{ hash: number; currentRevision: number }> {
    return hashState(this.hashSource());
  }

  /** etcd's HashKV: a checksum of the MVCC history up to `revision` (0: current). */
  hashKv(revision: number): Promise<HashKvResult> {
    return hashKv(this.hashSource(), revision);
  }

  /** A consistent etcd-format snapshot of the state, streamed in blobs (etcdctl snapshot save). */
  openSnapshot(): Promise<SnapshotStream> {
    return openSnapshot(this.hashSource());
  }

  private hashSource(): HashSource {
    const mvcc = this.mvcc;
    return {
      backend: this.backend,
      applier: this.applier,
      get currentRevision() {
        return mvcc.currentRevision;
      },
      get compactedRevision() {
        return mvcc.compactedRevision;
      },
    };
  }

  get currentRevision(): number {
    return this.mvcc.currentRevision;
  }

  get compactedRevision(): number {
    return this.mvcc.compactedRevision;
  }

  /** Raft term of the log; a single member stays in its first term. */
  get term(): number {
    return this.raft ? Math.max(1, this.raft.term) : 1;
  }

  /** The leader's member ID as far as this member knows (0 = none); itself when alone. */
  leader(selfId: bigint): bigint {
    return this.raft ? this.raft.leader : selfId;
  }

  get appliedIndex(): number {
    return this.applier.appliedIndex;
  }

  get lastIndex(): number {
    return this.log.lastIndex;
  }

  /** The highest log index known committed (etcd's Status raftIndex). */
  get commitIndex(): number {
    return this.raft ? this.raft.commitIndex : this.log.lastIndex;
  }

  range(request: RangeRequest): Revisioned<RangeResult> {
    // With CORRUPT raised, nothing is served from this member's state (ETCD-FACTS: CORRUPT
    // refuses everything).
    if (this.applier.alarms.has(AlarmType.CORRUPT)) throw new ServerError('Corrupt');
    const result = this.mvcc.range(request);
    return { result, revision: this.mvcc.currentRevision };
  }

  async put(request: PutRequest, stamp?: AuthStamp): Promise<Revisioned<PutResult>> {
    await this.checkQuota(request.key.length + request.value.length);
    const { outcome } = await this.log.propose({ kind: 'put', put: request, ...stamped(stamp) });
    const value = unwrap(outcome);
    assert(value.kind === 'put');
    return { result: value.put, revision: revisionOf(outcome) };
  }

  async deleteRange(request: DeleteRangeRequest, stamp?: AuthStamp): Promise<Revisioned<DeleteRangeResult>> {
    const { outcome } = await this.log.propose({ kind: 'deleteRange', deleteRange: request, ...stamped(stamp) });
    const value = unwrap(outcome);
    assert(value.kind === 'deleteRange');
    return { result: value.deleteRange, revision: revisionOf(outcome) };
  }

  async txn(request: TxnRequest, stamp?: AuthStamp): Promise<Revisioned<TxnResult>> {
    if (isReadOnlyTxn(request)) {
      const result = this.mvcc.txn(request, {
        record: () => assert(false, 'read-only txn wrote a record'),
        event: () => assert(false, 'read-only txn produced an event'),
      });
      return { result, revision: this.mvcc.currentRevision };
    }
    await this.checkQuota(0);
    const { outcome } = await this.log.propose({ kind: 'txn', txn: request, ...stamped(stamp) });
    const value = unwrap(outcome);
    assert(value.kind === 'txn');
    return { result: value.txn, revision: revisionOf(outcome) };
  }

  /** Compacts the history; with `physical`, answers only once the removal is on disk. */
  async compact(revision: number, physical: boolean): Promise<Revisioned<null>> {
    const { outcome, written } = await this.log.propose({ kind: 'compact', revision, physical });
    unwrap(outcome);
    if (physical) await written;
    return { result: null, revision: revisionOf(outcome) };
  }

  async close(): Promise<void> {
    if (this.sizeTimer !== undefined) clearInterval(this.sizeTimer);
    this.leases.stop();
    this.watchHub.close();
    if (this.log instanceof RaftNode) {
      await this.log.stop();
    } else {
      this.log.stop();
      await this.log.drain();
    }
    await this.backend.close();
  }
}

/** Applies a committed conf change to the member list (idempotent: replays are harmless). */
function applyMembershipChange(membership: Membership, type: number, nodeId: bigint, payload: Uint8Array | undefined): void {
  const context: MemberContext | undefined =
    payload !== undefined && payload.length > 0 ? (JSON.parse(Buffer.from(payload).toString()) as MemberContext) : undefined;
  switch (type) {
    case ConfChangeType.AddNode:
      if (membership.get(nodeId)?.isLearner) membership.applyPromote(nodeId);
      else if (context !== undefined) membership.applyAdd(nodeId, context, false);
      break;
    case ConfChangeType.AddLearnerNode:
      if (context !== undefined) membership.applyAdd(nodeId, context, true);
      break;
    case ConfChangeType.RemoveNode:
      membership.applyRemove(nodeId);
      break;
    case ConfChangeType.UpdateNode:
      if (context !== undefined) membership.applyUpdate(nodeId, context.peerUrls);
      break;
  }
}

async function restoreMvcc(backend: Backend, mvcc: MvccStore, lessor: Lessor, nowMs: number): Promise<void> {
  for await (const [key, record] of backend.scan(KeySpace.mvcc)) {
    mvcc.restoreRecord(decodeRevisionKey(key), record);
  }
  // Leases before finishRestore, which re-attaches live keys to the leases it finds.
  await restoreLeases(backend, lessor, nowMs);
  // Never compacted: -1, as a fresh store (0 would make negative revisions read as compacted).
  const compacted = backend.get(KeySpace.meta, META_COMPACTED_REVISION);
  mvcc.finishRestore({ compactedRevision: compacted === undefined ? -1 : Number(compacted.readBigUInt64BE(0)) });
}

/** The stamp field of a proposal: present only while auth is in use (entries stay as before otherwise). */
function stamped(stamp: AuthStamp | undefined): { stamp?: AuthStamp } {
  return stamp === undefined ? {} : { stamp };
}

function unwrap(outcome: ApplyOutcome): ApplyValue {
  if (!outcome.ok) throw outcome.error;
  return outcome.value;
}

function revisionOf(outcome: ApplyOutcome): number {
  assert(outcome.ok, 'revision of a failed outcome');
  return outcome.revision;
}
