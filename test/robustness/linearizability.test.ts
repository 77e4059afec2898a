// The linearizability checker on hand-made histories: what it must accept (concurrent
// operations in either order, unknown outcomes taking effect or not) and what it must reject
// (a stale read, a lost acknowledged write, a compare-and-set that saw a value nobody wrote).

import { describe, expect, it } from 'vitest';
import type { Operation, Outcome, RegisterOp } from './history.js';
import { checkHistory, checkKey, describeVerdict } from './linearizability.js';

let nextId = 0;
function op(client: number, invokedMs: number, completedMs: number, o: RegisterOp, outcome: Outcome, key = 'k'): Operation {
  return { id: nextId++, client, member: 0, key, op: o, invokedMs, completedMs, outcome };
}
const ok = (value?: string | null): Outcome => ({ status: 'ok', value });
const unknown: Outcome = { status: 'unknown', error: 'deadline exceeded' };
const failed: Outcome = { status: 'failed', error: 'connection refused' };
const put = (value: string): RegisterOp => ({ kind: 'put', value });
const get: RegisterOp = { kind: 'get' };
const cas = (expected: string, value: string): RegisterOp => ({ kind: 'cas', expected, value });

describe('linearizability checker', () => {
  it('accepts a sequential history and concurrent operations in either order', () => {
    const history = [
      op(1, 0, 10, get, ok(null)),
      op(1, 20, 30, put('a'), ok()),
      op(2, 35, 60, put('b'), ok()),
      // Concurrent with put b: may see a or b; two readers see b then a would be wrong, see below.
      op(3, 40, 50, get, ok('a')),
      op(3, 55, 70, get, ok('b')),
      op(1, 80, 90, cas('b', 'c'), { status: 'ok', swapped: true }),
      op(2, 95, 99, cas('b', 'd'), { status: 'ok', swapped: false, value: 'c' }),
      op(1, 100, 110, get, ok('c')),
    ];
    const verdict = checkHistory(history);
    expect(verdict.linearizable, describeVerdict(verdict)).toBe(true);
  });

  it('rejects a stale read: a value read after a later write completed', () => {
    const history = [
      op(1, 0, 10, put('a'), ok()),
      op(1, 20, 30, put('b'), ok()),
      // Starts after put b finished, yet returns a: what a follower serving local state does.
      op(2, 40, 50, get, ok('a')),
    ];
    const verdict = checkKey('k', history);
    expect(verdict.linearizable).toBe(false);
    expect(verdict.stuckAt?.op).toEqual(get);
    expect(verdict.stuckAt?.outcome).toEqual(ok('a'));
  });

  it('rejects a lost write: an acknowledged put that a later read does not see', () => {
    const history = [op(1, 0, 10, put('a'), ok()), op(2, 20, 30, get, ok(null))];
    expect(checkKey('k', history).linearizable).toBe(false);
  });

  it('rejects reads that go back in time between two readers', () => {
    const history = [
      op(1, 0, 100, put('b'), ok()),
      op(9, -10, -5, put('a'), ok()),
      op(2, 10, 20, get, ok('b')),
      op(3, 30, 40, get, ok('a')), // after someone saw b, nobody may see a again
    ];
    expect(checkKey('k', history).linearizable).toBe(false);
  });

  it('rejects a compare-and-set outcome impossible in every order', () => {
    const history = [op(1, 0, 10, put('a'), ok()), op(2, 20, 30, cas('a', 'x'), { status: 'ok', swapped: false, value: 'a' })];
    expect(checkKey('k', history).linearizable).toBe(false);
  });

  it('an unknown write may take effect late, or never; a failed one never does', () => {
    const takesEffectLate = [op(1, 0, 10, put('a'), unknown), op(2, 500, 510, get, ok(null)), op(2, 600, 610, get, ok('a'))];
    expect(checkKey('k', takesEffectLate).linearizable).toBe(true);
    const never = [op(1, 0, 10, put('a'), unknown), op(2, 500, 510, get, ok(null))];
    expect(checkKey('k', never).linearizable).toBe(true);
    // But not before it was invoked.
    const tooEarly = [op(2, 0, 10, get, ok('a')), op(1, 20, 30, put('a'), unknown)];
    expect(checkKey('k', tooEarly).linearizable).toBe(false);
    // A definitely failed write that is then read: impossible.
    const failedButRead = [op(1, 0, 10, put('a'), failed), op(2, 20, 30, get, ok('a'))];
    expect(checkKey('k', failedButRead).linearizable).toBe(false);
  });

  it('checks keys independently and names the failing key', () => {
    const history = [op(1, 0, 10, put('a'), ok(), 'x'), op(2, 20, 30, get, ok('a'), 'x'), op(1, 0, 10, put('b'), ok(), 'y'), op(2, 20, 30, get, ok(null), 'y')];
    const verdict = checkHistory(history);
    expect(verdict.keys.map((k) => [k.key, k.linearizable])).toEqual([
      ['x', true],
      ['y', false],
    ]);
    expect(describeVerdict(verdict)).toMatch(/^y: NOT linearizable/m);
  });

  it('handles a long concurrent history (8 clients, 20,000 operations, unknown writes among them)', () => {
    // A simulated register with overlapping calls: each operation takes effect at a random point
    // inside its interval, so the history is linearizable by construction.
    let value: string | null = null;
    let seed = 7;
    const random = (): number => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed / 0x7fffffff;
    };
    const history: Operation[] = [];
    for (let i = 0; i < 20_000; i++) {
      const point = i * 10;
      const invokedMs = point - random() * 25;
      const completedMs = point + random() * 25;
      const r = random();
      if (r < 0.45) history.push(op(i % 8, invokedMs, completedMs, get, ok(value)));
      else if (r < 0.9) {
        value = `v${i}`;
        history.push(op(i % 8, invokedMs, completedMs, put(value), r < 0.88 ? ok() : unknown));
      } else if (value !== null && r < 0.95) {
        const swapped = `v${i}`;
        history.push(op(i % 8, invokedMs, completedMs, cas(value, swapped), { status: 'ok', swapped: true }));
        value = swapped;
      } else history.push(op(i % 8, invokedMs, completedMs, cas('nobody', `v${i}`), { status: 'ok', swapped: false, value }));
    }
    history.sort((a, b) => a.invokedMs - b.invokedMs);
    const verdict = checkKey('k', history);
    expect(verdict.linearizable).toBe(true);
    // The same history with one read made stale is caught.
    const lastGet = [...history].reverse().find((o) => o.op.kind === 'get' && o.outcome.status === 'ok' && o.outcome.value !== 'v0')!;
    lastGet.outcome = ok('v0');
    expect(checkKey('k', history).linearizable).toBe(false);
  });
});
