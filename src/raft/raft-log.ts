// The core's view of the log: stable entries (in Storage, written by the driver) followed by
// unstable ones (appended by the core, handed out in Ready.entries, not yet known durable).
//
//   storage:   [dummy] [firstIndex ... lastStable]
//   unstable:                     [offset ............ lastIndex]   (may overlap-then-replace)
//   snapshot:  an incoming snapshot not yet persisted replaces the whole log
//
// Several Readies may be in flight (the driver writes one while it builds the next): unstable
// entries below `offsetInProgress` were handed out for writing and are not handed out again;
// they stay unstable until their write is acknowledged (stableTo). Committed entries up to
// `applying` were handed out for applying; `applied` moves when the driver says so.
//
// Invariants: applied <= applying <= committed <= lastIndex(); offset <= offsetInProgress <=
// offset + entries.length; unstable.entries[i].index === offset + i; committed entries are
// never truncated (asserted). Term lookups return undefined instead of throwing so that the
// hot path never pays for exceptions.

import type { Entry, Snapshot } from './types.js';
import { CompactedError, limitEnd, limitSize, type Storage } from './storage.js';
import { assert } from '../util/assert.js';

export class Unstable {
  snapshot: Snapshot | undefined;
  entries: Entry[] = [];
  offset: number;
  /** Entries below this index were handed out in a Ready and are being written. */
  offsetInProgress: number;
  /** The snapshot was handed out in a Ready and is being written. */
  snapshotInProgress = false;

  constructor(offset: number) {
    this.offset = offset;
    this.offsetInProgress = offset;
  }

  /** Entries not yet handed out for writing. */
  entriesToWrite(): Entry[] {
    const start = this.offsetInProgress - this.offset;
    return start >= this.entries.length ? [] : this.entries.slice(start);
  }

  hasEntriesToWrite(): boolean {
    return this.offsetInProgress < this.offset + this.entries.length;
  }

  /** The snapshot, unless it was handed out already. */
  snapshotToWrite(): Snapshot | undefined {
    return this.snapshotInProgress ? undefined : this.snapshot;
  }

  /** Everything unstable now is handed out for writing (by one Ready). */
  acceptInProgress(): void {
    this.offsetInProgress = this.offset + this.entries.length;
    if (this.snapshot !== undefined) this.snapshotInProgress = true;
  }

  maybeFirstIndex(): number | undefined {
    return this.snapshot ? this.snapshot.metadata.index + 1 : undefined;
  }

  maybeLastIndex(): number | undefined {
    if (this.entries.length > 0) return this.offset + this.entries.length - 1;
    return this.snapshot ? this.snapshot.metadata.index : undefined;
  }

  maybeTerm(i: number): number | undefined {
    if (i < this.offset) {
      if (this.snapshot && this.snapshot.metadata.index === i) return this.snapshot.metadata.term;
      return undefined;
    }
    const e = this.entries[i - this.offset];
    return e?.term;
  }

  /** Entries up to (i, t) are now durable; drop them unless they were replaced meanwhile (a
   *  later write then acknowledges their replacements, and with them this prefix). */
  stableTo(i: number, t: number): void {
    const gt = this.maybeTerm(i);
    if (gt === t && i >= this.offset) {
      this.entries = this.entries.slice(i + 1 - this.offset);
      this.offset = i + 1;
      this.offsetInProgress = Math.max(this.offsetInProgress, this.offset);
    }
  }

  stableSnapTo(i: number): void {
    if (this.snapshot && this.snapshot.metadata.index === i) {
      this.snapshot = undefined;
      this.snapshotInProgress = false;
    }
  }

  restore(s: Snapshot): void {
    this.offset = s.metadata.index + 1;
    this.offsetInProgress = this.offset;
    this.entries = [];
    this.snapshot = s;
    this.snapshotInProgress = false;
  }

  truncateAndAppend(ents: Entry[]): void {
    const after = (ents[0] as Entry).index;
    const end = this.offset + this.entries.length;
    if (after === end) {
      for (const e of ents) this.entries.push(e);
    } else if (after <= this.offset) {
      // The new entries replace everything unstable (and shadow a stable suffix).
      this.offset = after;
      this.offsetInProgress = after;
      this.entries = ents.slice();
    } else {
      // Replaced entries that were being written are new entries now: hand them out again.
      this.entries.length = after - this.offset;
      this.offsetInProgress = Math.min(this.offsetInProgress, after);
      for (const e of ents) this.entries.push(e);
    }
  }

