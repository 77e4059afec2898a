// ValueCache: least recently used records go first, the byte bound holds, capacity 0 caches nothing.
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
  it('evicts the least recently used entries to stay within its bytes', () => {
    const cache = new ValueCache<string>(3 * (100 + 200));
    cache.set('a', rec(100));
    cache.set('b', rec(100));
    cache.set('c', rec(100));
    expect(cache.get('a')).toBeDefined(); // a is now the newest
    cache.set('d', rec(100)); // evicts b, the least recently used
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

  it('with capacity 0 caches nothing', () => {
    const cache = new ValueCache<string>(0);
    cache.set('a', rec(1));
    expect(cache.size).toBe(0);
  });
});

describe('ValueCache eviction order', () => {
  it('keeps evicting the least recently used across many inserts, hits and deletes', () => {
    const cache = new ValueCache<number>(10 * 300);
    const model: number[] = []; // least recently used first
    for (let i = 0; i < 2000; i++) {
      const key = (i * 37) % 25;
      if (i % 3 === 0 && cache.get(key) !== undefined) {
        model.splice(model.indexOf(key), 1);
        model.push(key);
        continue;
      }
      if (i % 7 === 0) {
        cache.delete(key);
        if (model.includes(key)) model.splice(model.indexOf(key), 1);
        continue;
      }
      cache.set(key, rec(100));
      if (model.includes(key)) model.splice(model.indexOf(key), 1);
      model.push(key);
      if (model.length > 10) model.shift();
      expect(cache.size).toBe(model.length);
    }
    for (const key of model) expect(cache.get(key)).toBeDefined();
  });
});
