// Per-member CPU per put on a 3-member MetaStore cluster with the clients on every endpoint, on
// the leader's only, or on one follower's only: what a member pays for the client calls it
// serves, for writing and applying every entry, and for replication, taken apart.
//
//   node --import tsx bench/cluster-routing.ts [--puts 20000] [--routes all,leader,follower]
//        [--clients 100] [--connections 10] [--target metastore|etcd]
//
// Go clientv3 load (bench/go-load), 15,000 puts of warm-up over every endpoint, then one put run
// per route in the order given, on the same cluster. Prints, per run, puts/s, p50, and each
// member's CPU us/put (user + system from /proc) with its role (L leader, F follower, F* the
// follower of the `follower` route) and its entries per fsync (committed entries over synced log
// writes, from each member's own metrics).
//
// Estimate before measuring (bench/RESULTS.md, "3 members: the per-member CPU a cluster pays"):
// a member that serves no client call pays only the write, apply and replication path (~50-60
// us/put); the member serving every call about what a lone member pays (~130-160); with the
// calls spread each member should pay a third of the client path plus that (~100-110).

import { startMetaStoreCluster } from '../test/support/servers.js';
import { disposeAll } from '../test/support/processes.js';
import { numberFlag, textFlag } from './flags.js';
import { goTool } from './go-tools.js';
import { cpuMicros, runGoLoad, startEtcdCluster } from './cluster-tools.js';

const puts = numberFlag('puts', 20_000);
const clients = numberFlag('clients', 100);
const connections = numberFlag('connections', 10);
const routes = textFlag('routes', 'all,leader,follower').split(',');
const target = textFlag('target', 'metastore');
const WARM_UP_PUTS = 15_000;
const goLoad = goTool('go-load');

function load(endpoints: string[], total: number): Promise<{ opsPerSecond: number; p50Ms: number }> {
  const args = ['-endpoint', endpoints.join(','), '-op', 'put', '-clients', String(clients), '-conns', String(connections), '-total', String(total)];
  return runGoLoad(goLoad, args);
}

async function metric(url: string, name: string): Promise<number> {
  let text = '';
  try {
    text = await (await fetch(url)).text();
  } catch {
    return Number.NaN; // not serving yet
  }
  return Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1] ?? Number.NaN);
}

async function leaderIndex(metricsUrls: string[]): Promise<number> {
  for (let attempt = 0; attempt < 300; attempt++) {
    const flags = await Promise.all(metricsUrls.map((url) => metric(url, 'etcd_server_is_leader')));
    if (flags.filter((f) => f === 1).length === 1) return flags.indexOf(1);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error('no leader within 30 s');
}

interface Cluster {
  endpoints: string[];
  pids: number[];
  /** Where each member serves /metrics. */
  metricsUrls: string[];
}

async function startMetaStore(): Promise<Cluster> {
  const cluster = await startMetaStoreCluster(3);
  return {
    endpoints: cluster.endpoints.split(','),
    pids: cluster.members.map((m) => m.pid),
    metricsUrls: cluster.members.map((m) => `http://127.0.0.1:${m.metricsPort}/metrics`),
  };
}

/** Real etcd 3.4 from Debian, 3 members on loopback (metrics on the client port). */
async function startEtcd(): Promise<Cluster & { stop(): Promise<void> }> {
  const etcd = await startEtcdCluster();
  return { ...etcd, metricsUrls: etcd.endpoints.map((e) => `http://${e}/metrics`) };
}

async function main(): Promise<void> {
  const etcd = target === 'etcd' ? await startEtcd() : undefined;
  try {
    await measure(etcd ?? (await startMetaStore()));
  } finally {
    await etcd?.stop();
  }
}

async function measure(cluster: Cluster): Promise<void> {
  const { endpoints, pids } = cluster;
  const { metricsUrls } = cluster;
  const fsyncs = () => Promise.all(metricsUrls.map((url) => metric(url, 'etcd_disk_wal_fsync_duration_seconds_count')));
  const leader = await leaderIndex(metricsUrls);
  const follower = leader === 0 ? 1 : 0;
  await load(endpoints, WARM_UP_PUTS);
  for (const route of routes) {
    const targets = route === 'all' ? endpoints : route === 'leader' ? [endpoints[leader]!] : [endpoints[follower]!];
    const cpu0 = pids.map(cpuMicros);
    const fsync0 = await fsyncs();
    const result = await load(targets, puts);
    const fsync1 = await fsyncs();
    if ((await leaderIndex(metricsUrls)) !== leader) throw new Error('the leader changed during the run');
    const members = pids.map((pid, i) => {
      const role = i === leader ? 'L' : i === follower ? 'F*' : 'F';
      return `${role} ${((cpuMicros(pid) - cpu0[i]!) / puts).toFixed(0)} (${(puts / (fsync1[i]! - fsync0[i]!)).toFixed(1)} per fsync)`;
    });
    console.log(`| ${target} | ${route} | ${result.opsPerSecond.toFixed(0)} | ${result.p50Ms.toFixed(2)} | ${members.join(', ')} |`);
  }
}

main()
  .catch((error) => {
    console.error(error);
    process.exitCode = 1;
  })
  .finally(() => disposeAll());
