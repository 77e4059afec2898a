// Command-line entry of the deterministic Raft simulator.
//   node --import tsx test/sim/run.ts --seeds N [--start S]   run seeds S..S+N-1
//   node --import tsx test/sim/run.ts --seed S [--verbose]      replay one seed exactly
// The last line is always the summary "N seeds ran, M passed"; the exit code is 1 on failure.

import { runSeed, SimFailure } from './sim.js';

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

const single = arg('--seed');
const count = Number(arg('--seeds') ?? (single === undefined ? '100' : '1'));
const start = Number(single ?? arg('--start') ?? '1');
const verbose = process.argv.includes('--verbose');
const faultTicks = Number(arg('--ticks') ?? '1000');

let passed = 0;
let ran = 0;
const failed: number[] = [];
const t0 = performance.now();
let commits = 0;
for (let s = start; s < start + count; s++) {
  ran++;
  try {
    const st = runSeed({ seed: s, verbose, faultTicks });
    commits += st.committed;
    passed++;
    if (single !== undefined || verbose) console.log(JSON.stringify(st, (_k, v: unknown) => (typeof v === 'bigint' ? String(v) : v)));
  } catch (e) {
    failed.push(s);
    const msg = e instanceof SimFailure ? e.message : `seed ${s}: ${(e as Error).stack ?? String(e)}`;
    console.log(`FAIL ${msg}`);
    console.log(`  replay: node --import tsx test/sim/run.ts --seed ${s} --verbose`);
  }
}
const secs = ((performance.now() - t0) / 1000).toFixed(1);
if (failed.length > 0) console.log(`failing seeds: ${failed.join(' ')}`);
console.log(`${ran} seeds ran, ${passed} passed (${secs} s, ${commits} entries committed)`);
process.exitCode = failed.length === 0 ? 0 : 1;
