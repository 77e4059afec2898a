// The member's Raft driver: the only IO driver of the pure Raft core, on every member (a lone
// member is a one-voter cluster). Proposals go in, apply outcomes come out; it also serves
// linearizable read barriers (ReadIndex), membership changes and leadership information.
//
// One turn of the loop (run whenever work arrives, at most one Ready outstanding):
//   step received messages, propose queued requests (one batch), ask one ReadIndex for the
//   queued reads -> Ready -> persist hard state + entries (+ snapshot) in one write, synced
//   when Raft requires -> only then send the messages -> install a snapshot if one came ->
//   apply committed entries through the Applier -> answer waiters -> advance().
//
// Entry data: [proposer member ID u64][request ID u64][InternalRequest]; empty data is the
// no-op a new leader appends. Only the proposing member has a waiter for an entry; others
// just apply it. Conf change entries carry the core's encoded ConfChange.
//
// Across a leader change (etcd's behaviour where it has one, docs/ARCHITECTURE.md "Leader
// changes and limits"):
// - a proposal made while no leader is known stays queued and goes to the core once one is
//   (nothing was sent, so nothing can be duplicated); it fails only at its deadline;
// - a proposal handed to a leader of an older term that is still unanswered once this member
//   applies an entry of a newer term was, in all likelihood, lost with that leader: it fails
//   at once with etcd's "request timed out, possibly due to previous leader failure" (an
//   ambiguous outcome, like any timeout) instead of waiting out its deadline. It is never
//   proposed again: a second copy could be applied twice;
// - linearizable reads are re-asked (pending-reads.ts) every readIndexRetryMs and when a
//   leader appears, and fail only at their deadline.
// Limits: a proposal is refused with etcd's "too many requests" when committed entries are
// more than maxCommitApplyGap ahead of applied ones (etcd's maxGapBetweenApplyAndCommitIndex)
// or when this member's unanswered proposals hold more than maxPendingProposalBytes; the
// leader's core refuses proposals past its uncommitted byte limit (the same error).

import type { RawNode } from '../../raft/raw-node.js';
import { ProposalDroppedError } from '../../raft/raft.js';
import {
  EntryType,
  MessageType,
  NONE,
  decodeConfChange,
  type ConfChangeType,
  type ConfState,
  type Entry,
  type HardState,
  type Message,
  type Snapshot,
} from '../../raft/types.js';
import { assert } from '../../util/assert.js';
import type { Applier, CommittedEntry } from '../apply/applier.js';
import { ServerError } from '../apply/errors.js';
import { decodeInternalRequest, encodeInternalRequest, type InternalRequest } from '../apply/internal-request.js';
import type { ApplyOutcome } from '../apply/outcome.js';
import { PendingReads, type PendingRead } from './pending-reads.js';
import { TickClock } from './tick-clock.js';
import { nodeScheduler, type Scheduler, type TimerHandle } from './scheduler.js';

export interface ProposalResult {
  outcome: ApplyOutcome;
  /** Resolves when the apply batch holding this entry's records is on disk. */
  written: Promise<void>;
}

/** What the node needs from the durable raft log (RaftLogStore implements it). */
export interface DurableRaftLog {
  save(hardState: HardState | undefined, entries: Entry[], snapshot: Snapshot | undefined, options: { sync: boolean }): Promise<void>;
  createSnapshot(index: number, confState: ConfState, data: Uint8Array, options?: { sync: boolean }): Promise<Snapshot>;
  compact(index: number, options?: { sync: boolean }): Promise<void>;
  firstIndex(): number;
}

/** What the node needs of the state machine (the Applier implements it). */
export type EntryApplier = Pick<Applier, 'appliedIndex' | 'applyEntries' | 'flushed'>;

/** Sends raft messages to peers (the transport implements it). */
export interface PeerSender {
  send(messages: Message[]): void;
}

/** Builds and installs whole-state snapshots (the KV server implements it). */
export interface StateSnapshots {
  /** A consistent dump of the applied state, with the applied index it covers. */
  dump(): Promise<{ appliedIndex: number; data: Uint8Array }>;
  /** Replaces the applied state with a dump; returns the applied index it covers. */
  install(data: Uint8Array): Promise<number>;
}