  slice(lo: number, hi: number, maxSize = Number.MAX_SAFE_INTEGER): Entry[] {
    assert(
      lo <= hi && lo >= this.offset && hi <= this.offset + this.entries.length,
      `unstable.slice[${lo},${hi}) out of [${this.offset},${this.offset + this.entries.length})`,
    );
    const start = lo - this.offset;
    return this.entries.slice(start, limitEnd(this.entries, start, hi - this.offset, maxSize));
  }
}

export class RaftLog {
  readonly storage: Storage;
  readonly unstable: Unstable;
  committed: number;
  applied: number;
  /** Highest committed index handed out for applying (applied <= applying <= committed). */
  applying: number;
  /** Cap on the bytes of committed entries handed out per Ready. */
  readonly maxNextEntsSize: number;

  constructor(storage: Storage, maxNextEntsSize: number) {
    this.storage = storage;
    this.maxNextEntsSize = maxNextEntsSize;
    const first = storage.firstIndex();
    const last = storage.lastIndex();
    this.unstable = new Unstable(last + 1);
    this.committed = first - 1;
    this.applied = first - 1;
    this.applying = first - 1;
  }

  firstIndex(): number {
    return this.unstable.maybeFirstIndex() ?? this.storage.firstIndex();
  }

  lastIndex(): number {
    return this.unstable.maybeLastIndex() ?? this.storage.lastIndex();
  }

  lastTerm(): number {
    const t = this.term(this.lastIndex());
    assert(t !== undefined, 'last term unavailable');
    return t;
  }

  /** Term of entry i, or undefined when i is compacted away or beyond the log. */
  term(i: number): number | undefined {
    const dummy = this.firstIndex() - 1;
    if (i < dummy || i > this.lastIndex()) return undefined;
    const t = this.unstable.maybeTerm(i);
    if (t !== undefined) return t;
    try {
      return this.storage.term(i);
    } catch (e) {
      if (e instanceof CompactedError) return undefined;
      throw e;
    }
  }

  matchTerm(i: number, t: number): boolean {
    return this.term(i) === t;
  }

  /** Follower side of MsgApp. Returns the new last index, or -1 when (index, logTerm) does not
   *  match our log (the leader must back up). */
  maybeAppend(index: number, logTerm: number, committed: number, ents: Entry[]): number {
    if (!this.matchTerm(index, logTerm)) return -1;
    const lastNew = index + ents.length;
    const ci = this.findConflict(ents);
    if (ci !== 0) {
      assert(ci > this.committed, `entry ${ci} conflicts with committed entry (committed ${this.committed})`);
      const offset = index + 1;
      this.append(ci === offset ? ents : ents.slice(ci - offset));
    }
    this.commitTo(Math.min(committed, lastNew));
    return lastNew;
  }

  append(ents: Entry[]): number {
    if (ents.length === 0) return this.lastIndex();
    const after = (ents[0] as Entry).index - 1;
    assert(after >= this.committed, `append after ${after} is below committed ${this.committed}`);
    this.unstable.truncateAndAppend(ents);
    return this.lastIndex();
  }

  /** First entry whose term differs from ours (or that is new), 0 if all already present. */
  findConflict(ents: Entry[]): number {
    for (const e of ents) {
      if (!this.matchTerm(e.index, e.term)) return e.index;
    }
    return 0;
  }

  /** Largest index <= index whose term is <= term: where a rejected probe should resume. The
   *  walk skips at most one term's worth of entries per round trip. */
  findConflictByTerm(index: number, term: number): number {
    const li = this.lastIndex();
    if (index > li) return index;
    for (;;) {
      const t = this.term(index);
      if (t === undefined || t <= term) return index;
      index--;
    }
  }

  /** Unstable entries not yet handed out for writing. */
  unstableEntries(): Entry[] {
    return this.unstable.entriesToWrite();
  }

