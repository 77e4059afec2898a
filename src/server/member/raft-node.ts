// The member's Raft driver: the only IO driver of the pure Raft core, on every member (a lone
// member is a one-voter cluster). Proposals go in, apply outcomes come out; it also serves
// linearizable read barriers (ReadIndex), membership changes and leadership information.
//
// One turn of the loop (run whenever work arrives):
//   step received messages, propose queued requests (one batch), ask one ReadIndex for the
//   queued reads unless enough are out already -> Ready -> hand its write (hard state + entries, synced when Raft requires)
//   to the log, which lands writes in call order -> a leader sends its messages at once, any
//   other member the proposals it forwards at once and the rest once the write landed (its
//   votes and acks promise durable state); a follower whose write is in flight sends the
//   proposals it forwards in the turn it makes them, without a Ready -> committed
//   entries are applied, through the Applier, as soon as they are durable here and everything
//   before them is applied (a commit learned while the pipeline is full: in the turn it
//   arrives, without a Ready) -> waiters are answered on apply.
// Pipelined (Raft thesis 10.2.1): the next Ready is taken as soon as a write lands, before the
// landed entries are applied, so the disk works while the main thread applies; with
// maxWritesInFlight > 1 the next batches are also appended, sent and queued for writing while
// earlier ones are being written. A commit is applied without waiting for a later batch's write. The core reports what
// is durable (RawNode.durableIndex) as the driver reports writes landed, in order
// (persisted()). A Ready carrying a snapshot is handled alone: the Readies before it finish
// first, and no other is taken until it is installed and written.
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
  StateRole,
  decodeConfChange,
  type ConfChangeType,
  type ConfState,
  type Entry,
  type HardState,
  type Message,
  type Ready,
  type Snapshot,
} from '../../raft/types.js';
import { assert } from '../../util/assert.js';
import type { Applier, CommittedEntry } from '../apply/applier.js';
import { ServerError } from '../apply/errors.js';
import { decodeInternalRequest, encodeInternalRequest, type InternalRequest } from '../apply/internal-request.js';
import type { ApplyOutcome } from '../apply/outcome.js';
import { PendingReads } from './pending-reads.js';
import { PROPOSAL_HEADER_BYTES as HEADER_BYTES, ProposalHeader } from './proposal-header.js';
import { TickClock } from './tick-clock.js';
import { DeadlineSweep, nodeScheduler, type Scheduler, type TimerHandle } from './scheduler.js';

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
  /** Entries below `index` will not be read soon: they may leave memory (RaftLogStore's cache). */
  retainFrom?(index: number): void;
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
  /**
   * Readies whose log writes may be in flight at once (bounds the memory the pipeline holds).
   * 1: the next Ready is taken as the previous write lands, and its write starts before the
   * landed entries are applied. More: a leader also sends and queues later batches during a
   * write; on this project's 2-core bench that cost more CPU per entry (bench/RESULTS.md).
   */
  maxWritesInFlight?: number;
}

/** etcd's readIndexRetryTime. */
export const READ_INDEX_RETRY_MS = 500;
/**
 * ReadIndex requests a member keeps out at once. etcd's linearizableReadLoop keeps one; here a
 * round's peer hops wait behind each member's event loop (and, on a busy machine, for a core),
 * so a round took 5-7 ms on 3 members at 100 clients and the reads waiting for it left the
 * members idle. With a second round in flight linearizable ranges ran at a median 0.96x the
 * serializable rate of the same run (one round: 0.79x; four: 0.84x) at no more CPU per read
 * (bench/RESULTS.md, "Linearizable ranges on 3 members: two ReadIndex rounds in flight").
 */
export const MAX_READ_ROUNDS_IN_FLIGHT = 2;
/** etcd's maxGapBetweenApplyAndCommitIndex. */
export const MAX_COMMIT_APPLY_GAP = 5000;

interface PendingProposal {
  id: number;
  request: InternalRequest;
  data: Uint8Array;
  resolve: (result: ProposalResult) => void;
  reject: (error: Error) => void;
  /** When it times out (scheduler.now()); `waiting` holds proposals in deadline order. */
  deadline: number;
  /** The core's term when the proposal went to it; unset while it waits in the queue. */
  term?: number;
}

