// Memory an unread Watch stream makes a member hold. A stream whose client stops reading at the
// HTTP/2 level pushes its watchers back to catching up from history instead of buffering every
// event; this measures what is still held after the puts (Buffers and JS heap, each after a full
// GC), next to what buffering every event would take. The tests (test/grpc/watch*.test.ts)
// assert only a bound far from both; the figures live here.
//
//   node --import tsx bench/watch-memory.ts [--watchers 200] [--puts 2000] [--value-bytes 256]

import * as grpc from '@grpc/grpc-js';
import { clients } from '../src/grpc/proto.js';
import { startInProcessMember } from '../test/grpc/in-process.js';
import { retainedOffHeapBytes, UnreadWatch } from '../test/grpc/unread-watch.js';
import { waitFor } from '../test/support/wait.js';
import { numberFlag } from './flags.js';

const watchers = numberFlag('watchers', 200);
const puts = numberFlag('puts', 2000);
const valueBytes = numberFlag('value-bytes', 256);

/** Retained Buffers and JS heap after a full GC (retainedOffHeapBytes collects first). */
async function retained(): Promise<{ offHeap: number; heap: number }> {
  const offHeap = await retainedOffHeapBytes();
  return { offHeap, heap: process.memoryUsage().heapUsed };
}

const mb = (bytes: number): string => `${(bytes / 1024 / 1024).toFixed(1)} MB`;

async function main(): Promise<void> {
  const member = await startInProcessMember();
  const kv: any = new clients.KV(member.endpoint, grpc.credentials.createInsecure());
  const slow = new UnreadWatch(member.endpoint);
  try {
    for (let i = 0; i < watchers; i++) slow.send({ createRequest: { key: Buffer.from('k'), rangeEnd: Buffer.from('l') } });
    await waitFor(() => member.kv.watchHub.counts.synced === watchers, { what: 'every watcher created', intervalMs: 10 });
    const before = await retained();
    const value = Buffer.alloc(valueBytes, 120);
    let next = 0;
    await Promise.all(
      Array.from({ length: 32 }, async () => {
        while (next < puts) {
          const key = Buffer.from(`k${next++ % 10}`);
          await new Promise((resolve, reject) => kv.put({ key, value }, (e: Error | null, r: unknown) => (e ? reject(e) : resolve(r))));
        }
      }),
    );
    const after = await retained();
    // One event per watcher per put: key, value and ~70 bytes of framing and revisions.
    const unbounded = watchers * puts * (valueBytes + 2 + 70);
    console.log(`unread watch stream: ${watchers} watchers x ${puts} puts of ${valueBytes} B values`);
    console.log(`  retained after the puts: off-heap ${mb(after.offHeap - before.offHeap)}, JS heap ${mb(after.heap - before.heap)}`);
    console.log(`  watchers caught up from history instead (unsynced): ${member.kv.watchHub.counts.unsynced}`);
    console.log(`  buffering every event would hold ~${mb(unbounded)}`);
  } finally {
    slow.close();
    kv.close();
    await member.close();
  }
}

await main();
