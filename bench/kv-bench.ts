// KV benchmark: put (8-byte keys, 256-byte values) and single-key range with 100 concurrent
// clients over 10 connections, against real etcd 3.4 and MetaStore started fresh in the same
// run on this machine, as single members or as 3-member clusters on loopback. The load comes
// from bench/go-load, a closed-loop generator on etcd's own Go client (clientv3), built from
// Debian's Go sources, so the client side costs both servers the same little CPU. Without Go
// it falls back to the Node generator in bench/load.ts (which costs far more client CPU).
//
//   node --import tsx bench/kv-bench.ts [--members 1|3] [--puts 50000] [--ranges 100000]
//        [--clients 100] [--connections 10] [--only etcd|metastore] [--workers 0,2] [--record]
//        [--node-args '--cpu-prof --cpu-prof-dir=DIR'] [--range-kinds serializable,linearizable]
//        [--put-op put|txn-put] [--endpoints all|leader] [--warm-up PUTS]
//
// CPU us/op: the server processes' user + system time over the run per operation; on a cluster
// every member summed (the load goes to all three endpoints, so each member serves a third of
// the calls and applies every write), then split by role: the leader (etcd_server_is_leader at
// both ends of the put run) and each follower.
// --put-op txn-put: the write workload (and its warm-up) is a Txn with no compares and one put
// (etcd's `benchmark txn-put` with --txn-ops 1) instead of a plain Put; go-load only.
// --endpoints leader: on a cluster, the load goes to the leader's client endpoint only (found
// after the election, from etcd_server_is_leader), so the followers serve no client call and
// their CPU is replication alone; default all: go-load spreads its connections over every
// member, as etcd's benchmark does.
// Per member, leader first, per put: WAL fsyncs, backend (LevelDB / bbolt) commits, client
// calls answered (grpc_server_handled_total / grpc_server_request_total) and, where the server
// exports them (etcd), peer bytes sent and received; printed under the second table.
// --range-kinds: which single-key ranges to measure, in order (default: serializable on one
// member, linearizable on a cluster, as the first recorded runs did).
// --workers: MetaStore is measured once per listed server.grpc.workers value (edge processes
// relaying to the member process; default just 0, everything in one process).
// Whole-machine figures per op (printed as a second table for the put runs): the server's CPU,
// go-load's own CPU (its getrusage over the timed calls), the machine's /proc/stat split (user,
// system, softirq, idle), TCP segments each way on the load's connections (the client's
// tcp_info), and the server's read-class and write-class syscalls (/proc/PID/io syscr/syscw).
// --frames: go-load also counts the HTTP/2 frames each way by type and its socket calls (a
// wrapper on its connections; costs the client a little CPU, so CPU runs go without it).
// --member-env KEY=VALUE,...: environment for each MetaStore member (lone or in a cluster), e.g.
// METASTORE_SERVER_RAFT_MAX_WRITES_IN_FLIGHT=4.
// --strace SECONDS: during the put run, `strace -c -f` on the server and on go-load for that
// long (1.5 s into the run); syscalls per put by name from the server's committed-proposal
// count over the window (ptrace slows both sides a lot: read the counts, not the rate).
// --node-args: options for node running each MetaStore member (edge processes inherit them;
// on a cluster every member writes its own profile, the leader's is the busiest), e.g. --cpu-prof or --perf-basic-prof; the member is then stopped with SIGTERM so that
// every process exits cleanly and writes its profile. --ranges 0 skips the range workload (a
// put-only profile).
//
// Estimate before measuring (2 cores): a put costs etcd ~65 us of CPU and MetaStore ~50 us of
// grpc-js plus a few us of MVCC and batching per request, with one fsync per batch of ~100;
// both should land in the 10-20k puts/s range on one member, the client taking part of a core.

