// The leader's picture of each member's log (Progress) and the quorum arithmetic over the
// current configuration (ProgressTracker). Single-member configuration changes only: there is
// one majority config (the voters); learners are tracked but never counted.
//
// Progress state machine for one follower:
//
//          rejected append / unreachable            snapshot needed
//   Replicate ---------------------------> Probe -------------------> Snapshot
//       ^                                   |  ^                         |
//       +------- append acknowledged -------+  +-- snapshot applied / ---+
//                                                  snapshot failed
//
//  Probe:     at most one append in flight per heartbeat interval (probeSent), to find `next`.
//  Replicate: optimistic streaming; `next` runs ahead of `match`, bounded by Inflights.
//  Snapshot:  nothing sent until the follower reports the snapshot applied (or failed).
//
// Invariants: match < next; in Replicate, every in-flight index is in (match, next).

import { assert } from '../util/assert.js';

export const ProgressState = { Probe: 0, Replicate: 1, Snapshot: 2 } as const;
export type ProgressState = (typeof ProgressState)[keyof typeof ProgressState];
const stateNames = ['Probe', 'Replicate', 'Snapshot'];
export function progressStateName(s: ProgressState): string {
  return stateNames[s] ?? `State(${s})`;
}

/** Ring buffer of the last indexes of in-flight MsgApps, used as a flow-control window. */
export class Inflights {
  private start = 0;
  count = 0;
  private readonly buffer: number[];
  readonly size: number;

  constructor(size: number) {
    assert(size > 0, 'inflight window must be positive');
    this.size = size;
    this.buffer = new Array<number>(size).fill(0);
  }

  add(index: number): void {
    assert(!this.full(), 'cannot add into a full inflights window');
    let next = this.start + this.count;
    if (next >= this.size) next -= this.size;
    this.buffer[next] = index;
    this.count++;
  }

  /** Frees every in-flight message whose last index is <= to. */
  freeLE(to: number): void {
    if (this.count === 0 || to < (this.buffer[this.start] as number)) return;
    let idx = this.start;
    let i = 0;
    for (; i < this.count; i++) {
      if (to < (this.buffer[idx] as number)) break;
      idx++;
      if (idx >= this.size) idx -= this.size;
    }
    this.count -= i;
    this.start = idx;
    if (this.count === 0) this.start = 0;
  }

  freeFirstOne(): void {
    if (this.count === 0) return;
    this.freeLE(this.buffer[this.start] as number);
  }

  full(): boolean {
    return this.count === this.size;
  }

  reset(): void {
    this.count = 0;
    this.start = 0;
  }
}

export class Progress {
  match: number;
  next: number;
  state: ProgressState = ProgressState.Probe;
  /** Index of the snapshot being sent while in Snapshot state. */
  pendingSnapshot = 0;
  /** Heard from since the last check-quorum round (also set on creation). */
  recentActive = false;
  /**
   * recentActive as it stood at the last check-quorum round. The round clears recentActive, and
   * a live peer sets it again only with its next answer, so recentActive alone reads "silent"
   * for up to a heartbeat after every round; with this a live peer always counts as heard.
   */
  activeAtLastCheck = false;
  /** In Probe state: an append was sent and we wait for an answer or the next heartbeat. */
  probeSent = false;
  readonly inflights: Inflights;
  isLearner: boolean;

  constructor(match: number, next: number, maxInflight: number, isLearner: boolean) {
    this.match = match;
    this.next = next;
    this.inflights = new Inflights(maxInflight);
    this.isLearner = isLearner;
  }

  private resetState(state: ProgressState): void {
    this.probeSent = false;
    this.pendingSnapshot = 0;
    this.state = state;
    this.inflights.reset();
  }

  becomeProbe(): void {
    if (this.state === ProgressState.Snapshot) {
      // Resume after the snapshot (if it was applied, match catches up on the next ack).
      const pending = this.pendingSnapshot;
      this.resetState(ProgressState.Probe);
      this.next = Math.max(this.match + 1, pending + 1);
    } else {
      this.resetState(ProgressState.Probe);
      this.next = this.match + 1;
    }
  }

  becomeReplicate(): void {
    this.resetState(ProgressState.Replicate);
    this.next = this.match + 1;
  }

