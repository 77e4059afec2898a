import { describe, expect, it } from 'vitest';
import { SlabRoom } from './slab-room.js';

/** Room for `data`, filled with it, as the log fills room with an entry's stored form. */
function place(slabs: SlabRoom, data: Uint8Array): Buffer {
  const room = slabs.take(data.length);
  room.set(data);
  return room;
}

describe('SlabRoom', () => {
  it('hands out small room side by side in one slab, never in the buffer the bytes came from', () => {
    const slabs = new SlabRoom(1024);
    const pool = new Uint8Array(8192).fill(7);
    const a = place(slabs, pool.subarray(0, 100));
    const b = place(slabs, new Uint8Array([1, 2, 3]));
    expect(a.buffer).not.toBe(pool.buffer);
    expect(a.buffer).toBe(b.buffer);
    expect(a.buffer.byteLength).toBe(1024);
    expect([...b]).toEqual([1, 2, 3]);
    expect(a.every((byte) => byte === 7)).toBe(true);
    pool.fill(0); // the copies do not change with the original
    expect(a[0]).toBe(7);
  });

  it('starts a new slab when the current one is full, without touching earlier room', () => {
    const slabs = new SlabRoom(256);
    const first = place(slabs, new Uint8Array(60).fill(1));
    for (let i = 0; i < 4; i++) place(slabs, new Uint8Array(60).fill(2));
    const later = place(slabs, new Uint8Array(60).fill(3));
    expect(later.buffer).not.toBe(first.buffer);
    expect(first.every((byte) => byte === 1)).toBe(true);
    expect(later.every((byte) => byte === 3)).toBe(true);
  });

  it('gives a request over a quarter slab its own buffer of exactly its size', () => {
    const slabs = new SlabRoom(1024);
    const shared = new Uint8Array(4096).fill(8);
    const big = place(slabs, shared.subarray(100, 400));
    expect(big.buffer.byteLength).toBe(300);
    expect(big.every((byte) => byte === 8)).toBe(true);
    expect(slabs.take(0).byteLength).toBe(0);
  });
});
