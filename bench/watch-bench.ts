// Watch and lease benchmark, real etcd 3.4 and MetaStore started fresh (single members) in the
// same run on this machine, the load from bench/go-watch (etcd's Go client, clientv3, built
// from Debian's Go sources like bench/go-load):
// - watch: 1,000 prefix watchers on one member (10 client connections, so 10 watch streams of
//   100 watchers), an open-loop put load at a steady rate from an 11th connection; put -> event
//   latency of every delivered event (p50/p99) and events delivered per second;
// - keep-alive: 1,000 leases, 100 LeaseKeepAlive streams in a closed loop; keep-alives/s.
//
//   node --import tsx bench/watch-bench.ts [--watchers 1000] [--rates 50,200] [--seconds 10]
//        [--leases 1000] [--streams 100] [--keepalives 200000] [--only etcd|metastore] [--record]
//        [--workers 0,2] [--node-args '--cpu-prof --cpu-prof-dir=DIR'] [--dump DIR]
//        [--warm-up 100] [--warm-up-rate 50]
//
// --workers: MetaStore is measured once per listed server.grpc.workers value (default 0).
// --node-args: extra node flags for MetaStore (e.g. --cpu-prof); the member is then stopped
// with SIGTERM so that the profiles get written.
// --warm-up N, --warm-up-rate R: the watch warm-up before the measured runs (default 100 puts
// at 50/s); a member a few seconds old is still compiling (V8's TurboFan jobs at fixed points
// of the workload), which sets the 100-watcher row's p99 (bench/RESULTS.md, "the p99 tail"):
// e.g. --warm-up 3000 --warm-up-rate 300 measures a warmed member.
// --dump: every measured watch run writes DIR/<target>-<rate>.csv, one line per put (its send
// time, its answer's latency) and per delivered event (watcher, connection, revision, the put's
// send time, the time the watcher got it): for finding what the slow events have in common.
//
// Estimate before measuring (2 cores, server and client sharing them): etcd sends one
// WatchResponse per watcher per revision for a few us of Go each, so 1,000 watchers x 200
// puts/s (200k events/s) should stay near 1-5 ms p50; MetaStore pays grpc-js's ~10-20 us per
// written message, so it should saturate around 50-100k events/s: fine at 50 puts/s, with
// latency growing at 200 puts/s. Keep-alives are a lessor renew without Raft on one member: etcd
// ~30-50k/s, MetaStore ~10-20k/s (grpc-js stream read + write per keep-alive).

import { goTool } from './go-tools.js';
import { spawn } from 'node:child_process';
import { appendFileSync, readFileSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startEtcd, startMetaStore } from '../test/support/servers.js';
import { disposeAll } from '../test/support/processes.js';
import { numberFlag, textFlag } from './flags.js';

const benchDir = fileURLToPath(new URL('.', import.meta.url));
const only = textFlag('only');
const watchers = numberFlag('watchers', 1_000);
const rates = textFlag('rates', '50,200').split(',').map(Number);
const seconds = numberFlag('seconds', 10);
const leases = numberFlag('leases', 1_000);
const streams = numberFlag('streams', 100);
const keepalives = numberFlag('keepalives', 200_000);
const nodeArgs = textFlag('node-args', '')
  .split(' ')
  .filter((a) => a !== '');
const workerCounts = textFlag('workers', '0').split(',').map(Number);
const dumpDir = textFlag('dump');
const warmUpPuts = numberFlag('warm-up', 100);
const warmUpRate = numberFlag('warm-up-rate', 50);

/** Builds bench/go-watch with Debian's Go and etcd sources (GOPATH mode, no network). */
const binary = goTool('go-watch');

type Output = Record<string, number | string>;

function runGo(args: string[]): Promise<Output> {
  return new Promise((resolve, reject) => {
    const child = spawn(binary, args, { stdio: ['ignore', 'pipe', 'inherit'] });
    let text = '';
    child.stdout.on('data', (chunk) => (text += chunk));
    child.on('exit', (code) => (code === 0 ? resolve(JSON.parse(text.trim().split('\n').pop()!) as Output) : reject(new Error(`go-watch exited ${code}`))));
  });
}

interface Row {
  target: string;
  workload: string;
  rate: number;
  p50: number;
  p99: number;
  /** CPU of the server's processes (member + edges) per 1,000 events delivered, in ms. */
  cpuPerThousand?: number;
  note: string;
}

/** CPU time (user + system) the processes have used so far, in ms (Linux /proc). */
function cpuMs(pids: readonly number[]): number {
  let ticks = 0;
  for (const pid of pids) {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    ticks += Number(fields[11]) + Number(fields[12]);
  }
  return (ticks * 1000) / 100;
}

