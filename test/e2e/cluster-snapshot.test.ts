// A member that was down while more than --snapshot-count entries were written finds the
// leader's log compacted past its position, and catches up by snapshot. A member that was only
// paused meanwhile installs the snapshot under its running watch streams: the revisions the
// snapshot carries reach them too (etcd moves its synced watchers back to catch-up on restore).

import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { clients } from '../../src/grpc/proto.js';
import { startMetaStoreCluster, type MetaStoreCluster } from '../support/servers.js';
import { RawWatch } from '../support/raw-watch.js';
import { etcdctl } from '../support/tools.js';
import { waitFor } from '../support/wait.js';

let cluster: MetaStoreCluster;

beforeAll(async () => {
  cluster = await startMetaStoreCluster(3, { extraArgs: ['--snapshot-count', '100'] });
}, 60_000);

afterAll(async () => {
  await cluster?.destroy();
});

it('a member stopped past --snapshot-count entries catches up by snapshot', async () => {
  const lagging = cluster.members[2]!;
  await lagging.stop();
  const live = cluster.members.slice(0, 2).map((m) => new clients.KV(m.endpoint.replace('http://', ''), grpc.credentials.createInsecure()) as any);
  // 600 writes from 20 concurrent writers, each retried on the other member if refused.
  let next = 0;
  await Promise.all(
    Array.from({ length: 20 }, async () => {
      for (let i = next++; i < 600; i = next++) {
        const key = `snap/${String(i).padStart(4, '0')}`;
        // Refused while the cluster elects a leader (the stopped member may have led it).
        let attempt = 0;
        const put = (): Promise<boolean> =>
          new Promise((resolve) => live[attempt++ % 2].Put({ key: Buffer.from(key), value: Buffer.from(String(i)) }, (e: Error | null) => resolve(e === null)));
        await waitFor(put, { what: `${key} accepted by a live member`, timeoutMs: 20_000 });
      }
    }),
  );
  for (const stub of live) stub.close();

  await lagging.restart();
  await lagging.waitForLog('installed snapshot from leader', 30_000);
  const endpoint = lagging.endpoint.replace('http://', '');
  const count = await etcdctl(endpoint, ['get', 'snap/', '--prefix', '--count-only', '-w', 'json']);
  // etcdctl 3.4 has no --count-only flag; use a keys-only listing instead when it refuses.
  const listing = count.code === 0 ? count : await etcdctl(endpoint, ['get', 'snap/', '--prefix', '--keys-only', '-w', 'json']);
  expect(listing.code, listing.stderr).toBe(0);
  expect(JSON.parse(listing.stdout).count).toBe(600);
  const last = await etcdctl(endpoint, ['get', 'snap/0599', '--print-value-only', '--consistency=s']);
  expect(last.stdout.trim()).toBe('599');
}, 120_000);

/** `count` puts of watched/<from + i>, each retried on the other live member if refused. */
async function putAll(live: any[], from: number, count: number): Promise<number> {
  let revision = 0;
  for (let i = from; i < from + count; i++) {
    let attempt = 0;
    const put = (): Promise<number | undefined> =>
      new Promise((resolve) =>
        live[attempt++ % live.length].Put({ key: Buffer.from(`watched/${i}`), value: Buffer.from(`v${i}`) }, (e: Error | null, r: any) =>
          resolve(e === null ? Number(r.header.revision) : undefined),
        ),
      );
    revision = await waitFor(put, { what: `watched/${i} accepted by a live member`, timeoutMs: 20_000 });
  }
  return revision;
}

/** Every event of a watch (created response first), until it has seen `end`. */
async function eventsUntil(watch: RawWatch, end: number): Promise<string[]> {
  const events: string[] = [];
  let last = 0;
  while (last < end) {
    const [response] = await watch.next(1, 20_000);
    for (const e of response!.events) {
      events.push(`${e.kv.key}=${e.kv.value}@${e.kv.modRevision}`);
      last = Number(e.kv.modRevision);
    }
  }
  return events;
}

it('a paused member installs the snapshot under its watchers: each gets every revision once, in order', async () => {
  const paused = cluster.members[2]!;
  const live = cluster.members.slice(0, 2).map((m) => new clients.KV(m.endpoint.replace('http://', ''), grpc.credentials.createInsecure()) as any);
  const first = (await putAll(live, 0, 1)) + 1;
  const synced = new RawWatch(paused.endpoint);
  synced.send({ createRequest: { key: Buffer.from('watched/'), rangeEnd: Buffer.from('watched0'), startRevision: first } });
  await synced.next(1); // created
  await putAll(live, 1, 20);
  const installsBefore = paused.logs().split('installed snapshot from leader').length;
  process.kill(paused.pid, 'SIGSTOP');
  try {
    await putAll(live, 21, 400);
  } finally {
    process.kill(paused.pid, 'SIGCONT');
  }
  await waitFor(() => paused.logs().split('installed snapshot from leader').length > installsBefore, {
    what: 'the paused member to install the leader snapshot',
    timeoutMs: 30_000,
  });
  const end = await putAll(live, 421, 20);
  const expected = Array.from({ length: 440 }, (_, i) => `watched/${i + 1}=v${i + 1}@${first + i}`);
  expect(await eventsUntil(synced, end)).toEqual(expected);
  const catchUp = new RawWatch(paused.endpoint);
  catchUp.send({ createRequest: { key: Buffer.from('watched/'), rangeEnd: Buffer.from('watched0'), startRevision: first } });
  await catchUp.next(1);
  expect(await eventsUntil(catchUp, end)).toEqual(expected);
  synced.close();
  catchUp.close();
  for (const stub of live) stub.close();
}, 120_000);
