// Preloaded into a benchmarked member (`node -r bench/gc-tally.cjs`): counts its garbage
// collections and sums their pauses by kind, and writes the totals every second to
// $BENCH_GC_TALLY_DIR/gc-<pid>.json, so keys-million can report GC per step. A pause here is
// what Node's 'gc' performance entry measures (the atomic pause); incremental marking steps
// run between pauses and show up in a CPU profile as "(garbage collector)" instead.
const { PerformanceObserver, constants } = require('node:perf_hooks');
const { writeFileSync } = require('node:fs');
const path = require('node:path');

const dir = process.env.BENCH_GC_TALLY_DIR;
if (dir) {
  const names = {
    [constants.NODE_PERFORMANCE_GC_MINOR]: 'minor',
    [constants.NODE_PERFORMANCE_GC_MAJOR]: 'major',
    [constants.NODE_PERFORMANCE_GC_INCREMENTAL]: 'incremental',
    [constants.NODE_PERFORMANCE_GC_WEAKCB]: 'weakcb',
  };
  const tally = {};
  new PerformanceObserver((list) => {
    for (const entry of list.getEntries()) {
      const kind = names[entry.detail?.kind] ?? 'other';
      if (tally[kind] === undefined) tally[kind] = { count: 0, ms: 0, maxMs: 0 };
      const t = tally[kind];
      t.count++;
      t.ms += entry.duration;
      t.maxMs = Math.max(t.maxMs, entry.duration);
    }
  }).observe({ entryTypes: ['gc'] });
  const file = path.join(dir, `gc-${process.pid}.json`);
  setInterval(() => writeFileSync(file, JSON.stringify(tally)), 1000).unref();
}
