// KV benchmark: put (8-byte keys, 256-byte values) and serializable single-key range, with many
// concurrent clients over several connections, against real etcd 3.4 and MetaStore started
// fresh in the same run on this machine. Prints a table and, with --record, appends it to
// bench/RESULTS.md with the machine, the date and the command.
//
//   node --import tsx bench/kv-bench.ts [--clients 100] [--connections 10] [--puts 50000]
//        [--ranges 100000] [--only etcd|metastore] [--record]

import { appendFileSync, readFileSync } from 'node:fs';
import os from 'node:os';
import { encodeMessage } from '../src/grpc/proto.js';
import { startEtcd, startMetaStore } from '../test/support/servers.js';
import { disposeAll } from '../test/support/processes.js';
import { runLoad, type LoadResult } from './load.js';

function flag(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : fallback;
}
const only = process.argv.includes('--only') ? process.argv[process.argv.indexOf('--only') + 1] : undefined;
const clients = flag('clients', 100);
const connections = flag('connections', 10);
const puts = flag('puts', 50_000);
const ranges = flag('ranges', 100_000);
const KEY_SPACE = 100_000;

const value = Buffer.alloc(256, 'v');
const key = (i: number) => Buffer.from(String(i % KEY_SPACE).padStart(8, '0'));
// Pre-encode a pool of requests: the generator must not spend its CPU on protobuf.
const putRequests = Array.from({ length: KEY_SPACE }, (_, i) => encodeMessage('etcdserverpb.PutRequest', { key: key(i * 7919), value }));
const rangeRequest = encodeMessage('etcdserverpb.RangeRequest', { key: key(42), serializable: true });

interface Row {
  target: string;
  workload: string;
  result: LoadResult;
}

async function benchTarget(target: string, endpoint: string): Promise<Row[]> {
  const address = endpoint.replace(/^http:\/\//, '');
  const rows: Row[] = [];
  // Warm up both paths (JIT, connections, LevelDB/bolt caches) before measuring.
  await runLoad({ endpoint: address, path: '/etcdserverpb.KV/Put', clients, connections, totalOps: Math.min(5000, puts), request: (i) => putRequests[i % KEY_SPACE]! });
  rows.push({
    target,
    workload: `put ${clients} clients / ${connections} conns`,
    result: await runLoad({ endpoint: address, path: '/etcdserverpb.KV/Put', clients, connections, totalOps: puts, request: (i) => putRequests[i % KEY_SPACE]! }),
  });
  rows.push({
    target,
    workload: `range (serializable, 1 key) ${clients} clients / ${connections} conns`,
    result: await runLoad({ endpoint: address, path: '/etcdserverpb.KV/Range', clients, connections, totalOps: ranges, request: () => rangeRequest }),
  });
  return rows;
}

function format(rows: Row[]): string {
  const lines = ['| target | workload | ops/s | p50 ms | p99 ms | errors |', '|---|---|---:|---:|---:|---:|'];
  for (const { target, workload, result } of rows) {
    lines.push(`| ${target} | ${workload} | ${result.opsPerSecond.toFixed(0)} | ${result.latencyMs.p50.toFixed(2)} | ${result.latencyMs.p99.toFixed(2)} | ${result.errors} |`);
  }
  const ratios: string[] = [];
  for (const workload of new Set(rows.map((r) => r.workload))) {
    const etcd = rows.find((r) => r.workload === workload && r.target === 'etcd 3.4.23');
    const ms = rows.find((r) => r.workload === workload && r.target === 'MetaStore');
    if (etcd && ms) ratios.push(`- ${workload}: MetaStore/etcd = **${(ms.result.opsPerSecond / etcd.result.opsPerSecond).toFixed(2)}**`);
  }
  return [...lines, '', ...ratios].join('\n');
}

async function main(): Promise<void> {
  const rows: Row[] = [];
  try {
    if (only !== 'metastore') {
      const etcd = await startEtcd();
      rows.push(...(await benchTarget('etcd 3.4.23', etcd.endpoint)));
      await etcd.stop();
    }
    if (only !== 'etcd') {
      const metastore = await startMetaStore();
      rows.push(...(await benchTarget('MetaStore', metastore.endpoint)));
      await metastore.destroy();
    }
  } finally {
    await disposeAll();
  }
  const table = format(rows);
  console.log(table);
  if (process.argv.includes('--record')) {
    const cpu = /model name\s*:\s*(.*)/.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1] ?? os.cpus()[0]?.model ?? 'unknown';
    const command = `node --import tsx bench/kv-bench.ts ${process.argv.slice(2).join(' ')}`.trim();
    appendFileSync(
      new URL('./RESULTS.md', import.meta.url),
      `\n## KV, single member (${new Date().toISOString().slice(0, 10)})\n\nMachine: ${os.cpus().length} cores (${cpu}), ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB, Node ${process.version}. Command: \`${command}\`\n\n${table}\n`,
    );
  }
}

await main();
