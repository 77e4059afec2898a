import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { interruptBudgetGiven } from './v8-tiering.js';

const moduleUrl = new URL('./v8-tiering.ts', import.meta.url).href;
const dir = mkdtempSync(join(tmpdir(), 'v8-tiering-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/**
 * Runs a small function once per loop turn (as a member runs its one-put path at a low rate) in
 * a fresh node process, with or without tierUpSooner() first, and returns after how many runs
 * V8 decided to optimize it with TurboFan (null: not within `runs`). Counts runs, not time.
 */
function runsUntilOptimized(callTierUpSooner: boolean, runs: number): number | null {
  const script = join(dir, `child-${callTierUpSooner}.mjs`);
  writeFileSync(
    script,
    `const { tierUpSooner } = await import(${JSON.stringify(moduleUrl)});
if (${callTierUpSooner}) tierUpSooner([], '');
// Parsed by V8 at run time, so no transpiler sees the natives syntax.
const status = new Function('f', 'return %GetOptimizationStatus(f)');
// Optimized, or marked for (concurrent) optimization, or being optimized: the tier-up decision.
// (When the optimized code is installed depends on the compiler thread, not on the runs.)
const TIERING_UP = (1 << 4) | (1 << 8) | (1 << 9) | (1 << 10);
function work(o) {
  let s = 0;
  for (const k of Object.keys(o)) s += o[k].length;
  return { s, t: o.a + o.b };
}
let n = 0;
const step = () => {
  work({ a: 'x'.repeat(n % 7), b: 'yy', c: 'zzz' });
  n++;
  if ((status(work) & TIERING_UP) !== 0) return console.log(JSON.stringify({ optimizedAfter: n }));
  if (n >= ${runs}) return console.log(JSON.stringify({ optimizedAfter: null }));
  setImmediate(step);
};
step();
`,
  );
  const child = spawnSync(process.execPath, ['--import', 'tsx', '--allow-natives-syntax', script], { encoding: 'utf8', timeout: 60_000 });
  expect(child.status, child.stderr).toBe(0);
  const last = child.stdout.trim().split('\n').pop() ?? '';
  return (JSON.parse(last) as { optimizedAfter: number | null }).optimizedAfter;
}

describe('tierUpSooner', () => {
  it('makes V8 optimize a function run once per loop turn after a few hundred runs, where its default waits over 700', () => {
    // V8's default budget: ~1,200 runs of this function (bench/RESULTS.md, session 16).
    expect(runsUntilOptimized(false, 700)).toBeNull();
    const runs = runsUntilOptimized(true, 700);
    expect(runs).not.toBeNull();
    expect(runs!).toBeLessThan(500);
  });

  it("keeps a budget given on node's command line or in NODE_OPTIONS", () => {
    expect(interruptBudgetGiven(['--interrupt-budget=1000'], '')).toBe(true);
    expect(interruptBudgetGiven([], '--max-old-space-size=4096 --interrupt_budget=1000')).toBe(true);
    expect(interruptBudgetGiven(['--interrupt-budget', '1000'], '')).toBe(true);
    expect(interruptBudgetGiven(['--import', 'tsx'], '--interrupt-budget-for-feedback-allocation=10')).toBe(false);
  });
});
