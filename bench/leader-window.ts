// Leader-change window: how long a surviving follower refuses linearizable reads and writes after a kill -9 of the leader and after isolating it, MetaStore next to etcd 3.4.23.
//
// Both run as 3-member clusters in network namespaces on a bridge (the fault suite's setup,
// test/robustness/fault-cluster.ts), default election timeout 1 s and heartbeat 100 ms. For each
// trial the leader is killed (or cut off from its peers with tc), and a prober on a surviving
// follower sends a get and a put every 50 ms (10 s deadlines); the window is the time from the
// fault to the first successful get and put sent after it. Then the leader is restarted (or the
// partition healed) and the cluster settles before the next trial. The suite asserts the
// issue's bound (election timeout + 1 s) on MetaStore; the figures for both live in RESULTS.md.
// Needs root.
//
//   npm run bench -- leader-window [--trials 5]

import { FaultCluster, type Flavor } from '../test/robustness/fault-cluster.js';
import { nowMs } from '../test/robustness/history.js';
import { measureWindow, type WindowMeasurement } from '../test/robustness/leader-window.js';
import { disposeAll } from '../test/support/processes.js';
import { numberFlag } from './flags.js';

const trials = numberFlag('trials', 5);

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

async function trial(cluster: FaultCluster, fault: 'kill' | 'isolate'): Promise<WindowMeasurement> {
  const leader = await cluster.leader();
  const leaderId = await cluster.memberId(leader);
  const follower = (leader + 1) % 3;
  await sleep(2000); // a settled cluster: every member has heard from the leader for a while
  const faultMs = nowMs();
  if (fault === 'kill') await cluster.kill9(leader);
  else cluster.isolate(leader);
  const measured = await measureWindow(cluster, fault === 'kill' ? 'kill -9 of the leader' : 'isolation of the leader', follower, faultMs, leaderId);
  if (fault === 'kill') await cluster.launch(cluster.members[leader]!);
  else cluster.heal();
  return measured;
}

function stats(windows: readonly number[]): string {
  const sorted = [...windows].sort((a, b) => a - b);
  const s = (ms: number): string => (Number.isFinite(ms) ? (ms / 1000).toFixed(2) : 'never');
  return `min ${s(sorted[0]!)} s, median ${s(sorted[Math.floor(sorted.length / 2)]!)} s, max ${s(sorted[sorted.length - 1]!)} s  [${sorted.map(s).join(' ')}]`;
}

async function measure(flavor: Flavor): Promise<void> {
  const cluster = await FaultCluster.start({ flavor });
  try {
    for (const fault of ['kill', 'isolate'] as const) {
      const measured: WindowMeasurement[] = [];
      for (let i = 0; i < trials; i++) measured.push(await trial(cluster, fault));
      const label = `${flavor.padEnd(9)} ${fault === 'kill' ? 'kill -9 leader ' : 'isolate leader '}`;
      process.stdout.write(`${label}  window ${stats(measured.map((m) => m.windowMs))}\n`);
      process.stdout.write(`${label}  after the new leader ${stats(measured.map((m) => m.windowMs - m.newLeaderMs))}\n`);
      process.stdout.write(`${label}  terms per election [${measured.map((m) => (Number.isNaN(m.terms) ? '?' : m.terms)).join(' ')}]\n`);
    }
  } finally {
    await cluster.destroy();
  }
}

try {
  process.stdout.write(`leader-change window on a surviving follower (first successful get and put after the fault), ${trials} trials each\n`);
  for (const flavor of ['metastore', 'etcd'] as const) await measure(flavor);
} finally {
  await disposeAll();
}
