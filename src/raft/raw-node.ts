// RawNode: the driver-facing surface of the Raft core. It wraps Raft, turns its accumulated
// effects into Ready batches and learns from advance() what the driver made durable/applied.
//
// Contract with the driver, once per turn:
//   if (node.hasReady()) {
//     const rd = node.ready();
//     persist rd.hardState + rd.entries (+ rd.snapshot), fsync if rd.mustSync;
//     send rd.messages;            // only after persisting: a vote or ack must be durable first
//     apply rd.committedEntries;   // conf changes through applyConfChange()
//     node.advance();
//   }
// Invariants: at most one Ready is outstanding (ready() twice without advance() is a bug);
// advance() marks exactly what the last Ready handed out as stable/applied.

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
  /** What the outstanding Ready handed out, remembered for advance(). */
  private outstanding: { lastEntry?: { index: number; term: number }; lastCommitted?: number; committedBytes?: number; snapshotIndex?: number } | undefined;

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

  /** Whether ready() has work. False while a Ready is outstanding: the driver may keep
   *  ticking and stepping during an asynchronous persist, but gets the next Ready only after
   *  advance(). */
  hasReady(): boolean {
    if (this.outstanding !== undefined) return false;
    const r = this.raft;
    if (r.msgs.length > 0 || r.readStates.length > 0 || r.hasPendingFlush()) return true;
    if (r.raftLog.unstable.entries.length > 0 || r.raftLog.unstable.snapshot !== undefined) return true;
    if (r.raftLog.hasNextEnts()) return true;
    if (r.lead !== this.prevSoftState.lead || r.state !== this.prevSoftState.role) return true;
    const hs = this.prevHardState;
    return r.term !== hs.term || r.vote !== hs.vote || r.raftLog.committed !== hs.commit;
  }

  ready(): Ready {
    assert(this.outstanding === undefined, 'ready() called twice without advance()');
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
    const snap = log.unstable.snapshot;
    if (snap !== undefined) {
      rd.snapshot = snap;
      rd.mustSync = true;
    }
    const out: NonNullable<RawNode['outstanding']> = {};
    const lastEntry = entries[entries.length - 1];
    if (lastEntry !== undefined) out.lastEntry = { index: lastEntry.index, term: lastEntry.term };
    const lastCommitted = committedEntries[committedEntries.length - 1];
    if (lastCommitted !== undefined) {
      out.lastCommitted = lastCommitted.index;
      out.committedBytes = committedEntries.reduce((sum, e) => sum + entrySize(e), 0);
    }
    if (snap !== undefined) out.snapshotIndex = snap.metadata.index;
    this.outstanding = out;
    return rd;
  }

  advance(): void {
    const out = this.outstanding;
    assert(out !== undefined, 'advance() without a Ready');
    this.outstanding = undefined;
    const log = this.raft.raftLog;
    if (out.snapshotIndex !== undefined) {
      log.stableSnapTo(out.snapshotIndex);
      // The driver restored application state from the snapshot along with persisting it.
      if (log.applied < out.snapshotIndex) log.applied = out.snapshotIndex;
    }
    if (out.lastCommitted !== undefined) log.appliedTo(out.lastCommitted);
    if (out.committedBytes !== undefined) this.raft.reduceUncommittedSize(out.committedBytes);
    if (out.lastEntry !== undefined) log.stableTo(out.lastEntry.index, out.lastEntry.term);
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
  return { match: pr.match, next: pr.next, state: pr.state, isLearner: pr.isLearner, recentActive: pr.recentActive, inflight: pr.inflights.count };
}
