// How a member takes part in Raft, and the one place its RaftNode is built. Every member runs
// Raft, a lone one too: it is a one-voter cluster that elects itself at once. main.ts builds
// the options from the configuration; tests and embedders take singleVoter()'s defaults, so
// both construct the node the same way.

import { DEFAULTS, type Config } from '../../config/schema.js';
import { RawNode } from '../../raft/raw-node.js';
import type { Storage } from '../../raft/storage.js';
import { ConfChangeType } from '../../raft/types.js';
import type { Message } from '../../raft/types.js';
import { KeySpace } from '../../storage/backend.js';
import type { Backend } from '../../storage/backend.js';
import { RaftLogStore, type RaftLogWriter } from '../../storage/raft-log-store.js';
import type { StorageFailureSink } from '../../storage/storage-error.js';
import type { WalDb } from '../../storage/wal-dir.js';
import { assert } from '../../util/assert.js';
import { SeededRandom, type Random } from '../../util/random.js';
import type { Applier } from '../apply/applier.js';
import type { Membership, MemberContext } from '../membership/membership.js';
import { RaftNode, type DurableRaftLog, type EntryApplier, type PeerSender, type RaftNodeOptions, type StateSnapshots } from './raft-node.js';
import { restartAsStandalone, type ForcedRestart } from './force-new-cluster.js';
import type { Scheduler } from './scheduler.js';

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
  /** The Raft log's own database (--wal-dir), with its write queue and journal; default: the backend's database. */
  logDb?: WalDb;
  /** --force-new-cluster: restart as a one-member cluster keeping the data (force-new-cluster.ts). */
  forceNewCluster?: boolean;
  /** Told what a forced restart did, before the node starts. */
  onForcedRestart?(restart: ForcedRestart): void;
  onLeaderChange?(lead: bigint, term: number): void;
  onSnapshotInstalled?(snapshotIndex: number, appliedIndex: number): void;
  onSnapshotSent?(to: bigint, snapshotIndex: number, bytes: number): void;
  /** A heartbeat's round trip to a peer (etcd_network_peer_round_trip_time_seconds). */
  onPeerRoundTrip?(peer: bigint, seconds: number): void;
  onFatal(error: unknown): void;
  /** A failed write or read of the raft log's database (told before the error is thrown). */
  onStorageFailure?: StorageFailureSink;
  /** Timers and loop turns of the node (default: Node's). */
  scheduler?: Scheduler;
  /** Write-path limits (server.limits.max_uncommitted_entries_bytes and the two after it). */
  limits: Pick<Config['limits'], 'maxUncommittedEntriesBytes' | 'maxPendingProposalBytes' | 'maxCommitApplyGap'>;
  /** How often an unanswered ReadIndex is asked again (default etcd's 500 ms). */
  readIndexRetryMs?: number;
  /** server.raft.max_writes_in_flight (default 1). */
  maxWritesInFlight?: number;
}

/** The member ID a lone voter gets unless told otherwise (0 is Raft's "nobody"). */
const LONE_VOTER_ID = 1n;

/**
 * Raft ticks per heartbeat interval. A tick of a tenth of the heartbeat lets the randomized
 * election timeout fall anywhere in its range instead of on whole heartbeats: with one tick
 * per heartbeat, the [1, 1.25) x election timeout range (src/raft/DESIGN.md) would hold two or
 * three values, and two followers whose tick timers run in step (a fixed offset for the life
 * of both processes) would often pick the same one and split the vote.
 */
export const TICKS_PER_HEARTBEAT = 10;

/**
 * Tick-based timing from the configured milliseconds (etcd's --heartbeat-interval and
 * --election-timeout keep their meaning): a tick is a tenth of the heartbeat interval, the
 * election timeout is counted in those ticks; a request waits at most the configured timeout,
 * and no longer than two elections plus 5 s.
 */
export function raftTiming(raft: Pick<Config['raft'], 'electionTimeoutMs' | 'heartbeatIntervalMs'>, requestTimeoutMs: number) {
  const tickMs = raft.heartbeatIntervalMs / TICKS_PER_HEARTBEAT;
  return {
    tickMs,
    electionTicks: Math.max(TICKS_PER_HEARTBEAT + 1, Math.round(raft.electionTimeoutMs / tickMs)),
    heartbeatTicks: TICKS_PER_HEARTBEAT,
    requestTimeoutMs: Math.min(requestTimeoutMs, 5000 + 2 * raft.electionTimeoutMs),
  };
}

/**
 * A one-voter cluster with the configuration's defaults. It has no peers, so nothing may ever
 * be sent: its sender asserts. A failure of its Raft loop is rethrown outside any promise
 * chain, so it stops the process (or fails the test run) instead of disappearing.
 */
export function singleVoter(overrides: Partial<Omit<ReplicationOptions, 'initialVoters' | 'sender' | 'joinExisting'>> = {}): ReplicationOptions {
  const memberId = overrides.memberId ?? LONE_VOTER_ID;
  assert(memberId !== 0n, 'member ID 0 is reserved');
  return {
    ...raftTiming(DEFAULTS.raft, DEFAULTS.limits.requestTimeoutMs),
    preVote: DEFAULTS.raft.preVote,
    snapshotCount: DEFAULTS.raft.snapshotCount,
    limits: DEFAULTS.limits,
    random: new SeededRandom(Number(memberId % 2147483647n)),
    onFatal: (error) =>
      queueMicrotask(() => {
        throw error;
      }),
    ...overrides,
    memberId,
    initialVoters: [memberId],
    sender: { send: (messages: Message[]) => assert(false, `a lone voter has no peers, yet sent ${messages.length} messages`) },
    joinExisting: false,
  };
}

