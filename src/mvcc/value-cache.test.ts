// ValueCache: records not used since the clock hand last passed go first (entries never hit leave
// in insertion order), the byte bound holds, capacity 0 caches nothing.
import { describe, expect, it } from 'vitest';
import type { KeyValue } from './types.js';
import { ValueCache } from './value-cache.js';

/** A value viewing into a record of `bytes` bytes (the charge counts the whole record). */
const rec = (bytes: number): KeyValue => ({
  key: Buffer.from('k'),
  createRevision: 1,
  modRevision: 1,
  version: 1,
  value: Buffer.allocUnsafeSlow(bytes).subarray(bytes - 1),
  lease: 0n,
});

describe('ValueCache', () => {
  it('evicts an entry not used since it was cached before one that was, to stay within its bytes', () => {
    const cache = new ValueCache<string>(3 * (100 + 200));
    cache.set('a', rec(100));
    cache.set('b', rec(100));
    cache.set('c', rec(100));
    expect(cache.get('a')).toBeDefined(); // a is now marked used
    cache.set('d', rec(100)); // evicts b: the hand spares a once
    expect(cache.get('b')).toBeUndefined();
    expect(['a', 'c', 'd'].every((k) => cache.get(k) !== undefined)).toBe(true);
    expect(cache.usedBytes).toBe(3 * 300);
  });

  it('replaces an entry in place, drops deleted ones, and never holds a record larger than itself', () => {
    const cache = new ValueCache<string>(1000);
    cache.set('a', rec(100));
    cache.set('a', rec(200));
    expect(cache.get('a')!.value.buffer.byteLength).toBe(200);
    expect(cache.usedBytes).toBe(400);
    cache.delete('a');
    expect(cache.size).toBe(0);
    expect(cache.usedBytes).toBe(0);
    cache.set('big', rec(900));
    expect(cache.get('big')).toBeUndefined();
  });

  it('refresh replaces the value of a cached entry and leaves a key not cached out', () => {
    const cache = new ValueCache<string>(2 * 300);
    cache.set('a', rec(100));
    cache.refresh('b', rec(100));
    expect(cache.get('b')).toBeUndefined();
    expect(cache.size).toBe(1);
    const written = rec(150);
    cache.refresh('a', written);
    expect(cache.get('a')).toBe(written);
    expect(cache.usedBytes).toBe(350);
    cache.refresh('a', rec(900)); // larger than the cache: the stale value must not stay
    expect(cache.get('a')).toBeUndefined();
    expect(cache.usedBytes).toBe(0);
  });

  it('with capacity 0 caches nothing', () => {
    const cache = new ValueCache<string>(0);
    cache.set('a', rec(1));
    expect(cache.size).toBe(0);
  });
});

describe('ValueCache eviction order', () => {
  it('spares the entries hit since the hand last passed and evicts the others oldest first', () => {
    const cache = new ValueCache<number>(10 * 300);
    for (let key = 0; key < 10; key++) cache.set(key, rec(100));
    for (const key of [1, 3, 5, 7, 9]) cache.get(key);
    for (let key = 10; key < 13; key++) cache.set(key, rec(100));
    expect([0, 2, 4].map((k) => cache.get(k))).toEqual([undefined, undefined, undefined]);
    expect([1, 3, 5, 6, 7, 8, 9, 10, 11, 12].every((k) => cache.get(k) !== undefined)).toBe(true);
  });

  it('keeps its byte bound across many inserts, in-place writes, hits and deletes', () => {
    const cache = new ValueCache<number>(10 * 300);
    for (let i = 0; i < 5000; i++) {
      const key = (i * 37) % 25;
      if (i % 3 === 0) cache.get(key);
      else if (i % 7 === 0) {
        cache.delete(key);
        expect(cache.get(key)).toBeUndefined();
      } else {
        cache.set(key, rec(100));
        expect(cache.get(key)).toBeDefined(); // the value just written is never the one evicted
      }
      expect(cache.usedBytes).toBe(cache.size * 300);
      expect(cache.size).toBeLessThanOrEqual(10);
    }
  });
});
