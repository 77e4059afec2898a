// The member's KV state machine behind the gRPC edge: opens the backend, restores MVCC,
// recovers the log, and serves reads locally and writes through the log.
//
// Reads: a range (or a txn that only reads) is served from the in-memory MVCC store at once.
// On a single member every acknowledged write is already applied, so that is linearizable;
// the Raft-driven node adds a ReadIndex round before a linearizable read.
// Writes: proposed to the log; the answer carries the store revision right after the entry.

import type { Backend, BatchOp } from '../storage/backend.js';
import { KeySpace, spaceKey } from '../storage/backend.js';
import { MvccStore } from '../mvcc/mvcc-store.js';
import { decodeRevisionKey, encodeRevisionKey } from '../mvcc/revision.js';
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
} from '../mvcc/types.js';
import { assert } from '../util/assert.js';
import { RawNode } from '../raft/raw-node.js';
import type { Random } from '../util/random.js';
import { RaftLogStore } from '../storage/raft-log-store.js';
import { ByteReader, ByteWriter } from '../util/binary.js';
import { Applier, META_APPLIED_INDEX, META_COMPACTED_REVISION, type ApplyOutcome, type ApplyValue } from './applier.js';
import { RaftNode, type PeerSender } from './raft-node.js';
import { SoloLog } from './solo-log.js';
import { WatchHub } from './watch-hub.js';
import { Lessor } from '../lease/lessor.js';
import { LeaseApplier, restoreLeases } from './lease-apply.js';
import { LeaseServer } from './lease-server.js';

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
  onLeaderChange?(lead: bigint, term: number): void;
  onSnapshotInstalled?(snapshotIndex: number, appliedIndex: number): void;
  onSnapshotSent?(to: bigint, snapshotIndex: number, bytes: number): void;
  onFatal(error: unknown): void;
}

/** Lease settings of a member (defaults: etcd's 1000 ms election timeout, member ID 0). */
export interface LeaseOptions {
  electionTimeoutMs?: number;
  memberId?: bigint;
  /** Monotonic milliseconds (default performance.now). */
  nowMs?: () => number;
  onError?: (error: unknown) => void;
}

/** Key spaces that make up the replicated state a snapshot carries. */
const SNAPSHOT_SPACES = [KeySpace.meta, KeySpace.mvcc, KeySpace.lease, KeySpace.auth];

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

  /** The Raft node when this member is part of a multi-member cluster. */
  raft: RaftNode | undefined;
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

  static async open(backend: Backend, options: { replication?: ReplicationOptions; lease?: LeaseOptions } = {}): Promise<KvServer> {
    const replication = options.replication;
    const leaseNow = options.lease?.nowMs ?? (() => performance.now());
    const electionTimeoutMs = replication ? replication.tickMs * replication.electionTicks : (options.lease?.electionTimeoutMs ?? 1000);
    const lessor = new Lessor({ dirtyCheckpointMs: Math.max(1, Math.floor(electionTimeoutMs / 2)) });
    const mvcc = new MvccStore({ history: { readRecord: (rev) => backend.get(KeySpace.mvcc, encodeRevisionKey(rev)) }, leases: lessor });
    await restoreMvcc(backend, mvcc, lessor, leaseNow());
    const applier = new Applier(mvcc, backend, readMetaNumber(backend, META_APPLIED_INDEX));
    applier.setLeaseApplier(new LeaseApplier(lessor, mvcc, leaseNow));
    const leaseServer = (server: KvServer): KvServer => {
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
    const store = await RaftLogStore.open(backend.level, KeySpace.raftLog);
    const initial = store.initialState();
    const node = new RawNode({
      id: replication.memberId,
      electionTick: replication.electionTicks,
      heartbeatTick: replication.heartbeatTicks,
      storage: store,
      random: replication.random,
      applied: Math.max(applier.appliedIndex, store.snapshot().metadata.index),
      checkQuorum: true,
      preVote: replication.preVote,
      peers: initial.confState.voters.length === 0 ? replication.initialVoters : undefined,
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
        onSnapshotInstalled: replication.onSnapshotInstalled,
        onSnapshotSent: replication.onSnapshotSent,
        onFatal: replication.onFatal,
      },
      {
        confState: initial.confState.voters.length === 0 ? { voters: replication.initialVoters, learners: [] } : initial.confState,
        snapshotIndex: store.snapshot().metadata.index,
      },
    );
    server.log = raft;
    server.raft = raft;
    return leaseServer(server);
  }

  /** Starts the Raft node's clock (after the transport is up). No-op on a single member. */
  start(): void {
    this.raft?.start();
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
        if (space === KeySpace.meta && key.toString('latin1') === 'format') continue;
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
        if (space === KeySpace.meta && key.toString('latin1') === 'format') continue;
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
    return applied;
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
    const result = this.mvcc.range(request);
    return { result, revision: this.mvcc.currentRevision };
  }

  async put(request: PutRequest): Promise<Revisioned<PutResult>> {
    const { outcome } = await this.log.propose({ kind: 'put', put: request });
    const value = unwrap(outcome);
    assert(value.kind === 'put');
    return { result: value.put, revision: revisionOf(outcome) };
  }

  async deleteRange(request: DeleteRangeRequest): Promise<Revisioned<DeleteRangeResult>> {
    const { outcome } = await this.log.propose({ kind: 'deleteRange', deleteRange: request });
    const value = unwrap(outcome);
    assert(value.kind === 'deleteRange');
    return { result: value.deleteRange, revision: revisionOf(outcome) };
  }

  async txn(request: TxnRequest): Promise<Revisioned<TxnResult>> {
    if (isReadOnlyTxn(request)) {
      const result = this.mvcc.txn(request, {
        record: () => assert(false, 'read-only txn wrote a record'),
        event: () => assert(false, 'read-only txn produced an event'),
      });
      return { result, revision: this.mvcc.currentRevision };
    }
    const { outcome } = await this.log.propose({ kind: 'txn', txn: request });
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

function unwrap(outcome: ApplyOutcome): ApplyValue {
  if (!outcome.ok) throw outcome.error;
  return outcome.value;
}

function revisionOf(outcome: ApplyOutcome): number {
  assert(outcome.ok, 'revision of a failed outcome');
  return outcome.revision;
}
