// The Raft state machine proper: roles, elections, replication, commitment, ReadIndex, leader
// transfer and single-member configuration changes. Pure: no IO, no clock (time is tick()),
// no randomness of its own (the election timeout jitter comes from the injected Random).
// Outgoing messages accumulate in `msgs` and leave through RawNode.ready().
//
// Each role has its own step function (stepLeader / stepCandidate / stepFollower) and tick
// function (tickHeartbeat for leaders, tickElection otherwise). Term handling common to all
// roles happens first in step().
//
// Invariants: term never decreases; at most one vote per term (vote persists with term);
// only entries of the current term are committed by counting replicas (§5.4.2); the leader's
// own Progress tracks its durable log (match = durableIndex, raised by selfDurable() when the
// driver reports a write landed), so a commit never counts a leader copy that a crash could
// still lose (etcd-io/raft's self-addressed MsgAppResp after the append); a configuration
// change is applied when the application applies its entry, and at most one is pending
// (pendingConfIndex).

import {
  ConfChangeType,
  EntryType,
  MessageType,
  NONE,
  StateRole,
  encodeConfChange,
  entrySize,
  makeMessage,
  type ConfChange,
  type ConfState,
  type Entry,
  type HardState,
  type Message,
  type ReadState,
  type SoftState,
  type Snapshot,
} from './types.js';
import { RaftLog } from './raft-log.js';
import { Progress, ProgressState, ProgressTracker, VoteResult } from './progress.js';
import { ReadOnly } from './read-only.js';
import type { Storage } from './storage.js';
import type { Random } from '../util/random.js';
import { assert, assertSafeInteger } from '../util/assert.js';

export interface RaftConfig {
  id: bigint;
  /** Ticks without hearing from a leader before a follower campaigns (randomized to
   *  [electionTick, 1.25 x electionTick): narrower than etcd-io/raft, see DESIGN.md "Election
   *  timing"). Must exceed heartbeatTick. */
  electionTick: number;
  heartbeatTick: number;
  storage: Storage;
  random: Random;
  /** Last applied index, when restarting with application state beyond the snapshot. */
  applied?: number;
  /** Byte cap of one MsgApp's entries (one entry always fits). Default 1 MiB. */
  maxSizePerMsg?: number;
  /** Cap on in-flight MsgApps per follower in Replicate state. Default 256. */
  maxInflightMsgs?: number;
  /** Byte cap of committed entries handed out per Ready. Default 16 MiB. */
  maxCommittedSizePerReady?: number;
  /** Leader refuses proposals beyond this many uncommitted bytes; 0 means unlimited. */
  maxUncommittedEntriesSize?: number;
  checkQuorum?: boolean;
  preVote?: boolean;
  disableProposalForwarding?: boolean;
  /** Initial members for a brand-new cluster when storage holds no configuration. */
  peers?: bigint[];
  learners?: bigint[];
}

/** Why the core refused a proposal or a read index request. */
export type ProposalDropReason = 'noLeader' | 'leadershipTransfer' | 'leaderNotMember' | 'uncommittedSizeLimit' | 'forwardingDisabled';

const DROP_TEXT: Record<ProposalDropReason, string> = {
  noLeader: 'no leader',
  leadershipTransfer: 'leadership transfer in progress',
  leaderNotMember: 'leader is not a member',
  uncommittedSizeLimit: 'too many uncommitted bytes',
  forwardingDisabled: 'proposal forwarding disabled',
};

/** The proposal could not be accepted now; `reason` says why (callers branch on it, not on the text). */
export class ProposalDroppedError extends Error {
  override name = 'ProposalDroppedError';
  constructor(readonly reason: ProposalDropReason) {
    super(`raft proposal dropped: ${DROP_TEXT[reason]}`);
  }
}

const CAMPAIGN_TRANSFER = new TextEncoder().encode('CampaignTransfer');
function isTransferContext(ctx: Uint8Array | undefined): boolean {
  if (ctx === undefined || ctx.length !== CAMPAIGN_TRANSFER.length) return false;
  for (let i = 0; i < ctx.length; i++) if (ctx[i] !== CAMPAIGN_TRANSFER[i]) return false;
  return true;
}

type CampaignType = 'pre' | 'election' | 'transfer';

/** Fewest distinct values of a randomized election timeout (jitterTicks()). */
const MIN_JITTER_TICKS = 5;

export class Raft {
  readonly id: bigint;
  term = 0;
  vote: bigint = NONE;
  lead: bigint = NONE;
  state: StateRole = StateRole.Follower;
  readonly raftLog: RaftLog;
  readonly prs: ProgressTracker;
  msgs: Message[] = [];
  readStates: ReadState[] = [];
  isLearner = false;
  /** Set once this node applied its own removal; a removed node does nothing more. */
  removed = false;
  leadTransferee: bigint = NONE;
  pendingConfIndex = 0;
  private uncommittedSize = 0;
  private readOnly = new ReadOnly();
  /** ReadIndex requests that arrived before this leader committed an entry of its term. */
  private pendingReadIndexMessages: Message[] = [];
  electionElapsed = 0;
  private heartbeatElapsed = 0;
  readonly checkQuorum: boolean;
  readonly preVote: boolean;
  private readonly disableProposalForwarding: boolean;
  readonly heartbeatTimeout: number;
  readonly electionTimeout: number;
  randomizedElectionTimeout = 0;
  private readonly maxMsgSize: number;
  private readonly maxUncommittedSize: number;
  private readonly random: Random;
  /** Proposals/commit advances since the last flush: appends go out once per Ready (batching). */
  private appendPending = false;
  private commitBcastPending = false;