export interface RaftNodeOptions {
  memberId: bigint;
  tickMs: number;
  requestTimeoutMs: number;
  /** Applied entries between raft snapshots (etcd --snapshot-count). */
  snapshotCount: number;
  /** Entries kept behind a snapshot so slightly-lagging followers catch up from the log. */
  snapshotCatchUpEntries: number;
  onLeaderChange?(lead: bigint, term: number): void;
  onConfChange?(type: number, nodeId: bigint, context: Uint8Array | undefined, confState: ConfState): void;
  onSnapshotInstalled?(snapshotIndex: number, appliedIndex: number): void;
  onSnapshotSent?(to: bigint, snapshotIndex: number, bytes: number): void;
  /** A heartbeat's round trip to a peer, seconds (the leader measures it). */
  onPeerRoundTrip?(peer: bigint, seconds: number): void;
  onFatal(error: unknown): void;
  /** Timers and loop turns (default: Node's). */
  scheduler?: Scheduler;
  /** How often unanswered ReadIndex requests are sent again (etcd: 500 ms). */
  readIndexRetryMs?: number;
  /** Refuse proposals while committed - applied exceeds this (etcd: 5000). */
  maxCommitApplyGap?: number;
  /** Refuse proposals while this member's unanswered ones hold more bytes; 0 = no limit. */
  maxPendingProposalBytes?: number;
}

/** etcd's readIndexRetryTime. */
export const READ_INDEX_RETRY_MS = 500;
/** etcd's maxGapBetweenApplyAndCommitIndex. */
export const MAX_COMMIT_APPLY_GAP = 5000;

interface PendingProposal {
  id: bigint;
  request: InternalRequest;
  data: Uint8Array;
  resolve: (result: ProposalResult) => void;
  reject: (error: Error) => void;
  timer: TimerHandle;
  /** The core's term when the proposal went to it; unset while it waits in the queue. */
  term?: number;
}

const HEADER_BYTES = 16;

export class RaftNode {
  private inbox: Message[] = [];
  private queuedProposals: PendingProposal[] = [];
  private readonly waiting = new Map<bigint, PendingProposal>();
  private afterAdvance: Array<() => void> = [];
  private readonly confWaiters = new Map<bigint, { resolve: (cs: ConfState) => void; reject: (e: Error) => void; timer: TimerHandle }>();
  private readonly reads = new PendingReads();
  /** Bytes of the proposals in `waiting` (accepted, not yet answered). */
  private pendingProposalBytes = 0;
  /** Term of the last entry applied here; a rise fails proposals of older terms. */
  private appliedTerm = 0;
  private readRetryTicker: TimerHandle | undefined;
  /** Callers of leaderKnown() waiting for a leader. */
  private leaderWaiters: Array<{ resolve: () => void; reject: (error: Error) => void }> = [];
  private nextRequestId = 1n;
  private nextReadContext = 1n;
  private scheduled = false;
  /** Ticks the clock counted that the next turn runs (after that turn's inbox). */
  private dueTicks = 0;
  private inTurn = false;
  /** The Ready being handled (resolved when idle): stop() waits for it. */
  private readyHandled: Promise<void> = Promise.resolve();
  private stopped = false;
  private ticker: TimerHandle | undefined;
  private readonly scheduler: Scheduler;
  private lead: bigint = NONE;
  private currentTerm = 0;
  private lastSnapshotIndex: number;
  private confState: ConfState;
  /** Highest log index this member has durably written (entries at or below are safe to apply). */
  private persistedIndex: number;

  constructor(
    private readonly node: RawNode,
    private readonly log: DurableRaftLog,
    private readonly applier: EntryApplier,
    private readonly peers: PeerSender,
    private readonly snapshots: StateSnapshots,
    private readonly options: RaftNodeOptions,
    initial: { confState: ConfState; snapshotIndex: number; lastIndex: number },
  ) {
    this.confState = initial.confState;
    this.lastSnapshotIndex = initial.snapshotIndex;
    this.persistedIndex = initial.lastIndex;
    this.scheduler = options.scheduler ?? nodeScheduler;
  }

