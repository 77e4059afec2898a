// RawNode: the driver-facing surface of the Raft core. It wraps Raft, turns its accumulated
// effects into Ready batches and learns from advance() what the driver made durable/applied.
//
// Contract with the driver, in its simplest (synchronous) form, once per turn:
//   if (node.hasReady()) {
//     const rd = node.ready();
//     persist rd.hardState + rd.entries (+ rd.snapshot), fsync if rd.mustSync;
//     send rd.messages;            // only after persisting: a vote or ack must be durable first
//     apply rd.committedEntries;   // conf changes through applyConfChange()
//     node.advance();
//   }
// Pipelined form (Raft thesis 10.2.1; etcd-io/raft's asynchronous storage writes): ready()
// may be called again before the earlier Readies are done. Each Ready hands out only what no
// earlier one did (its entries and committed entries are "in progress"). The driver then
// reports, separately:
//   persisted()     the oldest Ready not yet reported is written (Readies are written, and
//                   reported, in the order they were handed out);
//   appliedTo(i)    committed entries up to i are applied. A driver that applies an entry only
//                   once it is durable here compares with durableIndex().
// advance() is persisted() plus appliedTo() of that Ready's committed entries.

import { Raft, ProposalDroppedError, type RaftConfig } from './raft.js';
import type { ProgressState, Progress } from './progress.js';
import {
  EntryType,
  MessageType,
  NONE,
  StateRole,
  encodeConfChange,
  entrySize,
  isLocalMessage,
  isResponseMessage,
  makeMessage,
  messageTypeName,
  type ConfChange,
  type ConfState,
  type Entry,
  type HardState,
  type Message,
  type Ready,
  type SoftState,
} from './types.js';
import { assert } from '../util/assert.js';

export interface ProgressStatus {
  match: number;
  next: number;
  state: ProgressState;
  isLearner: boolean;
  recentActive: boolean;
  /**
   * Heard from within the last one or two check-quorum rounds (election timeouts): what
   * "recently active" means to a caller, true all along for a peer that answers every heartbeat.
   */
  heardRecently: boolean;
  inflight: number;
}

export interface Status {
  id: bigint;
  term: number;
  vote: bigint;
  lead: bigint;
  role: StateRole;
  commit: number;
  applied: number;
  lastIndex: number;
  leadTransferee: bigint;
  removed: boolean;
  /** Filled on the leader only. */
  progress: Map<bigint, ProgressStatus>;
}

export class RawNode {
  readonly raft: Raft;
  private prevSoftState: SoftState;
  private prevHardState: HardState;
  /** What each Ready not yet reported persisted handed out for writing, oldest first. */
  private readonly writing: Array<{ lastEntry?: { index: number; term: number }; snapshotIndex?: number; lastCommitted?: number }> = [];
  /** Committed entries handed out and not yet reported applied, by Ready, oldest first. */
  private readonly applyingBatches: Array<{ lastCommitted: number; bytes: number }> = [];

  constructor(config: RaftConfig) {
    this.raft = new Raft(config);
    this.prevSoftState = this.raft.softState();
    // Compare against what storage holds, so a bootstrap's hard state reaches the driver.
    this.prevHardState = config.storage.initialState().hardState;
  }

  get id(): bigint {
    return this.raft.id;
  }

  tick(): void {
    this.raft.tick();
  }

  /** Campaigns now (tests and single-node bootstrap); normally elections come from tick(). */
  campaign(): void {
    this.raft.step(makeMessage({ type: MessageType.MsgHup, from: this.raft.id }));
  }

  /** Feeds a message from a peer. Local-only message types from the network are refused;
   *  responses from members we no longer know are ignored. */
  step(m: Message): void {
    validateMessage(m, this.raft.id);
    if (isResponseMessage(m.type) && !this.raft.prs.progress.has(m.from) && this.raft.state === StateRole.Leader) return;
    try {
      this.raft.step(m);
    } catch (e) {
      // A forwarded proposal that cannot be placed is dropped; its proposer will time out.
      if (!(e instanceof ProposalDroppedError)) throw e;
    }
  }

