// A lone member's own CPU per put, without gRPC: KvServer.put in-process (Raft driver, log
// write, apply, MVCC, LevelDB) driven by N concurrent callers, the way kv-bench's 100 clients
// drive a member over the network. What this measures is the part of a member's CPU per put
// that is MetaStore's own write path, not grpc-js or HTTP/2, with far less run-to-run noise
// than the end-to-end figure (no load generator, no sockets).
//
// Run: npx tsc -p tsconfig.build.json && node --import tsx bench/member-put.ts [--puts 200000] [--callers 100] [--keys 100000]
//        [--value 256] [--rounds 3] [--wal-dir DIR] [--value-cache 16777216]
// (node options such as --cpu-prof go before --import.) Keys and values are go-load's: key
// i % keys of the form %08d((i*7919) % keys), 256-byte values. A warm-up of a fifth of the puts
// runs first. Prints, per round: puts/s, process CPU us/put (every thread: main, LevelDB's
// pool, V8's helpers), main-thread busy us/put (event loop utilisation), GC counts, each put's
// latency (KvServer.put called -> resolved: with --callers 1, the lone put's path inside the
// member), the CPU per put of the main thread and of the others (/proc; 10 ms ticks), and
// LevelDB writes. The backend has the member's default memtable size (16 MiB). With --wal-dir the
// Raft log is kept in its own database (etcd's --wal-dir: wal-dir.ts) in a fresh directory made
// under DIR; its LevelDB writes are counted with the backend's.

import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PerformanceObserver, performance } from 'node:perf_hooks';
import type { KvServer as KvServerType } from '../src/server/member/kv-server.js';
import type { Backend as BackendType } from '../src/storage/backend.js';
import type { WalDb as WalDbType } from '../src/storage/wal-dir.js';
import { numberFlag, textFlag } from './flags.js';

// The compiled dist/ (run `npx tsc -p tsconfig.build.json` first), as a member runs it: tsx's
// own transform wraps every closure it creates in a name-keeping helper, which a profile of
// this hot a path then shows among the top frames.
const dist = new URL('../dist/src/', import.meta.url).href;
const { KvServer } = (await import(`${dist}server/member/kv-server.js`)) as { KvServer: typeof KvServerType };
const { Backend } = (await import(`${dist}storage/backend.js`)) as { Backend: typeof BackendType };
const { WalDb } = (await import(`${dist}storage/wal-dir.js`)) as { WalDb: typeof WalDbType };
const { singleVoter } = (await import(`${dist}server/member/replication.js`)) as typeof import('../src/server/member/replication.js');
type KvServer = KvServerType;

const puts = numberFlag('puts', 200_000);
const callers = numberFlag('callers', 100);
const keyCount = numberFlag('keys', 100_000);
const valueBytes = numberFlag('value', 256);
const rounds = numberFlag('rounds', 3);
const walParent = textFlag('wal-dir');
/** The member's value cache (server.storage.value_cache_size), bytes; the default is 16 MiB. */
const valueCacheBytes = numberFlag('value-cache', 16 << 20);

const keys = Array.from({ length: keyCount }, (_, i) => Buffer.from(String((i * 7919) % keyCount).padStart(8, '0')));
const value = Buffer.alloc(valueBytes, 0x76);

const gcs = { minor: 0, major: 0, ms: 0 };
/** LevelDB writes (each merged batch once), synced or not. */
const writes = { synced: 0, unsynced: 0 };
new PerformanceObserver((list) => {
  for (const entry of list.getEntries()) {
    const kind = (entry as { detail?: { kind?: number } }).detail?.kind;
    if (kind === 1) gcs.minor++;
    else gcs.major++;
    gcs.ms += entry.duration;
  }
}).observe({ entryTypes: ['gc'] });

/** CPU clock ticks (user + system) of the main thread and of all the others (Node names them
 * all "node": LevelDB's pool and its compaction thread, V8's helpers, libuv's pool). */