  constructor(c: RaftConfig) {
    assert(c.id !== NONE, 'cannot use none as id');
    assert(c.heartbeatTick > 0, 'heartbeat tick must be greater than 0');
    assert(c.electionTick > c.heartbeatTick, 'election tick must be greater than heartbeat tick');
    this.id = c.id;
    this.random = c.random;
    this.heartbeatTimeout = c.heartbeatTick;
    this.electionTimeout = c.electionTick;
    this.checkQuorum = c.checkQuorum ?? true;
    this.preVote = c.preVote ?? true;
    this.disableProposalForwarding = c.disableProposalForwarding ?? false;
    this.maxMsgSize = c.maxSizePerMsg ?? 1024 * 1024;
    this.maxUncommittedSize = c.maxUncommittedEntriesSize ?? 0;
    const maxInflight = c.maxInflightMsgs ?? 256;
    this.raftLog = new RaftLog(c.storage, c.maxCommittedSizePerReady ?? 16 * 1024 * 1024);
    this.prs = new ProgressTracker(maxInflight);

    const { hardState, confState } = c.storage.initialState();
    let voters = confState.voters;
    let learners = confState.learners;
    if (voters.length === 0 && learners.length === 0) {
      voters = c.peers ?? [];
      learners = c.learners ?? [];
    }
    const last = this.raftLog.lastIndex();
    for (const id of voters) this.prs.progress.set(id, new Progress(0, last + 1, maxInflight, false));
    for (const id of learners) {
      assert(!this.prs.progress.has(id), `node ${id} is both voter and learner`);
      this.prs.progress.set(id, new Progress(0, last + 1, maxInflight, true));
      if (id === this.id) this.isLearner = true;
    }
    if (hardState.term !== 0 || hardState.vote !== NONE || hardState.commit !== 0) {
      this.loadState(hardState);
    } else if (this.raftLog.lastIndex() === 0 && confState.voters.length === 0 && voters.length > 0) {
      this.bootstrap(voters, learners);
    }
    if (c.applied !== undefined && c.applied > 0) this.raftLog.appliedTo(c.applied);
    this.becomeFollower(this.term, NONE);
  }

  /**
   * A brand-new member of a brand-new cluster writes the initial configuration into its log as
   * committed conf-change entries of term 1 (identical on every founding member). A member that
   * joins later starts empty and learns the configuration by replaying those entries (or from a
   * snapshot), so the log alone always determines the configuration.
   */
  private bootstrap(voters: bigint[], learners: bigint[]): void {
    const ents: Entry[] = [];
    for (const id of voters)
      ents.push({ term: 1, index: ents.length + 1, type: EntryType.ConfChange, data: encodeConfChange({ type: ConfChangeType.AddNode, nodeId: id }) });
    for (const id of learners)
      ents.push({ term: 1, index: ents.length + 1, type: EntryType.ConfChange, data: encodeConfChange({ type: ConfChangeType.AddLearnerNode, nodeId: id }) });
    this.term = 1;
    this.raftLog.append(ents);
    this.raftLog.committed = ents.length;
  }

  private loadState(hs: HardState): void {
    assert(
      hs.commit >= this.raftLog.committed && hs.commit <= this.raftLog.lastIndex(),
      `hard state commit ${hs.commit} out of range [${this.raftLog.committed}, ${this.raftLog.lastIndex()}]`,
    );
    this.raftLog.committed = hs.commit;
    this.term = hs.term;
    this.vote = hs.vote;
  }

  softState(): SoftState {
    return { lead: this.lead, role: this.state };
  }

  hardState(): HardState {
    return { term: this.term, vote: this.vote, commit: this.raftLog.committed };
  }

  promotable(): boolean {
    return !this.removed && this.prs.isVoter(this.id);
  }

  // ---- sending -------------------------------------------------------------------------

  private send(m: Message): void {
    m.from = this.id;
    const t = m.type;
    if (t === MessageType.MsgVote || t === MessageType.MsgVoteResp || t === MessageType.MsgPreVote || t === MessageType.MsgPreVoteResp) {
      // Vote messages carry the term they are about, which may not be ours.
      assert(m.term !== 0, `term should be set when sending ${t}`);
    } else {
      assert(m.term === 0, `term should not be set when sending ${t} (was ${m.term})`);
      // Forwarded proposals stay term-less: they are local to the leader. A forwarded read
      // request carries our term: it tells the leader we had not moved past its term when we
      // asked (leaderReadIndex counts that as our acknowledgement).
      if (t !== MessageType.MsgProp) m.term = this.term;
    }
    this.msgs.push(m);
  }

  /** Sends the follower what it is missing, or a snapshot when that is compacted. Returns
   *  whether a message was sent. */
  private maybeSendAppend(to: bigint, sendIfEmpty: boolean): boolean {
    const pr = this.prs.progress.get(to);
    if (pr === undefined || pr.isPaused()) return false;
    const prevIndex = pr.next - 1;
    const prevTerm = this.raftLog.term(prevIndex);
    const ents = this.raftLog.entries(pr.next, this.maxMsgSize);
    if (ents !== undefined && ents.length === 0 && !sendIfEmpty) return false;

    if (prevTerm === undefined || ents === undefined) {
      // The follower needs entries we compacted: ship the snapshot instead, but only to a
      // follower we recently heard from (a dead one would just waste the transfer).
      if (!pr.recentActive) return false;
      const snapshot = this.raftLog.snapshot();
      assert(snapshot.metadata.index !== 0, 'need non-empty snapshot');
      this.send(makeMessage({ type: MessageType.MsgSnap, to, snapshot }));
      pr.becomeSnapshot(snapshot.metadata.index);
      return true;
    }

    this.send(makeMessage({ type: MessageType.MsgApp, to, index: prevIndex, logTerm: prevTerm, entries: ents, commit: this.raftLog.committed }));
    if (ents.length > 0) {
      if (pr.state === ProgressState.Replicate) {
        const last = (ents[ents.length - 1] as Entry).index;
        pr.optimisticUpdate(last);
        pr.inflights.add(last);
      } else if (pr.state === ProgressState.Probe) {
        pr.probeSent = true;
      }
    } else if (pr.state === ProgressState.Probe) {
      pr.probeSent = true;
    }
    return true;
  }