  /** Proposes an opaque command. Throws ProposalDroppedError when it cannot be accepted now. */
  propose(data: Uint8Array): void {
    this.raft.step(makeMessage({ type: MessageType.MsgProp, from: this.raft.id, entries: [{ term: 0, index: 0, type: EntryType.Normal, data }] }));
  }

  /** Proposes several commands at once (one MsgProp, appended together). */
  proposeBatch(datas: Uint8Array[]): void {
    if (datas.length === 0) return;
    const entries: Entry[] = datas.map((data) => ({ term: 0, index: 0, type: EntryType.Normal, data }));
    this.raft.step(makeMessage({ type: MessageType.MsgProp, from: this.raft.id, entries }));
  }

  proposeConfChange(cc: ConfChange): void {
    this.raft.step(
      makeMessage({ type: MessageType.MsgProp, from: this.raft.id, entries: [{ term: 0, index: 0, type: EntryType.ConfChange, data: encodeConfChange(cc) }] }),
    );
  }

  applyConfChange(cc: ConfChange): ConfState {
    return this.raft.applyConfChange(cc);
  }

  /** Asks for a linearizable read point; the answer arrives as a ReadState carrying ctx.
   *  ctx must be unique among outstanding requests. */
  readIndex(context: Uint8Array): void {
    this.raft.step(makeMessage({ type: MessageType.MsgReadIndex, from: this.raft.id, context }));
  }

  transferLeader(transferee: bigint): void {
    this.raft.step(makeMessage({ type: MessageType.MsgTransferLeader, from: transferee }));
  }

  /** Tells the leader a message to `id` could not be delivered (it drops to probing). */
  reportUnreachable(id: bigint): void {
    this.raft.step(makeMessage({ type: MessageType.MsgUnreachable, from: id }));
  }

  /** Tells the leader whether sending a snapshot to `id` finished or failed. */
  reportSnapshot(id: bigint, ok: boolean): void {
    this.raft.step(makeMessage({ type: MessageType.MsgSnapStatus, from: id, reject: !ok }));
  }

  /** Whether ready() has anything that no earlier Ready handed out. */
  hasReady(): boolean {
    const r = this.raft;
    if (r.msgs.length > 0 || r.readStates.length > 0 || r.hasPendingFlush()) return true;
    if (r.raftLog.unstable.hasEntriesToWrite() || r.raftLog.unstable.snapshotToWrite() !== undefined) return true;
    if (r.raftLog.hasNextEnts()) return true;
    if (r.lead !== this.prevSoftState.lead || r.state !== this.prevSoftState.role) return true;
    const hs = this.prevHardState;
    return r.term !== hs.term || r.vote !== hs.vote || r.raftLog.committed !== hs.commit;
  }

  ready(): Ready {
    const r = this.raft;
    const log = r.raftLog;
    const messages = r.readMessages();
    const entries = log.unstableEntries();
    const committedEntries = log.nextEnts();
    const rd: Ready = { entries, committedEntries, messages, readStates: r.readStates, mustSync: false };
    r.readStates = [];
    if (r.lead !== this.prevSoftState.lead || r.state !== this.prevSoftState.role) {
      rd.softState = r.softState();
      this.prevSoftState = rd.softState;
    }
    const hs = this.prevHardState;
    if (r.term !== hs.term || r.vote !== hs.vote || log.committed !== hs.commit) {
      rd.hardState = r.hardState();
      // Commit alone need not be synced: it can be recovered from the quorum after a crash.
      rd.mustSync = r.term !== hs.term || r.vote !== hs.vote;
      this.prevHardState = rd.hardState;
    }
    if (entries.length > 0) rd.mustSync = true;
    const snap = log.unstable.snapshotToWrite();
    if (snap !== undefined) {
      rd.snapshot = snap;
      rd.mustSync = true;
    }
    this.accept(rd);
    return rd;
  }

  /** Marks what a Ready hands out as in progress, so that no later Ready repeats it. */
  private accept(rd: Ready): void {
    const log = this.raft.raftLog;
    const written: (typeof this.writing)[number] = {};
    const lastEntry = rd.entries[rd.entries.length - 1];
    if (lastEntry !== undefined) written.lastEntry = { index: lastEntry.index, term: lastEntry.term };
    if (rd.snapshot !== undefined) written.snapshotIndex = rd.snapshot.metadata.index;
    const lastCommitted = rd.committedEntries[rd.committedEntries.length - 1];
    if (lastCommitted !== undefined) {
      written.lastCommitted = lastCommitted.index;
      this.acceptCommitted(rd.committedEntries);
    }
    log.unstable.acceptInProgress();
    this.writing.push(written);
  }

