// Leases on a 3-member cluster: keep-alives through a follower reach the leader, and a 10 s
// lease whose leader is killed in the middle still expires (not before its TTL), its key
// deleted on every member and seen by a watcher.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { leaderIndex } from '../support/cluster-status.js';
import { EtcdctlProcess } from '../support/etcdctl-process.js';
import { startMetaStoreCluster, type MetaStoreCluster } from '../support/servers.js';
import { etcdctl } from '../support/tools.js';
import { waitFor } from '../support/wait.js';

let cluster: MetaStoreCluster;

const endpointOf = (i: number) => cluster.members[i]!.endpoint.replace('http://', '');

beforeAll(async () => {
  cluster = await startMetaStoreCluster(3);
  await leaderIndex(cluster);
  // Followers reach the leader through the client URL it published; wait for every member's.
  await waitFor(() => etcdctl(cluster.endpoints, ['member', 'list']), {
    what: 'every member to publish its client URL',
    until: (list) => list.code === 0 && !list.stdout.includes('unstarted') && list.stdout.trim().split('\n').length === 3,
  });
}, 60_000);

afterAll(async () => {
  await cluster?.destroy();
});

describe('leases on a cluster', () => {
  it('keep-alive through a follower renews the lease on the leader', async () => {
    const leader = await leaderIndex(cluster);
    const follower = [0, 1, 2].find((i) => i !== leader)!;
    const grant = await etcdctl(endpointOf(follower), ['lease', 'grant', '30']);
    expect(grant.code, grant.stderr).toBe(0);
    const id = /lease ([0-9a-f]+) granted/.exec(grant.stdout)![1]!;
    const keepAlive = await etcdctl(endpointOf(follower), ['lease', 'keep-alive', '--once', id]);
    expect(keepAlive.code, keepAlive.stderr).toBe(0);
    expect(keepAlive.stdout).toContain(`lease ${id} keepalived with TTL(30)`);
  });

  it('a 10 s lease survives a leader kill -9 and still expires, not before its TTL', async () => {
    const leader = await leaderIndex(cluster);
    const survivors = [0, 1, 2].filter((i) => i !== leader);
    // Taken before the grant: the TTL starts when the leader applies it, later.
    const requestedAt = Date.now();
    const grant = await etcdctl(cluster.endpoints, ['lease', 'grant', '10']);
    const id = /lease ([0-9a-f]+) granted/.exec(grant.stdout)![1]!;
    expect((await etcdctl(cluster.endpoints, ['put', 'leased', 'v', `--lease=${id}`])).code).toBe(0);

    // A watcher on a surviving member reports the expiry's DELETE.
    const watcher = await EtcdctlProcess.start(endpointOf(survivors[0]!), ['watch', 'leased']);
    try {
      await cluster.members[leader]!.kill9();
      await watcher.until('the DELETE of the expiry', (out) => out.includes('DELETE'), 30_000);
      const lifetimeMs = Date.now() - requestedAt;
      console.log(`10 s lease with a leader kill: deleted after ${lifetimeMs} ms`);
      // Never before its TTL (less 100 ms: the server's monotonic clock against this wall
      // clock); how much later depends on the election and the machine's load (the 30 s above
      // is only a deadline).
      expect(lifetimeMs).toBeGreaterThanOrEqual(9_900);
      for (const i of survivors) {
        const get = await etcdctl(endpointOf(i), ['get', 'leased', '--consistency=s', '-w', 'json']);
        expect(JSON.parse(get.stdout).count ?? 0).toBe(0);
      }
      await cluster.members[leader]!.restart();
      // Asked of the restarted member: it answers with the leader's view (forwarded) once it
      // knows the new leader.
      const ttl = await waitFor(() => etcdctl(endpointOf(leader), ['lease', 'timetolive', id]), {
        what: 'the restarted member to answer timetolive',
        until: (r) => r.code === 0,
      });
      expect(ttl.stdout).toContain('already expired');
    } finally {
      await watcher.stop();
    }
  }, 60_000);
});
