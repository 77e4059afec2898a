// KeyIndex: generations, reads at a revision, and compaction, after etcd's keyIndex rules.
import { describe, expect, it } from 'vitest';
import { KeyIndex } from './key-index.js';
import type { Revision } from './types.js';

const rev = (main: number, sub = 0): Revision => ({ main, sub });

/** puts 2, 4; delete 6; puts 8, 10; delete 12; puts 14, 14.1; delete 16 (etcd's test shape). */
function sample(): KeyIndex {
  const ki = new KeyIndex('foo');
  ki.put(rev(2));
  ki.put(rev(4));
  ki.tombstone(rev(6));
  ki.put(rev(8));
  ki.put(rev(10));
  ki.tombstone(rev(12));
  ki.put(rev(14));
  ki.put(rev(14, 1));
  ki.tombstone(rev(16));
  return ki;
}

describe('KeyIndex', () => {
  it('get finds the newest revision <= atRev in the generation alive at atRev', () => {
    const ki = sample();
    expect(ki.get(1)).toBeUndefined(); // before creation
    expect(ki.get(2)).toEqual({ rev: rev(2), created: 2, version: 1 });
    expect(ki.get(5)).toEqual({ rev: rev(4), created: 2, version: 2 });
    expect(ki.get(6)).toBeUndefined(); // deleted at 6
    expect(ki.get(7)).toBeUndefined();
    expect(ki.get(9)).toEqual({ rev: rev(8), created: 8, version: 1 });
    expect(ki.get(11)).toEqual({ rev: rev(10), created: 8, version: 2 });
    expect(ki.get(14)).toEqual({ rev: rev(14, 1), created: 14, version: 2 });
    expect(ki.get(16)).toBeUndefined();
    expect(ki.get(100)).toBeUndefined();
    expect(ki.isLive()).toBe(false);
    expect(ki.isEmpty()).toBe(false);
  });

  it('put after a delete starts a new generation at version 1', () => {
    const ki = sample();
    ki.put(rev(17));
    expect(ki.get(17)).toEqual({ rev: rev(17), created: 17, version: 1 });
  });

  it('asserts on a non-increasing put and on tombstoning a dead key', () => {
    const ki = sample();
    expect(() => ki.put(rev(16))).toThrow();
    expect(() => ki.tombstone(rev(20))).toThrow();
  });

  it('compact keeps the newest revision <= atRev of the generation alive at atRev', () => {
    const ki = sample();
    const obsolete: Revision[] = [];
    ki.compact(5, obsolete);
    expect(obsolete).toEqual([rev(2)]);
    expect(ki.generations[0]!.revisions()).toEqual([rev(4), rev(6)]);
    expect(ki.get(5)).toEqual({ rev: rev(4), created: 2, version: 2 });
  });

  it('compact drops a generation whose tombstone is <= atRev (reads there see no key)', () => {
    const ki = sample();
    const obsolete: Revision[] = [];
    ki.compact(6, obsolete);
    expect(obsolete).toEqual([rev(2), rev(4), rev(6)]);
    expect(ki.generations.map((g) => g.created)).toEqual([8, 14, 0]);
    expect(ki.get(6)).toBeUndefined();
    expect(ki.get(10)).toEqual({ rev: rev(10), created: 8, version: 2 });
  });

  it('compact keeps the version count of trimmed generations', () => {
    const ki = sample();
    const obsolete: Revision[] = [];
    ki.compact(15, obsolete);
    expect(obsolete).toEqual([rev(2), rev(4), rev(6), rev(8), rev(10), rev(12), rev(14)]);
    expect(ki.get(15)).toEqual({ rev: rev(14, 1), created: 14, version: 2 });
  });

  it('compact past the last tombstone empties the index (the store then drops the key)', () => {
    const ki = sample();
    const obsolete: Revision[] = [];
    ki.compact(16, obsolete);
    expect(obsolete).toHaveLength(9);
    expect(ki.isEmpty()).toBe(true);
  });

  it('compact of a live key always keeps its newest revision', () => {
    const ki = new KeyIndex('k');
    ki.put(rev(2));
    ki.put(rev(3));
    const obsolete: Revision[] = [];
    ki.compact(10, obsolete);
    expect(obsolete).toEqual([rev(2)]);
    expect(ki.get(10)).toEqual({ rev: rev(3), created: 2, version: 2 });
    expect(ki.isEmpty()).toBe(false);
  });

  it('restore rebuilds a trimmed generation from a record', () => {
    const ki = new KeyIndex('k');
    ki.restore(2, rev(9), 4);
    ki.put(rev(11));
    expect(ki.get(10)).toEqual({ rev: rev(9), created: 2, version: 4 });
    expect(ki.get(11)).toEqual({ rev: rev(11), created: 2, version: 5 });
  });
});

describe('KeyIndex packing', () => {
  it('keeps sub revisions exact once a generation mixes zero and non-zero subs', () => {
    const ki = new KeyIndex('k');
    ki.put(rev(2));
    ki.put(rev(3, 2));
    ki.put(rev(4));
    ki.tombstone(rev(5, 7));
    expect(ki.generations[0]!.revisions()).toEqual([rev(2), rev(3, 2), rev(4), rev(5, 7)]);
    expect(ki.get(3)).toEqual({ rev: rev(3, 2), created: 2, version: 2 });
    expect(() => ki.put(rev(5, 7))).toThrow();
  });

  it('keeps main revisions beyond 2^32 exact', () => {
    const big = 2 ** 52 + 1;
    const ki = new KeyIndex('k');
    ki.put(rev(big));
    ki.put(rev(big + 2, 1));
    expect(ki.get(big + 1)).toEqual({ rev: rev(big), created: big, version: 1 });
    expect(ki.get(big + 2)).toEqual({ rev: rev(big + 2, 1), created: big, version: 2 });
  });

  it('moves between one revision and several exactly (a single sub, growth, compaction back to one)', () => {
    const ki = new KeyIndex('k');
    ki.put(rev(7, 3)); // the only revision, with a sub
    expect(ki.generations[0]!.revisions()).toEqual([rev(7, 3)]);
    expect(ki.modSub).toBe(3);
    ki.put(rev(8));
    ki.put(rev(9, 1));
    expect(ki.generations[0]!.revisions()).toEqual([rev(7, 3), rev(8), rev(9, 1)]);
    const obsolete: Revision[] = [];
    ki.compact(9, obsolete);
    expect(obsolete).toEqual([rev(7, 3), rev(8)]);
    expect(ki.generations[0]!.revisions()).toEqual([rev(9, 1)]);
    expect(ki.get(9)).toEqual({ rev: rev(9, 1), created: 7, version: 3 });
    expect(ki.get(8)).toBeUndefined(); // compacted away: nothing at or below 8 is kept
    ki.tombstone(rev(10));
    ki.put(rev(11));
    expect(ki.generations.map((g) => g.revisions())).toEqual([[rev(9, 1), rev(10)], [rev(11)]]);
    expect(ki.get(11)).toEqual({ rev: rev(11), created: 11, version: 1 });
  });
});