  private sendAppend(to: bigint): void {
    this.maybeSendAppend(to, true);
  }

  private sendHeartbeat(to: bigint, ctx: Uint8Array | undefined): void {
    const pr = this.prs.progress.get(to) as Progress;
    // Never tell a follower to commit beyond what it is known to hold: it may lack entries.
    const commit = Math.min(pr.match, this.raftLog.committed);
    const m = makeMessage({ type: MessageType.MsgHeartbeat, to, commit });
    if (ctx !== undefined) m.context = ctx;
    this.send(m);
  }

  private bcastAppend(): void {
    for (const id of this.prs.progress.keys()) if (id !== this.id) this.sendAppend(id);
  }

  private bcastHeartbeat(): void {
    this.bcastHeartbeatWithCtx(this.readOnly.lastPendingRequestCtx());
  }

  private bcastHeartbeatWithCtx(ctx: Uint8Array | undefined): void {
    for (const id of this.prs.progress.keys()) if (id !== this.id) this.sendHeartbeat(id, ctx);
  }

  /** Sends the appends accumulated since the last call: one MsgApp per follower carries every
   *  proposal of the batch (and the newest commit index). Called by RawNode before Ready. */
  flushAppends(): void {
    if (!this.appendPending && !this.commitBcastPending) return;
    const sendIfEmpty = this.commitBcastPending;
    this.appendPending = false;
    this.commitBcastPending = false;
    if (this.state !== StateRole.Leader) return;
    for (const id of this.prs.progress.keys()) {
      if (id === this.id) continue;
      // Keep sending while the window allows: a large batch may span several messages.
      let sent = this.maybeSendAppend(id, sendIfEmpty);
      while (sent) sent = this.maybeSendAppend(id, false);
    }
  }

  hasPendingFlush(): boolean {
    return this.state === StateRole.Leader && (this.appendPending || this.commitBcastPending);
  }

  /** Takes the outgoing messages (flushing batched appends first). */
  readMessages(): Message[] {
    this.flushAppends();
    const msgs = this.msgs;
    this.msgs = [];
    return msgs;
  }

  // ---- commitment ----------------------------------------------------------------------

  private maybeCommit(): boolean {
    return this.raftLog.maybeCommit(this.prs.committed(), this.term);
  }

  private committedEntryInCurrentTerm(): boolean {
    return this.raftLog.term(this.raftLog.committed) === this.term;
  }

  // ---- role transitions ----------------------------------------------------------------

  private reset(term: number): void {
    if (this.term !== term) {
      this.term = term;
      this.vote = NONE;
    }
    this.lead = NONE;
    this.electionElapsed = 0;
    this.heartbeatElapsed = 0;
    this.resetRandomizedElectionTimeout();
    this.abortLeaderTransfer();
    this.prs.resetVotes();
    const last = this.raftLog.lastIndex();
    for (const [id, pr] of this.prs.progress) {
      const fresh = new Progress(0, last + 1, this.prs.maxInflight, pr.isLearner);
      if (id === this.id) fresh.match = this.selfMatch();
      this.prs.progress.set(id, fresh);
    }
    this.pendingConfIndex = 0;
    this.uncommittedSize = 0;
    this.readOnly = new ReadOnly();
    this.pendingReadIndexMessages = [];
    this.appendPending = false;
    this.commitBcastPending = false;
  }

  /**
   * A follower campaigns after [electionTimeout, 1.25 x electionTimeout) ticks without a leader.
   * etcd-io/raft draws from [electionTimeout, 2 x electionTimeout); the narrower range bounds
   * the time without a leader after a leader fails (DESIGN.md "Election timing"). Only timing:
   * the spread still separates followers that lost the same leader at the same moment.
   */
  private resetRandomizedElectionTimeout(): void {
    this.randomizedElectionTimeout = this.electionTimeout + this.random.int(this.jitterTicks());
  }

  /**
   * How many values a randomized timeout takes: a quarter of the election timeout, but at least
   * MIN_JITTER_TICKS (up to the timeout itself): a coarse timeout of 10 ticks would leave two or
   * three values, and members that keep drawing the same one split the vote again and again
   * (the simulator, which runs 10-tick timeouts, found such a cluster leaderless).
   */
  private jitterTicks(): number {
    return Math.min(this.electionTimeout, Math.max(MIN_JITTER_TICKS, Math.floor(this.electionTimeout / 4)));
  }

  /**
   * A campaign round (pre-vote or vote) that has not gathered a quorum is tried again after
   * [electionTimeout / 4, electionTimeout / 2) ticks instead of a whole new election timeout:
   * a split vote (two followers that timed out together) or a round sent while the other
   * follower's lease still ran otherwise costs another full timeout. The retry waits at least
   * two heartbeat intervals (about two round trips: a pre-vote and a vote), so it never cuts
   * short a round whose answers are still on their way.
   *
   * Only with pre-vote: a retry then starts with a pre-vote, which changes nobody's term or
   * timer and which members that hear from a leader or hold a longer log refuse. Without it,
   * every retry would be a vote in a higher term that resets every follower's timer, so a
   * candidate that cannot win (a stale log) and retries faster than the others time out would
   * keep the cluster leaderless for good.
   */
  private armCampaignRetry(): void {
    if (!this.preVote) return;
    const quarter = Math.max(1, Math.floor(this.electionTimeout / 4));
    const least = Math.min(this.electionTimeout, Math.max(quarter, 2 * this.heartbeatTimeout));
    this.electionElapsed = 0;
    this.randomizedElectionTimeout = least + this.random.int(this.jitterTicks());
  }

