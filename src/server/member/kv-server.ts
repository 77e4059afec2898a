// The member facade behind the gRPC edge: restores the state machine from the backend, runs
// the member's RaftNode, and serves reads locally and writes through Raft.
//
// Reads: a range (or a txn that only reads) is served from the in-memory MVCC store at once;
// a linearizable read first waits for a ReadIndex round (readBarrier).
// Writes: proposed through Raft; the answer carries the store revision right after the entry.

import type { Backend } from '../../storage/backend.js';
import { KeySpace } from '../../storage/backend.js';
import type { MvccStore } from '../../mvcc/mvcc-store.js';
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
import type { Applier } from '../apply/applier.js';
import type { ApplyOutcome, ApplyValue } from '../apply/outcome.js';
import type { InternalRequest } from '../apply/internal-request.js';
import type { RaftNode } from './raft-node.js';
import type { Membership, Member, MemberContext } from '../membership/membership.js';
import { AlarmAction, AlarmType, type AlarmMember } from '../apply/alarms.js';
import { deriveAddedMemberId } from '../membership/member-id.js';
import { ServerError } from '../apply/errors.js';
import { ConfChangeType } from '../../raft/types.js';
import { WatchHub } from '../watch/watch-hub.js';
import { LeaseServer } from './lease-server.js';
import type { AuthStamp } from '../../auth/auth-store.js';
import { AuthServer, type AuthServerOptions } from './auth-server.js';
import { hashKv, hashState, type HashKvResult, type HashSource } from '../maintenance/maintenance-hash.js';
import { openSnapshot, type SnapshotStream } from '../maintenance/backup.js';
import { dumpState, installState, restoreMemberState, type MemberState } from './member-state.js';
import { openRaftNode, singleVoter, type ReplicationOptions } from './replication.js';

export type { ReplicationOptions } from './replication.js';

export interface Revisioned<T> {
  result: T;
  /** The store revision the answer's header reports. */
  revision: number;
}

export interface MemberIdentity {
  clusterId: bigint;
  memberId: bigint;
}

/** The member list's starting point and rules (etcd's Cluster service). */
export interface MembershipOptions {
  selfId: bigint;
  /** Initial members of a new cluster (or this member alone). */
  initial: ReadonlyArray<{ id: bigint; name: string; peerUrls: string[] }>;
  maxLearners: number;
  /** This member's own name and client URLs, published through the log at start. */
  name: string;
  clientUrls: string[];
}

export interface LeaseOptions {
  /** Ignored: the replication options' timing decides (main still passes it). */
  electionTimeoutMs?: number;
  /** Ignored: the lease ID prefix is the replication options' member ID (main still passes it). */
  memberId?: bigint;
  /** Monotonic milliseconds (default performance.now). */
  nowMs?: () => number;
  onError?: (error: unknown) => void;
}

export interface KvServerOptions {
  /** Absent: a lone voter with the defaults of singleVoter(). */
  replication?: ReplicationOptions;
  lease?: LeaseOptions;
  members?: MembershipOptions;
  auth?: AuthServerOptions;
  /** Bytes of live values cached in front of LevelDB (server.storage.value_cache_size). */
  valueCacheBytes?: number;
}

export function isReadOnlyTxn(txn: TxnRequest): boolean {
  const readOnly = (ops: readonly RequestOp[]): boolean => ops.every((op) => op.kind === 'range' || (op.kind === 'txn' && isReadOnlyTxn(op.txn)));
  return readOnly(txn.success) && readOnly(txn.failure);
}

export class KvServer {
  /** Watchers of this member, fed by the applier (see watch-hub.ts). */
  readonly watchHub: WatchHub;
  /** Leases: grant/revoke/keep-alive/time-to-live and the leader's expiry loop. */
  readonly leases: LeaseServer;
  /** Users, roles, permissions, tokens (src/auth, auth-server.ts). */
  readonly auth: AuthServer;
  /** The member list (etcd's Cluster service). */
  readonly membership: Membership;
  readonly mvcc: MvccStore;
  readonly applier: Applier;
  /** The Raft driver every write goes through (a lone member is a one-voter cluster). */
  readonly raft: RaftNode;

  private constructor(
    readonly backend: Backend,
    parts: { state: MemberState; raft: RaftNode; electionTimeoutMs: number },
    private readonly options: KvServerOptions,
  ) {
    const { state, raft } = parts;
    this.mvcc = state.mvcc;
    this.applier = state.applier;
    this.membership = state.membership;
    this.raft = raft;
    this.watchHub = new WatchHub({ mvcc: state.mvcc, backend });
    state.applier.addListener(this.watchHub);
    const propose = (request: InternalRequest) => raft.propose(request);
    this.auth = new AuthServer(state.authStore, { propose, readBarrier: () => this.readBarrier() }, options.auth);
    this.leases = new LeaseServer(
      state.lessor,
      { propose, leadership: { isLeader: () => raft.isLeader }, currentRevision: () => state.mvcc.currentRevision },
      { electionTimeoutMs: parts.electionTimeoutMs, memberId: raft.memberId, nowMs: state.leaseNow, onError: options.lease?.onError },
    );
  }

