// The revision history of one key, as a list of generations (the model of etcd's keyIndex).
//
//   generations: [ g0: created c0, revs [r0 r1 ... t0] ]   t0 = tombstone (delete) revision
//                [ g1: created c1, revs [r5 r6 ... t1] ]
//                [ gN: created cN, revs [r9 ...] ]           last: live, or empty after a delete
//
// Invariants:
// - There is always at least one generation (`current`, the last); only it can be empty, and
//   it is empty exactly when the key is currently deleted (or was never written, for a fresh
//   index). `closed` holds the others, oldest first, or is undefined when there are none.
// - Every closed generation ends with its tombstone revision.
// - Revisions strictly increase across the whole list ((main, sub) order).
// - `ver` of a generation = the version of its newest revision (writes since its creation);
//   after compaction trimmed older revisions away it still counts them.
// - `lease` is the lease of the newest revision while the key is live, else 0n.
//
// Memory: the index is what the store keeps per key (values stay on disk), so revisions are
// packed: one number per revision for the main part (exact: mains are safe integers), and the
// sub parts in a parallel array only once some revision of the generation has a sub other
// than 0 (most writes are the only write of their request).

import { assert } from '../util/assert.js';
import type { Revision } from './types.js';

export class Generation {
  /** Sub revisions, parallel to `mains`; undefined while every one of them is 0. */
  private subs: number[] | undefined = undefined;

  /**
   * @param created main revision of the put that created this generation (0 while empty)
   * @param ver the version of the newest revision
   * @param mains main revisions, ascending
   */
  constructor(
    public created: number,
    public ver: number,
    private mains: number[],
  ) {}

  get length(): number {
    return this.mains.length;
  }

  mainAt(i: number): number {
    return this.mains[i]!;
  }

  subAt(i: number): number {
    return this.subs === undefined ? 0 : this.subs[i]!;
  }

  revisionAt(i: number): Revision {
    return { main: this.mains[i]!, sub: this.subAt(i) };
  }

  lastMain(): number {
    return this.mains[this.mains.length - 1]!;
  }

  push(main: number, sub: number): void {
    if (this.mains.length === 0) {
      // A one-element literal: push() on an empty array would reserve 17 slots, and most keys
      // are written only a few times between compactions.
      this.mains = [main];
      this.subs = sub === 0 ? undefined : [sub];
      return;
    }
    this.mains.push(main);
    if (this.subs !== undefined) this.subs.push(sub);
    else if (sub !== 0) {
      this.subs = new Array<number>(this.mains.length).fill(0);
      this.subs[this.mains.length - 1] = sub;
    }
  }

  /** Drops the first `n` revisions. */
  dropFirst(n: number): void {
    this.mains = this.mains.slice(n);
    if (this.subs !== undefined) this.subs = this.subs.slice(n);
  }

  /** Index of the newest revision whose main is <= atRev, or -1. Checks the newest first
   * (reads at the current revision), then binary-searches (long histories of hot keys). */
  lastAtOrBelow(atRev: number): number {
    const mains = this.mains;
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
    return this.mains.map((_, i) => this.revisionAt(i));
  }
}

export interface KeyIndexHit {
  rev: Revision;
  created: number;
  version: number;
}

export class KeyIndex {
  private closed: Generation[] | undefined = undefined;
  private current = new Generation(0, 0, []);
  /** Lease of the live value; 0n when none or when the key is not live. */
  lease = 0n;

  /** `keyText` is the key in latin1: one char per byte, so string order = byte order. */
  constructor(
    readonly key: Buffer,
    readonly keyText: string,
  ) {}

  /** Every generation, oldest first, the current (possibly empty) one last. */
  get generations(): readonly Generation[] {
    return this.closed === undefined ? [this.current] : [...this.closed, this.current];
  }

  isEmpty(): boolean {
    return this.closed === undefined && this.current.length === 0;
  }

  /** True when the newest generation is live (the key exists now). */
  isLive(): boolean {
    return this.current.length > 0;
  }

  // The live value's metadata; only meaningful while isLive().
  get modMain(): number {
    return this.current.lastMain();
  }
  get modSub(): number {
    return this.current.subAt(this.current.length - 1);
  }
  get createRevision(): number {
    return this.current.created;
  }
  get version(): number {
    return this.current.ver;
  }

  /** Records a put at `rev`; starts a new generation if the key is currently deleted. */
  put(rev: Revision): void {
    this.assertNewer(rev);
    const g = this.current;
    if (g.length === 0) g.created = rev.main;
    g.push(rev.main, rev.sub);
    g.ver++;
  }

  /** Rebuilds the first generation from a persisted record whose older history was compacted
   * away: the record carries the generation's creation revision and its version. */
  restore(created: number, rev: Revision, version: number): void {
    assert(this.isEmpty(), 'key index: restore into a non-empty index');
    this.current = new Generation(created, version, []);
    this.current.push(rev.main, rev.sub);
  }

  /** Records a delete at `rev`: closes the live generation and opens an empty one. */
  tombstone(rev: Revision): void {
    assert(this.isLive(), 'key index: tombstone on a key that is not live');
    this.put(rev);
    if (this.closed === undefined) this.closed = [this.current];
    else this.closed.push(this.current);
    this.current = new Generation(0, 0, []);
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
    const g = this.current.length > 0 ? this.current : gens?.[gens.length - 1];
    if (g === undefined) return;
    const main = g.lastMain();
    const newer = rev.main > main || (rev.main === main && rev.sub > g.subAt(g.length - 1));
    assert(newer, 'key index: put with a revision that is not newer');
  }

  private findGeneration(atRev: number): Generation | undefined {
    const g = this.current;
    if (g.length > 0 && g.mainAt(0) <= atRev) return g;
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