  /**
   * The log is durable up to here: the entries below the unstable part were written and the
   * writes acknowledged (stableTo). While an incoming snapshot is not yet written, nothing of
   * the log it replaces counts: 0.
   */
  durableIndex(): number {
    return this.unstable.snapshot === undefined ? this.unstable.offset - 1 : 0;
  }

  /** Committed entries not yet handed out for applying exist. */
  hasNextEnts(): boolean {
    const off = Math.max(this.applying + 1, this.firstIndex());
    return this.committed + 1 > off;
  }

  /** Committed entries not yet handed out for applying, up to `upTo` (default: the commit; size-limited). */
  nextEnts(upTo: number = this.committed): Entry[] {
    const off = Math.max(this.applying + 1, this.firstIndex());
    if (upTo + 1 > off) {
      const ents = this.slice(off, upTo + 1, this.maxNextEntsSize);
      assert(ents !== undefined, 'unexpected compaction of unapplied entries');
      return ents;
    }
    return [];
  }

  snapshot(): Snapshot {
    return this.unstable.snapshot ?? this.storage.snapshot();
  }

  commitTo(toCommit: number): void {
    if (this.committed < toCommit) {
      assert(this.lastIndex() >= toCommit, `commit ${toCommit} out of range [lastIndex ${this.lastIndex()}]`);
      this.committed = toCommit;
    }
  }

  appliedTo(i: number): void {
    if (i === 0) return;
    assert(this.committed >= i && i >= this.applied, `applied ${i} out of range [prev applied ${this.applied}, committed ${this.committed}]`);
    this.applied = i;
    this.applying = Math.max(this.applying, i);
  }

  /** Committed entries up to i were handed out for applying. */
  acceptApplying(i: number): void {
    assert(i >= this.applying && i <= this.committed, `applying ${i} out of range [prev applying ${this.applying}, committed ${this.committed}]`);
    this.applying = i;
  }

  stableTo(i: number, t: number): void {
    this.unstable.stableTo(i, t);
  }

  stableSnapTo(i: number): void {
    this.unstable.stableSnapTo(i);
  }

  /** Entries from i to the end, size-limited; undefined when i is compacted. */
  entries(i: number, maxSize: number): Entry[] | undefined {
    if (i > this.lastIndex()) return [];
    return this.slice(i, this.lastIndex() + 1, maxSize);
  }

  /** Raft §5.4.1: is a candidate's log (lastIndex, lastTerm) at least as up to date as ours? */
  isUpToDate(lasti: number, term: number): boolean {
    const lt = this.lastTerm();
    return term > lt || (term === lt && lasti >= this.lastIndex());
  }

  /** Commits maxIndex only if it holds an entry of the current term (Raft §5.4.2). */
  maybeCommit(maxIndex: number, term: number): boolean {
    if (maxIndex > this.committed && this.term(maxIndex) === term) {
      this.commitTo(maxIndex);
      return true;
    }
    return false;
  }

  restore(s: Snapshot): void {
    this.committed = s.metadata.index;
    this.unstable.restore(s);
  }

  /** Entries in [lo, hi) across storage and unstable, size-limited; undefined if lo is
   *  compacted. */
  slice(lo: number, hi: number, maxSize: number): Entry[] | undefined {
    const fi = this.firstIndex();
    if (lo < fi) return undefined;
    assert(lo <= hi && hi <= this.lastIndex() + 1, `slice[${lo},${hi}) out of bound [${fi},${this.lastIndex()}]`);
    if (lo === hi) return [];
    let ents: Entry[] | undefined;
    const uoff = this.unstable.offset;
    if (lo < uoff) {
      let stored: Entry[];
      try {
        stored = this.storage.entries(lo, Math.min(hi, uoff), maxSize);
      } catch (e) {
        if (e instanceof CompactedError) return undefined;
        throw e;
      }
      // Storage stopped early because of the size limit: do not add unstable entries.
      if (stored.length < Math.min(hi, uoff) - lo) return stored;
      ents = stored;
    }
    if (hi > uoff) {
      if (ents === undefined) return this.unstable.slice(lo, hi, maxSize);
      ents = ents.concat(this.unstable.slice(uoff, hi, maxSize));
    }
    return limitSize(ents as Entry[], maxSize);
  }
}
