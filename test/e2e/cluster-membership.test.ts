// Membership changes with the real etcdctl: member list, member add (learner), a new member
// started with --initial-cluster-state existing joins and catches up, member promote (sent to
// a follower, which forwards it), member remove.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitForLeader } from '../support/cluster-status.js';
import { freePorts } from '../support/ports.js';
import { startMetaStore, startMetaStoreCluster, type MetaStoreCluster, type MetaStoreHandle } from '../support/servers.js';
import { etcdctl, listMembers } from '../support/tools.js';
import { waitFor } from '../support/wait.js';

let cluster: MetaStoreCluster;
let joiner: MetaStoreHandle | undefined;

beforeAll(async () => {
  cluster = await startMetaStoreCluster(3);
  await waitFor(() => listMembers(cluster.endpoints), {
    what: 'every member published',
    until: (list) => list.length === 3 && list.every((m) => m.status === 'started'),
  });
}, 60_000);

afterAll(async () => {
  await joiner?.destroy();
  await cluster?.destroy();
});

describe('membership through etcdctl', () => {
  it('member list shows every member with its name, peer and client URLs', async () => {
    const list = await listMembers(cluster.endpoints);
    expect(list.map((m) => m.name).sort()).toEqual(['m1', 'm2', 'm3']);
    for (const member of cluster.members) {
      const listed = list.find((m) => member.endpoint === m.clientUrls);
      expect(listed, `member with client URL ${member.endpoint}`).toBeDefined();
      expect(listed!.peerUrls).toBe(`http://127.0.0.1:${member.peerPort}`);
      expect(listed!.isLearner).toBe('false');
    }
  });

  it('add a learner, start it with --initial-cluster-state existing, promote it, remove another member', async () => {
    const [client, peer, health, metrics] = await freePorts(4);
    const peerUrl = `http://127.0.0.1:${peer}`;
    const add = await etcdctl(cluster.endpoints, ['member', 'add', 'm4', `--peer-urls=${peerUrl}`, '--learner']);
    expect(add.code, add.stderr).toBe(0);
    const initialCluster = /ETCD_INITIAL_CLUSTER="([^"]+)"/.exec(add.stdout)?.[1];
    expect(initialCluster).toContain(`m4=${peerUrl}`);
    const added = (await listMembers(cluster.endpoints)).find((m) => m.peerUrls === peerUrl);
    expect(added).toMatchObject({ status: 'unstarted', isLearner: 'true' });

    await etcdctl(cluster.endpoints, ['put', 'before-join', 'yes']);
    joiner = await startMetaStore({
      name: 'm4',
      initialCluster,
      ports: { client: client!, peer: peer!, health: health!, metrics: metrics! },
      extraArgs: ['--initial-cluster-state', 'existing'],
    });
    await waitFor(() => listMembers(cluster.endpoints), {
      what: 'the learner to start and publish',
      until: (list) => list.some((m) => m.name === 'm4' && m.status === 'started'),
    });
    const joinerEndpoint = joiner.endpoint.replace('http://', '');
    await waitFor(() => etcdctl(joinerEndpoint, ['get', 'before-join', '--print-value-only', '--consistency=s']), {
      what: 'the learner to catch up',
      until: (r) => r.stdout.trim() === 'yes',
    });

    // Promote through every endpoint in turn until one answers: followers forward to the leader.
    const promote = await waitFor(() => etcdctl(cluster.members[0]!.endpoint.replace('http://', ''), ['member', 'promote', added!.id]), {
      what: 'the learner to be promotable',
      until: (r) => r.code === 0,
    });
    expect(promote.stdout).toContain('promoted');
    expect((await listMembers(cluster.endpoints)).find((m) => m.name === 'm4')!.isLearner).toBe('false');

    const removed = (await listMembers(cluster.endpoints)).find((m) => m.name === 'm1')!;
    const remove = await etcdctl(cluster.endpoints, ['member', 'remove', removed.id]);
    expect(remove.code, remove.stderr).toBe(0);
    const remaining = cluster.members
      .slice(1)
      .map((m) => m.endpoint.replace('http://', ''))
      .concat(joinerEndpoint)
      .join(',');
    const list = await listMembers(remaining);
    expect(list.map((m) => m.name).sort()).toEqual(['m2', 'm3', 'm4']);
    const put = await waitFor(() => etcdctl(remaining, ['put', 'after-remove', 'ok']), {
      what: 'a write after the removal',
      until: (r) => r.code === 0,
    });
    expect(put.code).toBe(0);
    const read = await etcdctl(joinerEndpoint, ['get', 'after-remove', '--print-value-only']);
    expect(read.stdout.trim()).toBe('ok');
    // The removed member learns it from its peers (or from applying its own removal) and stops.
    await waitFor(async () => cluster.members[0]!.isRunning(), {
      what: 'the removed member to stop',
      until: (running) => !running,
      timeoutMs: 15_000,
    });
    expect(cluster.members[0]!.logs()).toMatch(/this member was removed from the cluster/);
  }, 120_000);

  it('refuses bad member changes with etcd errors', async () => {
    // A follower forwards member changes to the leader it knows. The test before removed m1 and
    // its joiner m4 was stopped when that test ended (a process started in a test ends with it),
    // so either may have been the leader: wait until the members still serving agree on a
    // leader among themselves.
    const serving = cluster.members.filter((m) => m.isRunning()).map((m) => m.endpoint.replace('http://', ''));
    await waitForLeader(serving.join(','), serving.length);
    const unknown = await etcdctl(cluster.members[1]!.endpoint.replace('http://', ''), ['member', 'remove', '1234abcd']);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toContain('etcdserver: member not found');
    const list = await listMembers(cluster.members[1]!.endpoint.replace('http://', ''));
    const taken = list[0]!.peerUrls;
    const duplicate = await etcdctl(cluster.members[1]!.endpoint.replace('http://', ''), ['member', 'add', 'dup', `--peer-urls=${taken}`]);
    expect(duplicate.code).toBe(1);
    expect(duplicate.stderr).toContain('etcdserver: Peer URLs already exists');
  });
});

