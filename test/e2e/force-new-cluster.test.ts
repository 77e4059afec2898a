// --force-new-cluster (etcd's quorum-loss recovery): a 3-member cluster with data is stopped
// for good; one member started on its data dir with the flag serves the data alone, lists only
// itself and takes writes; restarted without the flag it still does; `member add` then grows
// it again and the new member catches up with everything.

import { describe, expect, it } from 'vitest';
import { freePorts } from '../support/ports.js';
import { planMetaStoreCluster, startMetaStore, startMetaStoreCluster, type MetaStoreHandle } from '../support/servers.js';
import { etcdctl } from '../support/tools.js';
import { waitFor } from '../support/wait.js';

const KEYS = 30;

async function ok(endpoint: string, args: string[]): Promise<string> {
  const result = await etcdctl(endpoint, args);
  expect(result.code, `etcdctl ${args.join(' ')}: ${result.stderr}`).toBe(0);
  return result.stdout;
}

const hostOf = (member: MetaStoreHandle): string => member.endpoint.replace('http://', '');
const memberNames = async (endpoint: string): Promise<string[]> =>
  (await ok(endpoint, ['member', 'list']))
    .trim()
    .split('\n')
    .map((line) => line.split(', ')[2]!)
    .sort();
const keyCount = async (endpoint: string, serializable = false): Promise<number> =>
  Number(
    (await ok(endpoint, ['get', 'k/', '--prefix', '--keys-only', '-w', 'json', ...(serializable ? ['--consistency=s'] : [])])).match(/"count":(\d+)/)?.[1] ?? 0,
  );

describe('--force-new-cluster', () => {
  it('restarts one member of a lost cluster alone with its data; without the flag it stays so; member add grows it again', async () => {
    const plan = await planMetaStoreCluster(3);
    const cluster = await startMetaStoreCluster(3, { plan });
    for (let i = 0; i < KEYS; i++) await ok(cluster.endpoints, ['put', `k/${i}`, `v${i}`]);
    const first = cluster.members[0]!;
    // The recovered member must hold every acknowledged write: as with etcd, entries it had not
    // seen committed are discarded by the forced restart (the guide says: pick the member with
    // the most recent data). A follower learns the last commit index with the next heartbeat.
    await waitFor(() => keyCount(hostOf(first), true), { what: 'm1 applied every write', until: (count) => count === KEYS });
    // The quorum is gone for good: every member stops.
    for (const member of cluster.members) await member.stop();

    const asFirst = { name: 'm1', ports: plan.ports[0]!, initialCluster: plan.initialCluster, dataDir: first.dataDir };
    const forced = await startMetaStore({ ...asFirst, extraArgs: ['--force-new-cluster'] });
    expect(forced.logs()).toContain('forcing restart as a one-member cluster');
    expect(await keyCount(hostOf(forced))).toBe(KEYS);
    expect(await memberNames(hostOf(forced))).toEqual(['m1']);
    await ok(hostOf(forced), ['put', 'k/forced', 'alone']);
    await forced.stop();

    const plain = await startMetaStore(asFirst);
    expect(plain.logs()).not.toContain('forcing restart');
    expect(await memberNames(hostOf(plain))).toEqual(['m1']);
    await ok(hostOf(plain), ['put', 'k/after', 'restart']);
    expect(await keyCount(hostOf(plain))).toBe(KEYS + 2);

    const [client, peer, health, metrics] = await freePorts(4);
    const added = await ok(hostOf(plain), ['member', 'add', 'm4', `--peer-urls=http://127.0.0.1:${peer}`]);
    const joiner = await startMetaStore({
      name: 'm4',
      ports: { client: client!, peer: peer!, health: health!, metrics: metrics! },
      initialCluster: /ETCD_INITIAL_CLUSTER="([^"]+)"/.exec(added)![1]!,
      extraArgs: ['--initial-cluster-state', 'existing'],
    });
    await waitFor(() => keyCount(hostOf(joiner), true), { what: 'the new member caught up', until: (count) => count === KEYS + 2 });
    const both = `${hostOf(plain)},${hostOf(joiner)}`;
    await ok(both, ['put', 'k/grown', 'again']);
    expect(await memberNames(both)).toEqual(['m1', 'm4']);
    expect((await ok(hostOf(joiner), ['get', 'k/0', '--print-value-only', '--consistency=s'])).trim()).toBe('v0');
  }, 180_000);
});