  becomeFollower(term: number, lead: bigint): void {
    this.reset(term);
    this.lead = lead;
    this.state = StateRole.Follower;
  }

  becomeCandidate(): void {
    assert(this.state !== StateRole.Leader, 'invalid transition [leader -> candidate]');
    this.reset(this.term + 1);
    this.vote = this.id;
    this.state = StateRole.Candidate;
  }

  becomePreCandidate(): void {
    assert(this.state !== StateRole.Leader, 'invalid transition [leader -> pre-candidate]');
    // A pre-candidate changes neither term nor vote: a failed pre-vote leaves no trace, which
    // is what keeps a partitioned node from disrupting the cluster when it comes back.
    this.prs.resetVotes();
    this.lead = NONE;
    this.state = StateRole.PreCandidate;
  }

  becomeLeader(): void {
    assert(this.state !== StateRole.Follower, 'invalid transition [follower -> leader]');
    this.reset(this.term);
    this.lead = this.id;
    this.state = StateRole.Leader;
    (this.prs.progress.get(this.id) as Progress).becomeReplicate();
    // The no-op entry lets the new leader commit (and so learn the commit index) in its term.
    const ok = this.appendEntries([{ term: 0, index: 0, type: EntryType.Normal, data: new Uint8Array(0) }]);
    assert(ok, 'empty entry was dropped');
    // Delay configuration changes until everything up to our no-op entry is applied.
    this.pendingConfIndex = this.raftLog.lastIndex();
    // The empty entry's size does not count against the uncommitted limit.
    this.uncommittedSize = 0;
  }

  private hup(t: CampaignType): void {
    if (this.state === StateRole.Leader) return;
    if (!this.promotable()) return;
    // An unapplied committed configuration change might remove us or change the quorum:
    // wait until it is applied before campaigning.
    if (this.raftLog.committed > this.raftLog.applied) {
      const ents = this.raftLog.slice(this.raftLog.applied + 1, this.raftLog.committed + 1, Number.MAX_SAFE_INTEGER);
      if (ents === undefined) return;
      for (const e of ents) if (e.type === EntryType.ConfChange) return;
    }
    this.campaign(t);
  }

  private campaign(t: CampaignType): void {
    let term: number;
    let voteMsg: MessageType;
    if (t === 'pre') {
      this.becomePreCandidate();
      voteMsg = MessageType.MsgPreVote;
      term = this.term + 1; // the term we would campaign in, without moving to it yet
    } else {
      this.becomeCandidate();
      voteMsg = MessageType.MsgVote;
      term = this.term;
    }
    if (this.poll(this.id, voteMsg === MessageType.MsgPreVote ? MessageType.MsgPreVoteResp : MessageType.MsgVoteResp, true) === VoteResult.Won) {
      // Single-voter cluster: we won on our own vote.
      if (t === 'pre') this.campaign('election');
      else this.becomeLeader();
      return;
    }
    this.armCampaignRetry();
    const lastIndex = this.raftLog.lastIndex();
    const lastTerm = this.raftLog.lastTerm();
    for (const id of this.prs.voters()) {
      if (id === this.id) continue;
      const m = makeMessage({ type: voteMsg, to: id, term, index: lastIndex, logTerm: lastTerm });
      if (t === 'transfer') m.context = CAMPAIGN_TRANSFER;
      this.send(m);
    }
  }

  private poll(id: bigint, _t: MessageType, granted: boolean): VoteResult {
    this.prs.recordVote(id, granted);
    return this.prs.tallyVotes().result;
  }

  // ---- time ----------------------------------------------------------------------------

  tick(): void {
    if (this.removed) return;
    if (this.state === StateRole.Leader) this.tickHeartbeat();
    else this.tickElection();
  }

  /**
   * Ticks left until this member's election timer runs out (it campaigns on the tick that
   * reaches it); Infinity where ticks start no election: a leader, a learner, a removed member.
   * The driver wakes a follower once a heartbeat interval while this is more than one.
   */
  ticksUntilElection(): number {
    if (this.state === StateRole.Leader || !this.promotable()) return Number.POSITIVE_INFINITY;
    return this.randomizedElectionTimeout - this.electionElapsed;
  }

  private pastElectionTimeout(): boolean {
    return this.electionElapsed >= this.randomizedElectionTimeout;
  }

  private tickElection(): void {
    this.electionElapsed++;
    if (this.promotable() && this.pastElectionTimeout()) {
      this.electionElapsed = 0;
      this.step(makeMessage({ type: MessageType.MsgHup, from: this.id }));
    }
  }

  private tickHeartbeat(): void {
    this.heartbeatElapsed++;
    this.electionElapsed++;
    if (this.electionElapsed >= this.electionTimeout) {
      this.electionElapsed = 0;
      if (this.checkQuorum) this.step(makeMessage({ type: MessageType.MsgCheckQuorum, from: this.id }));
      // A transfer that did not finish within an election timeout is abandoned.
      if (this.state === StateRole.Leader && this.leadTransferee !== NONE) this.abortLeaderTransfer();
    }
    if (this.state !== StateRole.Leader) return;
    if (this.heartbeatElapsed >= this.heartbeatTimeout) {
      this.heartbeatElapsed = 0;
      this.step(makeMessage({ type: MessageType.MsgBeat, from: this.id }));
    }
  }

