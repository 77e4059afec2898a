// The stable-storage side of the Raft log, as seen by the core, and an in-memory implementation.
//
// The core only ever reads storage synchronously; writes are the driver's business (it appends
// what Ready.entries hands it, after which the core treats those entries as stable). The log in
// storage is described by a "dummy" position: the index/term of the last entry covered by the
// latest snapshot (0/0 for a fresh log). Entries start right after it.
//
// Invariants (MemoryStorage): ents[0] is the dummy entry; ents[i].index === ents[0].index + i;
// snapshot.metadata.index === ents[0].index after applySnapshot/compact(createSnapshot keeps
// later entries, so it may be <=).

import type { ConfState, Entry, HardState, Snapshot } from './types.js';
import { EntryType, NONE, entrySize } from './types.js';
import { assert } from '../util/assert.js';

/** Requested index lies at or below the last compaction point. */
export class CompactedError extends Error {
  readonly code = 'RAFT_LOG_COMPACTED';
  constructor(what = 'requested index is unavailable due to compaction') {
    super(what);
  }
}

/** Requested index lies beyond the last stored entry. */
export class UnavailableError extends Error {
  readonly code = 'RAFT_LOG_UNAVAILABLE';
  constructor(what = 'requested entry at index is unavailable') {
    super(what);
  }
}

/** A snapshot older than the one already held was offered. */
export class SnapshotOutOfDateError extends Error {
  readonly code = 'RAFT_SNAPSHOT_OUT_OF_DATE';
  constructor(what = 'requested index is older than the existing snapshot') {
    super(what);
  }
}

export interface InitialState {
  hardState: HardState;
  confState: ConfState;
}

export interface Storage {
  initialState(): InitialState;
  /** Entries in [lo, hi), cut after maxSizeBytes (but at least one). Throws CompactedError when
   *  lo is at or below the compaction point, UnavailableError when the range is not stored. */
  entries(lo: number, hi: number, maxSizeBytes: number): Entry[];
  /** Term of entry i; valid for i in [firstIndex()-1, lastIndex()]. */
  term(i: number): number;
  firstIndex(): number;
  lastIndex(): number;
  snapshot(): Snapshot;
}

/** Keeps a prefix of `ents` whose summed size stays within maxSizeBytes; never empties it. */
export function limitSize(ents: Entry[], maxSizeBytes: number): Entry[] {
  if (ents.length <= 1) return ents;
  let size = entrySize(ents[0] as Entry);
  let n = 1;
  for (; n < ents.length; n++) {
    size += entrySize(ents[n] as Entry);
    if (size > maxSizeBytes) break;
  }
  return n === ents.length ? ents : ents.slice(0, n);
}

/** End (exclusive) of the longest run arr[start..end) within maxSizeBytes, at least one entry:
 *  lets callers copy only what they will send instead of slicing then trimming. */
export function limitEnd(arr: Entry[], start: number, end: number, maxSizeBytes: number): number {
  if (end - start <= 1) return end;
  let size = entrySize(arr[start] as Entry);
  let i = start + 1;
  for (; i < end; i++) {
    size += entrySize(arr[i] as Entry);
    if (size > maxSizeBytes) break;
  }
  return i;
}

export function emptyConfState(): ConfState {
  return { voters: [], learners: [] };
}

export function emptySnapshot(): Snapshot {
  return { metadata: { index: 0, term: 0, confState: emptyConfState() }, data: new Uint8Array(0) };
}

export class MemoryStorage implements Storage {
  private hardState: HardState = { term: 0, vote: NONE, commit: 0 };
  private snap: Snapshot = emptySnapshot();
  private ents: Entry[] = [{ term: 0, index: 0, type: EntryType.Normal, data: new Uint8Array(0) }];

  /** A fresh cluster's members can be given here; they act as a snapshot at index 0. */
  constructor(initial?: { confState?: ConfState }) {
    if (initial?.confState) this.snap.metadata.confState = cloneConfState(initial.confState);
  }

  initialState(): InitialState {
    return { hardState: { ...this.hardState }, confState: cloneConfState(this.snap.metadata.confState) };
  }

  setHardState(hs: HardState): void {
    this.hardState = { ...hs };
  }

  private get offset(): number {
    return (this.ents[0] as Entry).index;
  }

  entries(lo: number, hi: number, maxSizeBytes: number): Entry[] {
    const offset = this.offset;
    if (lo <= offset) throw new CompactedError();
    assert(hi <= this.lastIndex() + 1, `entries hi ${hi} beyond last index ${this.lastIndex()}`);
    if (this.ents.length === 1) throw new UnavailableError();
    return this.ents.slice(lo - offset, limitEnd(this.ents, lo - offset, hi - offset, maxSizeBytes));
  }

  term(i: number): number {
    const offset = this.offset;
    if (i < offset) throw new CompactedError();
    const e = this.ents[i - offset];
    if (e === undefined) throw new UnavailableError();
    return e.term;
  }

  firstIndex(): number {
    return this.offset + 1;
  }

  lastIndex(): number {
    return this.offset + this.ents.length - 1;
  }

  snapshot(): Snapshot {
    return this.snap;
  }

  /** Replaces the whole log with a snapshot received from the leader. */
  applySnapshot(snap: Snapshot): void {
    if (snap.metadata.index <= this.snap.metadata.index) throw new SnapshotOutOfDateError();
    this.snap = snap;
    this.ents = [{ term: snap.metadata.term, index: snap.metadata.index, type: EntryType.Normal, data: new Uint8Array(0) }];
  }

  /** Records application state at applied index i; the log is not trimmed (see compact). */
  createSnapshot(i: number, confState: ConfState, data: Uint8Array): Snapshot {
    if (i <= this.snap.metadata.index) throw new SnapshotOutOfDateError();
    assert(i <= this.lastIndex(), `snapshot ${i} is out of bound last index ${this.lastIndex()}`);
    const term = (this.ents[i - this.offset] as Entry).term;
    this.snap = { metadata: { index: i, term, confState: cloneConfState(confState) }, data };
    return this.snap;
  }

  /** Discards entries up to and including compactIndex; it must be covered by a snapshot
   *  the leader can send (callers create one first). */
  compact(compactIndex: number): void {
    const offset = this.offset;
    if (compactIndex <= offset) throw new CompactedError();
    assert(compactIndex <= this.lastIndex(), `compact ${compactIndex} is out of bound last index ${this.lastIndex()}`);
    const i = compactIndex - offset;
    const dummy = this.ents[i] as Entry;
    const rest = this.ents.slice(i + 1);
    this.ents = [{ term: dummy.term, index: dummy.index, type: EntryType.Normal, data: new Uint8Array(0) }, ...rest];
  }

  /** Appends entries, overwriting any conflicting suffix. Entries must be contiguous with the
   *  stored log (no gap after lastIndex). */
  append(entries: Entry[]): void {
    if (entries.length === 0) return;
    const first = this.firstIndex();
    const last = (entries[entries.length - 1] as Entry).index;
    if (last < first) return; // everything is already compacted away
    let ents = entries;
    const e0 = (entries[0] as Entry).index;
    if (first > e0) ents = entries.slice(first - e0);
    const pos = (ents[0] as Entry).index - this.offset;
    assert(pos <= this.ents.length, `missing log entries [last: ${this.lastIndex()}, append at: ${(ents[0] as Entry).index}]`);
    if (pos < this.ents.length) this.ents.length = pos;
    for (const e of ents) this.ents.push(e);
  }
}

export function cloneConfState(cs: ConfState): ConfState {
  return { voters: cs.voters.slice(), learners: cs.learners.slice() };
}