  start(): void {
    // The timer wakes the node each tick; the clock says how many ticks passed (a late timer
    // catches up, up to a heartbeat interval's worth). The ticks run in the next turn, after
    // the messages that arrived meanwhile (turn()).
    const clock = new TickClock(this.options.tickMs, this.node.raft.heartbeatTimeout, this.scheduler.now());
    this.ticker = this.scheduler.setInterval(() => {
      this.dueTicks += clock.due(this.scheduler.now());
      this.schedule();
    }, this.options.tickMs);
    this.readRetryTicker = this.scheduler.setInterval(() => {
      this.resendReadIndexes();
      this.schedule();
    }, this.options.readIndexRetryMs ?? READ_INDEX_RETRY_MS);
    this.campaignIfAlone();
    this.schedule();
  }

  /**
   * A member that is the only voter has nobody to wait for: it campaigns at once instead of
   * after an election timeout (etcd fast-forwards its ticks for the same reason). Called at
   * start and after conf changes, since a restarted member learns its configuration by
   * replaying them.
   */
  private campaignIfAlone(): void {
    if (!this.stopped && !this.isLeader && this.isSoleVoter()) this.node.campaign();
  }

  private isSoleVoter(): boolean {
    const voters = [...this.node.raft.prs.progress].filter(([, progress]) => !progress.isLearner).map(([id]) => id);
    return voters.length === 1 && voters[0] === this.options.memberId;
  }

  /** Resolves once a leader is known (this member or another); rejects if the node stops first. */
  leaderKnown(): Promise<void> {
    if (this.lead !== NONE) return Promise.resolve();
    if (this.stopped) return Promise.reject(new ServerError('Stopped'));
    return new Promise((resolve, reject) => this.leaderWaiters.push({ resolve, reject }));
  }

  get memberId(): bigint {
    return this.options.memberId;
  }

  get leader(): bigint {
    return this.lead;
  }

  get isLeader(): boolean {
    return this.lead === this.options.memberId;
  }

  get term(): number {
    return this.currentTerm;
  }

  get lastIndex(): number {
    return this.node.status().lastIndex;
  }

  get commitIndex(): number {
    return this.node.status().commit;
  }

  get voters(): readonly bigint[] {
    return this.confState.voters;
  }

  get learners(): readonly bigint[] {
    return this.confState.learners;
  }

  status() {
    return this.node.status();
  }

  /** Messages from peers, in arrival order. */
  receive(messages: Message[]): void {
    if (this.stopped) return;
    for (const message of messages) {
      if (message.type === MessageType.MsgHeartbeatResp) this.heartbeatAnswered(message.from);
      // Received entries are views into the transport's frame; the log cache keeps entries
      // for a long time, so copy them rather than pin whole frames.
      for (const entry of message.entries) entry.data = Uint8Array.prototype.slice.call(entry.data);
      this.inbox.push(message);
    }
    this.schedule();
  }

  reportUnreachable(peer: bigint): void {
    this.node.reportUnreachable(peer);
  }

  reportSnapshot(peer: bigint, ok: boolean): void {
    this.node.reportSnapshot(peer, ok);
    this.schedule();
  }

  propose(request: InternalRequest): Promise<ProposalResult> {
    if (this.stopped) return Promise.reject(new ServerError('Stopped'));
    const body = encodeInternalRequest(request);
    const refusal = this.overloaded(HEADER_BYTES + body.length);
    if (refusal !== undefined) return Promise.reject(refusal);
    return new Promise((resolve, reject) => {
      const id = this.nextRequestId++;
      const data = Buffer.allocUnsafe(HEADER_BYTES + body.length);
      data.writeBigUInt64BE(this.options.memberId, 0);
      data.writeBigUInt64BE(id, 8);
      body.copy(data, HEADER_BYTES);
      const pending: PendingProposal = {
        id,
        request,
        data,
        resolve,
        reject,
        timer: this.scheduler.setTimeout(() => {
          if (this.finishProposal(pending)) reject(new ServerError('Timeout'));
        }, this.options.requestTimeoutMs),
      };
      this.waiting.set(id, pending);
      this.pendingProposalBytes += data.length;
      this.queuedProposals.push(pending);
      this.schedule();
    });
  }