  // ---- stepping ------------------------------------------------------------------------

  step(m: Message): void {
    if (this.removed) return;
    assertSafeInteger(m.term, 'message term');
    assertSafeInteger(m.index, 'message index');
    if (m.term === 0) {
      // local message
    } else if (m.term > this.term) {
      if (m.type === MessageType.MsgVote || m.type === MessageType.MsgPreVote) {
        const force = isTransferContext(m.context);
        const inLease = this.checkQuorum && this.lead !== NONE && this.electionElapsed < this.electionTimeout;
        // With check-quorum, a follower that heard from a live leader within the election
        // timeout ignores vote requests: a partitioned, rejoining node cannot depose it.
        if (!force && inLease) return;
      }
      if (m.type === MessageType.MsgPreVote) {
        // Never change term for a pre-vote request.
      } else if (m.type === MessageType.MsgPreVoteResp && !m.reject) {
        // Granted pre-votes carry the future term; we move to it only when we win the pre-vote.
      } else if (m.type === MessageType.MsgApp || m.type === MessageType.MsgHeartbeat || m.type === MessageType.MsgSnap) {
        this.becomeFollower(m.term, m.from);
      } else {
        this.becomeFollower(m.term, NONE);
      }
    } else if (m.term < this.term) {
      if ((this.checkQuorum || this.preVote) && (m.type === MessageType.MsgHeartbeat || m.type === MessageType.MsgApp)) {
        // A stale leader (e.g. healed from a partition) would otherwise never learn the new
        // term, because with check-quorum/pre-vote we never raise our term to meet it.
        this.send(makeMessage({ type: MessageType.MsgAppResp, to: m.from }));
      } else if (m.type === MessageType.MsgPreVote) {
        // Tell a stale pre-candidate our term so it stops trying.
        this.send(makeMessage({ type: MessageType.MsgPreVoteResp, to: m.from, term: this.term, reject: true }));
      }
      return;
    }

    switch (m.type) {
      case MessageType.MsgHup:
        this.hup(this.preVote ? 'pre' : 'election');
        return;
      case MessageType.MsgVote:
      case MessageType.MsgPreVote: {
        const canVote = this.vote === m.from || (this.vote === NONE && this.lead === NONE) || (m.type === MessageType.MsgPreVote && m.term > this.term);
        const respType = m.type === MessageType.MsgVote ? MessageType.MsgVoteResp : MessageType.MsgPreVoteResp;
        if (canVote && this.raftLog.isUpToDate(m.index, m.logTerm)) {
          // Answer in the candidate's term so the (pre-)candidate counts it for that round.
          this.send(makeMessage({ type: respType, to: m.from, term: m.term }));
          if (m.type === MessageType.MsgVote) {
            this.electionElapsed = 0;
            this.vote = m.from;
          }
        } else {
          this.send(makeMessage({ type: respType, to: m.from, term: this.term, reject: true }));
        }
        return;
      }
      default:
        break;
    }
    switch (this.state) {
      case StateRole.Leader:
        this.stepLeader(m);
        return;
      case StateRole.Candidate:
      case StateRole.PreCandidate:
        this.stepCandidate(m);
        return;
      default:
        this.stepFollower(m);
    }
  }

  private appendEntries(es: Entry[]): boolean {
    const li = this.raftLog.lastIndex();
    let size = 0;
    for (let i = 0; i < es.length; i++) {
      const e = es[i] as Entry;
      e.term = this.term;
      e.index = li + 1 + i;
      size += entrySize(e);
    }
    if (this.maxUncommittedSize > 0 && this.uncommittedSize > 0 && this.uncommittedSize + size > this.maxUncommittedSize) return false;
    this.uncommittedSize += size;
    this.raftLog.append(es);
    // Our own copy counts toward the commit only once it is durable (selfDurable()): even a
    // single voter commits its new entries after their write lands, not here.
    return true;
  }

  /** Our own match: the log prefix known durable (never beyond the log). */
  private selfMatch(): number {
    return Math.min(this.raftLog.lastIndex(), this.raftLog.durableIndex());
  }

  /**
   * The driver reported a write landed (RawNode.persisted()): a leader's own copy of the
   * entries now durable counts toward the commit, and a new commit index goes out with the
   * next Ready.
   */
  selfDurable(): void {
    if (this.state !== StateRole.Leader) return;
    const self = this.prs.progress.get(this.id);
    if (self === undefined || !self.maybeUpdate(this.selfMatch())) return;
    if (this.maybeCommit()) {
      this.releasePendingReadIndexMessages();
      this.commitBcastPending = true;
    }
  }

  /**
   * Entries handed out as committed no longer count against the uncommitted limit (the driver
   * calls this once it has applied them). Only a leader counts; the no-op of a new term was
   * never counted, so the count stops at zero.
   */
  reduceUncommittedSize(bytes: number): void {
    if (this.state !== StateRole.Leader) return;
    this.uncommittedSize = Math.max(0, this.uncommittedSize - bytes);
  }

