// A 3-member MetaStore cluster of real processes on loopback, driven by the real etcdctl:
// replication, linearizable reads through another member, leader failure (kill -9) and the
// killed member's catch-up after restart.

import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { clients } from '../../src/grpc/proto.js';
import { memberStatuses as statuses, waitForLeader } from '../support/cluster-status.js';
import { startMetaStoreCluster, type MetaStoreCluster } from '../support/servers.js';
import { etcdctl } from '../support/tools.js';
import { waitFor } from '../support/wait.js';

let cluster: MetaStoreCluster;

function endpointOf(i: number): string {
  return cluster.members[i]!.endpoint.replace('http://', '');
}

beforeAll(async () => {
  cluster = await startMetaStoreCluster(3);
  await waitForLeader(cluster.endpoints, 3);
}, 60_000);

afterAll(async () => {
  await cluster?.destroy();
});

describe('linearizable reads through several followers at once', () => {
  it('every ReadIndex is answered (contexts must not collide across members)', async () => {
    const stubs = [0, 1, 2].map((i) => new clients.KV(endpointOf(i), grpc.credentials.createInsecure()) as any);
    // 300 concurrent linearizable reads through each member; a ReadIndex the leader ignored
    // would only end at the 5 s deadline (the request timeout is longer).
    // Fresh members all count their ReadIndex contexts from 1: the first rounds collide when
    // contexts are per member only. Several rounds of reads through every member at once.
    for (let round = 0; round < 5; round++) {
      const reads = stubs.flatMap((stub) =>
        Array.from(
          { length: 300 },
          () =>
            new Promise<number>((resolve, reject) =>
              stub.Range({ key: Buffer.from('replicated') }, { deadline: Date.now() + 5000 }, (error: grpc.ServiceError | null) =>
                error ? reject(error) : resolve(0),
              ),
            ),
        ),
      );
      const results = await Promise.allSettled(reads);
      expect(results.filter((r) => r.status === 'rejected').map((r) => String((r as PromiseRejectedResult).reason))).toEqual([]);
    }
    for (const stub of stubs) stub.close();
  });
});

describe('3-member cluster', () => {
  it('a put through member 1 is seen by a linearizable get through member 3', async () => {
    const put = await etcdctl(endpointOf(0), ['put', 'replicated', 'yes']);
    expect(put.code, put.stderr).toBe(0);
    const get = await etcdctl(endpointOf(2), ['get', 'replicated', '--print-value-only']);
    expect(get.stdout.trim()).toBe('yes');
  });

  it('writes through a follower are forwarded to the leader', async () => {
    const [status] = await statuses(endpointOf(1));
    expect(status).toBeDefined();
    const put = await etcdctl(endpointOf(1), ['put', 'via-member-2', 'ok', '-w', 'json']);
    expect(put.code, put.stderr).toBe(0);
    for (let i = 0; i < 3; i++) {
      const get = await etcdctl(endpointOf(i), ['get', 'via-member-2', '--print-value-only']);
      expect(get.stdout.trim()).toBe('ok');
    }
  });

  it('kill -9 of the leader: a new leader takes writes; the restarted member catches up', async () => {
    const before = await statuses(cluster.endpoints);
    const leaderIndex = before.findIndex((s) => s.memberId === s.leader);
    expect(leaderIndex).toBeGreaterThanOrEqual(0);
    const leaderEndpoint = before[leaderIndex]!.endpoint;
    const victim = cluster.members.findIndex((m) => m.endpoint.endsWith(leaderEndpoint));
    const others = cluster.members.map((_, i) => i).filter((i) => i !== victim);
    const survivors = others.map(endpointOf).join(',');

    const killedAt = Date.now();
    await cluster.members[victim]!.kill9();
    // etcdctl retries against the surviving endpoints until a new leader commits the write.
    const write = await waitFor(() => etcdctl(survivors, ['put', 'after-failover', 'v', '--command-timeout=2s']), {
      what: 'a write accepted after the leader was killed',
      until: (r) => r.code === 0,
    });
    expect(write.code).toBe(0);
    const failoverMs = Date.now() - killedAt;
    console.log(`failover: first write accepted ${failoverMs} ms after kill -9 of the leader`);

    for (let i = 0; i < 20; i++) expect((await etcdctl(survivors, ['put', `burst/${i}`, String(i)])).code).toBe(0);

    await cluster.members[victim]!.restart();
    const target = Math.max(...(await statuses(survivors)).map((s) => s.appliedIndex));
    await waitFor(() => statuses(endpointOf(victim)), {
      what: 'the restarted member to catch up',
      until: (s) => s[0] !== undefined && s[0].appliedIndex >= target,
    });
    const dumps = await Promise.all(cluster.members.map((_, i) => etcdctl(endpointOf(i), ['get', '', '--prefix', '-w', 'json', '--consistency=s'])));
    const kvs = dumps.map((d) => JSON.stringify(JSON.parse(d.stdout).kvs));
    expect(kvs[victim]).toBe(kvs[others[0]!]);
    expect(kvs[others[1]!]).toBe(kvs[others[0]!]);
    expect(JSON.parse(dumps[victim]!.stdout).count).toBe(23);
  });
});