  /**
   * etcd's "too many requests": applying has fallen too far behind committing (a slow disk),
   * or this member already holds too many bytes of unanswered proposals. One proposal is
   * always let through, however large, so a single request never deadlocks.
   */
  private overloaded(bytes: number): ServerError | undefined {
    const gap = this.node.raft.raftLog.committed - this.applier.appliedIndex;
    if (gap > (this.options.maxCommitApplyGap ?? MAX_COMMIT_APPLY_GAP)) return new ServerError('RequestTooManyRequests');
    const maxBytes = this.options.maxPendingProposalBytes ?? 0;
    if (maxBytes > 0 && this.pendingProposalBytes > 0 && this.pendingProposalBytes + bytes > maxBytes) return new ServerError('RequestTooManyRequests');
    return undefined;
  }

  /** Bytes of this member's unanswered proposals (what maxPendingProposalBytes limits). */
  get unansweredProposalBytes(): number {
    return this.pendingProposalBytes;
  }

  /** Forgets an unanswered proposal; false if it was answered already. */
  private finishProposal(pending: PendingProposal): boolean {
    if (!this.waiting.delete(pending.id)) return false;
    this.scheduler.clear(pending.timer);
    this.pendingProposalBytes -= pending.data.length;
    return true;
  }

  /** Resolves once this member has applied everything committed before the call (ReadIndex). */
  readBarrier(): Promise<void> {
    if (this.stopped) return Promise.reject(new ServerError('Stopped'));
    return new Promise((resolve, reject) => {
      const read: PendingRead = { resolve, reject, settled: false };
      const timer = this.scheduler.setTimeout(() => {
        read.settled = true;
        reject(new ServerError('Timeout', 'read index timed out'));
      }, this.options.requestTimeoutMs);
      read.resolve = () => {
        this.scheduler.clear(timer);
        read.settled = true;
        resolve();
      };
      read.reject = (error) => {
        this.scheduler.clear(timer);
        read.settled = true;
        reject(error);
      };
      this.reads.add(read);
      this.schedule();
    });
  }

  transferLeadership(to: bigint): void {
    this.node.transferLeader(to);
    this.schedule();
  }

  /**
   * Proposes a membership change and resolves with the configuration once this member has
   * applied it. The context carries [proposer][request ID] and then the caller's payload,
   * which the conf change listener receives.
   */
  changeMembership(type: ConfChangeType, nodeId: bigint, payload: Uint8Array): Promise<ConfState> {
    if (this.stopped) return Promise.reject(new ServerError('Stopped'));
    return new Promise((resolve, reject) => {
      const id = this.nextRequestId++;
      const context = Buffer.allocUnsafe(HEADER_BYTES + payload.length);
      context.writeBigUInt64BE(this.options.memberId, 0);
      context.writeBigUInt64BE(id, 8);
      context.set(payload, HEADER_BYTES);
      const timer = this.scheduler.setTimeout(() => {
        if (this.confWaiters.delete(id)) reject(new ServerError('Timeout'));
      }, this.options.requestTimeoutMs);
      this.confWaiters.set(id, { resolve, reject, timer });
      try {
        this.node.proposeConfChange({ type, nodeId, context });
      } catch (error) {
        this.scheduler.clear(timer);
        this.confWaiters.delete(id);
        if (error instanceof ProposalDroppedError) reject(droppedProposalError(error));
        else reject(error as Error);
        return;
      }
      this.schedule();
    });
  }

  private schedule(): void {
    if (this.scheduled || this.stopped) return;
    this.scheduled = true;
    this.scheduler.setImmediate(() => {
      this.scheduled = false;
      this.turn();
    });
  }

  private turn(): void {
    if (this.stopped) return;
    try {
      const inbox = this.inbox;
      this.inbox = [];
      for (const message of inbox) {
        // Messages from members no longer in the configuration are dropped by the core.
        this.node.step(message);
      }
      // Ticks after the inbox: a member that wakes late reads the heartbeat or the other
      // follower's pre-vote that came in meanwhile before its own election timer can run out
      // (otherwise two followers of a dead leader campaign at once and split the vote).
      for (; this.dueTicks > 0; this.dueTicks--) this.node.tick();
      this.proposeQueued();
      this.askReadIndex();
      // Stepping and proposing go on while a Ready is being persisted; the next Ready waits
      // for advance().
      if (this.inTurn || !this.node.hasReady()) return;
      const ready = this.node.ready();
      this.inTurn = true;
      if (ready.hardState) this.currentTerm = ready.hardState.term;
      if (ready.softState && ready.softState.lead !== this.lead) {
        this.lead = ready.softState.lead;
        this.options.onLeaderChange?.(this.lead, this.currentTerm);
        if (this.lead !== NONE) {
          this.releaseLeaderWaiters();
          // Reads asked of the previous leader may never be answered: ask the new one now.
          this.resendReadIndexes();
          this.schedule();
        }
      }
      this.readyHandled = this.handleReady(ready).catch((error) => this.options.onFatal(error));
    } catch (error) {
      this.options.onFatal(error);
    }
  }