/** Opens the member's durable raft log in the backend and builds its RaftNode over it. */
export async function openRaftNode(
  backend: Backend,
  parts: { applier: Applier; membership: Membership; snapshots: StateSnapshots },
  replication: ReplicationOptions,
): Promise<RaftNode> {
  // The log writes through the queue of the database it lives in, with that database's sync
  // journal: the backend's (so the apply batch waiting there rides on the log's next write, one
  // LevelDB write per Ready, not two), or the wal dir's (wal-dir.ts). Its owner counts the
  // writes (the disk metrics) and closes it.
  const logDb = replication.logDb;
  const store = await RaftLogStore.open(logDb?.level ?? backend.level, KeySpace.raftLog, {
    onFailure: replication.onStorageFailure,
    writer: logDb === undefined ? backend.raftLogWriter : walDirLogWriter(logDb, () => backend.sync()),
  });
  if (replication.forceNewCluster) replication.onForcedRestart?.(await restartAsStandalone(store, replication.memberId, parts.applier.appliedIndex));
  const { applier, snapshots, membership } = parts;
  return createRaftNode(
    store,
    { applier, snapshots, onConfChange: (type, nodeId, payload) => applyMembershipChange(membership, type, nodeId, payload) },
    replication,
  );
}

/**
 * The writer of a log kept in a wal dir. The log's checkpointed writes (its compaction above all)
 * may drop entries whose apply batches sit unsynced in the backend's database, which the wal
 * dir's checkpoint does not sync (in the backend's database the one checkpoint covers both): a
 * synced backend write (`syncState`) lands first. Writes still reach the wal dir's queue in
 * call order: one requested while a checkpointed write waits, waits behind it.
 */
export function walDirLogWriter(wal: Pick<WalDb, 'raftLogWriter'>, syncState: () => Promise<void>): RaftLogWriter {
  /** Settles once the last write that had to wait has been handed to the wal dir's queue. */
  let handing: Promise<void> | undefined;
  return (ops, sync, journal, landed) => {
    if (journal !== 'checkpointed' && handing === undefined) return wal.raftLogWriter(ops, sync, journal, landed);
    const before = journal === 'checkpointed' ? Promise.all([handing, syncState()]) : (handing as Promise<void>);
    let written!: Promise<void>;
    const handed = before.then(() => {
      written = wal.raftLogWriter(ops, sync, journal, landed);
    });
    handing = handed;
    // A failed sync fails this write and those behind it (the backend has told the failure sink).
    handed
      .finally(() => {
        if (handing === handed) handing = undefined;
      })
      .catch(() => {});
    return handed.then(() => written);
  };
}

/**
 * Builds a RaftNode over a durable raft log (the backend's, or a test's in memory). The
 * configuration lives in the log: a founding member with an empty log bootstraps it; on
 * restart the core replays conf changes from its last snapshot (applied = snapshot index), and
 * the node skips the normal entries the state machine already holds.
 */
export function createRaftNode(
  store: Storage & DurableRaftLog,
  parts: { applier: EntryApplier; snapshots: StateSnapshots; onConfChange?: RaftNodeOptions['onConfChange'] },
  replication: ReplicationOptions,
): RaftNode {
  const snapshotIndex = store.snapshot().metadata.index;
  const freshLog = store.lastIndex() === 0 && snapshotIndex === 0;
  const node = new RawNode({
    id: replication.memberId,
    electionTick: replication.electionTicks,
    heartbeatTick: replication.heartbeatTicks,
    storage: store,
    random: replication.random,
    applied: snapshotIndex,
    checkQuorum: true,
    preVote: replication.preVote,
    maxUncommittedEntriesSize: replication.limits.maxUncommittedEntriesBytes,
    peers: freshLog && !replication.joinExisting ? replication.initialVoters : undefined,
  });
  return new RaftNode(
    node,
    store,
    parts.applier,
    replication.sender,
    parts.snapshots,
    {
      memberId: replication.memberId,
      tickMs: replication.tickMs,
      requestTimeoutMs: replication.requestTimeoutMs,
      snapshotCount: replication.snapshotCount,
      snapshotCatchUpEntries: Math.min(5000, Math.max(1, Math.floor(replication.snapshotCount / 2))),
      onLeaderChange: replication.onLeaderChange,
      onConfChange: parts.onConfChange,
      onSnapshotInstalled: replication.onSnapshotInstalled,
      onSnapshotSent: replication.onSnapshotSent,
      onPeerRoundTrip: replication.onPeerRoundTrip,
      onFatal: replication.onFatal,
      scheduler: replication.scheduler,
      maxCommitApplyGap: replication.limits.maxCommitApplyGap,
      readIndexRetryMs: replication.readIndexRetryMs,
      maxWritesInFlight: replication.maxWritesInFlight,
      maxPendingProposalBytes: replication.limits.maxPendingProposalBytes,
    },
    { confState: store.initialState().confState, snapshotIndex },
  );
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