import { goTool, haveGo } from './go-tools.js';
import { execFileSync, spawn } from 'node:child_process';
import { appendFileSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { encodeMessage } from '../src/grpc/proto.js';
import { startEtcd, startMetaStore, startMetaStoreCluster } from '../test/support/servers.js';
import { disposeAll } from '../test/support/processes.js';
import { runLoad } from './load.js';
import { cpuMicros, runGoLoad, startEtcdCluster, threadCpuMicros } from './cluster-tools.js';
import { numberFlag, textFlag } from './flags.js';

const only = textFlag('only');
const members = numberFlag('members', 1);
const clients = numberFlag('clients', 100);
const connections = numberFlag('connections', 10);
const puts = numberFlag('puts', 50_000);
const putOpText = textFlag('put-op', 'put');
if (putOpText !== 'put' && putOpText !== 'txn-put') throw new Error(`--put-op: unknown op ${putOpText}`);
const putOp: 'put' | 'txn-put' = putOpText;
const ranges = numberFlag('ranges', 100_000);
const benchDir = fileURLToPath(new URL('.', import.meta.url));
const nodeArgs = textFlag('node-args', '')
  .split(' ')
  .filter((a) => a !== '');
const workerCounts = textFlag('workers', '0').split(',').map(Number);
const countFrames = process.argv.includes('--frames');
/** --member-env KEY=VALUE,...: environment for each MetaStore member (its METASTORE_SERVER_* settings). */
const memberEnv: Record<string, string> = Object.fromEntries(
  textFlag('member-env', '')
    .split(',')
    .filter((pair) => pair !== '')
    .map((pair) => [pair.slice(0, pair.indexOf('=')), pair.slice(pair.indexOf('=') + 1)]),
);
const straceSeconds = numberFlag('strace', 0);
/** --warm-up N: puts before the measured put run (default 5,000 a member, at most --puts). A
 * 3-member cluster's V8 is still compiling after the default 15,000: its worker threads (mostly
 * TurboFan) took 53-74 us a put over the next 20,000-30,000 puts, and compiled until ~15 s after
 * the start (~75,000 puts); etcd has nothing to warm (session 15, S15-H1, bench/RESULTS.md). */
const warmUpPuts = process.argv.includes('--warm-up') ? numberFlag('warm-up', 0) : undefined;
/** --rounds N: run both servers N times, alternating which goes first; ratios per round and their median. */
const rounds = numberFlag('rounds', 1);
const endpointsMode = textFlag('endpoints', 'all');
if (endpointsMode !== 'all' && endpointsMode !== 'leader') throw new Error(`--endpoints: all or leader, not ${endpointsMode}`);
type RangeKind = 'serializable' | 'linearizable';
const rangeKinds: RangeKind[] = process.argv.includes('--range-kinds')
  ? process.argv[process.argv.indexOf('--range-kinds') + 1]!.split(',').map((kind) => {
      if (kind !== 'serializable' && kind !== 'linearizable') throw new Error(`--range-kinds: unknown kind ${kind}`);
      return kind;
    })
  : [members > 1 ? 'linearizable' : 'serializable'];

type Tally = Record<string, number>;

interface Result {
  opsPerSecond: number;
  p50Ms: number;
  p99Ms: number;
  errors: number;
  /** go-load only: its own CPU over the timed calls, its connections' TCP segments, and with
   * --frames the HTTP/2 frames by type each way ("sent" = client to server). */
  cpuUserUs?: number;
  cpuSystemUs?: number;
  tcp?: { segsOut: number; segsIn: number; dataSegsOut: number; dataSegsIn: number };
  frames?: { sent: Tally; received: Tally };
}

/** Builds bench/go-load with Debian's Go and etcd sources (GOPATH mode, no network). */
function goLoad(): string | undefined {
  if (haveGo()) return goTool('go-load');
  console.error('go not found (apt-get install golang-go golang-etcd-server-dev): using the Node load generator');
  return undefined;
}

const goBinary = goLoad();

async function load(endpoints: string[], op: 'put' | 'txn-put' | 'range', total: number, linearizable: boolean): Promise<Result> {
  if (goBinary) {
    const args = ['-endpoint', endpoints.join(','), '-op', op, '-clients', String(clients), '-conns', String(connections), '-total', String(total)];
    if (linearizable) args.push('-linearizable');
    if (countFrames) args.push('-frames');
    return runGoLoad<Result>(goBinary, args);
  }
  if (op === 'txn-put') throw new Error('--put-op txn-put needs go-load (Go)');
  const value = Buffer.alloc(256, 'v');
  const request =
    op === 'put'
      ? (i: number) => encodeMessage('etcdserverpb.PutRequest', { key: Buffer.from(String((i * 7919) % 100_000).padStart(8, '0')), value })
      : () => encodeMessage('etcdserverpb.RangeRequest', { key: Buffer.from('00000042'), serializable: !linearizable });
  const path = op === 'put' ? '/etcdserverpb.KV/Put' : '/etcdserverpb.KV/Range';
  const result = await runLoad({ endpoint: endpoints[0]!, path, clients, connections, totalOps: total, request });
  return { opsPerSecond: result.opsPerSecond, p50Ms: result.latencyMs.p50, p99Ms: result.latencyMs.p99, errors: result.errors };
}

/** Waits until every endpoint reports the same, known leader (a fresh cluster elects one). */
async function waitForLeader(endpoints: string[]): Promise<void> {
  for (let attempt = 0; attempt < 300; attempt++) {
    const status = await new Promise<string>((resolve) => {
      const child = spawn('etcdctl', [`--endpoints=${endpoints.join(',')}`, 'endpoint', 'status', '-w', 'json'], {
        env: { ...process.env, ETCDCTL_API: '3' },
        stdio: ['ignore', 'pipe', 'ignore'],
      });
      let out = '';
      child.stdout.on('data', (chunk) => (out += chunk));
      child.on('exit', () => resolve(out));
    });
    const leaders = [...status.matchAll(/"leader":(\d+)/g)].map((m) => m[1]);
    if (leaders.length === endpoints.length && leaders.every((l) => l === leaders[0] && l !== '0')) return;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error('no leader elected within 30 s');
}

interface Row {
  target: string;
  /** Which --rounds round the row belongs to (1 without --rounds). */
  round?: number;
  workload: string;
  result: Result;
  /** CPU of the server's processes per operation (single members: the member process, and its
   * edge processes summed; clusters: every member summed), in microseconds; a figure less bent
   * by a shared machine than ops/s. */
  cpu?: { mainUs: number; edgesUs: number; perMainUs: number[] };
  /** Index (into Pids.main) of the member that led during the run, when several. */
  leader?: number;
  /** Log entries committed per synced log write, averaged over the members (see diskFigures). */
  entriesPerFsync?: number;
  /** Whole-machine figures over the run (see machineFigures). */
  machine?: MachineDelta;
  /** Synced log writes over the put run: their mean duration, and the share of the run's wall
   * time one was in progress (summed over the members). */
  fsync?: { meanMs: number; busyShare: number };
  /** The server's CPU and context switches per op by thread name (see threadGroups). */
  threads?: Record<string, ThreadGroup>;
  /** --strace: syscalls per op by name, of the server and of go-load. */
  syscalls?: { server: Tally; client: Tally };
  /** Per member (in Pids.main order), per op: the counters of MEMBER_COUNTERS over the run. */
  perMember?: Record<string, number[]>;
}

/** The machine's CPU split (/proc/stat's first line, in us) and the servers' syscall counters. */
interface MachineDelta {
  userUs: number;
  systemUs: number;
  softirqUs: number;
  idleUs: number;
  otherUs: number;
  serverReads: number;
  serverWrites: number;
  /** The servers' main threads (the thread whose id is the process's): a Node member's JS;
   * nothing for etcd (Go runs its work on other threads). */
  serverMainThreadUs: number;
  /** The servers' system time (in the kernel for them: syscalls, the TCP they send). */
  serverSystemUs: number;
}

/** What a group of threads (same name) did so far: CPU (us), context switches (voluntary,
 * involuntary) and how many threads it has. */
interface ThreadGroup {
  us: number;
  voluntary: number;
  involuntary: number;
  threads: number;
}

/**
 * A Node member's thread by its rank among the process's other threads (ascending thread id),
 * as Node 20 starts them (they are all named "node"; checked with gdb's `thread apply all bt`):
 * V8's delayed-task scheduler, V8's platform workers (--v8-pool-size, default 4: parallel
 * scavenge, concurrent marking, sweeping, compilers), the inspector's idle start thread, then
 * at the first async call libuv's pool (UV_THREADPOOL_SIZE, default 4: LevelDB's writes, the
 * journal's fdatasync), then LevelDB's compaction thread.
 */
function nodeThreadRole(rank: number): string {
  const v8Size = Number(/--v8-pool-size[= ](\d+)/.exec(nodeArgs.join(' '))?.[1] ?? 4);
  const v8Workers = v8Size > 0 ? v8Size : Math.max(1, os.availableParallelism() - 1);
  const uvWorkers = Number(memberEnv.UV_THREADPOOL_SIZE ?? process.env.UV_THREADPOOL_SIZE ?? 4);
  if (rank === 0) return 'V8 delayed tasks';
  if (rank <= v8Workers) return 'V8 workers';
  if (rank === v8Workers + 1) return 'inspector';
  if (rank <= v8Workers + 1 + uvWorkers) return 'libuv pool';
  return 'later threads (LevelDB compaction)';
}

/** Every thread of `pids` summed by role: a Node member's by nodeThreadRole, other servers' by
 * thread name (comm; Go's threads are all named after the binary); "main" is the thread whose
 * id is the process's. */
function threadGroups(pids: number[], node: boolean): Map<string, ThreadGroup> {
  const groups = new Map<string, ThreadGroup>();
  for (const pid of pids) {
    const threads = threadCpuMicros(pid);
    for (const [i, { tid, name, us, voluntarySwitches, involuntarySwitches }] of threads.entries()) {
      const key = tid === pid ? 'main' : node ? nodeThreadRole(i - 1) : name;
      const group = groups.get(key) ?? { us: 0, voluntary: 0, involuntary: 0, threads: 0 };
      group.us += us;
      group.voluntary += voluntarySwitches;
      group.involuntary += involuntarySwitches;
      group.threads++;
      groups.set(key, group);
    }
  }
  return groups;
}

/** Per op over a run: each group's CPU and switches (its thread count as found at the end). */
function minusGroups(after: Map<string, ThreadGroup>, before: Map<string, ThreadGroup>, per: number): Record<string, ThreadGroup> {
  const out: Record<string, ThreadGroup> = {};
  for (const [name, a] of after) {
    const b = before.get(name) ?? { us: 0, voluntary: 0, involuntary: 0, threads: 0 };
    out[name] = {
      us: (a.us - b.us) / per,
      voluntary: (a.voluntary - b.voluntary) / per,
      involuntary: (a.involuntary - b.involuntary) / per,
      threads: a.threads,
    };
  }
  return out;
}

/** CPU time (user + system) of a process's main thread so far, in microseconds. */
function threadMicros(pid: number): number {
  return threadCpuMicros(pid).find((thread) => thread.tid === pid)?.us ?? 0;
}

/** System time of a whole process so far, in microseconds. */
function systemMicros(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return (Number(fields[12]) * 1_000_000) / 100;
}

function machineFigures(serverPids: number[]): MachineDelta {
  // cpu user nice system idle iowait irq softirq steal guest guest_nice, in USER_HZ (100/s).
  const ticks = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
  const us = (i: number): number => (ticks[i] ?? 0) * 10_000;
  let serverReads = 0;
  let serverWrites = 0;
  let serverMainThreadUs = 0;
  let serverSystemUs = 0;
  for (const pid of serverPids) {
    serverMainThreadUs += threadMicros(pid);
    serverSystemUs += systemMicros(pid);
    const io = readFileSync(`/proc/${pid}/io`, 'utf8');
    serverReads += Number(/^syscr: (\d+)$/m.exec(io)?.[1] ?? Number.NaN);
    serverWrites += Number(/^syscw: (\d+)$/m.exec(io)?.[1] ?? Number.NaN);
  }
  return {
    userUs: us(0) + us(1),
    systemUs: us(2),
    softirqUs: us(6),
    idleUs: us(3) + us(4),
    otherUs: us(5) + us(7),
    serverReads,
    serverWrites,
    serverMainThreadUs,
    serverSystemUs,
  };
}

function minusMachine(a: MachineDelta, b: MachineDelta, per: number): MachineDelta {
  const out = { ...a };
  for (const key of Object.keys(out) as (keyof MachineDelta)[]) out[key] = (a[key] - b[key]) / per;
  return out;
}

/** `strace -c -f` summary rows (calls by syscall name) of one process for `seconds`. */
function straceCounts(pid: number, seconds: number): Promise<Tally> {
  const file = join(os.tmpdir(), `kv-bench-strace-${pid}-${Date.now()}.txt`);
  return new Promise((resolve) => {
    const child = spawn('timeout', ['-s', 'INT', String(seconds), 'strace', '-c', '-f', '-q', '-o', file, '-p', String(pid)], { stdio: 'ignore' });
    child.on('exit', () => {
      const counts: Tally = {};
      try {
        for (const line of readFileSync(file, 'utf8').split('\n')) {
          // % time, seconds, usecs/call, calls, [errors,] syscall
          const fields = line.trim().split(/\s+/);
          if (fields.length < 5 || !/^\d/.test(fields[0]!) || fields.at(-1) === 'total') continue;
          counts[fields.at(-1)!] = Number(fields[3]);
        }
      } finally {
        rmSync(file, { force: true });
      }
      resolve(counts);
    });
  });
}

/** The pid of this process's go-load child, if one runs now. */
function goLoadPid(): number | undefined {
  const out = execFileSync('ps', ['--ppid', String(process.pid), '-o', 'pid=,comm='], { encoding: 'utf8' });
  const line = out.split('\n').find((l) => l.trim().endsWith('go-load'));
  return line === undefined ? undefined : Number(line.trim().split(/\s+/)[0]);
}

/** --strace: both processes traced for `seconds`, counts per op over the window. */
async function straceWindow(serverPid: number, metricsUrls: string[], seconds: number): Promise<{ server: Tally; client: Tally }> {
  await new Promise((resolve) => setTimeout(resolve, 1500));
  const clientPid = goLoadPid();
  const before = await diskFigures(metricsUrls);
  const [server, client] = await Promise.all([
    straceCounts(serverPid, seconds),
    clientPid === undefined ? Promise.resolve({}) : straceCounts(clientPid, seconds),
  ]);
  const ops = (await diskFigures(metricsUrls)).committed - before.committed;
  const per = (t: Tally): Tally => Object.fromEntries(Object.entries(t).map(([k, v]) => [k, v / ops]));
  return { server: per(server), client: per(client) };
}

/** The processes whose CPU is counted for a target: its member processes (every member of a
 * cluster, summed) and its edge processes. */
interface Pids {
  main: number[];
  edges: number[];
}

async function measured(pids: Pids | undefined, total: number, run: () => Promise<Result>): Promise<{ result: Result; cpu?: Row['cpu'] }> {
  if (pids === undefined) return { result: await run() };
  const sum = (list: number[]): number => list.reduce((a, pid) => a + cpuMicros(pid), 0);
  const perMain0 = pids.main.map(cpuMicros);
  const edges0 = sum(pids.edges);
  const result = await run();
  const perMainUs = pids.main.map((pid, i) => (cpuMicros(pid) - perMain0[i]!) / total);
  const mainUs = perMainUs.reduce((a, b) => a + b, 0);
  return { result, cpu: { mainUs, edgesUs: (sum(pids.edges) - edges0) / total, perMainUs } };
}

/**
 * Debug figure for batching: every member's committed index and count of synced log writes
 * (etcd_server_proposals_committed_total, etcd_disk_wal_fsync_duration_seconds_count, which
 * both servers export), summed over the members. Their deltas over a put run give the entries
 * each member writes per fsync.
 */
async function diskFigures(metricsUrls: string[]): Promise<{ committed: number; fsyncs: number; fsyncSeconds: number; leader: number }> {
  let committed = 0;
  let fsyncs = 0;
  let fsyncSeconds = 0;
  let leader = -1;
  for (const [i, url] of metricsUrls.entries()) {
    const text = await (await fetch(url)).text();
    if (/^etcd_server_is_leader 1$/m.test(text)) leader = i;
    committed += Number(/^etcd_server_proposals_committed_total (\S+)$/m.exec(text)?.[1] ?? Number.NaN);
    fsyncs += Number(/^etcd_disk_wal_fsync_duration_seconds_count (\S+)$/m.exec(text)?.[1] ?? Number.NaN);
    fsyncSeconds += Number(/^etcd_disk_wal_fsync_duration_seconds_sum (\S+)$/m.exec(text)?.[1] ?? Number.NaN);
  }
  return { committed, fsyncs, fsyncSeconds, leader };
}

/** Per-member counters (summed over their label sets), by the name printed. */
const MEMBER_COUNTERS: Record<string, string[]> = {
  fsyncs: ['etcd_disk_wal_fsync_duration_seconds_count'],
  'backend commits': ['etcd_disk_backend_commit_duration_seconds_count'],
  'client calls': ['grpc_server_handled_total', 'grpc_server_request_total'],
  'peer bytes sent': ['etcd_network_peer_sent_bytes_total'],
  'peer bytes received': ['etcd_network_peer_received_bytes_total'],
};

/** Each member's MEMBER_COUNTERS now: one array per counter, one value per member. */
async function memberCounters(metricsUrls: string[]): Promise<Record<string, number[]>> {
  const texts = await Promise.all(metricsUrls.map(async (url) => (await fetch(url)).text()));
  const out: Record<string, number[]> = {};
  for (const [label, names] of Object.entries(MEMBER_COUNTERS)) {
    out[label] = texts.map((text) => {
      let sum = 0;
      for (const line of text.split('\n')) {
        const name = /^([a-z_]+)[{ ]/.exec(line)?.[1];
        if (name !== undefined && names.includes(name)) sum += Number(line.slice(line.lastIndexOf(' ') + 1));
      }
      return sum;
    });
  }
  return out;
}

/** The leader's client endpoint alone (--endpoints leader), else all of them. */
async function loadEndpoints(endpoints: string[], metricsUrls: string[]): Promise<string[]> {
  if (endpointsMode === 'all' || endpoints.length === 1) return endpoints;
  const { leader } = await diskFigures(metricsUrls);
  if (leader < 0) throw new Error('--endpoints leader: no member reports etcd_server_is_leader 1');
  return [endpoints[leader]!];
}

/** Ranges of each kind run before the measured ones. */
const RANGE_WARM_UP = 20_000;

async function benchTarget(target: string, allEndpoints: string[], metricsUrls: string[], pids?: Pids): Promise<Row[]> {
  await waitForLeader(allEndpoints);
  const endpoints = await loadEndpoints(allEndpoints, metricsUrls);
  // Warm-up (JIT, connections, caches): 5,000 puts a member. Each member of a cluster serves a
  // third of the calls, so 5,000 in all left its code still compiling in the measured run (perf
  // of the members: TurboFan threads took ~21% of their CPU in its first 25 s, 3% a minute in).
  await load(endpoints, putOp, warmUpPuts ?? Math.min(5000 * members, puts), false);
  const rows: Row[] = [];
  const before = await diskFigures(metricsUrls);
  const counters0 = await memberCounters(metricsUrls);
  const machine0 = machineFigures(pids?.main ?? []);
  const node = target.startsWith('MetaStore');
  const threads0 = threadGroups(pids?.main ?? [], node);
  const putLoad = load(endpoints, putOp, puts, false);
  const traced = straceSeconds > 0 && pids !== undefined ? straceWindow(pids.main[0]!, metricsUrls, straceSeconds) : undefined;
  const putRun = await measured(pids, puts, () => putLoad);
  const machine = minusMachine(machineFigures(pids?.main ?? []), machine0, puts);
  const threads = minusGroups(threadGroups(pids?.main ?? [], node), threads0, puts);
  const syscalls = await traced;
  const after = await diskFigures(metricsUrls);
  const counters1 = await memberCounters(metricsUrls);
  const perMember = Object.fromEntries(Object.entries(counters1).map(([label, values]) => [label, values.map((v, i) => (v - counters0[label]![i]!) / puts)]));
  const entriesPerFsync = (after.committed - before.committed) / (after.fsyncs - before.fsyncs);
  const fsyncSeconds = after.fsyncSeconds - before.fsyncSeconds;
  const fsync = { meanMs: (1000 * fsyncSeconds) / (after.fsyncs - before.fsyncs), busyShare: fsyncSeconds / (puts / putRun.result.opsPerSecond) };
  const leader = after.leader === before.leader && after.leader >= 0 ? after.leader : undefined;
  rows.push({
    target,
    workload: `${putOp}, ${clients} clients / ${connections} conns${endpoints.length < allEndpoints.length ? ', leader endpoint only' : ''}`,
    ...putRun,
    entriesPerFsync,
    leader,
    machine,
    syscalls,
    fsync,
    threads,
    perMember,
  });
  if (ranges === 0) return rows;
  for (const kind of rangeKinds) {
    // Warm-up of this kind as well: each member of a cluster sees a third of the calls, so
    // its range path is still in V8's lower tiers well into a first run (1-member runs warm
    // three times faster); etcd gets the same warm-up.
    await load(endpoints, 'range', Math.min(RANGE_WARM_UP, ranges), kind === 'linearizable');
    rows.push({
      target,
      workload: `range (${kind}, 1 key), ${clients} clients / ${connections} conns`,
      ...(await measured(pids, ranges, () => load(endpoints, 'range', ranges, kind === 'linearizable'))),
    });
  }
  return rows;
}

/** A cluster's CPU per op split by role: the leader's, then each follower's. */
function memberCpuText(perMainUs: number[], leader: number): string {
  const followers = perMainUs.filter((_, i) => i !== leader).map((us) => us.toFixed(0));
  return `${perMainUs[leader]!.toFixed(0)} / ${followers.join(', ')}`;
}

function format(rows: Row[]): string {
  const lines = [
    '| target | workload | ops/s | p50 ms | p99 ms | errors | CPU us/op (main + edges) | leader / followers CPU us/op | entries per fsync |',
    '|---|---|---:|---:|---:|---:|---:|---:|---:|',
  ];
  for (const { target, round, workload, result, cpu, entriesPerFsync, leader } of rows) {
    const cpuText = cpu === undefined ? '' : `${cpu.mainUs.toFixed(0)} + ${cpu.edgesUs.toFixed(0)}`;
    const perMember = cpu === undefined || leader === undefined || cpu.perMainUs.length < 2 ? '' : memberCpuText(cpu.perMainUs, leader);
    const batchText = entriesPerFsync === undefined ? '' : entriesPerFsync.toFixed(1);
    lines.push(
      `| ${rounds > 1 ? `${target} #${round}` : target} | ${workload} | ${result.opsPerSecond.toFixed(0)} | ${result.p50Ms.toFixed(2)} | ${result.p99Ms.toFixed(2)} | ${result.errors} | ${cpuText} | ${perMember} | ${batchText} |`,
    );
  }
  const ratios: string[] = [];
  for (const workload of new Set(rows.map((r) => r.workload))) {
    for (const target of new Set(rows.filter((r) => r.workload === workload && r.target.startsWith('MetaStore')).map((r) => r.target))) {
      const perRound: number[] = [];
      for (const ms of rows.filter((r) => r.workload === workload && r.target === target)) {
        const etcd = rows.find((r) => r.workload === workload && r.round === ms.round && r.target.startsWith('etcd'));
        if (etcd) perRound.push(ms.result.opsPerSecond / etcd.result.opsPerSecond);
      }
      if (perRound.length === 1) ratios.push(`- ${workload}: ${target} / etcd = **${perRound[0]!.toFixed(2)}**`);
      if (perRound.length > 1) {
        const median = [...perRound].sort((a, b) => a - b)[Math.floor(perRound.length / 2)]!;
        ratios.push(`- ${workload}: ${target} / etcd = **${median.toFixed(2)}** (median of rounds: ${perRound.map((x) => x.toFixed(2)).join(', ')})`);
      }
    }
  }
  return [...lines, '', ...ratios, ...machineTable(rows)].join('\n');
}

/** The whole machine per op for the rows that have it (the put runs): who spends the CPU, and
 * what crosses the loopback. */
function machineTable(rows: Row[]): string[] {
  const lines = [
    '',
    '| target | workload | server CPU us (sys; main thread) | go-load CPU us (user + sys) | machine user / sys / softirq / idle us | segs c->s (data) | segs s->c (data) | server read / write syscalls | fsync mean ms (busy) |',
    '|---|---|---:|---:|---:|---:|---:|---:|---:|',
  ];
  const n = (x: number | undefined, digits = 1): string => (x === undefined ? '?' : x.toFixed(digits));
  const extra: string[] = [];
  for (const { target: name, round, workload, result: r, cpu, machine: m, syscalls, fsync, threads, perMember, leader } of rows) {
    if (m === undefined) continue;
    const target = rounds > 1 ? `${name} #${round}` : name;
    const ops = puts;
    const client = r.cpuUserUs === undefined ? '?' : `${n((r.cpuUserUs + r.cpuSystemUs!) / ops)} (${n(r.cpuUserUs / ops)} + ${n(r.cpuSystemUs! / ops)})`;
    const segs = (all?: number, data?: number): string => (all === undefined ? '?' : `${n(all / ops, 2)} (${n(data! / ops, 2)})`);
    lines.push(
      `| ${target} | ${workload} | ${n(cpu?.mainUs)} (${n(m.serverSystemUs)}; ${n(m.serverMainThreadUs)}) | ${client} | ${n(m.userUs)} / ${n(m.systemUs)} / ${n(m.softirqUs)} / ${n(m.idleUs)} | ${segs(r.tcp?.segsOut, r.tcp?.dataSegsOut)} | ${segs(r.tcp?.segsIn, r.tcp?.dataSegsIn)} | ${n(m.serverReads, 2)} / ${n(m.serverWrites, 2)} | ${fsync === undefined ? '?' : `${n(fsync.meanMs, 2)} (${(100 * fsync.busyShare).toFixed(0)}%)`} |`,
    );
    if (threads !== undefined) {
      const named = Object.entries(threads)
        .filter(([, g]) => g.us >= 0.05 || g.voluntary + g.involuntary >= 0.005)
        .sort((a, b) => b[1].us - a[1].us)
        .map(([name, g]) => `${name} (${g.threads}) ${g.us.toFixed(1)} us, ${g.voluntary.toFixed(2)} + ${g.involuntary.toFixed(2)} switches`);
      const all = Object.values(threads).reduce((a, g) => a + g.voluntary + g.involuntary, 0);
      extra.push(`- ${target}, server per op by thread (count) CPU, voluntary + involuntary context switches (${all.toFixed(2)} in all): ${named.join('; ')}`);
    }
    const memberCount = perMember === undefined ? 0 : (Object.values(perMember)[0]?.length ?? 0);
    if (perMember !== undefined && memberCount > 1) {
      const others = [...Array(memberCount).keys()].filter((i) => i !== leader);
      const order = leader === undefined ? others : [leader, ...others];
      const figures = Object.entries(perMember)
        .filter(([, values]) => values.some((v) => v !== 0))
        .map(([label, values]) => `${label} ${order.map((i) => values[i]!.toFixed(label.startsWith('peer') ? 0 : 3)).join(' / ')}`);
      extra.push(`- ${target}, per member per op (${leader === undefined ? 'leader unknown' : 'leader first'}): ${figures.join('; ')}`);
    }
    if (r.frames) {
      const per = (t: Tally): string =>
        Object.entries(t)
          .map(([k, v]) => `${k} ${(v / ops).toFixed(k === 'bytes' ? 0 : 3)}`)
          .join(', ');
      extra.push(`- ${target}, frames per op: client to server: ${per(r.frames.sent)}; server to client: ${per(r.frames.received)}`);
    }
    if (syscalls) {
      const top = (t: Tally): string =>
        Object.entries(t)
          .filter(([, v]) => v >= 0.005)
          .sort((a, b) => b[1] - a[1])
          .map(([k, v]) => `${k} ${v.toFixed(2)}`)
          .join(', ');
      extra.push(`- ${target}, syscalls per op (strace window): server: ${top(syscalls.server)}; go-load: ${top(syscalls.client)}`);
    }
  }
  return lines.length > 3 ? [...lines, '', ...extra] : [];
}

/** Runs the workloads against real etcd (a lone member or a cluster, as --members says). */
async function benchEtcd(): Promise<Row[]> {
  if (members === 1) {
    const etcd = await startEtcd();
    const rows = await benchTarget('etcd 3.4.23', [etcd.endpoint.replace('http://', '')], [`${etcd.endpoint}/metrics`], { main: [etcd.pid], edges: [] });
    await etcd.stop();
    return rows;
  }
  const etcd = await startEtcdCluster();
  const metricsUrls = etcd.endpoints.map((e) => `http://${e}/metrics`);
  const rows = await benchTarget('etcd 3.4.23', etcd.endpoints, metricsUrls, { main: etcd.pids, edges: [] });
  await etcd.stop();
  return rows;
}

/** Runs the workloads against MetaStore (a lone member once per --workers count, or a cluster). */
async function benchMetaStore(): Promise<Row[]> {
  const rows: Row[] = [];
  if (members === 1) {
    for (const workers of workerCounts) {
      const metastore = await startMetaStore({ env: { ...memberEnv, METASTORE_SERVER_GRPC_WORKERS: String(workers) }, nodeArgs });
      const target = workerCounts.length === 1 && workers === 0 ? 'MetaStore' : `MetaStore (workers ${workers})`;
      const edges = [...metastore.logs().matchAll(/"pid":(\d+),"msg":"edge process started"/g)].map((m) => Number(m[1]));
      const metricsUrls = [`http://127.0.0.1:${metastore.metricsPort}/metrics`];
      rows.push(...(await benchTarget(target, [metastore.endpoint.replace('http://', '')], metricsUrls, { main: [metastore.pid], edges })));
      if (nodeArgs.length > 0) await metastore.stop(); // a clean exit writes the profiles
      await metastore.destroy();
    }
    return rows;
  }
  const cluster = await startMetaStoreCluster(members, { nodeArgs, env: memberEnv });
  const metricsUrls = cluster.members.map((m) => `http://127.0.0.1:${m.metricsPort}/metrics`);
  rows.push(...(await benchTarget('MetaStore', cluster.endpoints.split(','), metricsUrls, { main: cluster.members.map((m) => m.pid), edges: [] })));
  if (nodeArgs.length > 0) await Promise.all(cluster.members.map((m) => m.stop())); // clean exits write the profiles
  await cluster.destroy();
  return rows;
}

async function main(): Promise<void> {
  const rows: Row[] = [];
  const label = members === 1 ? 'single member' : `${members} members`;
  try {
    // With --rounds, the two servers take turns going first, so that neither always runs on the
    // machine the other has just warmed (or heated): a shared machine's drift falls on both.
    for (let round = 1; round <= rounds; round++) {
      const turns = [only !== 'metastore' ? benchEtcd : undefined, only !== 'etcd' ? benchMetaStore : undefined];
      if (round % 2 === 0) turns.reverse();
      for (const turn of turns) {
        if (turn === undefined) continue;
        for (const row of await turn()) rows.push({ ...row, round });
      }
    }
  } finally {
    await disposeAll();
  }
  const table = format(rows);
  console.log(table);
  if (process.argv.includes('--record')) {
    const cpu = /model name\s*:\s*(.*)/.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1] ?? os.cpus()[0]?.model ?? 'unknown';
    const command = `node --import tsx bench/kv-bench.ts ${process.argv.slice(2).join(' ')}`.trim();
    const generator = goBinary ? 'bench/go-load (Go clientv3)' : 'bench/load.ts (Node grpc-js)';
    appendFileSync(
      join(benchDir, 'RESULTS.md'),
      `\n## KV, ${label} (${new Date().toISOString().slice(0, 10)})\n\nMachine: ${os.cpus().length} cores (${cpu}), ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB, Node ${process.version}. Load generator: ${generator}. Command: \`${command}\`\n\n${table}\n`,
    );
  }
}

await main();
