// What the cluster benchmarks (kv-bench.ts, cluster-routing.ts, keys-million.ts) share: a
// 3-member etcd on loopback, go-load runs, and a process's CPU time, whole or by thread.

import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { freePorts } from '../test/support/ports.js';

/** CPU time (user + system) a process has used so far, in microseconds (Linux /proc). */
export function cpuMicros(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  const ticks = Number(fields[11]) + Number(fields[12]);
  return (ticks * 1_000_000) / 100;
}

/** One live thread of a process: its id, its name (comm), the CPU (user + system) it used so
 * far, us, and its context switches so far: voluntary (it blocked: a wait, a futex, epoll) and
 * involuntary (the scheduler took the core away). */
export interface ThreadCpu {
  tid: number;
  name: string;
  us: number;
  voluntarySwitches: number;
  involuntarySwitches: number;
}

/** A thread's context switch counters from /proc/PID/task/TID/status (0 if it ended). */
function threadSwitches(pid: number, tid: number): { voluntarySwitches: number; involuntarySwitches: number } {
  let status = '';
  try {
    status = readFileSync(`/proc/${pid}/task/${tid}/status`, 'utf8');
  } catch {
    // the thread ended: count nothing
  }
  const count = (name: string): number => Number(new RegExp(`^${name}:\\s+(\\d+)$`, 'm').exec(status)?.[1] ?? 0);
  return { voluntarySwitches: count('voluntary_ctxt_switches'), involuntarySwitches: count('nonvoluntary_ctxt_switches') };
}

/** The live threads of `pid`, by thread id ascending ([] once the process is gone), from /proc. */
export function threadCpuMicros(pid: number): ThreadCpu[] {
  let tids: number[];
  try {
    tids = readdirSync(`/proc/${pid}/task`).map(Number);
  } catch {
    return [];
  }
  const threads: ThreadCpu[] = [];
  for (const tid of tids.sort((a, b) => a - b)) {
    let stat: string;
    try {
      stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
    } catch {
      continue; // the thread ended
    }
    // Fields after the comm start at field 3 (state); utime and stime are fields 14 and 15, in USER_HZ (100/s).
    const fields = stat.slice(stat.lastIndexOf(') ') + 2).split(' ');
    const us = ((Number(fields[11]) + Number(fields[12])) * 1_000_000) / 100;
    threads.push({ tid, name: stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')')), us, ...threadSwitches(pid, tid) });
  }
  return threads;
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
