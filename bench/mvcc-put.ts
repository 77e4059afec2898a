// Micro-benchmark of the MVCC core's hot paths: put and single-key range (get).
//
// Run: node --import tsx bench/mvcc-put.ts
//
// Workload: 100k puts over 10k keys ("key-00000".."key-09999", round robin) with 256-byte
// values, then 100k single-key gets at the current revision (served from memory).
// Estimate before measuring: a put is one latin1 key conversion, one Map lookup, one ~300-byte
// allocation plus two copies, four small objects and two sink calls: ~1 us, so about 1M puts/s
// with a discarding sink; the in-memory history adds a revision-key encode and a Map insert
// per put. A get is a key conversion, a Map lookup and a result object: ~0.3 us, ~3M gets/s.
//
// Recorded 2026-11-22, node v20.20.2, 2-vCPU shared VM (load average ~3 from other work, so
// runs vary by +-40%; best of three):
//   discarding sink:        puts ~560k/s (1.8 us), gets ~2.3M/s (0.43 us)
//   in-memory history sink: puts ~400k/s (2.5 us), gets ~2.1M/s (0.47 us)
// Since values left the heap (issue 15) the store reads every value back through its history,
// so a sink that discards records no longer works: both puts (the previous value, for the
// event's prevKv) and gets read a record from the in-memory history.
// Re-measured 2026-12-06 after that change, with the member's 16 MiB value cache, on the same
// 2-vCPU VM shared with six other sessions (load average ~30, so only ratios in one run mean
// anything): puts ~44-52k/s and gets ~120-180k/s, against 34k/s and 191k/s for the code before
// the change run on the same machine minutes earlier.
// Each record gets its own ArrayBuffer (see record.ts: pooled buffers would let one live value
// pin an 8 KiB slab); pooled allocation measured ~1.0 us per put but risks that memory blow-up.
// No etcd figure: this measures the in-memory core only, with no raft, disk or gRPC, so it is
// not comparable with etcd's benchmark tool; the end-to-end put benchmark is the place for that.

import { MemoryHistory } from '../src/mvcc/memory-history.js';
import { MvccStore, type WriteSink } from '../src/mvcc/mvcc-store.js';
import type { PutRequest, RangeRequest } from '../src/mvcc/types.js';
import { rangeRequest } from '../src/mvcc/types.js';

const PUTS = 100_000;
const KEYS = 10_000;
const VALUE_BYTES = 256;
const GETS = 100_000;

const keys = Array.from({ length: KEYS }, (_, i) => Buffer.from(`key-${String(i).padStart(5, '0')}`));
const value = Buffer.alloc(VALUE_BYTES, 0x61);

function seconds(start: bigint): number {
  return Number(process.hrtime.bigint() - start) / 1e9;
}

function putRequest(key: Buffer): PutRequest {
  return { key, value, lease: 0n, prevKv: false, ignoreValue: false, ignoreLease: false };
}

function getRequest(key: Buffer): RangeRequest {
  return rangeRequest(key);
}

function run(label: string, sink: WriteSink, history: MemoryHistory): void {
  // The member's default value cache (server.storage.value_cache_size).
  const store = new MvccStore({ history, valueCacheBytes: 16 * 1024 * 1024 });
  const puts = keys.map(putRequest);
  const gets = keys.map(getRequest);
  // Warm up the JIT on a separate store so the timed one starts empty.
  const warmHistory = new MemoryHistory();
  warmHistory.keepEvents = false;
  const warm = new MvccStore({ history: warmHistory });
  for (let i = 0; i < 50_000; i++) warm.put(puts[i % KEYS]!, warmHistory);
  for (let i = 0; i < 50_000; i++) warm.range(gets[i % KEYS]!);

  let start = process.hrtime.bigint();
  for (let i = 0; i < PUTS; i++) store.put(puts[i % KEYS]!, sink);
  const putSeconds = seconds(start);

  let found = 0;
  start = process.hrtime.bigint();
  for (let i = 0; i < GETS; i++) found += store.range(gets[(i * 7919) % KEYS]!).kvs.length;
  const getSeconds = seconds(start);
  if (found !== GETS) throw new Error('benchmark gets missed keys');

  const rate = (n: number, s: number): string => `${Math.round(n / s).toLocaleString('en-US')}/s (${((s / n) * 1e6).toFixed(2)} us each)`;
  console.log(`${label}`);
  console.log(`  puts:   ${rate(PUTS, putSeconds)}  [${PUTS} puts over ${KEYS} keys, ${VALUE_BYTES}-byte values]`);
  console.log(`  gets:   ${rate(GETS, getSeconds)}  [single-key range at the current revision]`);
}

const history = new MemoryHistory();
history.keepEvents = false;
run('MvccStore, in-memory history sink (records kept in a Map)', history, history);
console.log(`node ${process.version}, ${new Date().toISOString()}`);