/** Default of RaftNodeOptions.maxWritesInFlight (server.raft.max_writes_in_flight). */
export const MAX_WRITES_IN_FLIGHT = 1;
/**
 * A member that ran no loop turn for this long, with no write in flight, is idle: the next
 * turn runs from a microtask, not a loop turn (see schedule()). At 1 ms a member under 100
 * clients found itself idle for 11% of its turns (clients slow to send on a loaded machine),
 * each then a write of its own; at 5 ms for 1% (start-up), while puts 10 ms apart still are.
 */
export const IDLE_TURN_GAP_MS = 5;

export class RaftNode {
  private inbox: Message[] = [];
  private queuedProposals: PendingProposal[] = [];
  private readonly waiting = new Map<number, PendingProposal>();
  private afterApplied: Array<() => void> = [];
  private readonly confWaiters = new Map<number, { resolve: (cs: ConfState) => void; reject: (e: Error) => void; timer: TimerHandle }>();
  private readonly reads = new PendingReads();
  /** Bytes of the proposals in `waiting` (accepted, not yet answered). */
  private pendingProposalBytes = 0;
  /** Term of the last entry applied here; a rise fails proposals of older terms. */
  private appliedTerm = 0;
  private readRetryTicker: TimerHandle | undefined;
  /** Fails the reads whose deadline passed (pending-reads.ts keeps them by deadline). */
  private readonly readDeadlines: DeadlineSweep;
  /** Fails the proposals whose deadline passed (expireProposals). */
  private readonly proposalDeadlines: DeadlineSweep;
  /** Callers of leaderKnown() waiting for a leader. */
  private leaderWaiters: Array<{ resolve: () => void; reject: (error: Error) => void }> = [];
  private nextRequestId = 1;
  private nextReadContext = 1n;
  private scheduled = false;
  /** When the last turn started (scheduler.now()): schedule() tells an idle member by it. */
  private lastTurnMs = Number.NEGATIVE_INFINITY;
  /** Ticks the clock counted that the next turn runs (after that turn's inbox). */
  private dueTicks = 0;
  /** The last Ready's handling, which follows every earlier one (stop() waits for it). */
  private pipeline: Promise<void> = Promise.resolve();
  /** A Ready with a snapshot is in flight: no other Ready until it is done. */
  private snapshotInFlight = false;
  /** Committed entries handed out by the core, waiting to be durable here to be applied. */
  private toApply: Entry[] = [];
  /** Messages waiting for an earlier send that had to make a snapshot first (see send()). */
  private sending: Promise<void> | undefined;
  /** A raft snapshot being recorded (maybeSnapshot), if any. */
  private snapshotting: Promise<void> | undefined;
  /**
   * Log writes held back until the next loop turn (startReady: a leader's write waits for its
   * messages to leave), in Ready order; every write issued meanwhile joins them.
   */
  private heldWrites: Array<() => void> | undefined;
  private failed = false;
  private stopped = false;
  private ticker: TimerHandle | undefined;
  /** The tick timer's period now (retimeTicker). */
  private wakeEveryMs = 0;
  /** Raft time off the monotonic clock (start()). */
  private clock: TickClock | undefined;
  /**
   * A follower far from its election timeout (retimeTicker): it wakes once a heartbeat
   * interval, and each turn first brings its Raft time up to date, before its messages.
   */
  private slowFollower = false;
  private readonly scheduler: Scheduler;
  /** Writes and recognises the [member ID][request ID] in front of this member's proposals. */
  private readonly header: ProposalHeader;
  private lead: bigint = NONE;
  private currentTerm = 0;
  private lastSnapshotIndex: number;
  private confState: ConfState;

  constructor(
    private readonly node: RawNode,
    private readonly log: DurableRaftLog,
    private readonly applier: EntryApplier,
    private readonly peers: PeerSender,
    private readonly snapshots: StateSnapshots,
    private readonly options: RaftNodeOptions,
    initial: { confState: ConfState; snapshotIndex: number },
  ) {
    this.confState = initial.confState;
    this.lastSnapshotIndex = initial.snapshotIndex;
    this.scheduler = options.scheduler ?? nodeScheduler;
    this.readDeadlines = new DeadlineSweep(this.scheduler, (now) => this.expireReads(now));
    this.proposalDeadlines = new DeadlineSweep(this.scheduler, (now) => this.expireProposals(now));
    this.header = new ProposalHeader(options.memberId);
  }