describe('a single member grows into a cluster', () => {
  it('member add on a one-member cluster, then the new member joins and replicates', async () => {
    const first = await startMetaStore({ name: 'first' });
    let second: MetaStoreHandle | undefined;
    try {
      const firstEndpoint = first.endpoint.replace('http://', '');
      expect((await etcdctl(firstEndpoint, ['put', 'grown', 'from-one'])).code).toBe(0);
      const [client, peer, health, metrics] = await freePorts(4);
      const add = await etcdctl(firstEndpoint, ['member', 'add', 'second', `--peer-urls=http://127.0.0.1:${peer}`]);
      expect(add.code, add.stderr).toBe(0);
      const initialCluster = /ETCD_INITIAL_CLUSTER="([^"]+)"/.exec(add.stdout)![1]!;
      second = await startMetaStore({
        name: 'second',
        initialCluster,
        ports: { client: client!, peer: peer!, health: health!, metrics: metrics! },
        extraArgs: ['--initial-cluster-state', 'existing'],
      });
      const both = `${firstEndpoint},${second.endpoint.replace('http://', '')}`;
      const put = await waitFor(() => etcdctl(both, ['put', 'after-grow', 'yes']), {
        what: 'a write on the two-member cluster',
        until: (r) => r.code === 0,
      });
      expect(put.code).toBe(0);
      const read = await etcdctl(second.endpoint.replace('http://', ''), ['get', 'grown', '--print-value-only']);
      expect(read.stdout.trim()).toBe('from-one');
      const list = await listMembers(both);
      expect(list.map((m) => m.name).sort()).toEqual(['first', 'second']);
    } finally {
      await second?.destroy();
      await first.destroy();
    }
  }, 60_000);
});
