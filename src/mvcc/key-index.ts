// The revision history of one key, as a list of generations (the model of etcd's keyIndex).
//
//   generations: [ g0: created c0, revs [r0 r1 ... t0] ]   t0 = tombstone (delete) revision
//                [ g1: created c1, revs [r5 r6 ... t1] ]
//                [ gN: created cN, revs [r9 ...] ]           last: live, or empty after a delete
//
// Invariants:
// - There is always at least one generation; only the last one can be empty, and it is empty
//   exactly when the key is currently deleted (or was never written, for a fresh index).
// - Every generation except the last ends with its tombstone revision.
// - Revisions strictly increase across the whole list ((main, sub) order).
// - `ver` of a generation = the version of its newest revision (writes since its creation);
//   after compaction trimmed older revisions away it still counts them.
// - `liveKv` is the KeyValue of the newest revision when the key is live, else undefined. The
//   store keeps it here so that reads at the current revision never touch the disk.

import { assert } from '../util/assert.js';
import { compareRevisions } from './revision.js';
import type { KeyValue, Revision } from './types.js';

export interface Generation {
  /** Main revision of the put that created this generation. */
  created: number;
  ver: number;
  revs: Revision[];
}

export interface KeyIndexHit {
  rev: Revision;
  created: number;
  version: number;
}

export class KeyIndex {
  generations: Generation[] = [{ created: 0, ver: 0, revs: [] }];
  liveKv: KeyValue | undefined = undefined;
  private modified: Revision = { main: 0, sub: 0 };

  /** `keyText` is the key in latin1: one char per byte, so string order = byte order. */
  constructor(
    readonly key: Buffer,
    readonly keyText: string,
  ) {}

  isEmpty(): boolean {
    return this.generations.length === 1 && this.current().revs.length === 0;
  }

  /** True when the newest generation is live (the key exists now). */
  isLive(): boolean {
    return this.current().revs.length > 0;
  }

  /** Records a put at `rev`; starts a new generation if the key is currently deleted. */
  put(rev: Revision): void {
    assert(compareRevisions(rev, this.modified) > 0, 'key index: put with a revision that is not newer');
    const g = this.current();
    if (g.revs.length === 0) {
      g.created = rev.main;
      // A one-element literal: push() on an empty array would reserve 16 slots, and most keys
      // are written only a few times between compactions.
      g.revs = [rev];
    } else {
      g.revs.push(rev);
    }
    g.ver++;
    this.modified = rev;
  }

  /** Rebuilds the first generation from a persisted record whose older history was compacted
   * away: the record carries the generation's creation revision and its version. */
  restore(created: number, rev: Revision, version: number): void {
    assert(this.isEmpty(), 'key index: restore into a non-empty index');
    const g = this.current();
    g.created = created;
    g.ver = version;
    g.revs = [rev];
    this.modified = rev;
  }

  /** Records a delete at `rev`: closes the live generation and opens an empty one. */
  tombstone(rev: Revision): void {
    assert(this.isLive(), 'key index: tombstone on a key that is not live');
    this.put(rev);
    this.generations.push({ created: 0, ver: 0, revs: [] });
  }

  /** The newest revision <= atRev in the generation alive at atRev, with that generation's
   * creation revision and the key's version at that revision; undefined if the key did not
   * exist at atRev (never created yet, or deleted at or before atRev). */
  get(atRev: number): KeyIndexHit | undefined {
    const g = this.findGeneration(atRev);
    if (g === undefined) return undefined;
    const n = lastAtOrBelow(g.revs, atRev);
    assert(n >= 0, 'key index: generation found but no revision at or below it');
    return { rev: g.revs[n]!, created: g.created, version: g.ver - (g.revs.length - 1 - n) };
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
      const revs = gens[genIdx]!.revs;
      if (revs[revs.length - 1]!.main > atRev) break;
      for (const r of revs) obsolete.push(r);
      genIdx++;
    }
    const g = gens[genIdx]!;
    if (g.revs.length > 0) {
      const keep = lastAtOrBelow(g.revs, atRev);
      if (keep > 0) {
        for (let i = 0; i < keep; i++) obsolete.push(g.revs[i]!);
        g.revs = g.revs.slice(keep);
      }
      // etcd also drops a closed generation reduced to a single revision. By construction
      // that cannot happen here (the kept revision is <= atRev < tombstone, so two remain), but
      // mirror the rule so the index stays identical to etcd's if it ever does.
      if (g.revs.length === 1 && genIdx !== gens.length - 1) {
        assert(g.revs[0]!.main <= atRev, 'key index: compact would drop a revision above the compaction point');
        obsolete.push(g.revs[0]!);
        genIdx++;
      }
    }
    if (genIdx > 0) this.generations = gens.slice(genIdx);
  }

  private current(): Generation {
    return this.generations[this.generations.length - 1]!;
  }

  private findGeneration(atRev: number): Generation | undefined {
    const gens = this.generations;
    const last = gens.length - 1;
    for (let i = last; i >= 0; i--) {
      const g = gens[i]!;
      if (g.revs.length === 0) continue;
      // A closed generation whose tombstone is <= atRev means the key was deleted at atRev.
      if (i !== last && g.revs[g.revs.length - 1]!.main <= atRev) return undefined;
      if (g.revs[0]!.main <= atRev) return g;
    }
    return undefined;
  }
}

/** Index of the newest revision whose main is <= atRev, or -1. Checks the newest first (reads
 * at the current revision), then binary-searches (long histories of hot keys). */
function lastAtOrBelow(revs: Revision[], atRev: number): number {
  let hi = revs.length - 1;
  if (hi < 0) return -1;
  if (revs[hi]!.main <= atRev) return hi;
  let lo = 0;
  // Invariant: revs[hi].main > atRev; answer in [lo - 1, hi - 1].
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (revs[mid]!.main <= atRev) lo = mid + 1;
    else hi = mid;
  }
  return lo - 1;
}
