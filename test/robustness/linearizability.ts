// A linearizability checker for register histories (get / put / compare-and-set per key), in
// the style of Wing & Gong with Lowe's memoization, as porcupine implements it: walk the
// invoke/complete events in time order; at each invocation try to linearize that operation
// (the model must accept its outcome in the current state), remembering every (set of
// linearized operations, state) pair already explored so no configuration is searched twice;
// meeting a completion whose operation is not linearized yet means backtracking.
//
// Keys are independent registers, so each key's sub-history is checked on its own (a history
// is linearizable iff each key's projection is). Operations that certainly failed, and reads
// that did not complete, have no effect and are left out. An operation with an unknown outcome
// may take effect at any time after its invocation, or never: its completion is at +infinity.
// An unknown write whose value nobody ever observed is left out too: values are unique, so
// linearizing it anywhere can only make states that nobody read; leaving it out (taking effect
// "never") is always at least as good a witness.

import type { Operation } from './history.js';

type State = string | null;

export interface KeyVerdict {
  readonly key: string;
  readonly linearizable: boolean;
  /** Operations checked (after dropping the ones without effect). */
  readonly operations: number;
  /** When not linearizable: the operation the search could not place, and the last value of
   * the longest linearized prefix found. */
  readonly stuckAt?: Operation;
  readonly stateBeforeStuck?: State;
}

export interface Verdict {
  readonly linearizable: boolean;
  readonly keys: KeyVerdict[];
}

/** The register model: the state after `operation`, or undefined if its outcome is impossible in `state`. */
function step(state: State, operation: Operation): State | undefined {
  const { op, outcome } = operation;
  if (op.kind === 'get') return outcome.status === 'ok' && outcome.value === state ? state : undefined;
  if (op.kind === 'put') return op.value;
  if (outcome.status !== 'ok') return state === op.expected ? op.value : state;
  if (outcome.swapped) return state === op.expected ? op.value : undefined;
  return state !== op.expected && state === outcome.value ? state : undefined;
}

function observedValues(operations: readonly Operation[]): Set<string> {
  const seen = new Set<string>();
  for (const { op, outcome } of operations) {
    if (outcome.status !== 'ok') continue;
    if (op.kind === 'get' && outcome.value != null) seen.add(outcome.value);
    if (op.kind === 'cas' && outcome.swapped) seen.add(op.expected);
    if (op.kind === 'cas' && !outcome.swapped && outcome.value != null) seen.add(outcome.value);
  }
  return seen;
}

/** The operations of one key that can matter, as the checker sees them. */
export function relevantOperations(operations: readonly Operation[]): Operation[] {
  const seen = observedValues(operations);
  return operations.filter(({ op, outcome }) => {
    if (outcome.status === 'failed') return false;
    if (op.kind === 'get') return outcome.status === 'ok';
    return outcome.status === 'ok' || seen.has(op.value);
  });
}

interface Entry {
  readonly op: number;
  readonly isCall: boolean;
  readonly time: number;
  prev: number;
  next: number;
}

/** Invocation and completion entries in time order (calls first on ties), as a linked list
 * whose node 0 is a sentinel head. */
function entryList(ops: readonly Operation[]): { entries: Entry[]; returnOf: Int32Array } {
  const raw: Array<Omit<Entry, 'prev' | 'next'>> = [];
  for (const [i, o] of ops.entries()) {
    raw.push({ op: i, isCall: true, time: o.invokedMs });
    raw.push({ op: i, isCall: false, time: o.outcome.status === 'ok' ? o.completedMs : Number.POSITIVE_INFINITY });
  }
  raw.sort((a, b) => a.time - b.time || Number(b.isCall) - Number(a.isCall));
  const entries: Entry[] = [{ op: -1, isCall: false, time: Number.NEGATIVE_INFINITY, prev: -1, next: raw.length > 0 ? 1 : -1 }];
  const returnOf = new Int32Array(ops.length);
  for (const [i, e] of raw.entries()) {
    entries.push({ ...e, prev: i, next: i + 2 <= raw.length ? i + 2 : -1 });
    if (!e.isCall) returnOf[e.op] = i + 1;
  }
  return { entries, returnOf };
}

