// A watch that starts in the past, in-process: how long a watcher created `back` revisions
// behind the current one takes to be given every event up to it, with nobody else watching.
// Since the recent-events window follows need (bench/RESULTS.md, "What lives past a scavenge
// per put") such a catch-up reads LevelDB when `back` is past the window's 256-512 revision
// floor and no other watcher is synced (--others 0), where it used to be served from the window
// up to ~5,000 revisions back (or 4 MiB); with a synced watcher (--others 1) the window is whole.
//
// Run: npx tsc -p tsconfig.build.json && node --import tsx bench/watch-catchup.ts [--puts 6000]
//        [--keys 1000] [--value 1024] [--back 200,1000,4000] [--repeat 5] [--others 0]
// Prints, per distance: the median and the worst of `repeat` catch-ups, ms (create -> last
// event pulled) and the main thread's CPU for them, and how many storage scans the hub ran.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import type { KvServer as KvServerType } from '../src/server/member/kv-server.js';
import type { Backend as BackendType } from '../src/storage/backend.js';
import type { WatchStream as WatchStreamType } from '../src/server/watch/watch-stream.js';
import { numberFlag, textFlag } from './flags.js';

const dist = new URL('../dist/src/', import.meta.url).href;
const { KvServer } = (await import(`${dist}server/member/kv-server.js`)) as { KvServer: typeof KvServerType };
const { Backend } = (await import(`${dist}storage/backend.js`)) as { Backend: typeof BackendType };
const { WatchStream } = (await import(`${dist}server/watch/watch-stream.js`)) as { WatchStream: typeof WatchStreamType };

const puts = numberFlag('puts', 6000);
const keyCount = numberFlag('keys', 1000);
const valueBytes = numberFlag('value', 1024);
const repeat = numberFlag('repeat', 5);
const backs = textFlag('back', '200,1000,4000').split(',').map(Number);
/** Watchers kept open on other keys (synced) during the run: 0 = nobody else watches. */
const others = numberFlag('others', 0);

const value = Buffer.alloc(valueBytes, 0x76);
const key = (i: number): Buffer => Buffer.from(`w/${String(i % keyCount).padStart(8, '0')}`);

/** Creates a watch on every key from `start` and pulls until the event at `last` is out. */
async function catchUp(kv: KvServerType, start: number, last: number): Promise<number> {
  const stream = new WatchStream(kv.watchHub);
  let wake: () => void = () => {};
  stream.onReadable = () => wake();
  stream.create({
    watchId: 0,
    key: Buffer.from('w/'),
    rangeEnd: Buffer.from('w0'),
    startRevision: start,
    progressNotify: false,
    noPut: false,
    noDelete: false,
    prevKv: false,
    fragment: false,
  });
  let events = 0;
  let seen = 0;
  while (seen < last) {
    for (let r = stream.pull(); r !== undefined; r = stream.pull()) {
      for (const e of r.events) {
        if (e.kv.modRevision !== start + events) throw new Error(`event ${e.kv.modRevision} out of order, expected ${start + events}`);
        events++;
        seen = e.kv.modRevision;
      }
    }
    if (seen < last) await new Promise<void>((resolve) => (wake = resolve));
  }
  stream.close();
  return events;
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'metastore-watch-catchup-'));
  const backend = await Backend.open(dir, { cacheSizeBytes: 8 << 20 });
  const kv = await KvServer.open(backend, { valueCacheBytes: 16 << 20 });
  await kv.start();
  const bystanders = Array.from({ length: others }, () => {
    const stream = new WatchStream(kv.watchHub);
    stream.create({
      watchId: 0,
      key: Buffer.from('other'),
      rangeEnd: Buffer.alloc(0),
      startRevision: 0,
      progressNotify: false,
      noPut: false,
      noDelete: false,
      prevKv: false,
      fragment: false,
    });
    return stream;
  });
  let next = 0;
  await Promise.all(
    Array.from({ length: 100 }, async () => {
      while (next < puts) {
        const i = next++;
        await kv.put({ key: key(i), value, lease: 0n, prevKv: false, ignoreValue: false, ignoreLease: false });
      }
    }),
  );
  const current = kv.watchHub.currentRevision;
  let scans = 0;
  const scan = backend.scan.bind(backend);
  backend.scan = ((...args: Parameters<typeof scan>) => {
    scans++;
    return scan(...args);
  }) as typeof backend.scan;
  for (const back of backs) {
    const times: number[] = [];
    const cpus: number[] = [];
    const scansBefore = scans;
    for (let i = 0; i < repeat; i++) {
      const cpu = process.cpuUsage();
      const started = performance.now();
      const n = await catchUp(kv, current - back + 1, current);
      times.push(performance.now() - started);
      const used = process.cpuUsage(cpu);
      cpus.push((used.user + used.system) / 1000);
      if (n !== back) throw new Error(`got ${n} events, expected ${back}`);
    }
    times.sort((a, b) => a - b);
    cpus.sort((a, b) => a - b);
    const mid = Math.floor(repeat / 2);
    console.log(
      `back ${back}: ${times[mid]!.toFixed(1)} ms median, ${times[repeat - 1]!.toFixed(1)} worst; process CPU ${cpus[mid]!.toFixed(1)} ms median; storage scans ${(scans - scansBefore) / repeat} per catch-up`,
    );
  }
  for (const stream of bystanders) stream.close();
  await kv.close();
  rmSync(dir, { recursive: true, force: true });
}

await main();
