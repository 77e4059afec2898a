import { describe, expect, it } from 'vitest';
import { SlabCopier } from './slab-copier.js';

describe('SlabCopier', () => {
  it('copies small payloads side by side into one slab, never into the original buffer', () => {
    const copier = new SlabCopier(1024);
    const pool = new Uint8Array(8192).fill(7);
    const a = copier.copy(pool.subarray(0, 100));
    const b = copier.copy(new Uint8Array([1, 2, 3]));
    expect(a.buffer).not.toBe(pool.buffer);
    expect(a.buffer).toBe(b.buffer);
    expect(a.buffer.byteLength).toBe(1024);
    expect([...b]).toEqual([1, 2, 3]);
    expect(a.every((byte) => byte === 7)).toBe(true);
    pool.fill(0); // the copies do not change with the original
    expect(a[0]).toBe(7);
  });

  it('starts a new slab when the current one is full, without touching earlier copies', () => {
    const copier = new SlabCopier(256);
    const first = copier.copy(new Uint8Array(60).fill(1));
    for (let i = 0; i < 4; i++) copier.copy(new Uint8Array(60).fill(2));
    const later = copier.copy(new Uint8Array(60).fill(3));
    expect(later.buffer).not.toBe(first.buffer);
    expect(first.every((byte) => byte === 1)).toBe(true);
    expect(later.every((byte) => byte === 3)).toBe(true);
  });

  it('gives a payload over a quarter slab its own buffer of exactly its size, copying only views', () => {
    const copier = new SlabCopier(1024);
    const whole = new Uint8Array(300).fill(9);
    expect(copier.copy(whole)).toBe(whole); // already its own buffer: nothing else to free
    const shared = new Uint8Array(4096).fill(8);
    const big = copier.copy(shared.subarray(100, 400));
    expect(big.buffer.byteLength).toBe(300);
    expect(big.every((byte) => byte === 8)).toBe(true);
    expect(copier.copy(new Uint8Array(0)).byteLength).toBe(0);
  });
});