/** Remembers explored (linearized set, state) configurations. */
class Configurations {
  private readonly seen = new Map<string, Uint32Array[]>();

  /** Adds the configuration; false if it was there already. */
  add(bits: Uint32Array, state: State): boolean {
    let hash = 2166136261;
    for (let i = 0; i < bits.length; i++) hash = Math.imul(hash ^ bits[i]!, 16777619);
    const key = `${hash >>> 0}|${state ?? '\u0000'}`;
    const bucket = this.seen.get(key);
    if (bucket === undefined) {
      this.seen.set(key, [bits]);
      return true;
    }
    if (bucket.some((other) => other.every((word, i) => word === bits[i]))) return false;
    bucket.push(bits);
    return true;
  }
}

/** Checks one key's operations (all on the same key) against the register model. */
export function checkKey(key: string, all: readonly Operation[]): KeyVerdict {
  const ops = relevantOperations(all);
  const { entries, returnOf } = entryList(ops);
  const lift = (call: number): void => {
    for (const i of [call, returnOf[entries[call]!.op]!]) {
      const e = entries[i]!;
      entries[e.prev]!.next = e.next;
      if (e.next !== -1) entries[e.next]!.prev = e.prev;
    }
  };
  const unlift = (call: number): void => {
    for (const i of [returnOf[entries[call]!.op]!, call]) {
      const e = entries[i]!;
      entries[e.prev]!.next = i;
      if (e.next !== -1) entries[e.next]!.prev = i;
    }
  };
  const seen = new Configurations();
  const stack: Array<{ call: number; state: State }> = [];
  let linearized = new Uint32Array(Math.ceil(ops.length / 32) + 1);
  let state: State = null;
  let cursor = entries[0]!.next;
  let deepest = { depth: -1, stuck: -1, state: null as State };
  while (entries[0]!.next !== -1) {
    const entry = entries[cursor]!;
    if (entry.isCall) {
      const next = step(state, ops[entry.op]!);
      if (next !== undefined) {
        const candidate = linearized.slice();
        candidate[entry.op >> 5]! |= 1 << (entry.op & 31);
        if (seen.add(candidate, next)) {
          stack.push({ call: cursor, state });
          state = next;
          linearized = candidate;
          lift(cursor);
          cursor = entries[0]!.next;
          continue;
        }
      }
      cursor = entry.next;
      continue;
    }
    // A completion whose operation is not linearized: this branch is dead, backtrack.
    if (stack.length > deepest.depth) deepest = { depth: stack.length, stuck: entry.op, state };
    const top = stack.pop();
    if (top === undefined) return { key, linearizable: false, operations: ops.length, stuckAt: ops[deepest.stuck], stateBeforeStuck: deepest.state };
    state = top.state;
    linearized = linearized.slice();
    const op = entries[top.call]!.op;
    linearized[op >> 5]! &= ~(1 << (op & 31));
    unlift(top.call);
    cursor = entries[top.call]!.next;
  }
  return { key, linearizable: true, operations: ops.length };
}

/** Checks every key's sub-history. */
export function checkHistory(operations: readonly Operation[]): Verdict {
  const byKey = new Map<string, Operation[]>();
  for (const o of operations) {
    const list = byKey.get(o.key) ?? [];
    list.push(o);
    byKey.set(o.key, list);
  }
  const keys = [...byKey].sort(([a], [b]) => a.localeCompare(b)).map(([key, ops]) => checkKey(key, ops));
  return { linearizable: keys.every((k) => k.linearizable), keys };
}

/** One line per key for test output; failures name the operation that could not be placed. */
export function describeVerdict(verdict: Verdict): string {
  return verdict.keys
    .map((k) => {
      if (k.linearizable) return `${k.key}: linearizable (${k.operations} operations)`;
      const o = k.stuckAt;
      const what = o === undefined ? '?' : `#${o.id} client ${o.client} on member ${o.member + 1}: ${JSON.stringify(o.op)} -> ${JSON.stringify(o.outcome)}`;
      return `${k.key}: NOT linearizable (${k.operations} operations); no placement for ${what} after state ${JSON.stringify(k.stateBeforeStuck)}`;
    })
    .join('\n');
}
