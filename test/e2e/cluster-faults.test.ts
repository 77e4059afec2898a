// Under a steady write load, the leader of a 3-member cluster is killed with SIGKILL and
// restarted 20 times in a row. Every write that was acknowledged must be readable afterwards
// with its value, on every member.

import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { clients } from '../../src/grpc/proto.js';
import { leaderIndex } from '../support/cluster-status.js';
import { startMetaStoreCluster, type MetaStoreCluster } from '../support/servers.js';
import { etcdctl } from '../support/tools.js';
import { waitFor } from '../support/wait.js';

const KILLS = 20;
let cluster: MetaStoreCluster;

beforeAll(async () => {
  cluster = await startMetaStoreCluster(3);
}, 60_000);

afterAll(async () => {
  await cluster?.destroy();
});

describe('leader kills under load', () => {
  it(`${KILLS} leader kill -9 + restart cycles lose no acknowledged write`, async () => {
    const stubs = cluster.members.map((m) => new clients.KV(m.endpoint.replace('http://', ''), grpc.credentials.createInsecure()) as any);
    const acked = new Map<string, string>();
    let stop = false;
    let attempts = 0;
    // Each writer writes unique keys, trying the members in turn until one accepts.
    const writers = Array.from({ length: 6 }, async (_, w) => {
      for (let seq = 0; !stop; seq++) {
        const key = `w${w}/${seq}`;
        const value = `${w}:${seq}`;
        for (let target = seq % 3; !stop; target = (target + 1) % 3) {
          attempts++;
          const ok = await new Promise<boolean>((resolve) =>
            stubs[target].Put({ key: Buffer.from(key), value: Buffer.from(value) }, { deadline: Date.now() + 3000 }, (error: Error | null) =>
              resolve(error === null),
            ),
          );
          if (ok) {
            acked.set(key, value);
            break;
          }
        }
      }
    });

    for (let kill = 0; kill < KILLS; kill++) {
      const leader = await leaderIndex(cluster);
      const ackedBefore = acked.size;
      await cluster.members[leader]!.kill9();
      // Wait until writes flow again through the survivors, then bring the victim back.
      await waitFor(() => acked.size >= ackedBefore + 5, { what: `writes acknowledged after kill ${kill + 1}`, intervalMs: 50 });
      await cluster.members[leader]!.restart();
    }
    stop = true;
    await Promise.all(writers);
    for (const stub of stubs) stub.close();
    console.log(`${KILLS} leader kills: ${acked.size} writes acknowledged out of ${attempts} attempts`);
    expect(acked.size).toBeGreaterThan(KILLS * 5);

    // Every member, once caught up, holds every acknowledged write with its value. The reads
    // are linearizable (ReadIndex), so each waits until its member has applied everything.
    await leaderIndex(cluster);
    for (let i = 0; i < cluster.members.length; i++) {
      const endpoint = cluster.members[i]!.endpoint.replace('http://', '');
      // A member restarted last may still be learning who leads; etcd answers "no leader" then.
      const dump = await waitFor(() => etcdctl(endpoint, ['get', 'w', '--prefix', '-w', 'json', '--command-timeout=10s']), {
        what: `a linearizable read on member ${i + 1}`,
        until: (r) => r.code === 0,
      });
      const kvs = (JSON.parse(dump.stdout).kvs ?? []) as Array<{ key: string; value: string }>;
      const stored = new Map(kvs.map((kv) => [Buffer.from(kv.key, 'base64').toString(), Buffer.from(kv.value, 'base64').toString()]));
      const missing = [...acked].filter(([key, value]) => stored.get(key) !== value);
      expect(missing.slice(0, 5), `member ${i + 1} lost ${missing.length} acknowledged writes`).toEqual([]);
    }
  }, 300_000);
});