  private stepLeader(m: Message): void {
    switch (m.type) {
      case MessageType.MsgBeat:
        this.bcastHeartbeat();
        return;
      case MessageType.MsgCheckQuorum:
        this.checkQuorumActive();
        return;
      case MessageType.MsgProp: {
        assert(m.entries.length > 0, 'stepped empty MsgProp');
        if (!this.prs.progress.has(this.id)) throw new ProposalDroppedError('leaderNotMember');
        if (this.leadTransferee !== NONE) throw new ProposalDroppedError('leadershipTransfer');
        for (let i = 0; i < m.entries.length; i++) {
          const e = m.entries[i] as Entry;
          if (e.type !== EntryType.ConfChange) continue;
          if (this.pendingConfIndex > this.raftLog.applied) {
            // Only one configuration change may be in flight: neutralize this one.
            m.entries[i] = { term: 0, index: 0, type: EntryType.Normal, data: new Uint8Array(0) };
          } else {
            this.pendingConfIndex = this.raftLog.lastIndex() + i + 1;
          }
        }
        if (!this.appendEntries(m.entries)) throw new ProposalDroppedError('uncommittedSizeLimit');
        this.appendPending = true;
        return;
      }
      case MessageType.MsgReadIndex:
        this.leaderReadIndex(m);
        return;
      default:
        this.stepLeaderFromPeer(m);
    }
  }

  /** A check-quorum tick: step down unless a quorum was heard from since the last one. */
  private checkQuorumActive(): void {
    // The leader always counts itself as active.
    const self = this.prs.progress.get(this.id);
    if (self !== undefined) self.recentActive = true;
    if (!this.prs.quorumActive()) {
      this.becomeFollower(this.term, NONE);
      return;
    }
    for (const [id, pr] of this.prs.progress) {
      if (id === this.id) continue;
      pr.activeAtLastCheck = pr.recentActive;
      pr.recentActive = false;
    }
  }

  private leaderReadIndex(m: Message): void {
    if (this.prs.voterCount() <= 1 && this.prs.isVoter(this.id)) {
      this.respondToReadIndex(m, this.raftLog.committed);
      return;
    }
    // Until an entry of this term commits, our commit index may lag the true one.
    if (!this.committedEntryInCurrentTerm()) {
      this.pendingReadIndexMessages.push(m);
      return;
    }
    this.confirmReadIndex(m);
  }

  /**
   * Answers a read request once leadership is confirmed for it: at once when the asking
   * follower and this leader are a quorum by themselves, otherwise after a heartbeat round.
   *
   * Why the request itself may count as the follower's acknowledgement: a follower forwards
   * with its current term (send()), after every read in the request began. Equal to ours, it
   * proves the follower had not moved past our term by then, as a heartbeat answer would; we
   * lead that term now. A leader of a newer term that committed anything before those reads
   * began needed a quorum at its term before then, and every quorum includes us or the
   * follower when we two are one: terms never go back, so neither could be at our term
   * afterwards. Our commit index (an entry of our term is committed) covers every write
   * acknowledged before the reads began. The answer releases this request only: the earlier
   * ones in readOnly may have begun after the follower sent it.
   */
  private confirmReadIndex(m: Message): void {
    if (m.term === this.term && m.from !== this.id && this.prs.isVoter(m.from) && this.prs.isVoter(this.id) && this.prs.quorum() <= 2) {
      this.respondToReadIndex(m, this.raftLog.committed);
      return;
    }
    this.sendReadIndexHeartbeats(m);
  }

  /** Messages about one follower's progress; ignored when the sender is not in the configuration. */
  private stepLeaderFromPeer(m: Message): void {
    const pr = this.prs.progress.get(m.from);
    if (pr === undefined) return;
    switch (m.type) {
      case MessageType.MsgAppResp:
        this.handleAppendResponse(m, pr);
        return;
      case MessageType.MsgHeartbeatResp:
        this.handleHeartbeatResponse(m, pr);
        return;
      case MessageType.MsgSnapStatus:
        if (pr.state !== ProgressState.Snapshot) return;
        if (m.reject) pr.pendingSnapshot = 0;
        pr.becomeProbe();
        // Wait for a heartbeat response before probing: the follower is likely busy or gone.
        pr.probeSent = true;
        return;
      case MessageType.MsgUnreachable:
        if (pr.state === ProgressState.Replicate) pr.becomeProbe();
        return;
      case MessageType.MsgTransferLeader:
        this.handleTransferLeader(m, pr);
        return;
      default:
        return;
    }
  }

  private handleAppendResponse(m: Message, pr: Progress): void {
    // An ack beyond our log cannot come from a correct peer; believing it would corrupt
    // match/next and the commit computation.
    if (!m.reject && m.index > this.raftLog.lastIndex()) return;
    pr.recentActive = true;
    if (m.reject) {
      this.handleAppendRejection(m, pr);
      return;
    }
    const oldPaused = pr.isPaused();
    if (!pr.maybeUpdate(m.index)) return;
    if (pr.state === ProgressState.Probe) {
      pr.becomeReplicate();
    } else if (pr.state === ProgressState.Snapshot && pr.match >= pr.pendingSnapshot) {
      pr.becomeProbe();
      pr.becomeReplicate();
    } else if (pr.state === ProgressState.Replicate) {
      pr.inflights.freeLE(m.index);
    }
    if (this.maybeCommit()) {
      this.releasePendingReadIndexMessages();
      this.commitBcastPending = true;
    } else if (oldPaused) {
      this.sendAppend(m.from);
    }
    // Fill the window: the follower may be far behind.
    while (this.maybeSendAppend(m.from, false)) {
      /* keep sending */
    }
    if (m.from === this.leadTransferee && pr.match === this.raftLog.lastIndex()) this.sendTimeoutNow(m.from);
  }

  private handleAppendRejection(m: Message, pr: Progress): void {
    let nextProbeIdx = m.rejectHint;
    if (m.logTerm > 0) {
      // Skip every entry of ours whose term exceeds the follower's term at its hint: they
      // cannot match, so one round trip skips a whole term (fast backtracking).
      nextProbeIdx = this.raftLog.findConflictByTerm(m.rejectHint, m.logTerm);
    }
    if (pr.maybeDecrTo(m.index, nextProbeIdx)) {
      if (pr.state === ProgressState.Replicate) pr.becomeProbe();
      this.sendAppend(m.from);
    }
  }

