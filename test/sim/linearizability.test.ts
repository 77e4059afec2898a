// Sanity tests of the linearizability checker on hand-made register histories.

import { describe, expect, it } from 'vitest';
import { checkLinearizable, type KvOp } from './linearizability.js';

const op = (kind: 'put' | 'get', value: string | null, call: number, ret: number, client = 0): KvOp => ({ kind, key: 'k', value, call, ret, client });

describe('linearizability checker', () => {
  it('accepts a sequential history', () => {
    expect(checkLinearizable([op('put', 'a', 1, 2), op('get', 'a', 3, 4), op('put', 'b', 5, 6), op('get', 'b', 7, 8)]).ok).toBe(true);
  });
  it('accepts concurrent overlap in either order', () => {
    expect(checkLinearizable([op('put', 'a', 1, 10), op('get', null, 2, 3), op('get', 'a', 4, 5)]).ok).toBe(true);
  });
  it('rejects a stale read after a completed write', () => {
    expect(checkLinearizable([op('put', 'a', 1, 2), op('put', 'b', 3, 4), op('get', 'a', 5, 6)]).ok).toBe(false);
  });
  it('rejects a read of a value that returns to an older one', () => {
    expect(checkLinearizable([op('put', 'a', 1, 2), op('put', 'b', 3, 20), op('get', 'b', 4, 5), op('get', 'a', 6, 7)]).ok).toBe(false);
  });
  it('lets a pending write take effect or not', () => {
    expect(checkLinearizable([op('put', 'a', 1, Infinity), op('get', null, 2, 3), op('get', 'a', 4, 5)]).ok).toBe(true);
    expect(checkLinearizable([op('put', 'a', 1, Infinity), op('get', null, 2, 3)]).ok).toBe(true);
  });
});
