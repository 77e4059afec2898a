// KeyArena: key copies are exact, independent of the source, and never overlap each other.
import { describe, expect, it } from 'vitest';
import { KeyArena } from './key-arena.js';

describe('KeyArena', () => {
  it('copies keys across slab boundaries without overlap, and large keys on their own', () => {
    const arena = new KeyArena();
    const copies: { copy: Buffer; expected: Buffer }[] = [];
    for (let i = 0; i < 5000; i++) {
      const source = Buffer.alloc((i * 37) % 3000, i & 0xff);
      const copy = arena.copy(source);
      source.fill(0xee); // the copy must not share memory with the source
      copies.push({ copy, expected: Buffer.alloc(source.length, i & 0xff) });
    }
    for (const { copy, expected } of copies) expect(copy.equals(expected)).toBe(true);
    expect(arena.copy(Buffer.alloc(0)).length).toBe(0);
  });
});
