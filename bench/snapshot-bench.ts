// Snapshot of a large member: server memory while `etcdctl snapshot save` streams, and writes during it.
//
// Starts one MetaStore member (bin/metastore, so build dist/ first), loads --gib GiB of 1 KiB
// values under distinct keys (pipelined puts over a few grpc-js connections, values cut from
// random bytes so LevelDB cannot shrink them), then runs `etcdctl snapshot save` while a writer
// keeps putting. The server's RSS (VmRSS from /proc/<pid>/status) is sampled every 100 ms for
// a second before the stream, during it and for a second after. Reports: load rate, snapshot
// size and time, RSS before / peak during / after, puts acknowledged during the stream and
// their latency, and `etcdctl snapshot status` of the file (its key count must cover the load).
//
// How to read it: "peak during - before" is what streaming the snapshot costs the server in
// memory; bounded means it stays far below the snapshot's size and does not grow with --gib
// (compare two sizes). "puts during the stream" > 0 shows writes are not blocked by it.
//
// Estimate before measuring (2 cores, shared with the load generator): the load runs at ~8-12k
// puts/s (~10 MB/s, ~2 min per GiB); the snapshot is a bbolt file a little over the data
// (~1.2 GiB for 1 GiB of values) written at 100-200 MB/s, so 5-15 s; the stream is produced in
// pages and chunks, so RSS should rise by tens of MB at most; puts keep being acknowledged
// during it at a few ms each, slower than idle as the stream takes CPU.
//
//   npm run bench -- snapshot [--gib 1] [--clients 64] [--connections 4]

import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { encodeMessage } from '../src/grpc/proto.js';
import { disposeAll } from '../test/support/processes.js';
import { startMetaStore } from '../test/support/servers.js';
import { runLoad } from './load.js';
import { numberFlag } from './flags.js';

const gib = numberFlag('gib', 1);
const clients = numberFlag('clients', 64);
const connections = numberFlag('connections', 4);
/** server.storage.max_open_files (0: the server's default). */
const maxOpenFiles = numberFlag('max-open-files', 0);
const VALUE_BYTES = 1024;
const keys = Math.round((gib * 2 ** 30) / VALUE_BYTES);
const mb = (bytes: number): string => `${(bytes / 2 ** 20).toFixed(1)} MB`;

/** Resident memory of `pid` from /proc/<pid>/status: all of it, anonymous (heap, buffers) and file-backed (mapped files). */
interface Rss {
  total: number;
  anon: number;
  file: number;
}

function rssOf(pid: number): Rss {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kib = (field: string): number => Number(status.match(new RegExp(`^${field}:\\s+(\\d+)`, 'm'))?.[1] ?? 0) * 1024;
  return { total: kib('VmRSS'), anon: kib('RssAnon'), file: kib('RssFile') + kib('RssShmem') };
}

/** The `count` mappings of `pid` holding the most resident memory (from /proc/<pid>/smaps). */
function topMappings(pid: number, count: number): string {
  const byName = new Map<string, number>();
  let name = '';
  for (const line of readFileSync(`/proc/${pid}/smaps`, 'utf8').split('\n')) {
    const header = line.match(/^[0-9a-f]+-[0-9a-f]+ \S+ \S+ \S+ \S+\s*(.*)$/);
    // LevelDB table files are grouped: their number grows with the data.
    if (header) name = (header[1] || '[anonymous]').replace(/\/[^/]+\.(ldb|sst)$/, '/*.$1');
    const rss = line.match(/^Rss:\s+(\d+) kB/);
    if (rss) byName.set(name, (byName.get(name) ?? 0) + Number(rss[1]) * 1024);
  }
  return [...byName]
    .sort((a, b) => b[1] - a[1])
    .slice(0, count)
    .map(([n, bytes]) => `${mb(bytes)} ${n}`)
    .join('; ');
}

/** Samples RSS every 100 ms into the phase currently set. */
class RssSampler {
  readonly samples = new Map<string, Rss[]>();
  private phase = 'before';
  private readonly timer: NodeJS.Timeout;
  constructor(private readonly pid: number) {
    this.timer = setInterval(() => this.sample(), 100);
    this.sample();
  }
  enter(phase: string): void {
    this.phase = phase;
    this.sample();
  }
  stop(): void {
    clearInterval(this.timer);
  }
  /** The phase's last sample and the peak of each figure (peaks may come from different samples). */
  summary(phase: string): { last: Rss; peak: Rss; count: number } {
    const values = this.samples.get(phase) ?? [{ total: 0, anon: 0, file: 0 }];
    const peak = (field: keyof Rss): number => Math.max(...values.map((v) => v[field]));
    return { last: values[values.length - 1]!, peak: { total: peak('total'), anon: peak('anon'), file: peak('file') }, count: values.length };
  }
  private sample(): void {
    const list = this.samples.get(this.phase) ?? [];
    list.push(rssOf(this.pid));
    this.samples.set(this.phase, list);
  }
}

/** Loads `keys` distinct keys of 1 KiB values; values are slices of 1 MiB of random bytes. */
async function loadData(endpoint: string): Promise<void> {
  const pool = randomBytes(2 ** 20 + VALUE_BYTES);
  const request = (i: number): Buffer => {
    const offset = (i * 4099) % 2 ** 20;
    const key = Buffer.from(`snap/${String(i).padStart(8, '0')}`);
    return encodeMessage('etcdserverpb.PutRequest', { key, value: pool.subarray(offset, offset + VALUE_BYTES) });
  };
  const result = await runLoad({ endpoint, path: '/etcdserverpb.KV/Put', clients, connections, totalOps: keys, request });
  if (result.errors > 0) throw new Error(`load: ${result.errors} puts failed`);
  const rate = (keys * VALUE_BYTES) / result.seconds;
  console.log(
    `load: ${keys} x 1 KiB in ${result.seconds.toFixed(1)} s = ${result.opsPerSecond.toFixed(0)} puts/s, ${mb(rate)}/s (p99 ${result.latencyMs.p99.toFixed(1)} ms)`,
  );
}