  private handleHeartbeatResponse(m: Message, pr: Progress): void {
    pr.recentActive = true;
    pr.probeSent = false;
    // A full window may mean lost appends: let one more through so the pipe restarts.
    if (pr.state === ProgressState.Replicate && pr.inflights.full()) pr.inflights.freeFirstOne();
    if (pr.match < this.raftLog.lastIndex()) this.sendAppend(m.from);
    if (m.context === undefined || m.context.length === 0) return;
    const acks = this.readOnly.recvAck(m.from, m.context);
    if (acks === undefined) return;
    let voterAcks = 0;
    for (const id of acks) if (this.prs.isVoter(id)) voterAcks++;
    if (voterAcks < this.prs.quorum()) return;
    for (const rs of this.readOnly.advance(m.context)) this.respondToReadIndex(rs.req, rs.index);
  }

  private handleTransferLeader(m: Message, pr: Progress): void {
    if (pr.isLearner) return; // a learner cannot lead
    const transferee = m.from;
    if (this.leadTransferee !== NONE) {
      if (this.leadTransferee === transferee) return;
      this.abortLeaderTransfer();
    }
    if (transferee === this.id) return;
    this.electionElapsed = 0; // the transfer must finish within one election timeout
    this.leadTransferee = transferee;
    if (pr.match === this.raftLog.lastIndex()) this.sendTimeoutNow(transferee);
    else this.sendAppend(transferee);
  }

  private sendReadIndexHeartbeats(m: Message): void {
    this.readOnly.addRequest(this.raftLog.committed, m);
    // Our own ack counts toward the quorum.
    this.readOnly.recvAck(this.id, m.context);
    this.bcastHeartbeatWithCtx(m.context);
  }

  private releasePendingReadIndexMessages(): void {
    if (this.pendingReadIndexMessages.length === 0 || !this.committedEntryInCurrentTerm()) return;
    const msgs = this.pendingReadIndexMessages;
    this.pendingReadIndexMessages = [];
    for (const m of msgs) this.confirmReadIndex(m);
  }

  private respondToReadIndex(req: Message, index: number): void {
    if (req.from === NONE || req.from === this.id) {
      this.readStates.push({ index, requestCtx: req.context ?? new Uint8Array(0) });
      return;
    }
    const resp = makeMessage({ type: MessageType.MsgReadIndexResp, to: req.from, index });
    if (req.context !== undefined) resp.context = req.context;
    this.send(resp);
  }

  private stepCandidate(m: Message): void {
    const myVoteResp = this.state === StateRole.PreCandidate ? MessageType.MsgPreVoteResp : MessageType.MsgVoteResp;
    switch (m.type) {
      case MessageType.MsgProp:
        throw new ProposalDroppedError('noLeader');
      case MessageType.MsgApp:
        this.becomeFollower(m.term, m.from);
        this.handleAppendEntries(m);
        return;
      case MessageType.MsgHeartbeat:
        this.becomeFollower(m.term, m.from);
        this.handleHeartbeat(m);
        return;
      case MessageType.MsgSnap:
        this.becomeFollower(m.term, m.from);
        this.handleSnapshot(m);
        return;
      case MessageType.MsgReadIndex:
        throw new ProposalDroppedError('noLeader');
      default:
        break;
    }
    if (m.type !== myVoteResp) return;
    const res = this.poll(m.from, m.type, !m.reject);
    if (res === VoteResult.Won) {
      if (this.state === StateRole.PreCandidate) {
        this.campaign('election');
      } else {
        this.becomeLeader();
        this.bcastAppend();
      }
    } else if (res === VoteResult.Lost) {
      // A rejecting pre-vote response may carry a higher term; becomeFollower(term) keeps ours
      // unless step() already raised it.
      this.becomeFollower(this.term, NONE);
    }
  }

  private stepFollower(m: Message): void {
    switch (m.type) {
      case MessageType.MsgProp:
        if (this.lead === NONE) throw new ProposalDroppedError('noLeader');
        if (this.disableProposalForwarding) throw new ProposalDroppedError('forwardingDisabled');
        m.to = this.lead;
        this.send(m);
        return;
      case MessageType.MsgApp:
        this.electionElapsed = 0;
        this.lead = m.from;
        this.handleAppendEntries(m);
        return;
      case MessageType.MsgHeartbeat:
        this.electionElapsed = 0;
        this.lead = m.from;
        this.handleHeartbeat(m);
        return;
      case MessageType.MsgSnap:
        this.electionElapsed = 0;
        this.lead = m.from;
        this.handleSnapshot(m);
        return;
      case MessageType.MsgTransferLeader:
        if (this.lead === NONE) return;
        // Forward as is: `from` names the transferee and must survive the hop (send() would
        // overwrite it with our ID). Term 0 marks it as a request, like a forwarded proposal.
        this.msgs.push({ ...m, to: this.lead, term: 0 });
        return;
      case MessageType.MsgTimeoutNow:
        // The leader asked us to take over now: skip pre-vote and the lease check.
        if (this.promotable()) this.hup('transfer');
        return;
      case MessageType.MsgReadIndex:
        if (this.lead === NONE) throw new ProposalDroppedError('noLeader');
        m.to = this.lead;
        m.term = 0; // send() stamps ours (a request forwarded again carries another's)
        this.send(m);
        return;
      case MessageType.MsgReadIndexResp:
        this.readStates.push({ index: m.index, requestCtx: m.context ?? new Uint8Array(0) });
        return;
      default:
        return;
    }
  }

