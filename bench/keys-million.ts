// Memory and rates with many keys: fill N keys of 1 KiB, then puts and point ranges over them;
// 1M puts over 1,000 keys (history kept, no compaction); a paginated list of 100k x 1 KiB.
// Real etcd 3.4.23 and MetaStore, each started fresh per workload in the same run, loaded by
// bench/go-load (Go clientv3); server RSS read from /proc (VmRSS now, VmHWM peak), also of
// each fresh server before any load.
//
//   npm run bench -- keys-million [--workload fill|history|list|all] [--keys 1000000]
//        [--history-puts 1000000] [--list-keys 100000] [--only etcd|metastore]
//        [--node-args "--cpu-prof --cpu-prof-dir=/tmp/prof"] [--gc-tally] [--quota-bytes N]
//        [--member-env "METASTORE_SERVER_STORAGE_WRITE_BUFFER_SIZE=33554432 ..."]
//
// --node-args: extra Node flags for the MetaStore member (profiles, --trace-gc, heap flags).
// --quota-bytes: --quota-backend-bytes for both servers (etcd's bbolt holds 4M x 1 KiB in ~5 GiB,
// over its 2 GiB default quota).
// --member-env: environment settings for the MetaStore member (A/B of server.* keys, one build).
// --gc-tally: preload bench/gc-tally.cjs into the member and add its garbage collections (count
// and summed atomic pauses, minor / major) during each load step to the table.
// Each load step also reports the server's CPU per operation, split by thread (main / V8's
// helper threads / the rest), from /proc: CPU time, not wall time, so it holds up under load.
//
// Workloads (100 clients over 10 connections unless said otherwise):
// - fill: --keys distinct 8-byte keys of --value-bytes (1024), each put once; RSS after; then
//   --puts (100k) puts and --ranges (100k) serializable point ranges spread over the keys.
// - history: --history-puts (1M) puts of 256 B over --history-keys (1,000) keys; RSS after,
//   and again after 30 s idle.
// - list: --list-keys (100k) keys of 1 KiB, then one client lists them all, 500 per page at
//   the revision of the first page (as a Kubernetes reflector), --lists (5) times; ops = pages.
//
// Estimate before measuring (issue 15's figures, 2 cores): etcd fills 1M at ~15k/s to ~800
// MB RSS; MetaStore with the values in the heap 5.4k/s to ~2.2 GB. With values read back from
// LevelDB, MetaStore's RSS should be its index (a few hundred bytes per key: ~0.3-0.5 GB for
// 1M) plus LevelDB's caches and the Raft log; rates within +-10% of before (a put reads the
// previous value back for the watch event's prev_kv: a few us against ~200 us per request).

import { goTool } from './go-tools.js';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startEtcd, startMetaStore } from '../test/support/servers.js';
import { disposeAll } from '../test/support/processes.js';
import { threadCpuMicros } from './cluster-tools.js';
import { numberFlag, textFlag } from './flags.js';

const workload = textFlag('workload') ?? 'all';
const only = textFlag('only');
const quotaBytes = textFlag('quota-bytes');
const serverArgs = quotaBytes === undefined ? [] : ['--quota-backend-bytes', quotaBytes];
const gcTallyDir = process.argv.includes('--gc-tally') ? mkdtempSync(path.join(os.tmpdir(), 'gc-tally-')) : undefined;

type GcTally = Record<string, { count: number; ms: number; maxMs: number }>;

/** The member's GC totals so far (written by bench/gc-tally.cjs every second). */
function gcTally(pid: number): GcTally | undefined {
  if (gcTallyDir === undefined) return undefined;
  const file = path.join(gcTallyDir, `gc-${pid}.json`);
  return existsSync(file) ? (JSON.parse(readFileSync(file, 'utf8')) as GcTally) : undefined;
}

function gcDelta(before: GcTally | undefined, after: GcTally | undefined): string | undefined {
  if (after === undefined) return undefined;
  const parts: string[] = [];
  for (const kind of ['minor', 'major']) {
    const a = after[kind] ?? { count: 0, ms: 0, maxMs: 0 };
    const b = before?.[kind] ?? { count: 0, ms: 0, maxMs: 0 };
    parts.push(`${kind} ${a.count - b.count} / ${((a.ms - b.ms) / 1000).toFixed(1)} s (max ${a.maxMs.toFixed(0)} ms)`);
  }
  return parts.join(', ');
}

interface LoadResult {
  opsPerSecond: number;
  p50Ms: number;
  p99Ms: number;
  errors: number;
  seconds: number;
}

async function load(endpoint: string, args: string[]): Promise<LoadResult> {
  return (await loadStep(endpoint, args, undefined)).result;
}