  private proposeQueued(): void {
    if (this.queuedProposals.length === 0) return;
    // Proposals past their deadline were answered already: they must not reach the log.
    const batch = this.queuedProposals.filter((pending) => this.waiting.has(pending.id));
    this.queuedProposals = [];
    if (batch.length === 0) return;
    try {
      this.node.proposeBatch(batch.map((p) => p.data));
    } catch (error) {
      if (!(error instanceof ProposalDroppedError)) throw error;
      // Without a leader nothing was sent anywhere: keep them for a later turn.
      if (error.reason === 'noLeader') {
        this.queuedProposals = batch;
        return;
      }
      const refusal = droppedProposalError(error);
      for (const pending of batch) if (this.finishProposal(pending)) pending.reject(refusal);
      return;
    }
    const term = this.node.raft.term;
    for (const pending of batch) pending.term = term;
  }

  private askReadIndex(): void {
    if (!this.reads.hasQueued) return;
    // The leader tracks pending ReadIndex requests by context and ignores a duplicate, so the
    // context must be unique across members, not just here: member ID + counter.
    const context = Buffer.allocUnsafe(16);
    context.writeBigUInt64BE(this.options.memberId, 0);
    context.writeBigUInt64BE(this.nextReadContext++, 8);
    this.reads.groupQueued(context);
    this.sendReadIndex(context);
  }

  /** Sends every unanswered ReadIndex request again (timer and leader change). */
  private resendReadIndexes(): void {
    if (this.stopped) return;
    try {
      for (const context of this.reads.awaitingContexts()) this.sendReadIndex(context);
    } catch (error) {
      this.options.onFatal(error);
    }
  }

  /** Asks the leader for a read index; a refusal (no leader yet) is retried later. */
  private sendReadIndex(context: Uint8Array): void {
    try {
      this.node.readIndex(context);
    } catch (error) {
      if (!(error instanceof ProposalDroppedError)) throw error;
    }
  }

  private async handleReady(ready: ReturnType<RawNode['ready']>): Promise<void> {
    let snapshotForLog = ready.snapshot;
    if (ready.snapshot !== undefined && ready.snapshot.data.length > 0) {
      // Install the state before the raft log records the snapshot: a crash in between then
      // leaves state ahead of the log (entries are skipped by applied index), never a log that
      // claims state the store does not have. The log keeps only the metadata.
      const appliedIndex = await this.snapshots.install(ready.snapshot.data);
      assert(appliedIndex >= ready.snapshot.metadata.index, 'snapshot data older than its metadata');
      this.confState = ready.snapshot.metadata.confState;
      this.lastSnapshotIndex = ready.snapshot.metadata.index;
      snapshotForLog = { metadata: ready.snapshot.metadata, data: new Uint8Array(0) };
      this.options.onSnapshotInstalled?.(ready.snapshot.metadata.index, appliedIndex);
    }
    // A leader may send its appends while it persists them (Raft thesis §10.2.1; etcd does
    // the same): it applies an entry only after its own write below. Every other member must
    // persist first, since its messages (votes, acks) promise durable state.
    const sendFirst = this.node.isLeader && ready.snapshot === undefined;
    if (sendFirst && ready.messages.length > 0) await this.send(ready.messages);
    // Committed entries that earlier Readies already made durable here are applied (and
    // answered) now, instead of waiting behind this Ready's write of newer entries; the rest
    // are applied once that write is done.
    let committed = ready.committedEntries;
    const durableNow = ready.snapshot === undefined ? countDurable(committed, this.persistedIndex) : 0;
    if (durableNow > 0) {
      this.applyCommitted(committed.slice(0, durableNow));
      committed = committed.slice(durableNow);
    }
    await this.log.save(ready.hardState, ready.entries, snapshotForLog, { sync: ready.mustSync });
    const lastSaved = ready.entries[ready.entries.length - 1];
    if (snapshotForLog !== undefined) this.persistedIndex = Math.max(this.persistedIndex, snapshotForLog.metadata.index);
    if (lastSaved !== undefined) this.persistedIndex = lastSaved.index;
    if (!sendFirst && ready.messages.length > 0) await this.send(ready.messages);
    for (const readState of ready.readStates) this.reads.answered(readState.requestCtx, readState.index);
    if (committed.length > 0) this.applyCommitted(committed);
    this.releaseReads();
    this.node.advance();
    this.inTurn = false;
    const callbacks = this.afterAdvance;
    this.afterAdvance = [];
    for (const callback of callbacks) callback();
    await this.maybeSnapshot();
    this.schedule();
  }