  /** Restores the member's state from the backend and builds its RaftNode; start() runs it. */
  static async open(backend: Backend, options: KvServerOptions = {}): Promise<KvServer> {
    const replication = options.replication ?? singleVoter();
    const electionTimeoutMs = replication.tickMs * replication.electionTicks;
    const state = await restoreMemberState(backend, {
      initialMembers: options.members?.initial,
      electionTimeoutMs,
      leaseNow: options.lease?.nowMs ?? (() => performance.now()),
      valueCacheBytes: options.valueCacheBytes,
    });
    const snapshots = { dump: () => dumpState(backend, state), install: (data: Uint8Array) => installState(backend, state, data) };
    const raft = await openRaftNode(backend, { applier: state.applier, membership: state.membership, snapshots }, replication);
    const server = new KvServer(backend, { state, raft, electionTimeoutMs }, options);
    server.leases.start();
    return server;
  }

  /**
   * Starts the Raft node's clock (after the transport is up) and publishes this member.
   * Resolves once this member is published and knows a leader, so proposals can be made (a lone
   * voter elects itself in its first turns), or after `publishTimeoutMs` if given (publishing
   * goes on in the background).
   */
  async start(options: { publishTimeoutMs?: number } = {}): Promise<void> {
    this.raft.start();
    const ready = this.publishSelf().then(() => this.raft.leaderKnown());
    if (options.publishTimeoutMs === undefined) return ready;
    // Past the timeout nobody awaits `ready` any more: a stop meanwhile must not surface.
    const settled = ready.catch(() => undefined);
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([settled, new Promise<void>((resolve) => (timer = setTimeout(resolve, options.publishTimeoutMs)))]);
    clearTimeout(timer);
  }