/** CPU seconds of a process's live threads so far, by kind: the main thread (tid = pid), V8's
 * helper threads (GC, compiler), and the rest (libuv's pool, LevelDB's compaction thread; Go's
 * threads for etcd). Read from /proc/<pid>/task/<tid>/stat. Node names every thread "node":
 * V8's four platform workers are the first four threads it starts after the main one, so for a
 * Node process the four lowest thread ids after the pid are counted as V8's. */
type ThreadCpu = { main: number; v8: number; other: number };

function threadCpu(pid: number): ThreadCpu {
  const cpu: ThreadCpu = { main: 0, v8: 0, other: 0 };
  for (const [i, { tid, name, us }] of threadCpuMicros(pid).entries()) {
    const seconds = us / 1e6;
    if (tid === pid) cpu.main += seconds;
    else if (name === 'node' && i >= 1 && i <= 4) cpu.v8 += seconds;
    else cpu.other += seconds;
  }
  return cpu;
}

/** Server CPU per operation during a step, us: all threads (main / V8 helpers / others). */
function cpuPerOp(before: ThreadCpu, after: ThreadCpu, ops: number): string {
  const us = (kind: keyof ThreadCpu) => ((after[kind] - before[kind]) * 1e6) / ops;
  return `${(us('main') + us('v8') + us('other')).toFixed(0)} (${us('main').toFixed(0)} / ${us('v8').toFixed(0)} / ${us('other').toFixed(0)})`;
}

/** One load step; with a pid, the server's CPU per operation during it, and with --gc-tally
 * the member's garbage collections. */
async function loadStep(endpoint: string, args: string[], pid: number | undefined): Promise<{ result: LoadResult; gc?: string; cpu?: string }> {
  if (pid === undefined) return { result: await goLoad(endpoint, args) };
  const before = gcTally(pid);
  const cpuBefore = threadCpu(pid);
  const result = await goLoad(endpoint, args);
  const cpu = cpuPerOp(cpuBefore, threadCpu(pid), result.opsPerSecond * result.seconds);
  if (gcTallyDir === undefined) return { result, cpu };
  await new Promise((resolve) => setTimeout(resolve, 1100)); // the tally file is written every second
  const gc = gcDelta(before, gcTally(pid));
  return gc === undefined ? { result, cpu } : { result, gc, cpu };
}

