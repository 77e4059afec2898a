// Unit tests of the core's log view: conflicts, backtracking hints, unstable/stable handover.

import { describe, expect, it } from 'vitest';
import { RaftLog } from './raft-log.js';
import { MemoryStorage } from './storage.js';
import { EntryType, type Entry } from './types.js';

const e = (index: number, term: number): Entry => ({ index, term, type: EntryType.Normal, data: new Uint8Array(0) });
const terms = (l: RaftLog): number[] => (l.slice(l.firstIndex(), l.lastIndex() + 1, 1e9) ?? []).map((x) => x.term);

describe('RaftLog', () => {
  it('maybeAppend rejects a mismatch and truncates a conflicting suffix', () => {
    const l = new RaftLog(new MemoryStorage(), 1e9);
    l.append([e(1, 1), e(2, 2), e(3, 2)]);
    expect(l.maybeAppend(3, 3, 0, [e(4, 3)])).toBe(-1); // term at 3 is 2, not 3
    expect(l.maybeAppend(1, 1, 2, [e(2, 3)])).toBe(2);
    expect(terms(l)).toEqual([1, 3]);
    expect(l.committed).toBe(2);
    // Re-sending entries we already have changes nothing.
    expect(l.maybeAppend(0, 0, 2, [e(1, 1), e(2, 3)])).toBe(2);
    expect(terms(l)).toEqual([1, 3]);
  });

  it('findConflictByTerm skips whole terms', () => {
    const l = new RaftLog(new MemoryStorage(), 1e9);
    l.append([e(1, 1), e(2, 1), e(3, 4), e(4, 4), e(5, 5), e(6, 5)]);
    expect(l.findConflictByTerm(6, 3)).toBe(2);
    expect(l.findConflictByTerm(6, 4)).toBe(4);
    expect(l.findConflictByTerm(6, 9)).toBe(6);
    expect(l.findConflictByTerm(9, 1)).toBe(9);
  });

  it('stableTo moves entries out of unstable only if the term still matches', () => {
    const st = new MemoryStorage();
    const l = new RaftLog(st, 1e9);
    l.append([e(1, 1), e(2, 1)]);
    st.append(l.unstableEntries());
    l.append([e(2, 2)]); // replaced before the driver reported it stable
    l.stableTo(2, 1); // stale report: entry 2 now has term 2, nothing becomes stable
    expect(l.unstableEntries().map((x) => x.term)).toEqual([1, 2]);
    st.append(l.unstableEntries());
    l.stableTo(2, 2);
    expect(l.unstableEntries()).toEqual([]);
    expect(terms(l)).toEqual([1, 2]);
  });

  it('nextEnts hands out committed but unapplied entries, bounded by size', () => {
    const l = new RaftLog(new MemoryStorage(), 60);
    l.append([1, 2, 3, 4].map((i) => ({ ...e(i, 1), data: new Uint8Array(20) })));
    l.commitTo(3);
    expect(l.nextEnts().map((x) => x.index)).toEqual([1]);
    l.appliedTo(1);
    expect(l.hasNextEnts()).toBe(true);
    l.appliedTo(3);
    expect(l.hasNextEnts()).toBe(false);
  });

  it('isUpToDate compares last term first, then length (§5.4.1)', () => {
    const l = new RaftLog(new MemoryStorage(), 1e9);
    l.append([e(1, 1), e(2, 2)]);
    expect(l.isUpToDate(1, 3)).toBe(true);
    expect(l.isUpToDate(5, 1)).toBe(false);
    expect(l.isUpToDate(2, 2)).toBe(true);
    expect(l.isUpToDate(1, 2)).toBe(false);
  });
});
