// `npm run bench -- NAME [flags]` runs one benchmark; without a name it lists them. Each
// benchmark is a script of its own under bench/ (its header says what it measures, how to read
// the result and what was estimated before measuring); this only finds and starts it.

import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const BENCH = dirname(fileURLToPath(import.meta.url));
const HELPERS = new Set(['run.ts', 'load.ts', 'go-tools.ts', 'flags.ts', 'cluster-tools.ts']);

/** Benchmark scripts by short name: `kv` for bench/kv-bench.ts, `raft` for bench/raft/raft-bench.ts. */
function benchmarks(dir = BENCH): Map<string, string> {
  const found = new Map<string, string>();
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) {
      for (const [short, file] of benchmarks(path)) found.set(short, file);
    } else if (name.endsWith('.ts') && !HELPERS.has(name)) {
      found.set(name.replace(/(-bench)?\.ts$/, ''), path);
    }
  }
  return found;
}

/** The first line of a script's header comment: what it measures. */
function summary(file: string): string {
  const first = readFileSync(file, 'utf8')
    .split('\n')
    .find((line) => line.startsWith('//'));
  return first?.replace(/^\/\/\s*/, '') ?? '';
}

const [name, ...flags] = process.argv.slice(2);
const all = benchmarks();
if (name === undefined || !all.has(name)) {
  if (name !== undefined) process.stderr.write(`unknown benchmark "${name}"\n`);
  process.stdout.write("usage: npm run bench -- NAME [flags]   (flags: see the script's header)\n\n");
  for (const [short, file] of [...all].sort()) process.stdout.write(`  ${short.padEnd(12)} ${relative(process.cwd(), file).padEnd(28)} ${summary(file)}\n`);
  process.exit(name === undefined ? 0 : 2);
}
const result = spawnSync(process.execPath, ['--import', 'tsx', all.get(name)!, ...flags], { stdio: 'inherit' });
process.exit(result.status ?? 1);