  /**
   * Takes the proposals a follower forwards to its leader out of the outbox, ahead of the next
   * Ready; every other message stays for it, in order. A forwarded MsgProp promises nothing
   * about this member's durable state (etcd-io/raft's asynchronous-write mode sends it in
   * Ready.Messages, not after the append), so the driver may send it while a write is in
   * flight. Only on a follower that knows its leader (a leader's outbox is flushed with its
   * appends, in the Ready; a candidate forwards nothing).
   */
  takeForwardedProposals(): Message[] {
    const r = this.raft;
    if (r.state !== StateRole.Follower || r.lead === NONE || !r.msgs.some((m) => m.type === MessageType.MsgProp)) return [];
    const proposals: Message[] = [];
    const rest: Message[] = [];
    for (const m of r.msgs) (m.type === MessageType.MsgProp ? proposals : rest).push(m);
    r.msgs = rest;
    return proposals;
  }

  /**
   * Hands out, ahead of the next Ready, the committed entries not handed out yet that are
   * durable here already (a commit learned while a write is in flight): the driver may apply
   * them without waiting for that write. The Ready still carries the new commit in its hard
   * state; it no longer repeats these entries.
   */
  takeDurableCommitted(): Entry[] {
    const log = this.raft.raftLog;
    if (log.unstable.snapshotToWrite() !== undefined) return [];
    const entries = log.nextEnts(Math.min(log.committed, log.durableIndex()));
    if (entries.length > 0) this.acceptCommitted(entries);
    return entries;
  }

  /** Committed entries handed out to be applied: no later Ready or take repeats them. */
  private acceptCommitted(entries: Entry[]): void {
    const last = (entries[entries.length - 1] as Entry).index;
    this.applyingBatches.push({ lastCommitted: last, bytes: entries.reduce((sum, e) => sum + entrySize(e), 0) });
    this.raft.raftLog.acceptApplying(last);
  }

  /** Readies handed out and not yet reported persisted. */
  get readiesInFlight(): number {
    return this.writing.length;
  }

  /** The log is durable up to this index (see RaftLog.durableIndex). */
  get durableIndex(): number {
    return this.raft.raftLog.durableIndex();
  }

  /** The oldest Ready not yet reported persisted is written (hard state, entries, snapshot). */
  persisted(): void {
    const written = this.writing.shift();
    assert(written !== undefined, 'persisted() without a Ready in flight');
    const log = this.raft.raftLog;
    if (written.snapshotIndex !== undefined) {
      log.stableSnapTo(written.snapshotIndex);
      // The driver restored application state from the snapshot along with persisting it;
      // committed entries handed out before it are covered by it.
      if (log.applied < written.snapshotIndex) log.appliedTo(written.snapshotIndex);
      this.dropApplyingBatches(written.snapshotIndex);
    }
    if (written.lastEntry !== undefined) log.stableTo(written.lastEntry.index, written.lastEntry.term);
    this.raft.selfDurable();
  }

  /** Committed entries up to `index` (handed out by earlier Readies) are applied. */
  appliedTo(index: number): void {
    const log = this.raft.raftLog;
    assert(index <= log.applying, `applied ${index} beyond the entries handed out (${log.applying})`);
    if (index <= log.applied) return;
    log.appliedTo(index);
    this.dropApplyingBatches(index);
  }

  /** Committed entries no longer count against the uncommitted limit once applied. */
  private dropApplyingBatches(index: number): void {
    while (this.applyingBatches.length > 0 && this.applyingBatches[0]!.lastCommitted <= index) {
      this.raft.reduceUncommittedSize(this.applyingBatches.shift()!.bytes);
    }
  }

  /** The synchronous contract: the oldest Ready is persisted and its committed entries applied. */
  advance(): void {
    const lastCommitted = this.writing[0]?.lastCommitted;
    this.persisted();
    if (lastCommitted !== undefined) this.appliedTo(lastCommitted);
  }

