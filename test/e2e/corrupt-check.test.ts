// --experimental-initial-corrupt-check: a member whose stored history was altered while it was
// down refuses to serve (it exits, naming the inconsistency) instead of serving data that
// differs from its peers'; an intact member restarts and passes the check.

import { join } from 'node:path';
import { ClassicLevel } from 'classic-level';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { leaderIndex, waitForLeader } from '../support/cluster-status.js';
import { startMetaStoreCluster, type MetaStoreCluster } from '../support/servers.js';
import { etcdctl } from '../support/tools.js';
import { waitFor } from '../support/wait.js';

let cluster: MetaStoreCluster;

beforeAll(async () => {
  cluster = await startMetaStoreCluster(3, { extraArgs: ['--experimental-initial-corrupt-check'] });
  await waitForLeader(cluster.endpoints, 3);
}, 60_000);

afterAll(async () => {
  await cluster?.destroy();
});

/** Flips one byte of the newest MVCC record's value in a stopped member's LevelDB. */
async function corruptNewestRecord(dataDir: string): Promise<void> {
  const db = new ClassicLevel<Buffer, Buffer>(join(dataDir, 'db'), { keyEncoding: 'buffer', valueEncoding: 'buffer' });
  await db.open();
  try {
    let newest: [Buffer, Buffer] | undefined;
    for await (const entry of db.iterator({ gte: Buffer.from([0x02]), lt: Buffer.from([0x03]) })) newest = entry;
    expect(newest).toBeDefined();
    const [key, value] = newest!;
    const altered = Buffer.from(value);
    altered[altered.length - 1] = altered[altered.length - 1]! ^ 0xff;
    await db.put(key, altered, { sync: true });
  } finally {
    await db.close();
  }
}

it('an intact member passes the check on restart; a corrupted one refuses to serve', async () => {
  for (let i = 0; i < 10; i++) expect((await etcdctl(cluster.endpoints, ['put', `k${i}`, `v${i}`])).code).toBe(0);
  // Every member has applied everything (linearizable read through each).
  for (const member of cluster.members)
    expect((await etcdctl(member.endpoint.replace('http://', ''), ['get', 'k9', '--print-value-only'])).stdout.trim()).toBe('v9');

  const intact = cluster.members[1]!;
  await intact.stop();
  await intact.restart();
  await intact.waitForLog('initial corruption check passed');
  // It really compared with a peer (not everything skipped).
  expect(intact.logs()).toMatch(/"compared":\["[0-9a-f]+/);

  const victim = cluster.members[2]!;
  await victim.stop();
  await corruptNewestRecord(victim.dataDir);
  await expect(victim.restart({ readyTimeoutMs: 20_000 })).rejects.toThrow(/exited/);
  expect(victim.logs()).toContain('found data inconsistency with peers');
  expect(victim.isRunning()).toBe(false);
}, 60_000);

describe('periodic corruption check (--experimental-corrupt-check-time)', () => {
  it('the leader raises CORRUPT for a member whose history differs; then requests are refused', async () => {
    const periodic = await startMetaStoreCluster(3, { extraArgs: ['--experimental-corrupt-check-time', '1s'] });
    try {
      await waitForLeader(periodic.endpoints, 3);
      for (let i = 0; i < 5; i++) expect((await etcdctl(periodic.endpoints, ['put', `p${i}`, `v${i}`])).code).toBe(0);
      for (const member of periodic.members) {
        expect((await etcdctl(member.endpoint.replace('http://', ''), ['get', 'p4', '--print-value-only'])).stdout.trim()).toBe('v4');
      }
      // Alter a follower's stored history while it is down, then bring it back.
      const leader = await leaderIndex(periodic);
      const victim = periodic.members[(leader + 1) % 3]!;
      await victim.stop();
      await corruptNewestRecord(victim.dataDir);
      await victim.restart();
      const alarms = await waitFor(() => etcdctl(periodic.endpoints, ['alarm', 'list']), {
        what: 'the CORRUPT alarm',
        until: (r) => r.stdout.includes('alarm:CORRUPT'),
        timeoutMs: 20_000,
      });
      expect(alarms.stdout).toMatch(/^memberID:\d+ alarm:CORRUPT/m);
      // The restarted member may still be finding its leader ("no leader"): ask until the
      // answer is the alarm's.
      const put = await waitFor(() => etcdctl(periodic.endpoints, ['put', 'after', 'x']), {
        what: 'writes refused with corrupt cluster',
        until: (r) => r.stderr.includes('corrupt cluster'),
        timeoutMs: 20_000,
      });
      expect(put.code).toBe(1);
      expect(put.stderr).toContain('etcdserver: corrupt cluster');
    } finally {
      await periodic.destroy();
    }
  }, 90_000);
});
