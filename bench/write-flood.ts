// Write flood: 500 concurrent clients putting 1 MiB values as fast as they are answered, against
// real etcd 3.4.23 and MetaStore in the same run. Samples the server's RSS (/proc/<pid>/status
// VmRSS, every 100 ms) and reports its peak, the puts acknowledged per second and the errors by
// kind. What matters is that MetaStore's peak RSS stays under the bound documented in
// docs/operations/capacity.md (the write-path limits plus the base) and that the flood is
// answered with "etcdserver: too many requests" rather than the process growing until it dies.
//
// Each client has its own HTTP/2 connection; they overwrite a small set of keys (--keys), so
// the live data set (which MetaStore keeps in memory) stays --keys x --value-bytes and what
// grows is only what the flood itself makes the server hold. The load runs in a child process
// (its own event loop and heap), so its memory is not the server's.
//
//   npm run bench -- write-flood [--clients 500] [--value-bytes 1048576] [--seconds 20]
//                                [--keys 16] [--backoff-ms 100] [--only etcd|metastore]
// A client refused with RESOURCE_EXHAUSTED waits --backoff-ms before its next put.
// Estimate before measuring: MetaStore's write-path limits allow 64 MiB of unanswered proposal
// bytes, 64 MiB of uncommitted log, a 64 MiB raft log tail cache and a 64 MiB LevelDB block cache
// plus 2 x 16 MiB memtables; with grpc-js holding each in-flight request once, peak RSS ~ 0.5 to
// 1 GiB over a ~100 MiB base.

import { fork } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import { encodeMessage } from '../src/grpc/proto.js';
import { disposeAll } from '../test/support/processes.js';
import { startEtcd, startMetaStore } from '../test/support/servers.js';
import { textFlag } from './flags.js';

interface FloodResult {
  ok: number;
  seconds: number;
  errors: Record<string, number>;
}

// ---- the load (child process) ---------------------------------------------------------------

async function flood(endpoint: string, clients: number, valueBytes: number, seconds: number, keys: number, backoffMs: number): Promise<FloodResult> {
  const value = Buffer.alloc(valueBytes);
  for (let i = 0; i < valueBytes; i += 4) value.writeUInt32LE((Math.random() * 2 ** 32) >>> 0, Math.min(i, valueBytes - 4));
  const requests = Array.from({ length: keys }, (_, k) => encodeMessage('etcdserverpb.PutRequest', { key: Buffer.from(`flood/${k}`), value }));
  const channels = Array.from(
    { length: clients },
    (_, i) => new grpc.Client(endpoint, grpc.credentials.createInsecure(), { 'grpc.flood_connection': i, 'grpc.use_local_subchannel_pool': 1 }),
  );
  const errors: Record<string, number> = {};
  let ok = 0;
  const started = performance.now();
  const end = started + seconds * 1000;
  await Promise.all(
    channels.map(async (channel, c) => {
      for (let n = 0; performance.now() < end; n++) {
        const request = requests[(c + n) % keys] as Buffer;
        const error = await new Promise<grpc.ServiceError | null>((resolve) =>
          channel.makeUnaryRequest(
            '/etcdserverpb.KV/Put',
            (b: Buffer) => b,
            (b: Buffer) => b,
            request,
            { deadline: Date.now() + 10_000 },
            (e) => resolve(e),
          ),
        );
        if (error === null) {
          ok++;
          continue;
        }
        // Details without grpc-js's timings ("Deadline exceeded after 10.004s,LB pick: ...").
        const details = (error.details.split(',')[0] ?? '').replace(/after [\d.]+s/, 'after the deadline');
        const kind = `${grpc.status[error.code]}: ${details}`.slice(0, 100);
        errors[kind] = (errors[kind] ?? 0) + 1;
        // A refused client backs off a little instead of spinning.
        if (error.code === grpc.status.RESOURCE_EXHAUSTED) await new Promise((r) => setTimeout(r, backoffMs));
      }
    }),
  );
  for (const channel of channels) channel.close();
  return { ok, seconds: (performance.now() - started) / 1000, errors };
}

// ---- the driver ---------------------------------------------------------------------------

function rssBytes(pid: number): number {
  const match = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return match ? Number(match[1]) * 1024 : 0;
}

async function measure(name: string, server: { endpoint: string; pid: number }, options: string[]): Promise<void> {
  const baseRss = rssBytes(server.pid);
  let peak = baseRss;
  const sampler = setInterval(() => {
    try {
      peak = Math.max(peak, rssBytes(server.pid));
    } catch {
      // The server died: the result says so.
    }
  }, 100);
  const child = fork(fileURLToPath(import.meta.url), ['--child', server.endpoint.replace('http://', ''), ...options], {
    execArgv: ['--import', 'tsx'],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const result = await new Promise<FloodResult>((resolve, reject) => {
    child.once('message', (m) => resolve(m as FloodResult));
    child.once('exit', (code) => reject(new Error(`load process exited with ${code}`)));
  });
  clearInterval(sampler);
  let alive = true;
  try {
    rssBytes(server.pid);
  } catch {
    alive = false;
  }
  const mib = (b: number) => `${(b / 1024 / 1024).toFixed(0)} MiB`;
  console.log(`${name}: ${alive ? 'alive' : 'DIED'} after the flood; RSS before ${mib(baseRss)}, peak ${mib(peak)}`);
  console.log(`  puts acknowledged: ${result.ok} in ${result.seconds.toFixed(1)} s = ${(result.ok / result.seconds).toFixed(1)}/s`);
  for (const [kind, count] of Object.entries(result.errors).sort((a, b) => b[1] - a[1])) console.log(`  error x${count}: ${kind}`);
}

async function main(): Promise<void> {
  const clients = textFlag('clients', '500');
  const valueBytes = textFlag('value-bytes', String(1024 * 1024));
  const seconds = textFlag('seconds', '20');
  const keys = textFlag('keys', '16');
  const only = textFlag('only', '');
  const backoffMs = textFlag('backoff-ms', '100');
  const options = ['--clients', clients, '--value-bytes', valueBytes, '--seconds', seconds, '--keys', keys, '--backoff-ms', backoffMs];
  console.log(`write flood: ${clients} clients, ${valueBytes} B values over ${keys} keys, ${seconds} s`);
  // Room for the whole flood on disk for both: the quota is not what is measured here.
  const quota = ['--quota-backend-bytes', String(8 * 1024 ** 3)];
  try {
    if (only !== 'metastore') {
      const etcd = await startEtcd({ extraArgs: quota });
      await measure('etcd 3.4.23', etcd, options);
      await etcd.stop();
    }
    if (only !== 'etcd') {
      const metastore = await startMetaStore({ extraArgs: quota });
      await measure('MetaStore', metastore, options);
      await metastore.destroy();
    }
  } finally {
    await disposeAll();
  }
}

if (process.argv.includes('--child')) {
  const endpoint = process.argv[process.argv.indexOf('--child') + 1] as string;
  const result = await flood(
    endpoint,
    Number(textFlag('clients', '500')),
    Number(textFlag('value-bytes', '1048576')),
    Number(textFlag('seconds', '20')),
    Number(textFlag('keys', '16')),
    Number(textFlag('backoff-ms', '100')),
  );
  process.send?.(result, () => process.exit(0));
} else {
  await main();
}