async function goLoad(endpoint: string, args: string[]): Promise<LoadResult> {
  const output = await new Promise<string>((resolve, reject) => {
    const child = spawn(goTool('go-load'), ['-endpoint', endpoint, ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
    let text = '';
    child.stdout.on('data', (chunk) => (text += chunk));
    child.on('exit', (code) => (code === 0 ? resolve(text) : reject(new Error(`go-load exited ${code}`))));
  });
  return JSON.parse(output.trim().split('\n').pop()!) as LoadResult;
}

/** VmRSS and VmHWM of a process, MB. */
function rss(pid: number): { nowMb: number; peakMb: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (field: string) => Number(new RegExp(`${field}:\\s*(\\d+)`).exec(status)?.[1] ?? 0);
  return { nowMb: kb('VmRSS') / 1024, peakMb: kb('VmHWM') / 1024 };
}

interface Row {
  target: string;
  step: string;
  result?: LoadResult;
  rssMb?: { nowMb: number; peakMb: number };
  gc?: string;
  cpu?: string;
}

const puts = (keySpace: number, total: number, valueBytes: number) => [
  '-op',
  'put',
  '-clients',
  '100',
  '-conns',
  '10',
  '-key-space',
  String(keySpace),
  '-total',
  String(total),
  '-value-size',
  String(valueBytes),
];

async function fill(target: string, endpoint: string, pid: number): Promise<Row[]> {
  const keys = numberFlag('keys', 1_000_000);
  const valueBytes = numberFlag('value-bytes', 1024);
  const rows: Row[] = [];
  rows.push({ target, step: `fill ${keys} keys x ${valueBytes} B`, ...(await loadStep(endpoint, puts(keys, keys, valueBytes), pid)) });
  rows.push({ target, step: 'RSS after fill', rssMb: rss(pid) });
  rows.push({ target, step: `put over the ${keys} keys`, ...(await loadStep(endpoint, puts(keys, numberFlag('puts', 100_000), valueBytes), pid)) });
  const ranges = ['-op', 'range', '-spread', '-clients', '100', '-conns', '10', '-key-space', String(keys), '-total', String(numberFlag('ranges', 100_000))];
  rows.push({ target, step: `range (serializable, spread over ${keys} keys)`, ...(await loadStep(endpoint, ranges, pid)) });
  rows.push({ target, step: 'RSS at the end', rssMb: rss(pid) });
  return rows;
}

async function history(target: string, endpoint: string, pid: number): Promise<Row[]> {
  const total = numberFlag('history-puts', 1_000_000);
  const keys = numberFlag('history-keys', 1000);
  const rows: Row[] = [
    { target, step: `${total} puts x 256 B over ${keys} keys`, ...(await loadStep(endpoint, puts(keys, total, 256), pid)) },
    { target, step: 'RSS after the history puts', rssMb: rss(pid) },
  ];
  // V8 returns its garbage-collection headroom once the process is idle (its memory reducer
  // starts ~8 s after the load stops); Go's scavenger takes minutes. Both figures count.
  await new Promise((resolve) => setTimeout(resolve, 30_000));
  rows.push({ target, step: 'RSS 30 s later, idle', rssMb: rss(pid) });
  return rows;
}

async function list(target: string, endpoint: string, pid: number): Promise<Row[]> {
  const keys = numberFlag('list-keys', 100_000);
  const rows: Row[] = [{ target, step: `fill ${keys} keys x 1 KiB`, result: await load(endpoint, puts(keys, keys, 1024)) }];
  const pages = Math.ceil(keys / 500) * numberFlag('lists', 5);
  const args = ['-op', 'list', '-page', '500', '-clients', '1', '-conns', '1', '-total', String(pages), '-key-space', '1'];
  rows.push({ target, step: 'paginated list, 500 per page (ops = pages)', result: await load(endpoint, args) });
  rows.push({ target, step: 'RSS after the lists', rssMb: rss(pid) });
  return rows;
}

const WORKLOADS: Record<string, (target: string, endpoint: string, pid: number) => Promise<Row[]>> = { fill, history, list };

async function run(name: string): Promise<Row[]> {
  const rows: Row[] = [];
  const bench = WORKLOADS[name]!;
  if (only !== 'metastore') {
    const etcd = await startEtcd({ extraArgs: serverArgs });
    rows.push({ target: 'etcd 3.4.23', step: 'RSS idle (fresh server)', rssMb: rss(etcd.pid) });
    rows.push(...(await bench('etcd 3.4.23', etcd.endpoint.replace('http://', ''), etcd.pid)));
    await etcd.stop();
  }
  if (only !== 'etcd') {
    const nodeArgs =
      textFlag('node-args')
        ?.split(' ')
        .filter((arg) => arg !== '') ?? [];
    if (gcTallyDir !== undefined) nodeArgs.push('-r', path.join(import.meta.dirname, 'gc-tally.cjs'));
    const env: Record<string, string> = gcTallyDir === undefined ? {} : { BENCH_GC_TALLY_DIR: gcTallyDir };
    for (const setting of textFlag('member-env')?.split(' ') ?? []) {
      const [name, value] = setting.split('=');
      if (name !== undefined && name !== '' && value !== undefined) env[name] = value;
    }
    const metastore = await startMetaStore({ readyTimeoutMs: 120_000, nodeArgs, env, extraArgs: serverArgs });
    rows.push({ target: 'MetaStore', step: 'RSS idle (fresh server)', rssMb: rss(metastore.pid) });
    rows.push(...(await bench('MetaStore', metastore.endpoint.replace('http://', ''), metastore.pid)));
    await metastore.stop(); // a clean exit, so that --cpu-prof writes its profile
    await metastore.destroy();
  }
  return rows;
}

function format(rows: Row[]): string {
  const lines = [
    '| target | step | ops/s | p50 ms | p99 ms | errors | RSS MB (peak) | server CPU us/op (main / V8 helpers / other threads) | GCs: count / pauses |',
    '|---|---|---:|---:|---:|---:|---:|---:|---|',
  ];
  for (const { target, step, result, rssMb, gc, cpu } of rows) {
    const ops = result ? `${result.opsPerSecond.toFixed(0)} | ${result.p50Ms.toFixed(2)} | ${result.p99Ms.toFixed(2)} | ${result.errors}` : ' | | | ';
    const mem = rssMb ? `${rssMb.nowMb.toFixed(0)} (${rssMb.peakMb.toFixed(0)})` : '';
    lines.push(`| ${target} | ${step} | ${ops} | ${mem} | ${cpu ?? ''} | ${gc ?? ''} |`);
  }
  return lines.join('\n');
}

async function main(): Promise<void> {
  const names = workload === 'all' ? Object.keys(WORKLOADS) : [workload];
  for (const name of names) if (!(name in WORKLOADS)) throw new Error(`unknown workload ${name}`);
  const cpu = /model name\s*:\s*(.*)/.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1] ?? 'unknown';
  console.log(`${os.cpus().length} cores (${cpu}), load average ${os.loadavg()[0]!.toFixed(1)}, Node ${process.version}, ${new Date().toISOString()}`);
  try {
    for (const name of names) console.log(`\n${name}\n\n${format(await run(name))}`);
  } finally {
    await disposeAll();
  }
}

await main();