  status(): Status {
    const r = this.raft;
    const progress = new Map<bigint, ProgressStatus>();
    if (r.state === StateRole.Leader) {
      for (const [id, pr] of r.prs.progress) progress.set(id, progressStatus(pr));
    }
    return {
      id: r.id,
      term: r.term,
      vote: r.vote,
      lead: r.lead,
      role: r.state,
      commit: r.raftLog.committed,
      applied: r.raftLog.applied,
      lastIndex: r.raftLog.lastIndex(),
      leadTransferee: r.leadTransferee,
      removed: r.removed,
      progress,
    };
  }

  get isLeader(): boolean {
    return this.raft.state === StateRole.Leader;
  }

  get lead(): bigint {
    return this.raft.lead === NONE ? NONE : this.raft.lead;
  }
}

/** A peer message that must be refused before it touches any state. */
export class InvalidMessageError extends Error {
  readonly code = 'RAFT_INVALID_MESSAGE';
  constructor(what: string) {
    super(`raft: invalid message: ${what}`);
  }
}

const MAX_MESSAGE_TYPE = MessageType.MsgPreVoteResp;

/** Checks the shape of a message from the network: bad input gets a clear error and changes
 *  nothing (the core's own assertions are for bugs, not for peers). */
function validateMessage(m: Message, self: bigint): void {
  if (!Number.isInteger(m.type) || m.type < 0 || m.type > MAX_MESSAGE_TYPE) throw new InvalidMessageError(`unknown type ${String(m.type)}`);
  if (isLocalMessage(m.type)) throw new InvalidMessageError(`local-only type ${messageTypeName(m.type)} from the network`);
  if (m.to !== self) throw new InvalidMessageError(`addressed to ${m.to}, this node is ${self}`);
  if (m.from === NONE) throw new InvalidMessageError('sender is none');
  // Checked one by one: this runs for every peer message, so no temporary arrays.
  checkCount(m.term, 'term');
  checkCount(m.logTerm, 'logTerm');
  checkCount(m.index, 'index');
  checkCount(m.commit, 'commit');
  checkCount(m.rejectHint, 'rejectHint');
  if (!Array.isArray(m.entries)) throw new InvalidMessageError('entries is not an array');
  let prev = m.index;
  for (const e of m.entries) {
    if (!Number.isSafeInteger(e.term) || !Number.isSafeInteger(e.index) || !(e.data instanceof Uint8Array)) throw new InvalidMessageError('malformed entry');
    if (e.type !== EntryType.Normal && e.type !== EntryType.ConfChange) throw new InvalidMessageError(`unknown entry type ${String(e.type)}`);
    if (m.type === MessageType.MsgApp) {
      if (e.index !== prev + 1) throw new InvalidMessageError(`entries not contiguous after index ${prev}`);
      if (e.term < m.logTerm || e.term > m.term) throw new InvalidMessageError(`entry term ${e.term} outside [${m.logTerm}, ${m.term}]`);
      prev = e.index;
    }
  }
  if (m.type === MessageType.MsgProp && m.entries.length === 0) throw new InvalidMessageError('empty proposal');
  if (m.type === MessageType.MsgSnap && m.snapshot === undefined) throw new InvalidMessageError('MsgSnap without snapshot');
  if (m.term === 0 && m.type !== MessageType.MsgProp && m.type !== MessageType.MsgReadIndex && m.type !== MessageType.MsgTransferLeader) {
    throw new InvalidMessageError(`${messageTypeName(m.type)} without a term`);
  }
}

function checkCount(v: number, name: string): void {
  if (!Number.isSafeInteger(v) || v < 0) throw new InvalidMessageError(`${name} ${String(v)} is not a non-negative safe integer`);
}

function progressStatus(pr: Progress): ProgressStatus {
  return {
    match: pr.match,
    next: pr.next,
    state: pr.state,
    isLearner: pr.isLearner,
    recentActive: pr.recentActive,
    heardRecently: pr.recentActive || pr.activeAtLastCheck,
    inflight: pr.inflights.count,
  };
}
