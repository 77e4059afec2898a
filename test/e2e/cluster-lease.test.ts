// Leases on a 3-member cluster: keep-alives through a follower reach the leader, and a 10 s
// lease whose leader is killed in the middle still expires (within its TTL plus one election
// timeout), its key deleted on every member and seen by a watcher.

import { spawn } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { leaderIndex } from '../support/cluster-status.js';
import { startMetaStoreCluster, type MetaStoreCluster } from '../support/servers.js';
import { etcdctl } from '../support/tools.js';

let cluster: MetaStoreCluster;

const endpointOf = (i: number) => cluster.members[i]!.endpoint.replace('http://', '');

beforeAll(async () => {
  cluster = await startMetaStoreCluster(3);
  await leaderIndex(cluster);
  // Followers reach the leader through the client URL it published; wait for every member's.
  for (let attempt = 0; ; attempt++) {
    const list = await etcdctl(cluster.endpoints, ['member', 'list']);
    if (list.code === 0 && !list.stdout.includes('unstarted') && list.stdout.trim().split('\n').length === 3) break;
    if (attempt > 100) throw new Error(`members never published: ${list.stdout}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
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

  it('a 10 s lease survives a leader kill -9 and still expires within TTL + one election timeout', async () => {
    const leader = await leaderIndex(cluster);
    const survivors = [0, 1, 2].filter((i) => i !== leader);
    const grant = await etcdctl(cluster.endpoints, ['lease', 'grant', '10']);
    const grantedAt = Date.now();
    const id = /lease ([0-9a-f]+) granted/.exec(grant.stdout)![1]!;
    expect((await etcdctl(cluster.endpoints, ['put', 'leased', 'v', `--lease=${id}`])).code).toBe(0);

    // A watcher on a surviving member reports the expiry's DELETE.
    const watcher = spawn('etcdctl', [`--endpoints=${endpointOf(survivors[0]!)}`, 'watch', 'leased'], { env: { ...process.env, ETCDCTL_API: '3' } });
    const deleted = new Promise<number>((resolve) => {
      let out = '';
      watcher.stdout.on('data', (chunk) => {
        out += chunk;
        if (out.includes('DELETE')) resolve(Date.now());
      });
    });
    try {
      await cluster.members[leader]!.kill9();
      const deletedAt = await Promise.race([
        deleted,
        new Promise<number>((_, reject) => setTimeout(() => reject(new Error('lease did not expire within 30 s')), 30_000)),
      ]);
      const lifetimeMs = deletedAt - grantedAt;
      console.log(`10 s lease with a leader kill: deleted after ${lifetimeMs} ms`);
      // Never before its TTL; at most TTL + one election timeout (1 s) + detection and commit slack.
      expect(lifetimeMs).toBeGreaterThanOrEqual(9_900);
      expect(lifetimeMs).toBeLessThan(10_000 + 1_000 + 2_000);
      for (const i of survivors) {
        const get = await etcdctl(endpointOf(i), ['get', 'leased', '--consistency=s', '-w', 'json']);
        expect(JSON.parse(get.stdout).count ?? 0).toBe(0);
      }
      await cluster.members[leader]!.restart();
      // Asked of the restarted member: it answers with the leader's view (forwarded).
      let ttl = await etcdctl(endpointOf(leader), ['lease', 'timetolive', id]);
      for (let attempt = 0; ttl.code !== 0 && attempt < 50; attempt++) {
        await new Promise((resolve) => setTimeout(resolve, 100)); // until it knows the new leader
        ttl = await etcdctl(endpointOf(leader), ['lease', 'timetolive', id]);
      }
      expect(ttl.stdout).toContain('already expired');
    } finally {
      watcher.kill();
    }
  }, 60_000);
});
