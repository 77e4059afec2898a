// The ordered key map against a sorted array: point lookups, ordered range scans, inserts
// and deletes across chunk splits and merges.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { SortedKeyMap } from './sorted-key-map.js';

interface Item {
  keyText: string;
}

describe('SortedKeyMap', () => {
  it('matches a sorted array under random inserts, deletes and scans', () => {
    const key = fc.string({ unit: fc.constantFrom('a', 'b', 'c', '\u0000', '\u00ff'), maxLength: 4 });
    const op = fc.oneof(
      fc.record({ insert: fc.array(key, { maxLength: 700 }) }),
      fc.record({ remove: fc.nat() }),
      fc.record({ scan: fc.tuple(key, fc.option(key)) }),
    );
    fc.assert(
      fc.property(fc.array(op, { maxLength: 40 }), (ops) => {
        const map = new SortedKeyMap<Item>();
        let model: string[] = [];
        for (const o of ops) {
          if ('insert' in o) {
            for (const k of o.insert) {
              if (model.includes(k)) continue;
              map.insert({ keyText: k });
              model.push(k);
            }
            model.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
          } else if ('remove' in o) {
            // Remove a contiguous third of the keys, to exercise chunk removal too.
            if (model.length === 0) continue;
            const from = o.remove % model.length;
            const gone = model.slice(from, from + Math.ceil(model.length / 3));
            for (const k of gone) map.delete(k);
            model = model.filter((k) => !gone.includes(k));
          } else {
            const [start, end] = o.scan;
            const seen: string[] = [];
            map.forEachInRange(start, end ?? undefined, (item) => seen.push(item.keyText));
            expect(seen).toEqual(model.filter((k) => k >= start && (end === null || k < end)));
          }
          expect(map.size).toBe(model.length);
          const all: string[] = [];
          map.forEach((item) => {
            all.push(item.keyText);
          });
          expect(all).toEqual(model);
          for (const k of model) expect(map.get(k)?.keyText).toBe(k);
        }
      }),
      { numRuns: 60 },
    );
  });

  it('asserts on duplicate inserts and missing deletes', () => {
    const map = new SortedKeyMap<Item>();
    map.insert({ keyText: 'a' });
    expect(() => map.insert({ keyText: 'a' })).toThrow();
    expect(() => map.delete('b')).toThrow();
  });
});
