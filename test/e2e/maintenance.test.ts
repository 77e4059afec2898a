// Maintenance on a 3-member MetaStore cluster of real processes, driven by the real etcdctl:
// `endpoint hashkv` agrees on every member; `move-leader` hands leadership over (and the
// rules: not leader, bad transferee); `snapshot save` produces a checksummed etcd-format
// snapshot, `bin/metastore snapshot restore` turns it into three new data dirs, and a new
// cluster on them serves every key with its create/mod revisions and versions, under a new
// cluster ID.

import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { clients } from '../../src/grpc/proto.js';
import { REPO_ROOT, planMetaStoreCluster, startMetaStoreCluster, type MetaStoreCluster } from '../support/servers.js';
import { etcdctl, run } from '../support/tools.js';
import { waitFor } from '../support/wait.js';

let cluster: MetaStoreCluster;
let restored: MetaStoreCluster | undefined;
const scratch = mkdtempSync(join(tmpdir(), 'metastore-maint-e2e-'));

interface MemberStatus {
  endpoint: string;
  memberId: string;
  leader: string;
  clusterId: string;
}

/** Quotes 64-bit IDs before JSON.parse so they stay exact. */
function parseIds(text: string): any {
  return JSON.parse(text.replace(/"(member_id|leader|cluster_id)":(\d+)/g, '"$1":"$2"'));
}

async function statuses(endpoints: string): Promise<MemberStatus[]> {
  const result = await etcdctl(endpoints, ['endpoint', 'status', '-w', 'json', '--command-timeout=2s']);
  if (!result.stdout.trim().startsWith('[')) return [];
  return (parseIds(result.stdout) as Array<{ Endpoint: string; Status: any }>).map((e) => ({
    endpoint: e.Endpoint,
    memberId: e.Status.header.member_id,
    leader: e.Status.leader ?? '0',
    clusterId: e.Status.header.cluster_id,
  }));
}

const settled = (s: MemberStatus[]) => s.length === 3 && s.every((m) => m.leader !== '0' && m.leader === s[0]!.leader);

async function hashkvs(endpoints: string): Promise<Array<{ hash: number; revision: number; compact: number }>> {
  const result = await etcdctl(endpoints, ['endpoint', 'hashkv', '-w', 'json', '--command-timeout=2s']);
  if (!result.stdout.trim().startsWith('[')) return [];
  return (JSON.parse(result.stdout) as Array<{ HashKV: any }>).map((e) => ({
    hash: e.HashKV.hash,
    revision: e.HashKV.header.revision,
    compact: e.HashKV.compact_revision ?? 0,
  }));
}

async function dumpKvs(endpoint: string): Promise<unknown[]> {
  const result = await etcdctl(endpoint, ['get', '', '--prefix', '-w', 'json']);
  expect(result.code, result.stderr).toBe(0);
  return JSON.parse(result.stdout).kvs;
}

beforeAll(async () => {
  cluster = await startMetaStoreCluster(3);
  await waitFor(() => statuses(cluster.endpoints), { what: 'a leader', until: settled });
  for (let i = 0; i < 40; i++) {
    const put = await etcdctl(cluster.endpoints, ['put', `k/${i % 15}`, `value-${i}`]);
    expect(put.code, put.stderr).toBe(0);
  }
  expect((await etcdctl(cluster.endpoints, ['del', 'k/3'])).code).toBe(0);
  const txn = await etcdctl(cluster.endpoints, ['txn'], { stdin: 'create("t/1") = "0"\n\nput t/1 one\nput t/2 two\n\n\n' });
  expect(txn.code, txn.stderr).toBe(0);
  expect(txn.stdout).toContain('SUCCESS');
}, 90_000);

afterAll(async () => {
  await restored?.destroy();
  await cluster?.destroy();
  rmSync(scratch, { recursive: true, force: true });
});

