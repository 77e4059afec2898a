// An ordered map from keys (latin1 strings) to items, for the MVCC key index.
//
// Why this shape: the store needs O(1)-ish point lookups (every put and single-key get) and
// ordered scans from a start key (range, deleteRange, compare with range_end), plus inserts
// and deletes that stay cheap at millions of keys. A plain Map gives the lookups; ordering
// lives in a "chunked sorted list": a list of sorted chunks of at most CHUNK_MAX items with
// each chunk's last key kept in a parallel array. Finding a position is two binary searches
// (over chunk ends, then inside a chunk), and an insert or delete moves at most CHUNK_MAX
// pointers inside one chunk instead of shifting an array of n. This is much less code than a
// balanced tree or B-tree with the same practical costs, and arrays scan fast.
//
// Keys are latin1 strings: one UTF-16 unit per byte, so JS string comparison (< and >) is
// exactly bytewise order (etcd's bytes.Compare), and Map hashing needs no Buffer conversions.
//
// Invariants: every chunk is non-empty and sorted; chunks are in order and disjoint;
// chunkEnds[i] is the last key of chunks[i]; the Map holds exactly the items of the chunks.

import { assert } from '../util/assert.js';

const CHUNK_MAX = 512;

export interface KeyedItem {
  readonly keyText: string;
}

export class SortedKeyMap<T extends KeyedItem> {
  private readonly byKey = new Map<string, T>();
  private chunks: T[][] = [];
  private chunkEnds: string[] = [];

  get size(): number {
    return this.byKey.size;
  }

  get(keyText: string): T | undefined {
    return this.byKey.get(keyText);
  }

  insert(item: T): void {
    const key = item.keyText;
    // One hash lookup, not two (has + set): the Map grew by one unless the key was there.
    const before = this.byKey.size;
    this.byKey.set(key, item);
    assert(this.byKey.size === before + 1, 'sorted key map: duplicate insert');
    if (this.chunks.length === 0) {
      this.chunks.push([item]);
      this.chunkEnds.push(key);
      return;
    }
    let ci = this.chunkFor(key);
    if (ci === this.chunks.length) ci--; // beyond every key: append to the last chunk
    const chunk = this.chunks[ci]!;
    const pos = lowerBound(chunk, key);
    chunk.splice(pos, 0, item);
    if (pos === chunk.length - 1) this.chunkEnds[ci] = key;
    if (chunk.length > CHUNK_MAX) {
      const upper = chunk.splice(chunk.length >>> 1);
      this.chunks.splice(ci + 1, 0, upper);
      this.chunkEnds.splice(ci, 1, chunk[chunk.length - 1]!.keyText, upper[upper.length - 1]!.keyText);
    }
  }

  delete(keyText: string): void {
    assert(this.byKey.delete(keyText), 'sorted key map: delete of a missing key');
    const ci = this.chunkFor(keyText);
    const chunk = this.chunks[ci];
    assert(chunk !== undefined, 'sorted key map: chunk missing');
    const pos = lowerBound(chunk, keyText);
    assert(chunk[pos]?.keyText === keyText, 'sorted key map: key missing from its chunk');
    chunk.splice(pos, 1);
    if (chunk.length === 0) {
      this.chunks.splice(ci, 1);
      this.chunkEnds.splice(ci, 1);
    } else if (pos === chunk.length) {
      this.chunkEnds[ci] = chunk[pos - 1]!.keyText;
    }
  }

  /** Calls fn for every item with start <= key < end, in key order; end undefined = no upper
   * bound. fn must not insert or delete. */
  forEachInRange(start: string, end: string | undefined, fn: (item: T) => void): void {
    const chunks = this.chunks;
    let ci = this.chunkFor(start);
    if (ci === chunks.length) return;
    let pos = lowerBound(chunks[ci]!, start);
    for (; ci < chunks.length; ci++, pos = 0) {
      const chunk = chunks[ci]!;
      for (; pos < chunk.length; pos++) {
        const item = chunk[pos]!;
        if (end !== undefined && item.keyText >= end) return;
        fn(item);
      }
    }
  }

  /** Every item in key order. */
  forEach(fn: (item: T) => void): void {
    for (const chunk of this.chunks) for (const item of chunk) fn(item);
  }

  /** Index of the first chunk whose last key is >= key (chunks.length if none). */
  private chunkFor(key: string): number {
    const ends = this.chunkEnds;
    let lo = 0;
    let hi = ends.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (ends[mid]! < key) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }
}

function lowerBound<T extends KeyedItem>(chunk: T[], key: string): number {
  let lo = 0;
  let hi = chunk.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (chunk[mid]!.keyText < key) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}