  /** Heartbeats in flight, by peer: when the oldest unanswered one was sent. */
  private readonly heartbeatSentAt = new Map<bigint, number>();

  private heartbeatAnswered(peer: bigint): void {
    const sentAt = this.heartbeatSentAt.get(peer);
    if (sentAt === undefined) return;
    this.heartbeatSentAt.delete(peer);
    this.options.onPeerRoundTrip?.(peer, (performance.now() - sentAt) / 1000);
  }

  /** Outgoing MsgSnap carries the current state: the snapshot's data is made at send time. */
  private async send(messages: Message[]): Promise<void> {
    const plain: Message[] = [];
    for (const message of messages) {
      if (message.type === MessageType.MsgHeartbeat && this.options.onPeerRoundTrip && !this.heartbeatSentAt.has(message.to)) {
        this.heartbeatSentAt.set(message.to, performance.now());
      }
      if (message.type === MessageType.MsgSnap && message.snapshot !== undefined) {
        const { data } = await this.snapshots.dump();
        this.options.onSnapshotSent?.(message.to, message.snapshot.metadata.index, data.length);
        // The stored snapshot's configuration may predate the recipient's own addition; the
        // core refuses a snapshot that does not list it, so send the current configuration.
        const metadata = { ...message.snapshot.metadata, confState: { voters: [...this.confState.voters], learners: [...this.confState.learners] } };
        plain.push({ ...message, snapshot: { metadata, data } });
      } else {
        plain.push(message);
      }
    }
    this.peers.send(plain);
  }

  private applyCommitted(entries: Entry[]): void {
    const batch: CommittedEntry[] = [];
    const waiters: Array<PendingProposal | undefined> = [];
    for (const entry of entries) {
      const alreadyApplied = entry.index <= this.applier.appliedIndex;
      if (alreadyApplied && entry.type !== EntryType.ConfChange) continue; // state has it already
      if (entry.type === EntryType.ConfChange) {
        const change = decodeConfChange(entry.data);
        this.confState = this.node.applyConfChange(change);
        this.afterAdvance.push(() => this.campaignIfAlone());
        const context = change.context === undefined ? undefined : Buffer.from(change.context.buffer, change.context.byteOffset, change.context.byteLength);
        const payload = context !== undefined && context.length >= HEADER_BYTES ? context.subarray(HEADER_BYTES) : undefined;
        this.options.onConfChange?.(change.type, change.nodeId, payload, this.confState);
        if (context !== undefined && context.length >= HEADER_BYTES && context.readBigUInt64BE(0) === this.options.memberId) {
          const id = context.readBigUInt64BE(8);
          const waiter = this.confWaiters.get(id);
          if (waiter !== undefined) {
            this.confWaiters.delete(id);
            this.scheduler.clear(waiter.timer);
            // Answered after advance(): until then the core still counts this change as
            // pending and would silently drop a next one proposed in reply.
            const confState = this.confState;
            this.afterAdvance.push(() => waiter.resolve(confState));
          }
        }
        // After a restart the core replays conf changes from its last snapshot to rebuild its
        // configuration; the state machine has them already.
        if (!alreadyApplied) {
          batch.push({ index: entry.index, data: Buffer.alloc(0) });
          waiters.push(undefined);
        }
        continue;
      }
      if (entry.data.length === 0) {
        batch.push({ index: entry.index, data: Buffer.alloc(0) });
        waiters.push(undefined);
        continue;
      }
      const data = Buffer.from(entry.data.buffer, entry.data.byteOffset, entry.data.byteLength);
      const proposer = data.readBigUInt64BE(0);
      let waiter: PendingProposal | undefined;
      if (proposer === this.options.memberId) {
        waiter = this.waiting.get(data.readBigUInt64BE(8));
        if (waiter !== undefined) this.finishProposal(waiter);
      }
      const body = data.subarray(HEADER_BYTES);
      batch.push({ index: entry.index, data: body, request: waiter?.request ?? decodeInternalRequest(body) });
      waiters.push(waiter);
    }
    if (batch.length > 0) {
      const { outcomes, written } = this.applier.applyEntries(batch);
      for (let i = 0; i < waiters.length; i++) waiters[i]?.resolve({ outcome: outcomes[i]!, written });
    }
    const lastTerm = entries[entries.length - 1]?.term ?? 0;
    if (lastTerm > this.appliedTerm) {
      this.appliedTerm = lastTerm;
      this.failProposalsOfOlderTerms();
    }
  }