describe('maintenance on a 3-member cluster', () => {
  it('endpoint hashkv: every member reports the same hash at the same revision', async () => {
    const hashes = await waitFor(() => hashkvs(cluster.endpoints), {
      what: 'equal hashes on all members',
      until: (h) => h.length === 3 && h.every((x) => x.revision === h[0]!.revision && x.hash === h[0]!.hash),
    });
    expect(hashes[0]!.hash).not.toBe(0);
    // A write changes it, everywhere alike.
    expect((await etcdctl(cluster.endpoints, ['put', 'k/extra', 'x'])).code).toBe(0);
    const after = await waitFor(() => hashkvs(cluster.endpoints), {
      what: 'equal hashes after a write',
      until: (h) => h.length === 3 && h.every((x) => x.revision === hashes[0]!.revision + 1 && x.hash === h[0]!.hash),
    });
    expect(after[0]!.hash).not.toBe(hashes[0]!.hash);
    // A compacted revision errors like a Range.
    const member = cluster.members[0]!.endpoint.replace('http://', '');
    const compact = await etcdctl(cluster.endpoints, ['compact', '5']);
    expect(compact.code, compact.stderr).toBe(0);
    const old = await etcdctl(member, ['endpoint', 'hashkv', '--rev=3']);
    expect(old.stderr).toContain('required revision has been compacted');
  });

  it('move-leader: the leader hands over to a follower; followers and bad targets are refused', async () => {
    const before = await waitFor(() => statuses(cluster.endpoints), { what: 'a leader', until: settled });
    const leader = before.find((s) => s.memberId === s.leader)!;
    const follower = before.find((s) => s.memberId !== s.leader)!;
    const moved = await etcdctl(cluster.endpoints, ['move-leader', BigInt(follower.memberId).toString(16)]);
    expect(moved.code, moved.stderr).toBe(0);
    expect(moved.stdout).toContain(`Leadership transferred from ${BigInt(leader.memberId).toString(16)} to ${BigInt(follower.memberId).toString(16)}`);
    const after = await waitFor(() => statuses(cluster.endpoints), {
      what: 'the new leader everywhere',
      until: (s) => settled(s) && s[0]!.leader === follower.memberId,
    });
    expect(after[0]!.leader).toBe(follower.memberId);

    const bad = await etcdctl(cluster.endpoints, ['move-leader', 'abcdef']);
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toContain('etcdserver: bad leader transferee');

    // Straight to a follower (etcdctl itself only ever asks the leader).
    const notLeader = after.find((s) => s.memberId !== s.leader)!;
    const client = new clients.Maintenance(notLeader.endpoint.replace('http://', ''), grpc.credentials.createInsecure()) as any;
    const error = await new Promise<grpc.ServiceError | null>((resolve) =>
      client.MoveLeader({ targetID: leader.memberId }, (e: grpc.ServiceError | null) => resolve(e)),
    );
    client.close();
    expect(error?.code).toBe(grpc.status.FAILED_PRECONDITION);
    expect(error?.details).toBe('etcdserver: not leader');
  });

  it('snapshot save + snapshot restore into a new 3-member cluster keeps every key with its revisions', async () => {
    const original = await dumpKvs(cluster.endpoints);
    expect(original.length).toBe(17);
    const [origStatus] = await statuses(cluster.members[1]!.endpoint.replace('http://', ''));

    const file = join(scratch, 'backup.db');
    const saved = await etcdctl(cluster.members[1]!.endpoint.replace('http://', ''), ['snapshot', 'save', file]);
    expect(saved.code, saved.stderr).toBe(0);
    expect(saved.stdout).toContain(`Snapshot saved at ${file}`);
    expect(statSync(file).size % 512).toBe(32);
    expect(readFileSync(file).readUInt32LE(16), 'an etcd snapshot: bbolt meta page magic').toBe(0xed0cdaed);

    const plan = await planMetaStoreCluster(3);
    const dataDirs = plan.names.map((name) => join(scratch, `${name}.restored`));
    for (let i = 0; i < 3; i++) {
      const restore = await run(
        process.execPath,
        [
          join(REPO_ROOT, 'bin', 'metastore'),
          'snapshot',
          'restore',
          file,
          '--data-dir',
          dataDirs[i]!,
          '--name',
          plan.names[i]!,
          '--initial-cluster',
          plan.initialCluster,
          '--initial-cluster-token',
          'etcd-cluster',
          '--initial-advertise-peer-urls',
          plan.peerUrls[i]!,
        ],
        { timeoutMs: 30_000 },
      );
      expect(restore.code, restore.stderr).toBe(0);
      expect(restore.stdout).toContain('restored etcd snapshot');
    }
    // A data dir in use is never overwritten.
    const again = await run(
      process.execPath,
      [
        join(REPO_ROOT, 'bin', 'metastore'),
        'snapshot',
        'restore',
        file,
        '--data-dir',
        dataDirs[0]!,
        '--name',
        plan.names[0]!,
        '--initial-cluster',
        plan.initialCluster,
        '--initial-advertise-peer-urls',
        plan.peerUrls[0]!,
      ],
      { timeoutMs: 30_000 },
    );
    expect(again.code).toBe(1);
    expect(again.stderr).toContain('exists');

    restored = await startMetaStoreCluster(3, { plan, dataDirs });
    const status = await waitFor(() => statuses(restored!.endpoints), { what: 'a leader in the restored cluster', until: settled });
    expect(status[0]!.clusterId).not.toBe(origStatus!.clusterId);

    for (let i = 0; i < 3; i++) {
      expect(await dumpKvs(restored.members[i]!.endpoint.replace('http://', ''))).toEqual(original);
    }
    const hashes = await waitFor(() => hashkvs(restored!.endpoints), {
      what: 'equal hashes on the restored members',
      until: (h) => h.length === 3 && h.every((x) => x.hash === h[0]!.hash && x.revision === h[0]!.revision),
    });
    const origHash = (await hashkvs(cluster.members[1]!.endpoint.replace('http://', '')))[0]!;
    expect(hashes[0]!.revision).toBe(origHash.revision);
    expect(hashes[0]!.hash).toBe(origHash.hash);

    // The restored cluster goes on from the next revision.
    const put = await etcdctl(restored.endpoints, ['put', 'after-restore', 'v', '-w', 'json']);
    expect(put.code, put.stderr).toBe(0);
    expect(JSON.parse(put.stdout).header.revision).toBe(origHash.revision + 1);
  });
});
