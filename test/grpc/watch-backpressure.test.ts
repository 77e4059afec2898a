// Back-pressure from the transport: a Watch stream whose client stops reading at the HTTP/2
// level holds the server to a bounded amount of memory (its watchers fall back to catching up
// from history), other streams on the member keep receiving every event in order meanwhile,
// and once the slow client reads it gets every event exactly once.

import * as grpc from '@grpc/grpc-js';
import { expect, test } from 'vitest';
import { clients } from '../../src/grpc/proto.js';
import { Notifier, waitFor } from '../support/wait.js';
import { startInProcessMember } from './in-process.js';
import { retainedOffHeapBytes, UnreadWatch } from './unread-watch.js';

type Msg = Record<string, any>;
const b = (s: string) => Buffer.from(s);

test('an unread watch stream stays memory-bounded while the others get every event; then it catches up exactly', async () => {
  const member = await startInProcessMember();
  const SLOW_WATCHERS = 50;
  const PUTS = 3000;
  const VALUE = Buffer.alloc(1024, 120);
  // Unbounded, the unread stream would hold 50 x 3000 x ~1.1 KiB = ~165 MB of responses;
  // bounded it is ~3 MB (bench/watch-memory.ts measures it). The bound sits about 7x from both.
  const OFF_HEAP_GROWTH_BOUND = 24 * 1024 * 1024;
  const kv: any = new clients.KV(member.endpoint, grpc.credentials.createInsecure());
  const fastClient: any = new clients.Watch(member.endpoint, grpc.credentials.createInsecure(), {
    'grpc.max_receive_message_length': 64 * 1024 * 1024,
  });
  const slow = new UnreadWatch(member.endpoint);
  try {
    const fast: grpc.ClientDuplexStream<object, Msg> = fastClient.watch();
    const fastRevs: number[][] = [[], []];
    let fastCreated = 0;
    const fastChanges = new Notifier();
    fast.on('data', (m: Msg) => {
      if (m.created) fastCreated++;
      for (const e of m.events) fastRevs[Number(m.watchId)]!.push(Number(e.kv.modRevision));
      fastChanges.notify();
    });
    fast.on('error', () => undefined);
    fast.write({ createRequest: { key: b('k'), rangeEnd: b('l') } });
    fast.write({ createRequest: { key: b('k0'), rangeEnd: b('k1') } });
    for (let i = 0; i < SLOW_WATCHERS; i++) slow.send({ createRequest: { key: b('k'), rangeEnd: b('l') } });
    // The slow stream's creations have no reply we read: the member's watcher count shows them.
    await waitFor(() => fastCreated === 2 && member.kv.watchHub.counts.synced === SLOW_WATCHERS + 2, {
      what: 'every watcher created',
      timeoutMs: 5000,
      intervalMs: 10,
    });
    const before = await retainedOffHeapBytes();

    const keyOfRevision = new Map<number, string>();
    let next = 0;
    await Promise.all(
      Array.from({ length: 32 }, async () => {
        while (next < PUTS) {
          const key = `k${next++ % 10}`;
          const r: Msg = await new Promise((resolve, reject) =>
            kv.put({ key: b(key), value: VALUE }, (e: Error | null, r: Msg) => (e ? reject(e) : resolve(r))),
          );
          keyOfRevision.set(Number(r.header.revision), key);
        }
      }),
    );
    const revisions = [...keyOfRevision.keys()].sort((x, y) => x - y);
    const k0Revisions = revisions.filter((r) => keyOfRevision.get(r) === 'k0');
    // The reading stream got everything, in order, while the other one was not read.
    // Both watchers: a stream that fell behind sends each watcher's queued revisions merged, so
    // one watcher may get its last events before the other (etcd promises no order across them).
    await fastChanges.until(() => fastRevs[0]!.length >= PUTS && fastRevs[1]!.length >= k0Revisions.length, {
      what: `${PUTS} events on the reading stream`,
      timeoutMs: 30_000,
      detail: () => `${fastRevs[0]!.length} and ${fastRevs[1]!.length} received`,
    });
    expect(fastRevs[0]).toEqual(revisions);
    expect(fastRevs[1]).toEqual(k0Revisions);
    // The unread stream's watchers were pushed back to catching up instead of buffering.
    expect(member.kv.watchHub.counts.unsynced).toBe(SLOW_WATCHERS);
    // Buffers still referenced after a GC: what the server (and this process's clients) hold.
    expect((await retainedOffHeapBytes()) - before).toBeLessThan(OFF_HEAP_GROWTH_BOUND);

    // Now read: created once per watcher, then every revision exactly once, in order.
    const slowRevs = new Map<number, number[]>();
    let slowCreated = 0;
    let slowEvents = 0;
    const slowChanges = new Notifier();
    slow.onMessage = (m) => {
      if (m.created) slowCreated++;
      const list = slowRevs.get(Number(m.watchId)) ?? [];
      for (const e of m.events ?? []) list.push(Number(e.kv.modRevision));
      slowRevs.set(Number(m.watchId), list);
      slowEvents += (m.events ?? []).length;
      slowChanges.notify();
    };
    slow.read();
    await slowChanges.until(() => slowEvents >= SLOW_WATCHERS * PUTS, {
      what: `${SLOW_WATCHERS * PUTS} events on the slow stream`,
      timeoutMs: 60_000,
      detail: () => `${slowEvents} received`,
    });
    // Anything beyond the expected events (a duplicate) already read in the same chunk is in.
    await new Promise((resolve) => setImmediate(resolve));
    expect(slowCreated).toBe(SLOW_WATCHERS);
    expect(slowEvents).toBe(SLOW_WATCHERS * PUTS);
    for (let id = 0; id < SLOW_WATCHERS; id++) expect(slowRevs.get(id)).toEqual(revisions);
    expect(member.kv.watchHub.counts.unsynced).toBe(0);
    fast.cancel();
  } finally {
    slow.close();
    fastClient.close();
    kv.close();
    await member.close();
  }
}, 120_000);
