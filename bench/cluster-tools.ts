// What the cluster benchmarks (kv-bench.ts, cluster-routing.ts) share: a 3-member etcd on
// loopback, go-load runs, and a process's CPU time.

import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { freePorts } from '../test/support/ports.js';

/** CPU time (user + system) a process has used so far, in microseconds (Linux /proc). */
export function cpuMicros(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  const ticks = Number(fields[11]) + Number(fields[12]);
  return (ticks * 1_000_000) / 100;
}

/** Runs the go-load binary with `args`; resolves with the JSON of its last output line. */
export function runGoLoad<T>(binary: string, args: string[]): Promise<T> {
  return new Promise((resolve, reject) => {
    const child = spawn(binary, args, { stdio: ['ignore', 'pipe', 'inherit'] });
    let text = '';
    child.stdout.on('data', (chunk) => (text += chunk));
    child.on('exit', (code) => (code === 0 ? resolve(JSON.parse(text.trim().split('\n').pop()!) as T) : reject(new Error(`go-load exited ${code}`))));
  });
}

/** A 3-member etcd cluster on loopback (real etcd 3.4 from Debian); resolves once every member serves. */
export async function startEtcdCluster(): Promise<{ endpoints: string[]; pids: number[]; stop(): Promise<void> }> {
  const ports = await freePorts(6);
  const dirs = [0, 1, 2].map(() => mkdtempSync(join(os.tmpdir(), 'etcd-bench-')));
  const initial = [0, 1, 2].map((i) => `e${i}=http://127.0.0.1:${ports[2 * i + 1]}`).join(',');
  const processes = [0, 1, 2].map((i) => {
    const client = `http://127.0.0.1:${ports[2 * i]}`;
    const peer = `http://127.0.0.1:${ports[2 * i + 1]}`;
    const args = ['--name', `e${i}`, '--data-dir', dirs[i]!, '--listen-client-urls', client, '--advertise-client-urls', client];
    args.push('--listen-peer-urls', peer, '--initial-advertise-peer-urls', peer, '--initial-cluster', initial);
    return spawn('etcd', args, { stdio: ['ignore', 'pipe', 'pipe'] });
  });
  await Promise.all(
    processes.map(
      (p) =>
        new Promise<void>((resolve) => {
          let log = '';
          const onData = (chunk: Buffer) => {
            log += chunk;
            if (log.includes('ready to serve client requests')) resolve();
          };
          p.stdout!.on('data', onData);
          p.stderr!.on('data', onData);
        }),
    ),
  );
  return {
    endpoints: [0, 1, 2].map((i) => `127.0.0.1:${ports[2 * i]}`),
    pids: processes.map((p) => p.pid!),
    stop: async () => {
      await Promise.all(
        processes.map(
          (p) =>
            new Promise<void>((resolve) => {
              p.once('exit', () => resolve());
              p.kill('SIGTERM');
            }),
        ),
      );
      for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
    },
  };
}