  start(): void {
    // The timer wakes the node each tick; the clock says how many ticks passed (a late timer
    // catches up, up to a heartbeat interval's worth). The ticks run in the next turn, after
    // the messages that arrived meanwhile (turn()).
    this.clock = new TickClock(this.options.tickMs, this.node.raft.heartbeatTimeout, this.scheduler.now());
    this.retimeTicker();
    this.readRetryTicker = this.scheduler.setInterval(() => {
      this.resendReadIndexes();
      this.schedule();
    }, this.options.readIndexRetryMs ?? READ_INDEX_RETRY_MS);
    this.campaignIfAlone();
    this.schedule();
  }

  /**
   * A leader's ticks count only towards its heartbeat and its quorum check, both whole
   * heartbeat intervals, so its timer wakes it once a heartbeat (the clock still counts every
   * tick). A follower's or candidate's election timeout is randomized tick by tick, but only
   * the last heartbeat interval before it runs out needs that resolution: until then it wakes
   * once a heartbeat interval too, and every tick after (waking every tick cost an idle
   * follower ~350 wake-ups a second, 80-100 us per put at one client). Called after every
   * turn's ticks: a heartbeat that resets the election timer takes the follower back to the
   * slow timer. A follower's ticks counted in a batch would land after the heartbeat that came
   * meanwhile and run its timer early, so a slow follower's turn counts them first (turn()).
   */
  private retimeTicker(): void {
    const raft = this.node.raft;
    const perTick = raft.ticksUntilElection() <= raft.heartbeatTimeout;
    this.slowFollower = !perTick && raft.state !== StateRole.Leader;
    const ms = perTick ? this.options.tickMs : this.options.tickMs * raft.heartbeatTimeout;
    if (ms === this.wakeEveryMs || this.stopped) return;
    if (this.ticker !== undefined) this.scheduler.clear(this.ticker);
    this.wakeEveryMs = ms;
    this.ticker = this.scheduler.setInterval(this.onTickTimer, ms);
  }

  private readonly onTickTimer = (): void => {
    this.countDueTicks();
    this.schedule();
  };

  /** Adds the ticks due since the clock was last asked (at a wake-up, or a slow follower's turn). */
  private countDueTicks(): void {
    if (this.clock !== undefined) this.dueTicks += this.clock.due(this.scheduler.now(), this.slowFollowerCap());
  }