function threadTicks(): Map<string, number> {
  const byName = new Map<string, number>();
  for (const tid of readdirSync('/proc/self/task')) {
    try {
      const stat = readFileSync(`/proc/self/task/${tid}/stat`, 'utf8');
      const name = Number(tid) === process.pid ? 'main' : 'other threads';
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      byName.set(name, (byName.get(name) ?? 0) + Number(fields[11]) + Number(fields[12]));
    } catch {
      // The thread ended between the listing and the read.
    }
  }
  return byName;
}

/** Per thread group, us of CPU per put between two threadTicks() readings (10 ms ticks). */
function ticksPerPut(before: Map<string, number>, after: Map<string, number>, n: number): string {
  const parts: string[] = [];
  for (const [name, ticks] of after) {
    const used = ((ticks - (before.get(name) ?? 0)) * 10_000) / n;
    if (used >= 0.5) parts.push(`${name} ${used.toFixed(1)}`);
  }
  return parts.join(', ');
}

/** Runs `total` puts; returns each put's latency (KvServer.put called -> resolved), us. */
async function run(kv: KvServer, total: number, offset: number): Promise<Float64Array> {
  let next = 0;
  const latencies = new Float64Array(total);
  const caller = async (): Promise<void> => {
    while (next < total) {
      const n = next++;
      const i = offset + n;
      const started = performance.now();
      // A fresh request object per put, as the gRPC handler decodes one per call.
      await kv.put({ key: keys[i % keyCount]!, value, lease: 0n, prevKv: false, ignoreValue: false, ignoreLease: false });
      latencies[n] = (performance.now() - started) * 1000;
    }
  };
  await Promise.all(Array.from({ length: callers }, caller));
  return latencies;
}

/** p50 / p90 / p99 of the latencies, us. */
function percentiles(latencies: Float64Array): string {
  const sorted = latencies.slice().sort();
  const at = (q: number): string => (sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * q))] ?? 0).toFixed(0);
  return `${at(0.5)} / ${at(0.9)} / ${at(0.99)}`;
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'metastore-member-put-'));
  const onWrite = (_seconds: number, synced: boolean): void => void (synced ? writes.synced++ : writes.unsynced++);
  const backend = await Backend.open(dir, { cacheSizeBytes: 8 << 20, onWrite });
  const walDir = walParent === undefined ? undefined : mkdtempSync(join(walParent, 'metastore-member-put-wal-'));
  const wal = walDir === undefined ? undefined : await WalDb.open(walDir, { onWrite });
  const kv = await KvServer.open(backend, { valueCacheBytes, replication: wal === undefined ? undefined : singleVoter({ logDb: wal }) });
  await kv.start();
  let offset = 0;
  await run(kv, Math.floor(puts / 5), offset);
  offset += Math.floor(puts / 5);
  for (let round = 0; round < rounds; round++) {
    Object.assign(gcs, { minor: 0, major: 0, ms: 0 });
    Object.assign(writes, { synced: 0, unsynced: 0 });
    const cpu = process.cpuUsage();
    const elu = performance.eventLoopUtilization();
    const ticks = threadTicks();
    const started = performance.now();
    const latencies = await run(kv, puts, offset);
    offset += puts;
    const seconds = (performance.now() - started) / 1000;
    const used = process.cpuUsage(cpu);
    const busy = performance.eventLoopUtilization(elu);
    console.log(
      `round ${round + 1}: ${Math.round(puts / seconds)} puts/s, process CPU ${((used.user + used.system) / puts).toFixed(1)} us/put, ` +
        `main thread busy ${((busy.active * 1000) / puts).toFixed(1)} us/put, GC minor ${gcs.minor} major ${gcs.major} (${gcs.ms.toFixed(0)} ms), ` +
        `put latency p50 / p90 / p99 ${percentiles(latencies)} us`,
    );
    console.log(
      `  CPU us/put: ${ticksPerPut(ticks, threadTicks(), puts)}; LevelDB writes ${writes.synced} synced + ${writes.unsynced} unsynced ` +
        `(${(puts / Math.max(1, writes.synced + writes.unsynced)).toFixed(1)} puts a write)`,
    );
  }
  await kv.close();
  await wal?.close();
  rmSync(dir, { recursive: true, force: true });
  if (walDir !== undefined) rmSync(walDir, { recursive: true, force: true });
}

await main();