  /** etcd's publish: announce name and client URLs through the log, retrying until it lands. */
  private async publishSelf(): Promise<void> {
    const own = this.options.members;
    if (own === undefined) return;
    const current = this.membership.get(own.selfId);
    if (current && current.name === own.name && current.clientUrls.join(',') === own.clientUrls.join(',')) return;
    for (let attempt = 0; attempt < 100; attempt++) {
      try {
        await this.raft.propose({ kind: 'publishMember', memberId: own.selfId, name: own.name, clientUrls: own.clientUrls });
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
  /**
   * The state's size at the last sample or measurement (an upper bound: unflushed bytes are
   * counted) and the backend's bytes written then; what was written since counts on top.
   */
  private sizeEstimate = { bytes: 0, writtenAtMeasure: 0 };
  private sizeTimer: NodeJS.Timeout | undefined;
  private raisingNoSpace = false;

  /** Sets the quota and starts sampling the database size (once a second). */
  setQuota(quotaBackendBytes: number, memberId: bigint): void {
    this.quotaBytes = quotaBackendBytes === 0 ? 2 * 1024 ** 3 : quotaBackendBytes < 0 ? Number.POSITIVE_INFINITY : quotaBackendBytes;
    this.quotaMemberId = memberId;
    if (!Number.isFinite(this.quotaBytes)) return;
    this.sampleWhileOpen();
    this.sizeTimer = setInterval(() => this.sampleWhileOpen(), 1000);
    this.sizeTimer.unref();
  }
  private quotaMemberId = 0n;
  private closing = false;

  /** A sample still reading sizes when the member closes fails with the closed database: not news. */
  private sampleWhileOpen(): void {
    this.sampleStateSize().catch((error: unknown) => {
      if (!this.closing) throw error;
    });
  }

  /**
   * The quota's cheap sample (no flush): LevelDB's table sizes, plus what the memtables may
   * still hold, which the tables do not show (without it, every sample forgot the bytes
   * written before it that still sat in a 16 MiB memtable, and a small quota was overrun).
   */
  async sampleStateSize(): Promise<void> {
    // Both taken before the tables are measured: a write landing meanwhile counts twice at
    // worst, never not at all.
    const writtenAtMeasure = this.backend.bytesWritten;
    const unflushed = this.backend.unflushedBytesBound;
    const tables = await this.backend.stateSizeBytes();
    this.sizeEstimate = { bytes: tables + unflushed, writtenAtMeasure };
  }

  /**
   * etcd's quota check before a write is proposed: with NOSPACE active, or when the write would
   * take the database past the quota (size on disk, measured again when the estimate from the
   * last measurement plus what was written since says so), refuse with "database space
   * exceeded" and raise the NOSPACE alarm through Raft.
   */
  async checkQuota(requestBytes: number): Promise<void> {
    await this.quotaCheck(requestBytes);
  }

  /**
   * The quota check without a promise in the common case (a put awaits it only when the files
   * must be measured): undefined when admitted at once; throws NoSpace while the alarm is on.
   */
  private quotaCheck(requestBytes: number): Promise<void> | undefined {
    if (this.applier.alarms.has(AlarmType.NOSPACE)) throw new ServerError('NoSpace');
    if (!Number.isFinite(this.quotaBytes)) return undefined;
    const estimate = this.sizeEstimate.bytes + (this.backend.bytesWritten - this.sizeEstimate.writtenAtMeasure);
    if (estimate + requestBytes <= this.quotaBytes) return undefined;
    return this.measureQuota(requestBytes);
  }

  private async measureQuota(requestBytes: number): Promise<void> {
    // The estimate counts logical bytes written since the last measurement; LevelDB compresses
    // and compacts, so measure the files (memtable flushed) before refusing and raising an alarm.
    const bytes = await this.backend.flushedStateSizeBytes();
    this.sizeEstimate = { bytes, writtenAtMeasure: this.backend.bytesWrittenAtFlush };
    // The writes the flush did not see (the last apply batch, still queued, say) count too.
    const unflushed = this.backend.bytesWritten - this.backend.bytesWrittenAtFlush;
    if (bytes + unflushed + requestBytes <= this.quotaBytes) return;
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
    const { outcome } = await this.raft.propose({ kind: 'alarm', action, memberId, alarm });
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
    if (peerUrls.length === 0 || !peerUrls.every((url) => /^(?:https?|unixs?):\/\/[^/\s]+:\d+\/?$/.test(url))) throw new ServerError('MemberBadURLs');
    const taken = new Set(this.membership.list().flatMap((m) => m.peerUrls));
    if (peerUrls.some((url) => taken.has(url))) throw new ServerError('PeerURLExist');
    if (isLearner && this.membership.list().filter((m) => m.isLearner).length >= options.maxLearners) throw new ServerError('TooManyLearners');
    if (!isLearner) this.checkStartedQuorum(+1);
    // As etcd's MemberAdd, the time of the add is in the ID: a removed member's peer URL can be
    // added again (a second later at the earliest) and gets an ID of its own.
    const id = deriveAddedMemberId(peerUrls, Date.now() / 1000);
    if (this.membership.get(id) !== undefined || this.membership.wasRemoved(id)) throw new ServerError('MemberExist');
    const context: MemberContext = { peerUrls, isLearner };
    await this.raft.changeMembership(isLearner ? ConfChangeType.AddLearnerNode : ConfChangeType.AddNode, id, Buffer.from(JSON.stringify(context)));
    return { member: this.membership.get(id)!, members: this.membership.list() };
  }

  async removeMember(id: bigint): Promise<Member[]> {
    this.requireCluster();
    const member = this.membership.get(id);
    if (member === undefined) throw new ServerError('MemberNotFound');
    if (!member.isLearner) this.checkStartedQuorum(-1, id);
    await this.raft.changeMembership(ConfChangeType.RemoveNode, id, Buffer.alloc(0));
    return this.membership.list();
  }

  async updateMember(id: bigint, peerUrls: string[]): Promise<Member[]> {
    this.requireCluster();
    const member = this.membership.get(id);
    if (member === undefined) throw new ServerError('MemberNotFound');
    const taken = new Set(
      this.membership
        .list()
        .filter((m) => m.id !== id)
        .flatMap((m) => m.peerUrls),
    );
    if (peerUrls.some((url) => taken.has(url))) throw new ServerError('PeerURLExist');
    const context: MemberContext = { peerUrls, isLearner: member.isLearner };
    await this.raft.changeMembership(ConfChangeType.UpdateNode, id, Buffer.from(JSON.stringify(context)));
    return this.membership.list();
  }

  async promoteMember(id: bigint): Promise<Member[]> {
    this.requireCluster();
    const member = this.membership.get(id);
    if (member === undefined) throw new ServerError('MemberNotFound');
    if (!member.isLearner) throw new ServerError('MemberNotLearner');
    const raft = this.raft;
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
   * fewer started voters (ones the leader heard from in the last one or two election timeouts)
   * than the new configuration's quorum: "re-configuration failed due to not enough started
   * members". Not Raft's recentActive: each check-quorum round clears it, so a healthy cluster
   * would be refused for up to a heartbeat after every round.
   */
  private checkStartedQuorum(voterDelta: 1 | -1, removing?: bigint): void {
    if (!this.strictReconfigCheck) return;
    const raft = this.raft;
    const status = raft.status();
    if (status.progress.size === 0) return; // only the leader can tell; followers forward
    let voters = 0;
    let started = 0;
    for (const [id, progress] of status.progress) {
      if (progress.isLearner) continue;
      voters++;
      if (id === removing) continue;
      if (id === raft.memberId || progress.heardRecently) started++;
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
    if (this.options.members === undefined) throw new ServerError('NotCapable');
    return this.options.members;
  }

  /** Linearizable reads wait for a ReadIndex round: resolves once this member applied that far. */
  readBarrier(): Promise<void> {
    return this.raft.readBarrier();
  }

  /** A linearizable read needs no barrier now: a lone voter that applied all it committed. */
  readsLocally(): boolean {
    return this.raft.readsLocally;
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

  /** The Raft term this member is in. */
  get term(): number {
    return this.raft.term;
  }

  /** The leader's member ID as far as this member knows (0 = none). */
  get leader(): bigint {
    return this.raft.leader;
  }

  get appliedIndex(): number {
    return this.applier.appliedIndex;
  }

  get lastIndex(): number {
    return this.raft.lastIndex;
  }

  /** The highest log index known committed (etcd's Status raftIndex). */
  get commitIndex(): number {
    return this.raft.commitIndex;
  }

  range(request: RangeRequest): Revisioned<RangeResult> {
    // With CORRUPT raised, nothing is served from this member's state (ETCD-FACTS: CORRUPT
    // refuses everything).
    if (this.applier.alarms.has(AlarmType.CORRUPT)) throw new ServerError('Corrupt');
    const result = this.mvcc.range(request);
    return { result, revision: this.mvcc.currentRevision };
  }

  /** A plain promise chain rather than an async function: one frame and promise less per put. */
  put(request: PutRequest, stamp?: AuthStamp): Promise<Revisioned<PutResult>> {
    let measuring: Promise<void> | undefined;
    try {
      measuring = this.quotaCheck(request.key.length + request.value.length);
    } catch (error) {
      return Promise.reject(error);
    }
    // The common case (no quota measurement) makes no closure for the measured one.
    if (measuring === undefined) return this.proposePut(request, stamp);
    return measuring.then(() => this.proposePut(request, stamp));
  }

  private proposePut(request: PutRequest, stamp: AuthStamp | undefined): Promise<Revisioned<PutResult>> {
    return this.raft.propose(stamp === undefined ? { kind: 'put', put: request } : { kind: 'put', put: request, stamp }).then(putResult);
  }

  async deleteRange(request: DeleteRangeRequest, stamp?: AuthStamp): Promise<Revisioned<DeleteRangeResult>> {
    const { outcome } = await this.raft.propose({ kind: 'deleteRange', deleteRange: request, ...stamped(stamp) });
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
    const { outcome } = await this.raft.propose({ kind: 'txn', txn: request, ...stamped(stamp) });
    const value = unwrap(outcome);
    assert(value.kind === 'txn');
    return { result: value.txn, revision: revisionOf(outcome) };
  }

  /** Compacts the history; with `physical`, answers only once the removal is on disk. */
  async compact(revision: number, physical: boolean): Promise<Revisioned<null>> {
    const { outcome, written } = await this.raft.propose({ kind: 'compact', revision, physical });
    unwrap(outcome);
    if (physical) await written;
    return { result: null, revision: revisionOf(outcome) };
  }

  async close(): Promise<void> {
    this.closing = true;
    if (this.sizeTimer !== undefined) clearInterval(this.sizeTimer);
    this.leases.stop();
    this.watchHub.close();
    await this.raft.stop();
    await this.backend.close();
  }
}

/** The stamp field of a proposal: present only while auth is in use (entries stay as before otherwise). */
function stamped(stamp: AuthStamp | undefined): { stamp?: AuthStamp } {
  return stamp === undefined ? {} : { stamp };
}

function putResult({ outcome }: { outcome: ApplyOutcome }): Revisioned<PutResult> {
  const value = unwrap(outcome);
  assert(value.kind === 'put');
  return { result: value.put, revision: revisionOf(outcome) };
}

function unwrap(outcome: ApplyOutcome): ApplyValue {
  if (!outcome.ok) throw outcome.error;
  return outcome.value;
}

function revisionOf(outcome: ApplyOutcome): number {
  assert(outcome.ok, 'revision of a failed outcome');
  return outcome.revision;
}
