// The revision history of one key, as a list of generations (the model of etcd's keyIndex).
//
//   generations: [ g0: created c0, revs [r0 r1 ... t0] ]   t0 = tombstone (delete) revision
//                [ g1: created c1, revs [r5 r6 ... t1] ]
//                [ gN: created cN, revs [r9 ...] ]           last: live, or empty after a delete
//
// Invariants:
// - There is always at least one generation (the current, last one: the KeyIndex itself); only
//   it can be empty, and it is empty exactly when the key is currently deleted (or was never
//   written, for a fresh index). `closed` holds the others, oldest first, or is undefined when there are none.
// - Every closed generation ends with its tombstone revision.
// - Revisions strictly increase across the whole list ((main, sub) order).
// - `ver` of a generation = the version of its newest revision (writes since its creation);
//   after compaction trimmed older revisions away it still counts them.
// - `lease` is the lease of the newest revision while the key is live, else 0n.
//
// Memory: the index is what the store keeps per key (values stay on disk), and at millions of
// keys the cost that matters is not only bytes but the number of heap objects the garbage
// collector must mark on every full GC (measured: 3.7-4.4 s of marking per full GC at 2.35M
// keys with six objects per key). So a key costs two objects in the common case: its KeyIndex,
// which *is* its current generation (closed generations become objects of their own only after
// a delete), and its key text. Revisions are packed: the main part as one number while the
// generation has a single revision (the usual case: most keys are written once between
// compactions), else an array of numbers (exact: mains are safe integers); the sub parts in a
// parallel array only once some revision of the generation has a sub other than 0 (most writes
// are the only write of their request). The key's bytes are not kept: the latin1 text holds
// them exactly, and a Buffer is made from it when one is needed.

import { assert } from '../util/assert.js';
import type { Revision } from './types.js';

/** The main revisions of an empty generation (never mutated: push replaces it). */
const NO_REVISIONS: readonly number[] = Object.freeze([]);

export class Generation {
  /** Main revisions, ascending: a number when there is exactly one, else an array (empty, or
   * two and more). */
  protected mains: number | number[];
  /** Sub revisions, parallel to `mains`; undefined while every one of them is 0. */
  protected subs: number[] | undefined;

  /**
   * @param created main revision of the put that created this generation (0 while empty)
   * @param ver the version of the newest revision
   */
  constructor(
    public created: number,
    public ver: number,
    mains: number | number[] = NO_REVISIONS as number[],
    subs: number[] | undefined = undefined,
  ) {
    this.mains = mains;
    this.subs = subs;
  }

  get length(): number {
    const mains = this.mains;
    return typeof mains === 'number' ? 1 : mains.length;
  }

  mainAt(i: number): number {
    const mains = this.mains;
    return typeof mains === 'number' ? mains : mains[i]!;
  }

  subAt(i: number): number {
    return this.subs === undefined ? 0 : this.subs[i]!;
  }

  revisionAt(i: number): Revision {
    return { main: this.mainAt(i), sub: this.subAt(i) };
  }

  lastMain(): number {
    const mains = this.mains;
    return typeof mains === 'number' ? mains : mains[mains.length - 1]!;
  }

  push(main: number, sub: number): void {
    const mains = this.mains;
    if (typeof mains !== 'number' && mains.length === 0) {
      this.mains = main;
      this.subs = sub === 0 ? undefined : [sub];
      return;
    }
    // A two-element literal when growing from one: push() would reserve 17 more slots, and
    // most keys are written only a few times between compactions.
    if (typeof mains === 'number') this.mains = [mains, main];
    else mains.push(main);
    if (this.subs !== undefined) this.subs.push(sub);
    else if (sub !== 0) {
      this.subs = new Array<number>(this.length).fill(0);
      this.subs[this.length - 1] = sub;
    }
  }

  /** Drops the first `n` revisions (n < length). */
  dropFirst(n: number): void {
    if (n === 0) return;
    const mains = this.mains;
    assert(typeof mains !== 'number' && n < mains.length, 'key index: dropFirst past the newest revision');
    const rest = mains.slice(n);
    this.mains = rest.length === 1 ? rest[0]! : rest;
    if (this.subs !== undefined) this.subs = this.subs.slice(n);
  }

  /** Index of the newest revision whose main is <= atRev, or -1. Checks the newest first
   * (reads at the current revision), then binary-searches (long histories of hot keys). */
  lastAtOrBelow(atRev: number): number {
    const mains = this.mains;
    if (typeof mains === 'number') return mains <= atRev ? 0 : -1;
    let hi = mains.length - 1;
    if (hi < 0) return -1;
    if (mains[hi]! <= atRev) return hi;
    let lo = 0;
    // Invariant: mains[hi] > atRev; answer in [lo - 1, hi - 1].
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (mains[mid]! <= atRev) lo = mid + 1;
      else hi = mid;
    }
    return lo - 1;
  }

  /** Every revision, oldest first (tests and diagnostics). */
  revisions(): Revision[] {
    return Array.from({ length: this.length }, (_, i) => this.revisionAt(i));
  }

  /** Empties this generation and returns its revisions as a generation of their own. */
  protected detach(): Generation {
    const closed = new Generation(this.created, this.ver, this.mains, this.subs);
    this.created = 0;
    this.ver = 0;
    this.mains = NO_REVISIONS as number[];
    this.subs = undefined;
    return closed;
  }
}