  private runDueTicks(): void {
    for (; this.dueTicks > 0; this.dueTicks--) this.node.tick();
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

  /**
   * How far one wake-up may move a slow follower's Raft time: its timer comes once a heartbeat
   * interval, so a cap of one interval would drop the ticks of every wake-up a little late.
   */
  private slowFollowerCap(): number {
    const heartbeat = this.node.raft.heartbeatTimeout;
    return this.slowFollower ? 2 * heartbeat : heartbeat;
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
    // Encoded behind room for the proposal header: one buffer and one copy of the value.
    const data = encodeInternalRequest(request, HEADER_BYTES);
    const refusal = this.overloaded(data.length);
    if (refusal !== undefined) return Promise.reject(refusal);
    return new Promise((resolve, reject) => {
      const id = this.nextRequestId++;
      this.header.write(data, id);
      const deadline = this.scheduler.now() + this.options.requestTimeoutMs;
      const pending: PendingProposal = { id, request, data, resolve, reject, deadline };
      this.waiting.set(id, pending);
      this.proposalDeadlines.armWithin(this.options.requestTimeoutMs);
      this.pendingProposalBytes += data.length;
      this.queuedProposals.push(pending);
      // A loop turn, not a microtask, even with the pipeline idle: the turn then takes every
      // proposal read in this poll phase (a microtask per call made the first one a batch of
      // its own: 36 entries per fsync at 100 clients against 48; bench/RESULTS.md).
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
    this.pendingProposalBytes -= pending.data.length;
    return true;
  }

  /**
   * Fails the proposals whose deadline passed; returns the next deadline. Every proposal gets
   * the same timeout on a monotonic clock, so `waiting` (a Map, in insertion order) is in
   * deadline order and the sweep stops at the first one not due.
   */
  private expireProposals(now: number): number | undefined {
    for (const pending of this.waiting.values()) {
      if (pending.deadline > now) return pending.deadline;
      if (this.finishProposal(pending)) pending.reject(new ServerError('Timeout'));
    }
    return undefined;
  }

  /**
   * True when a linearizable read may be served from the local state at once: this member
   * leads a configuration in which it is the only voter and has applied everything committed.
   * A lone voter's core answers a ReadIndex with its commit index without asking anyone (no
   * other member can have committed or acknowledged anything), so a barrier would only wait
   * for an index this member has already reached.
   */
  get readsLocally(): boolean {
    const raft = this.node.raft;
    return (
      !this.stopped &&
      !this.failed &&
      this.node.isLeader &&
      raft.raftLog.committed <= this.applier.appliedIndex &&
      raft.prs.voterCount() === 1 &&
      raft.prs.isVoter(this.options.memberId)
    );
  }

  /** Resolves once this member has applied everything committed before the call (ReadIndex). */
  readBarrier(): Promise<void> {
    if (this.stopped) return Promise.reject(new ServerError('Stopped'));
    return new Promise((resolve, reject) => {
      this.reads.add({ resolve, reject, deadline: this.scheduler.now() + this.options.requestTimeoutMs, settled: false });
      this.readDeadlines.armWithin(this.options.requestTimeoutMs);
      this.schedule();
    });
  }

  /** Fails the reads whose deadline passed; returns the next deadline. */
  private expireReads(now: number): number | undefined {
    for (const read of this.reads.takeExpired(now)) read.reject(new ServerError('Timeout', 'read index timed out'));
    return this.reads.nextDeadline();
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
      this.header.write(context, id);
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

  /**
   * Queues a turn. On a busy member it is a loop turn (setImmediate), so that it takes every
   * proposal and message read in this poll phase: that is the put rows' group commit. On an
   * idle member (no turn for IDLE_TURN_GAP_MS, no write in flight: a lone put at a low rate)
   * the turn runs from a microtask, right after the request's own callback, and its log write
   * starts without waiting for the loop to reach its check phase (one loop hop less; bench/RESULTS.md,
   * S15-H3). What is proposed in the same synchronous run still goes in that
   * turn; a request read later in the same poll phase finds the member busy and waits for the
   * loop turn, with whatever else comes meanwhile.
   */
  private schedule(): void {
    if (this.scheduled || this.stopped) return;
    this.scheduled = true;
    const run = (): void => {
      this.scheduled = false;
      this.turn();
    };
    if (this.idle()) queueMicrotask(run);
    else this.scheduler.setImmediate(run);
  }

  /**
   * Readies whose writes may be in flight. Safe with other voters too: the core counts the
   * leader's own entries toward the commit only once their write landed (Raft.selfDurable), so
   * no commit index leaves the leader resting on a write of its own still in flight.
   */
  private writeSlots(): number {
    return this.options.maxWritesInFlight ?? MAX_WRITES_IN_FLIGHT;
  }

  /** No turn for IDLE_TURN_GAP_MS and no Ready being written (see schedule()). */
  private idle(): boolean {
    return (
      this.node.readiesInFlight === 0 && this.heldWrites === undefined && !this.snapshotInFlight && this.scheduler.now() - this.lastTurnMs >= IDLE_TURN_GAP_MS
    );
  }

  private turn(): void {
    if (this.stopped) return;
    this.lastTurnMs = this.scheduler.now();
    try {
      // A slow follower's ticks that cannot run out its election timer count before its
      // messages: a heartbeat read now resets the timer at the time it arrived.
      if (this.slowFollower) {
        this.countDueTicks();
        if (this.dueTicks < this.node.raft.ticksUntilElection()) this.runDueTicks();
      }
      const inbox = this.inbox;
      this.inbox = [];
      for (const message of inbox) {
        // Messages from members no longer in the configuration are dropped by the core.
        this.node.step(message);
      }
      // Ticks after the inbox: a member that wakes late reads the heartbeat or the other
      // follower's pre-vote that came in meanwhile before its own election timer can run out
      // (otherwise two followers of a dead leader campaign at once and split the vote).
      this.runDueTicks();
      this.retimeTicker();
      this.proposeQueued();
      this.askReadIndex();
      // Stepping and proposing go on while Readies are in flight; the next one waits while the
      // pipeline is full or a snapshot is being installed. A follower's forwarded proposals do
      // not wait for it (forwardProposals).
      const pipelineFull = this.snapshotInFlight || this.node.readiesInFlight >= this.writeSlots();
      if (pipelineFull && !this.failed) {
        this.forwardProposals();
        if (!this.snapshotInFlight) this.applyNewlyCommitted();
      }
      if (this.failed || pipelineFull || !this.node.hasReady()) return;
      const ready = this.node.ready();
      if (ready.hardState) this.currentTerm = ready.hardState.term;
      if (ready.softState && ready.softState.lead !== this.lead) {
        this.lead = ready.softState.lead;
        this.retimeTicker();
        this.options.onLeaderChange?.(this.lead, this.currentTerm);
        if (this.lead !== NONE) {
          this.releaseLeaderWaiters();
          // Reads asked of the previous leader may never be answered: ask the new one now.
          this.resendReadIndexes();
        }
      }
      if (ready.snapshot !== undefined) {
        this.snapshotInFlight = true;
        this.pipeline = this.pipeline.then(() => this.handleSnapshotReady(ready)).catch((error) => this.fail(error));
      } else {
        this.startReady(ready);
      }
      // More may be ready already: take it in the next turn while the pipeline has room (when
      // it is full, the landing write takes the next Ready: finishWrite). One wake-up less per
      // Ready at the default of one write in flight.
      if (this.node.readiesInFlight < this.writeSlots()) this.schedule();
    } catch (error) {
      this.fail(error);
    }
  }

  /** The first fatal error ends the loop; later ones are its consequences. */
  private fail(error: unknown): void {
    if (this.failed) return;
    this.failed = true;
    this.options.onFatal(error);
  }

  /**
   * Starts a Ready without a snapshot: the write goes to the log at once (it lands after the
   * earlier Readies' writes); a leader sends now (Raft thesis 10.2.1: it may write in parallel
   * with its followers, and applies an entry only after its own write); committed entries that
   * are durable here already are applied now. Any other member sends now only the proposals it
   * forwards to the leader: they promise nothing about its durable state (its acks and votes
   * do, and wait for the write), and waiting made most puts through a follower wait for one
   * more log write (bench/RESULTS.md, "3 members: where each member's CPU per put goes").
   */
  private startReady(ready: Ready): void {
    const sendFirst = this.node.isLeader;
    const afterWrite = sendFirst ? [] : ready.messages.filter((m) => m.type !== MessageType.MsgProp);
    this.sendInOrder(sendFirst ? ready.messages : ready.messages.filter((m) => m.type === MessageType.MsgProp));
    for (const readState of ready.readStates) this.reads.answered(readState.requestCtx, readState.index);
    for (const entry of ready.committedEntries) this.toApply.push(entry);
    const save = (): Promise<void> => this.log.save(ready.hardState, ready.entries, undefined, { sync: ready.mustSync });
    // A leader's messages leave on later callbacks (the transport's flush, grpc-js, HTTP/2's
    // own write), after this turn returns; a small synced write is fdatasync'd in-line
    // (storage), which would hold them back for the whole sync and put the leader's sync and
    // the followers' in series. So its write waits for the next loop turn, behind them.
    if (this.writesNothing(ready)) {
      this.finishAtOnce(afterWrite);
      return;
    }
    const written = (sendFirst && ready.messages.length > 0) || this.heldWrites !== undefined ? this.holdWrite(save) : save();
    this.applyDurable();
    this.pipeline = Promise.all([this.pipeline, written])
      .then(() => this.finishWrite(afterWrite))
      .catch((error) => this.fail(error));
  }

  /**
   * A Ready with no entries and nothing to sync while no other write is in flight: at most a
   * new commit index, and messages resting on writes already landed. Nothing waits for it and
   * it is not written: its commit index rides on the next write that carries entries or a new
   * term (etcd writes it unsynced, which a crash can lose too); a restart from an older commit
   * learns it again and the state machine skips the entries it holds. Since the leader's own
   * copy counts toward the commit once durable, a lone voter ends every batch with such a
   * Ready: writing it cost a LevelDB write per batch and held the write slot.
   */
  private writesNothing(ready: Ready): boolean {
    return ready.entries.length === 0 && !ready.mustSync && this.node.readiesInFlight === 1 && this.heldWrites === undefined;
  }

  /** The Ready is done as it is taken (see writesNothing). */
  private finishAtOnce(messages: Message[]): void {
    this.node.persisted();
    this.sendInOrder(messages);
    this.applyDurable();
  }

  /**
   * A follower that takes no Ready this turn (its write in flight) sends the proposals it
   * forwards to the leader now, outside the Ready: like startReady's, they promise nothing
   * about its durable state. Its acks and votes stay in the core for the next Ready, after the
   * write. Otherwise a put through a follower waited for the follower's write in progress
   * before its MsgProp left (bench/RESULTS.md, "A follower forwards its proposals during its
   * write").
   */
  private forwardProposals(): void {
    const proposals = this.node.takeForwardedProposals();
    if (proposals.length > 0) this.sendInOrder(proposals);
  }

  /**
   * A commit learned while the pipeline is full (a write in flight) for entries durable here
   * already is applied now, not after that write lands and the next Ready is taken: the
   * answers to this member's clients waited for a write that holds none of their entries.
   */
  private applyNewlyCommitted(): void {
    const entries = this.node.takeDurableCommitted();
    if (entries.length === 0) return;
    for (const entry of entries) this.toApply.push(entry);
    this.applyDurable();
  }

  /** Runs `save` on the next loop turn, after every write held before it (see startReady). */
  private holdWrite(save: () => Promise<void>): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const run = (): void => {
        try {
          save().then(resolve, reject);
        } catch (error) {
          reject(error as Error);
        }
      };
      if (this.heldWrites !== undefined) {
        this.heldWrites.push(run);
        return;
      }
      const held = [run];
      this.heldWrites = held;
      this.scheduler.setImmediate(() => {
        this.heldWrites = undefined;
        for (const start of held) start();
      });
    });
  }

  /**
   * A Ready's write landed (all earlier ones did before it): acknowledge, send, then take the
   * next Ready at once, so that its write starts before this one's entries are applied (the
   * disk works while the main thread applies), then apply.
   */
  private finishWrite(messages: Message[]): void {
    if (this.failed) return;
    this.node.persisted();
    this.sendInOrder(messages);
    this.turn();
    this.applyDurable();
    // Applying may have made work for the core (a campaign, a commit to report): only then is
    // another turn needed; what arrives later schedules its own.
    if (this.hasWork()) this.schedule();
  }

  /** Whether a turn would do anything now (see turn()). */
  private hasWork(): boolean {
    if (this.inbox.length > 0 || this.dueTicks > 0 || this.queuedProposals.length > 0 || this.reads.hasQueued) return true;
    return this.node.readiesInFlight < this.writeSlots() && this.node.hasReady();
  }

  /**
   * A snapshot from the leader, after every earlier Ready finished: install the state before
   * the raft log records the snapshot (a crash in between leaves state ahead of the log, whose
   * entries are then skipped by applied index, never a log that claims state the store does not
   * have; the log keeps only the metadata), then write, then send.
   */
  private async handleSnapshotReady(ready: Ready): Promise<void> {
    const snapshot = ready.snapshot!;
    // A raft snapshot being recorded would compact a log this one replaces: let it finish.
    await this.snapshotting;
    let snapshotForLog = snapshot;
    // Entries committed before the snapshot and not applied yet: the snapshot holds them.
    this.toApply = this.toApply.filter((entry) => entry.index > snapshot.metadata.index);
    if (snapshot.data.length > 0) {
      const appliedIndex = await this.snapshots.install(snapshot.data);
      assert(appliedIndex >= snapshot.metadata.index, 'snapshot data older than its metadata');
      this.confState = snapshot.metadata.confState;
      // Counted from the data's applied index, which may be ahead of the metadata's by more than
      // snapshotCount (the leader dumps its state when it sends): a raft snapshot recorded at the
      // applied index at once would lie beyond this log's end, which the metadata's index is.
      this.lastSnapshotIndex = appliedIndex;
      snapshotForLog = { metadata: snapshot.metadata, data: new Uint8Array(0) };
      this.options.onSnapshotInstalled?.(snapshot.metadata.index, appliedIndex);
    }
    for (const readState of ready.readStates) this.reads.answered(readState.requestCtx, readState.index);
    for (const entry of ready.committedEntries) this.toApply.push(entry);
    await this.log.save(ready.hardState, ready.entries, snapshotForLog, { sync: ready.mustSync });
    this.snapshotInFlight = false;
    this.finishWrite(ready.messages);
  }

  /**
   * Applies the committed entries handed out so far that are durable here, in order, answers
   * their waiters and the reads they release, and tells the core.
   */
  private applyDurable(): void {
    const durable = this.node.durableIndex;
    let count = 0;
    while (count < this.toApply.length && this.toApply[count]!.index <= durable) count++;
    if (count > 0) {
      const entries = this.toApply.slice(0, count);
      this.toApply = this.toApply.slice(count);
      this.applyCommitted(entries);
      this.node.appliedTo(entries[count - 1]!.index);
      this.retainLog();
      this.maybeSnapshot();
    }
    // Reads answered by this Ready may wait for nothing more than what is applied already.
    this.releaseReads();
    const callbacks = this.afterApplied;
    this.afterApplied = [];
    for (const callback of callbacks) callback();
  }

  /**
   * Tells the log which entries are still to be read: from the first one not applied here and,
   * on a leader, the first one some follower has not acknowledged (it may have to be sent again).
   */
  private retainLog(): void {
    if (this.log.retainFrom === undefined) return;
    const raft = this.node.raft;
    let from = this.applier.appliedIndex + 1;
    if (raft.state === StateRole.Leader) {
      for (const [id, progress] of raft.prs.progress) if (id !== this.options.memberId && progress.match < from) from = progress.match + 1;
    }
    this.log.retainFrom(from);
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
    // A bounded number of rounds out at once (pending-reads.ts): the reads queued meanwhile go
    // out as soon as one is answered.
    if (!this.reads.hasQueued || this.reads.roundsInFlight >= MAX_READ_ROUNDS_IN_FLIGHT) return;
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

  /** Heartbeats in flight, by peer: when the oldest unanswered one was sent. */
  private readonly heartbeatSentAt = new Map<bigint, number>();

  private heartbeatAnswered(peer: bigint): void {
    const sentAt = this.heartbeatSentAt.get(peer);
    if (sentAt === undefined) return;
    this.heartbeatSentAt.delete(peer);
    this.options.onPeerRoundTrip?.(peer, (performance.now() - sentAt) / 1000);
  }

  /**
   * Sends in Ready order. Plain messages go out at once; a MsgSnap needs its data made first
   * (send()), and whatever comes after it waits for it.
   */
  private sendInOrder(messages: Message[]): void {
    if (messages.length === 0) return;
    if (this.sending === undefined && !messages.some((m) => m.type === MessageType.MsgSnap)) {
      this.send(messages).catch((error) => this.fail(error));
      return;
    }
    const sent: Promise<void> = (this.sending ?? Promise.resolve())
      .then(() => this.send(messages))
      .catch((error) => this.fail(error))
      .finally(() => {
        if (this.sending === sent) this.sending = undefined;
      });
    this.sending = sent;
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
        this.afterApplied.push(() => this.campaignIfAlone());
        const context = change.context === undefined ? undefined : Buffer.from(change.context.buffer, change.context.byteOffset, change.context.byteLength);
        const payload = context !== undefined && context.length >= HEADER_BYTES ? context.subarray(HEADER_BYTES) : undefined;
        this.options.onConfChange?.(change.type, change.nodeId, payload, this.confState);
        const id = context !== undefined && context.length >= HEADER_BYTES ? this.header.ownRequestId(context) : undefined;
        if (id !== undefined) {
          const waiter = this.confWaiters.get(id);
          if (waiter !== undefined) {
            this.confWaiters.delete(id);
            this.scheduler.clear(waiter.timer);
            // Answered once the core knows it applied (appliedTo): until then it counts it as
            // pending and would silently drop a next one proposed in reply.
            const confState = this.confState;
            this.afterApplied.push(() => waiter.resolve(confState));
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
      // Entries proposed here and entries from the log's cache hold Buffers already: no view.
      const data = entry.data instanceof Buffer ? entry.data : Buffer.from(entry.data.buffer, entry.data.byteOffset, entry.data.byteLength);
      const id = this.header.ownRequestId(data);
      const waiter = id === undefined ? undefined : this.waiting.get(id);
      if (waiter !== undefined) this.finishProposal(waiter);
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
  private maybeSnapshot(): void {
    if (this.snapshotting !== undefined || this.snapshotInFlight) return;
    const applied = this.applier.appliedIndex;
    if (applied - this.lastSnapshotIndex < this.options.snapshotCount) return;
    this.lastSnapshotIndex = applied;
    this.snapshotting = this.recordSnapshot(applied)
      .catch((error) => this.fail(error))
      .finally(() => (this.snapshotting = undefined));
  }

  private async recordSnapshot(applied: number): Promise<void> {
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
    this.readDeadlines.close();
    this.proposalDeadlines.close();
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
    await this.pipeline;
    await this.sending;
    await this.snapshotting;
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