  becomeSnapshot(snapshotIndex: number): void {
    this.resetState(ProgressState.Snapshot);
    this.pendingSnapshot = snapshotIndex;
  }

  /** An ack for index n arrived; returns whether match moved. */
  maybeUpdate(n: number): boolean {
    let updated = false;
    if (this.match < n) {
      this.match = n;
      updated = true;
      this.probeSent = false;
    }
    if (this.next < n + 1) this.next = n + 1;
    return updated;
  }

  optimisticUpdate(n: number): void {
    this.next = n + 1;
  }

  /** A rejection of the append at `rejected` arrived with the follower's hint; returns false
   *  when the rejection is stale (answers an older probe). */
  maybeDecrTo(rejected: number, matchHint: number): boolean {
    if (this.state === ProgressState.Replicate) {
      if (rejected <= this.match) return false;
      this.next = this.match + 1;
      return true;
    }
    if (this.next - 1 !== rejected) return false;
    this.next = Math.max(Math.min(rejected, matchHint + 1), 1);
    this.probeSent = false;
    return true;
  }

  isPaused(): boolean {
    switch (this.state) {
      case ProgressState.Probe:
        return this.probeSent;
      case ProgressState.Replicate:
        return this.inflights.full();
      default:
        return true;
    }
  }
}

export const VoteResult = { Pending: 0, Lost: 1, Won: 2 } as const;
export type VoteResult = (typeof VoteResult)[keyof typeof VoteResult];

/** Progress of every member plus the quorum rules over the voters. */
export class ProgressTracker {
  readonly progress = new Map<bigint, Progress>();
  readonly votes = new Map<bigint, boolean>();
  readonly maxInflight: number;
  /** Scratch space for committed(), reused so acks do not allocate. */
  private matchScratch: number[] = [];

  constructor(maxInflight: number) {
    this.maxInflight = maxInflight;
  }

  voterCount(): number {
    let n = 0;
    for (const pr of this.progress.values()) if (!pr.isLearner) n++;
    return n;
  }

  quorum(): number {
    return Math.floor(this.voterCount() / 2) + 1;
  }

  isVoter(id: bigint): boolean {
    const pr = this.progress.get(id);
    return pr !== undefined && !pr.isLearner;
  }

  voters(): bigint[] {
    const out: bigint[] = [];
    for (const [id, pr] of this.progress) if (!pr.isLearner) out.push(id);
    return out.sort(cmpBigint);
  }

  learners(): bigint[] {
    const out: bigint[] = [];
    for (const [id, pr] of this.progress) if (pr.isLearner) out.push(id);
    return out.sort(cmpBigint);
  }

  /** Largest index replicated on a majority of voters (0 with no voters). */
  committed(): number {
    const m = this.matchScratch;
    m.length = 0;
    for (const pr of this.progress.values()) if (!pr.isLearner) m.push(pr.match);
    if (m.length === 0) return 0;
    m.sort(descending);
    return m[Math.floor(m.length / 2)] as number;
  }

  /** Check-quorum: has a majority of voters been active recently? */
  quorumActive(): boolean {
    let active = 0;
    for (const pr of this.progress.values()) if (!pr.isLearner && pr.recentActive) active++;
    return active >= this.quorum();
  }

  resetVotes(): void {
    this.votes.clear();
  }

  recordVote(id: bigint, granted: boolean): void {
    if (!this.votes.has(id)) this.votes.set(id, granted);
  }

  tallyVotes(): { granted: number; rejected: number; result: VoteResult } {
    let granted = 0;
    let rejected = 0;
    let voters = 0;
    for (const [id, pr] of this.progress) {
      if (pr.isLearner) continue;
      voters++;
      const v = this.votes.get(id);
      if (v === true) granted++;
      else if (v === false) rejected++;
    }
    const q = Math.floor(voters / 2) + 1;
    let result: VoteResult = VoteResult.Pending;
    if (voters > 0 && granted >= q) result = VoteResult.Won;
    else if (voters === 0 || rejected > voters - q) result = VoteResult.Lost;
    return { granted, rejected, result };
  }
}

function descending(a: number, b: number): number {
  return b - a;
}

export function cmpBigint(a: bigint, b: bigint): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
