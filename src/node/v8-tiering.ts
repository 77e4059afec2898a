// How soon V8 optimizes a server process's JavaScript.
//
// V8 runs a function first in its interpreter, then in baseline code (Sparkplug), and gives it
// to its optimizing compiler (TurboFan) only once the function has used up a budget of executed
// bytecode a few times (`--interrupt-budget`, 66 KiB in Node 20's V8: a function of a few
// hundred bytecode bytes runs ~1,000-1,500 times first). A busy member gets there in a second;
// one serving 100 puts/s runs its whole one-put path (HTTP/2 parse, call decode, Raft step,
// log staging, apply, fan-out) in baseline code for the first 10-15 s, and a rarely used path
// stays there for good: on this path that costs ~0.2-0.4 ms per put (bench/RESULTS.md, "watch
// latency at 100 watchers ... the JavaScript on the cold path", session 16). A server wants its
// steady-state speed soon after start, so the member and its edge processes use an 8x smaller
// budget: a function is optimized after ~150-250 runs instead. The cost is TurboFan compiling
// more functions early (start-up code run a few hundred times included), on V8's compiler
// thread, and functions optimized on less type feedback (a later new shape deoptimizes them,
// and they are optimized again after another budget).
//
// A budget given on node's command line (`node --interrupt-budget=N`) or in NODE_OPTIONS is
// kept as given. V8 reads the flag whenever it refills a function's budget, so setting it after
// start-up takes effect from each function's next refill on.

import { setFlagsFromString } from 'node:v8';

/** The bytecode budget a function spends between two tier-up checks (V8's default: 67,584). */
export const INTERRUPT_BUDGET_BYTES = 8 * 1024;

/** Whether node's own options already set V8's interrupt budget. */
export function interruptBudgetGiven(execArgv: readonly string[], nodeOptions: string): boolean {
  return [...execArgv, ...nodeOptions.split(/\s+/)].some((arg) => /^--interrupt[-_]budget(=|$)/.test(arg));
}

/**
 * Sets V8's interrupt budget to INTERRUPT_BUDGET_BYTES for this process unless node's options
 * gave one; returns whether it did. Called first thing by a serving member and by each edge.
 */
export function tierUpSooner(execArgv: readonly string[] = process.execArgv, nodeOptions = process.env.NODE_OPTIONS ?? ''): boolean {
  if (interruptBudgetGiven(execArgv, nodeOptions)) return false;
  setFlagsFromString(`--interrupt-budget=${INTERRUPT_BUDGET_BYTES}`);
  return true;
}