async function benchTarget(target: string, endpoint: string, pids: readonly number[]): Promise<Row[]> {
  const rows: Row[] = [];
  // Warm-up: JIT, connections.
  await runGo(['-endpoint', endpoint, '-op', 'watch', '-watchers', String(watchers), '-rate', String(warmUpRate), '-puts', String(warmUpPuts)]);
  for (const rate of rates) {
    const cpuBefore = cpuMs(pids);
    const dump = dumpDir === undefined ? [] : ['-dump', join(dumpDir, `${target.split(' ')[0]!.toLowerCase()}-${rate}.csv`)];
    const r = await runGo([
      '-endpoint',
      endpoint,
      '-op',
      'watch',
      '-watchers',
      String(watchers),
      '-rate',
      String(rate),
      '-puts',
      String(rate * seconds),
      ...dump,
    ]);
    const cpu = cpuMs(pids) - cpuBefore;
    const complete = r.events === r.expectedEvents && r.outOfOrder === 0;
    rows.push({
      target,
      workload: `watch: ${watchers} watchers, ${rate} puts/s for ${seconds} s`,
      rate: Number(r.eventsPerSecond),
      p50: Number(r.p50Ms),
      p99: Number(r.p99Ms),
      cpuPerThousand: (cpu * 1000) / Number(r.events),
      note: `${r.events}/${r.expectedEvents} events${complete ? '' : ' INCOMPLETE'}, out of order ${r.outOfOrder}, put errors ${r.putErrors}, max ${Number(r.maxMs).toFixed(1)} ms, put answered p50 / p99 ${Number(r.putP50Ms).toFixed(2)} / ${Number(r.putP99Ms).toFixed(2)} ms`,
    });
    console.error(target, JSON.stringify(r));
  }
  await runGo([
    '-endpoint',
    endpoint,
    '-op',
    'keepalive',
    '-leases',
    String(leases),
    '-streams',
    String(streams),
    '-total',
    String(Math.min(20_000, keepalives)),
  ]);
  const k = await runGo(['-endpoint', endpoint, '-op', 'keepalive', '-leases', String(leases), '-streams', String(streams), '-total', String(keepalives)]);
  console.error(target, JSON.stringify(k));
  rows.push({
    target,
    workload: `lease keep-alive: ${leases} leases, ${streams} streams, closed loop`,
    rate: Number(k.opsPerSecond),
    p50: Number(k.p50Ms),
    p99: Number(k.p99Ms),
    note: `${k.ops} keep-alives, ${k.errors} answered TTL <= 0`,
  });
  return rows;
}

function format(rows: Row[]): string {
  const lines = ['| target | workload | events or keep-alives /s | p50 ms | p99 ms | server CPU ms / 1k events | notes |', '|---|---|---:|---:|---:|---:|---|'];
  for (const r of rows) {
    const cpu = r.cpuPerThousand === undefined ? '' : r.cpuPerThousand.toFixed(1);
    lines.push(`| ${r.target} | ${r.workload} | ${r.rate.toFixed(0)} | ${r.p50.toFixed(2)} | ${r.p99.toFixed(2)} | ${cpu} | ${r.note} |`);
  }
  const ratios: string[] = [];
  for (const workload of new Set(rows.map((r) => r.workload))) {
    const etcd = rows.find((r) => r.workload === workload && r.target.startsWith('etcd'));
    for (const ms of rows.filter((r) => r.workload === workload && r.target.startsWith('MetaStore'))) {
      if (etcd === undefined) continue;
      const cpu =
        ms.cpuPerThousand !== undefined && etcd.cpuPerThousand !== undefined
          ? `, CPU per event ${(ms.cpuPerThousand / etcd.cpuPerThousand).toFixed(2)}x etcd's`
          : '';
      ratios.push(
        `- ${workload}: ${ms.target} / etcd throughput = **${(ms.rate / etcd.rate).toFixed(2)}**, p50 ${ms.p50.toFixed(1)} vs ${etcd.p50.toFixed(1)} ms, p99 ${ms.p99.toFixed(1)} vs ${etcd.p99.toFixed(1)} ms${cpu}`,
      );
    }
  }
  return [...lines, '', ...ratios].join('\n');
}

async function main(): Promise<void> {
  const rows: Row[] = [];
  try {
    if (only !== 'metastore') {
      const etcd = await startEtcd();
      rows.push(...(await benchTarget('etcd 3.4.23', etcd.endpoint.replace('http://', ''), [etcd.pid])));
      await etcd.stop();
    }
    if (only !== 'etcd') {
      for (const workers of workerCounts) {
        const metastore = await startMetaStore({ env: { METASTORE_SERVER_GRPC_WORKERS: String(workers) }, nodeArgs });
        const target = workerCounts.length === 1 && workers === 0 ? 'MetaStore' : `MetaStore (workers ${workers})`;
        const edges = [...metastore.logs().matchAll(/"pid":(\d+),"msg":"edge process started"/g)].map((m) => Number(m[1]));
        rows.push(...(await benchTarget(target, metastore.endpoint.replace('http://', ''), [metastore.pid, ...edges])));
        if (nodeArgs.length > 0) await metastore.stop(); // a clean exit writes the profiles
        await metastore.destroy();
      }
    }
  } finally {
    await disposeAll();
  }
  const table = format(rows);
  console.log(table);
  if (process.argv.includes('--record')) {
    const cpu = /model name\s*:\s*(.*)/.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1] ?? os.cpus()[0]?.model ?? 'unknown';
    const command = `node --import tsx bench/watch-bench.ts ${process.argv.slice(2).join(' ')}`.trim();
    appendFileSync(
      join(benchDir, 'RESULTS.md'),
      `\n## Watch and lease keep-alive, single member (${new Date().toISOString().slice(0, 10)})\n\nMachine: ${os.cpus().length} cores (${cpu}), ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB, Node ${process.version}. Load generator: bench/go-watch (Go clientv3). Command: \`${command}\`\n\n${table}\n`,
    );
  }
}

await main();