  /**
   * An entry of term T is applied here: every entry of an older term that will ever commit is
   * at a lower index, so applied already. A proposal handed to the core in an older term and
   * still unanswered was lost with its leader (or, if a delayed message still carries it, may
   * yet commit): etcd's ambiguous timeout answers it now rather than at its deadline.
   */
  private failProposalsOfOlderTerms(): void {
    for (const pending of [...this.waiting.values()]) {
      if (pending.term === undefined || pending.term >= this.appliedTerm) continue;
      if (this.finishProposal(pending)) pending.reject(new ServerError('TimeoutDueToLeaderFail', 'proposal lost with its leader'));
    }
  }

  private releaseLeaderWaiters(): void {
    const waiters = this.leaderWaiters;
    this.leaderWaiters = [];
    for (const waiter of waiters) waiter.resolve();
  }

  private releaseReads(): void {
    for (const read of this.reads.takeReleasable(this.applier.appliedIndex)) read.resolve();
  }

  /** Every snapshotCount applied entries: record a raft snapshot and compact the log behind it. */
  private async maybeSnapshot(): Promise<void> {
    const applied = this.applier.appliedIndex;
    if (applied - this.lastSnapshotIndex < this.options.snapshotCount) return;
    this.lastSnapshotIndex = applied;
    // The data is produced when a follower needs it (see send()); the stored snapshot only
    // marks where the log may be compacted.
    await this.log.createSnapshot(applied, this.confState, new Uint8Array(0), { sync: false });
    const compactTo = applied - this.options.snapshotCatchUpEntries;
    if (compactTo > this.log.firstIndex()) {
      // The apply batches covering these entries must be on disk before their log copies go.
      await this.applier.flushed();
      await this.log.compact(compactTo, { sync: false });
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.ticker !== undefined) this.scheduler.clear(this.ticker);
    if (this.readRetryTicker !== undefined) this.scheduler.clear(this.readRetryTicker);
    for (const pending of [...this.waiting.values()]) if (this.finishProposal(pending)) pending.reject(new ServerError('Stopped'));
    this.queuedProposals = [];
    for (const waiter of this.confWaiters.values()) {
      this.scheduler.clear(waiter.timer);
      waiter.reject(new ServerError('Stopped'));
    }
    this.confWaiters.clear();
    for (const waiter of this.leaderWaiters) waiter.reject(new ServerError('Stopped'));
    this.leaderWaiters = [];
    for (const read of this.reads.takeAll()) read.reject(new ServerError('Stopped'));
    await this.readyHandled;
  }
}

/**
 * etcd's answer to a request the core refused: "no leader" while none is known; too much
 * uncommitted data on the leader is overload ("too many requests", which clients back off
 * from); any other refusal (a leadership transfer under way, this leader removed) means the
 * leadership is changing, which clients retry.
 */
function droppedProposalError(error: ProposalDroppedError): ServerError {
  if (error.reason === 'noLeader') return new ServerError('NoLeader');
  if (error.reason === 'uncommittedSizeLimit') return new ServerError('RequestTooManyRequests', error.message);
  return new ServerError('LeaderChanged', error.message);
}

/** How many of the committed entries (in index order) are at or below the durable index. */
function countDurable(entries: readonly Entry[], persistedIndex: number): number {
  let count = 0;
  while (count < entries.length && entries[count]!.index <= persistedIndex) count++;
  return count;
}
