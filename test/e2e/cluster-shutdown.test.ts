// Graceful shutdown of a cluster leader (SIGTERM): it hands leadership to another voter before
// it exits, so the survivors have a leader the moment it is gone (no election timeout to sit
// through), and writes go on.

import { afterAll, beforeAll, expect, it } from 'vitest';
import { memberStatuses as statuses, waitForLeader } from '../support/cluster-status.js';
import { startMetaStoreCluster, type MetaStoreCluster } from '../support/servers.js';
import { etcdctl } from '../support/tools.js';
import { holdFor } from '../support/wait.js';

let cluster: MetaStoreCluster;

beforeAll(async () => {
  cluster = await startMetaStoreCluster(3);
  await waitForLeader(cluster.endpoints, 3);
}, 60_000);

afterAll(async () => {
  await cluster?.destroy();
});

it('cluster metrics: peer round trips, leader changes seen, watchers', async () => {
  const before = await statuses(cluster.endpoints);
  const leader = before.find((s) => s.memberId === s.leader)!;
  const member = cluster.members.find((m) => m.endpoint.endsWith(leader.endpoint))!;
  const response = await fetch(`http://127.0.0.1:${member.metricsPort}/metrics`);
  const text = await response.text();
  // The leader has measured heartbeat round trips to both followers.
  const rtt = [...text.matchAll(/^etcd_network_peer_round_trip_time_seconds_count\{To="([0-9a-f]+)"\} (\d+)/gm)];
  expect(rtt.length).toBe(2);
  for (const [, , count] of rtt) expect(Number(count)).toBeGreaterThan(0);
  expect(text).toMatch(/^etcd_server_leader_changes_seen_total [1-9]/m);
  expect(text).toMatch(/^etcd_debugging_mvcc_watcher_total 0/m);
});

it('a leader stopped with SIGTERM hands leadership over before exiting', async () => {
  const before = await statuses(cluster.endpoints);
  const leader = before.find((s) => s.memberId === s.leader)!;
  const index = cluster.members.findIndex((m) => m.endpoint.endsWith(leader.endpoint));
  await cluster.members[index]!.stop();
  expect(cluster.members[index]!.logs()).toContain('handing leadership over before shutting down');
  const survivors = cluster.members
    .filter((_, i) => i !== index)
    .map((m) => m.endpoint.replace('http://', ''))
    .join(',');
  const after = await statuses(survivors);
  expect(after).toHaveLength(2);
  // Both survivors already follow the same new leader, one of them.
  expect(after[0]!.leader).not.toBe('0');
  expect(after[0]!.leader).not.toBe(leader.memberId);
  expect(after[1]!.leader).toBe(after[0]!.leader);
  expect(after.map((s) => s.memberId)).toContain(after[0]!.leader);
  expect((await etcdctl(survivors, ['put', 'after-handoff', 'ok'])).code).toBe(0);
});

it('strict reconfig check: with one of three members down, adding a voter is refused', async () => {
  await holdFor(
    3000,
    'the leader forgets a silent member at its second quorum check after the member fell silent, within two election timeouts (2 s); nothing announces that moment, so give it three',
  );
  const running = cluster.members
    .filter((m) => m.isRunning())
    .map((m) => m.endpoint.replace('http://', ''))
    .join(',');
  const add = await etcdctl(running, ['member', 'add', 'extra', '--peer-urls=http://127.0.0.1:1']);
  expect(add.code).toBe(1);
  expect(add.stderr).toContain('etcdserver: re-configuration failed due to not enough started members');
  // A learner does not count towards quorum: it may still be added.
  const learner = await etcdctl(running, ['member', 'add', 'extra', '--peer-urls=http://127.0.0.1:1', '--learner']);
  expect(learner.code, learner.stderr).toBe(0);
});