  private handleAppendEntries(m: Message): void {
    if (m.index < this.raftLog.committed) {
      this.send(makeMessage({ type: MessageType.MsgAppResp, to: m.from, index: this.raftLog.committed }));
      return;
    }
    const lastNew = this.raftLog.maybeAppend(m.index, m.logTerm, m.commit, m.entries);
    if (lastNew >= 0) {
      this.send(makeMessage({ type: MessageType.MsgAppResp, to: m.from, index: lastNew }));
      return;
    }
    // Reject with a hint: the largest index <= min(m.index, lastIndex) whose term is <= the
    // leader's term at m.index. The leader resumes from there instead of one entry at a time.
    const hintIndex = this.raftLog.findConflictByTerm(Math.min(m.index, this.raftLog.lastIndex()), m.logTerm);
    const hintTerm = this.raftLog.term(hintIndex) ?? 0;
    this.send(makeMessage({ type: MessageType.MsgAppResp, to: m.from, index: m.index, reject: true, rejectHint: hintIndex, logTerm: hintTerm }));
  }

  private handleHeartbeat(m: Message): void {
    this.raftLog.commitTo(m.commit);
    const resp = makeMessage({ type: MessageType.MsgHeartbeatResp, to: m.from });
    if (m.context !== undefined) resp.context = m.context;
    this.send(resp);
  }

  private handleSnapshot(m: Message): void {
    const s = m.snapshot;
    assert(s !== undefined, 'MsgSnap without snapshot');
    if (this.restore(s)) {
      this.send(makeMessage({ type: MessageType.MsgAppResp, to: m.from, index: this.raftLog.lastIndex() }));
    } else {
      this.send(makeMessage({ type: MessageType.MsgAppResp, to: m.from, index: this.raftLog.committed }));
    }
  }

  /** Installs a snapshot from the leader; false when it brings nothing new. */
  private restore(s: Snapshot): boolean {
    const meta = s.metadata;
    if (meta.index <= this.raftLog.committed) return false;
    if (this.state !== StateRole.Follower) {
      // Defensive: only followers restore; anything else means a confused sender.
      this.becomeFollower(this.term + 1, NONE);
      return false;
    }
    const cs = meta.confState;
    if (!cs.voters.includes(this.id) && !cs.learners.includes(this.id)) return false;
    if (this.raftLog.matchTerm(meta.index, meta.term)) {
      // We already hold the snapshot's last entry: just fast-forward the commit index.
      this.raftLog.commitTo(meta.index);
      return false;
    }
    this.raftLog.restore(s);
    this.restoreConf(cs);
    return true;
  }

  private restoreConf(cs: ConfState): void {
    this.prs.progress.clear();
    const last = this.raftLog.lastIndex();
    for (const id of cs.voters) this.prs.progress.set(id, new Progress(0, last + 1, this.prs.maxInflight, false));
    for (const id of cs.learners) this.prs.progress.set(id, new Progress(0, last + 1, this.prs.maxInflight, true));
    const self = this.prs.progress.get(this.id);
    this.isLearner = self?.isLearner ?? false;
    if (self) self.match = this.selfMatch();
  }

  private sendTimeoutNow(to: bigint): void {
    this.send(makeMessage({ type: MessageType.MsgTimeoutNow, to }));
  }

  abortLeaderTransfer(): void {
    this.leadTransferee = NONE;
  }

  // ---- configuration -------------------------------------------------------------------

  /** Applies a committed configuration change (called by the driver when it applies the
   *  entry) and returns the resulting configuration. */
  applyConfChange(cc: ConfChange): ConfState {
    // pendingConfIndex needs no update here: it is compared with the applied index, which the
    // driver advances past this entry.
    switch (cc.type) {
      case ConfChangeType.AddNode:
        this.addNode(cc.nodeId, false);
        break;
      case ConfChangeType.AddLearnerNode:
        this.addNode(cc.nodeId, true);
        break;
      case ConfChangeType.RemoveNode:
        this.removeNode(cc.nodeId);
        break;
      case ConfChangeType.UpdateNode:
        break;
      default:
        throw new Error(`unknown conf change type ${String((cc as ConfChange).type)}`);
    }
    return this.confState();
  }

  confState(): ConfState {
    return { voters: this.prs.voters(), learners: this.prs.learners() };
  }

  private addNode(id: bigint, isLearner: boolean): void {
    let pr = this.prs.progress.get(id);
    if (pr === undefined) {
      const last = this.raftLog.lastIndex();
      pr = new Progress(0, last + 1, this.prs.maxInflight, isLearner);
      if (id === this.id) pr.match = this.selfMatch();
      this.prs.progress.set(id, pr);
    } else {
      // AddNode on a learner promotes it; AddLearnerNode on a voter demotes it. Either way
      // only one voter enters or leaves the majority, like a single add or remove.
      pr.isLearner = isLearner;
    }
    if (id === this.id) this.isLearner = isLearner;
    if (isLearner && id === this.leadTransferee) this.abortLeaderTransfer();
    // Count the member as active so check-quorum does not trip before it had a chance to talk.
    pr.recentActive = true;
    this.afterConfChange();
  }

  private removeNode(id: bigint): void {
    this.prs.progress.delete(id);
    if (id === this.id) {
      this.removed = true;
      return;
    }
    if (this.state === StateRole.Leader && this.leadTransferee === id) this.abortLeaderTransfer();
    this.afterConfChange();
  }

  /** The quorum may have shrunk or a voter left: commit what now can be, and tell everyone. */
  private afterConfChange(): void {
    if (this.state !== StateRole.Leader || this.prs.voterCount() === 0) return;
    if (this.maybeCommit()) {
      this.releasePendingReadIndexMessages();
      this.commitBcastPending = true;
    }
    this.appendPending = true;
  }
}