/** Keeps `callers` puts in flight until stopped; records each acknowledged put's latency. */
class BackgroundWriter {
  readonly latenciesMs: number[] = [];
  errors = 0;
  private running = true;
  private readonly client: grpc.Client;
  private readonly done: Promise<unknown>;
  constructor(endpoint: string, callers: number) {
    this.client = new grpc.Client(endpoint, grpc.credentials.createInsecure());
    const value = randomBytes(VALUE_BYTES);
    let n = 0;
    const loop = async (): Promise<void> => {
      while (this.running) {
        const request = encodeMessage('etcdserverpb.PutRequest', { key: Buffer.from(`live/${n++ % 10_000}`), value });
        const sent = process.hrtime.bigint();
        await new Promise<void>((resolve) =>
          this.client.makeUnaryRequest(
            '/etcdserverpb.KV/Put',
            (b: Buffer) => b,
            (b: Buffer) => b,
            request,
            (error) => {
              if (error) this.errors++;
              else this.latenciesMs.push(Number(process.hrtime.bigint() - sent) / 1e6);
              resolve();
            },
          ),
        );
      }
    };
    this.done = Promise.all(Array.from({ length: callers }, loop));
  }
  async stop(): Promise<void> {
    this.running = false;
    await this.done;
    this.client.close();
  }
}

/** Runs etcdctl with the v3 API; resolves with its stdout, rejects on a non-zero exit. */
function etcdctl(args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn('etcdctl', args, { env: { ...process.env, ETCDCTL_API: '3' }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (chunk) => (out += chunk));
    child.stderr.on('data', (chunk) => (err += chunk));
    child.on('exit', (code) => (code === 0 ? resolve(out) : reject(new Error(`etcdctl ${args.join(' ')} exited ${code}: ${err}`))));
  });
}

const until = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

function percentile(sorted: number[], q: number): number {
  return sorted.length === 0 ? Number.NaN : sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
}

/** Streams the snapshot while the writer puts; prints the stream's figures. */
async function snapshotUnderWrites(endpoint: string, pid: number, file: string): Promise<void> {
  const rss = new RssSampler(pid);
  await until(1000); // a second of idle samples: the memory baseline
  const writer = new BackgroundWriter(endpoint, 8);
  await until(5000); // five seconds of puts alone: the put-rate baseline
  const alone = writer.latenciesMs.splice(0);
  rss.enter('during');
  const started = process.hrtime.bigint();
  await etcdctl(['--endpoints', endpoint, 'snapshot', 'save', file]);
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  const during = writer.latenciesMs.splice(0);
  rss.enter('after');
  console.log(`largest mappings right after the stream: ${topMappings(pid, 6)}`);
  await writer.stop();
  await until(1000);
  rss.stop();
  const size = statSync(file).size;
  const memory = { before: rss.summary('before'), during: rss.summary('during'), after: rss.summary('after') };
  console.log(`snapshot save: ${mb(size)} in ${seconds.toFixed(1)} s = ${mb(size / seconds)}/s`);
  const line = (name: string, field: keyof Rss): string =>
    `${name} before ${mb(memory.before.last[field])}, peak during ${mb(memory.during.peak[field])} ` +
    `(+${mb(memory.during.peak[field] - memory.before.last[field])}), after ${mb(memory.after.last[field])}`;
  console.log(`server RSS (${memory.during.count} samples during): ${line('total', 'total')}`);
  console.log(`  of which ${line('anonymous', 'anon')}`);
  console.log(`  of which ${line('file-backed', 'file')}`);
  console.log(`puts before the stream (5 s): ${putFigures(alone, 5)}`);
  console.log(`puts during the stream: ${putFigures(during, seconds)}, ${writer.errors} failed in all`);
}

function putFigures(latenciesMs: number[], seconds: number): string {
  const sorted = [...latenciesMs].sort((a, b) => a - b);
  return (
    `${sorted.length} acknowledged (${(sorted.length / seconds).toFixed(0)}/s); ` +
    `latency p50 ${percentile(sorted, 0.5).toFixed(1)} ms, p99 ${percentile(sorted, 0.99).toFixed(1)} ms, max ${percentile(sorted, 1).toFixed(1)} ms`
  );
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(os.tmpdir(), 'snapshot-bench-'));
  const member = await startMetaStore({
    extraArgs: ['--quota-backend-bytes', String(8 * 2 ** 30)],
    env: maxOpenFiles > 0 ? { METASTORE_SERVER_STORAGE_MAX_OPEN_FILES: String(maxOpenFiles) } : {},
  });
  try {
    console.log(
      `snapshot bench: ${gib} GiB (${keys} keys x 1 KiB), ${clients} clients over ${connections} connections, ${os.cpus().length} cores, max open files ${maxOpenFiles || 'default'}`,
    );
    const endpoint = `127.0.0.1:${member.clientPort}`;
    await loadData(endpoint);
    const file = join(dir, 'snapshot.db');
    await snapshotUnderWrites(endpoint, member.pid, file);
    const status = JSON.parse(await etcdctl(['snapshot', 'status', file, '-w', 'json'])) as { revision: number; totalKey: number; totalSize: number };
    console.log(`snapshot status: revision ${status.revision}, ${status.totalKey} keys, ${mb(status.totalSize)}`);
    if (status.totalKey < keys) throw new Error(`snapshot holds ${status.totalKey} keys, expected at least ${keys}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
    await disposeAll();
  }
}

await main();