export interface KeyIndexHit {
  rev: Revision;
  created: number;
  version: number;
}

/** A key's index entry. It is its own current (newest) generation: see "Memory" above. */
export class KeyIndex extends Generation {
  private closed: Generation[] | undefined = undefined;
  /** Lease of the live value; 0n when none or when the key is not live. */
  lease = 0n;

  /** `keyText` is the key in latin1: one char per byte, so string order = byte order. */
  constructor(readonly keyText: string) {
    super(0, 0);
  }

  /** Every generation, oldest first, the current (possibly empty) one last. */
  get generations(): readonly Generation[] {
    return this.closed === undefined ? [this] : [...this.closed, this];
  }

  isEmpty(): boolean {
    return this.closed === undefined && this.length === 0;
  }

  /** True when the newest generation is live (the key exists now). */
  isLive(): boolean {
    return this.length > 0;
  }

  // The live value's metadata; only meaningful while isLive().
  get modMain(): number {
    return this.lastMain();
  }
  get modSub(): number {
    return this.subAt(this.length - 1);
  }
  get createRevision(): number {
    return this.created;
  }
  get version(): number {
    return this.ver;
  }

  /** Records a put at `rev`; starts a new generation if the key is currently deleted. */
  put(rev: Revision): void {
    this.assertNewer(rev);
    if (this.length === 0) this.created = rev.main;
    this.push(rev.main, rev.sub);
    this.ver++;
  }

  /** Rebuilds the first generation from a persisted record whose older history was compacted
   * away: the record carries the generation's creation revision and its version. */
  restore(created: number, rev: Revision, version: number): void {
    assert(this.isEmpty(), 'key index: restore into a non-empty index');
    this.created = created;
    this.ver = version;
    this.push(rev.main, rev.sub);
  }

  /** Records a delete at `rev`: closes the live generation and opens an empty one. */
  tombstone(rev: Revision): void {
    assert(this.isLive(), 'key index: tombstone on a key that is not live');
    this.put(rev);
    const closed = this.detach();
    if (this.closed === undefined) this.closed = [closed];
    else this.closed.push(closed);
    this.lease = 0n;
  }

  /** The newest revision <= atRev in the generation alive at atRev, with that generation's
   * creation revision and the key's version at that revision; undefined if the key did not
   * exist at atRev (never created yet, or deleted at or before atRev). */
  get(atRev: number): KeyIndexHit | undefined {
    const g = this.findGeneration(atRev);
    if (g === undefined) return undefined;
    const n = g.lastAtOrBelow(atRev);
    assert(n >= 0, 'key index: generation found but no revision at or below it');
    return { rev: g.revisionAt(n), created: g.created, version: g.ver - (g.length - 1 - n) };
  }

  /**
   * Drops what no read at a revision >= atRev can need (etcd keyIndex.compact):
   * - generations whose tombstone is <= atRev go entirely (reads >= atRev see the key deleted);
   * - in the generation alive at atRev, revisions older than the newest one <= atRev go.
   * Every dropped revision is pushed to `obsolete` (all of them are <= atRev). The caller
   * removes the key from the store when isEmpty() afterwards.
   */
  compact(atRev: number, obsolete: Revision[]): void {
    const gens = this.generations;
    let genIdx = 0;
    while (genIdx < gens.length - 1) {
      const g = gens[genIdx]!;
      if (g.lastMain() > atRev) break;
      for (let i = 0; i < g.length; i++) obsolete.push(g.revisionAt(i));
      genIdx++;
    }
    const g = gens[genIdx]!;
    if (g.length > 0) {
      const keep = g.lastAtOrBelow(atRev);
      if (keep > 0) {
        for (let i = 0; i < keep; i++) obsolete.push(g.revisionAt(i));
        g.dropFirst(keep);
      }
      // etcd also drops a closed generation reduced to a single revision. By construction
      // that cannot happen here (the kept revision is <= atRev < tombstone, so two remain), but
      // mirror the rule so the index stays identical to etcd's if it ever does.
      if (g.length === 1 && genIdx !== gens.length - 1) {
        assert(g.mainAt(0) <= atRev, 'key index: compact would drop a revision above the compaction point');
        obsolete.push(g.revisionAt(0));
        genIdx++;
      }
    }
    if (genIdx > 0) {
      const left = gens.slice(genIdx, gens.length - 1);
      this.closed = left.length === 0 ? undefined : left;
    }
  }

  private assertNewer(rev: Revision): void {
    const gens = this.closed;
    const g: Generation | undefined = this.length > 0 ? this : gens?.[gens.length - 1];
    if (g === undefined) return;
    const main = g.lastMain();
    const newer = rev.main > main || (rev.main === main && rev.sub > g.subAt(g.length - 1));
    assert(newer, 'key index: put with a revision that is not newer');
  }

  private findGeneration(atRev: number): Generation | undefined {
    if (this.length > 0 && this.mainAt(0) <= atRev) return this;
    const gens = this.closed;
    if (gens === undefined) return undefined;
    for (let i = gens.length - 1; i >= 0; i--) {
      const closed = gens[i]!;
      // A closed generation whose tombstone is <= atRev means the key was deleted at atRev.
      if (closed.lastMain() <= atRev) return undefined;
      if (closed.mainAt(0) <= atRev) return closed;
    }
    return undefined;
  }
}
