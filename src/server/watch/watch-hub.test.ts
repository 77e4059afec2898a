// WatchHub and WatchStream against a real backend and KvServer: ordering, atomic revisions,
// catch-up from storage and from the recent window without gaps or duplicates while writes
// continue, compaction, slow consumers falling back to catch-up, filters, prev_kv, fairness.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, test, vi } from 'vitest';
import { CompactedError } from '../../mvcc/errors.js';
import type { Event } from '../../mvcc/types.js';
import { Backend } from '../../storage/backend.js';
import { KvServer } from '../member/kv-server.js';
import { AssertionError } from '../../util/assert.js';
import { prefixEnd, type WatchHub } from './watch-hub.js';
import { WatchStream, type CreateWatch, type StreamResponse } from './watch-stream.js';
import { waitFor } from '../../../test/support/wait.js';

const open: Array<{ kv: KvServer; dir: string }> = [];

async function member(): Promise<KvServer> {
  const dir = mkdtempSync(join(tmpdir(), 'watch-hub-'));
  const kv = await KvServer.open(await Backend.open(dir));
  open.push({ kv, dir });
  await kv.start();
  return kv;
}

afterEach(async () => {
  for (const { kv, dir } of open.splice(0)) {
    await kv.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

const b = (s: string): Buffer => Buffer.from(s);
const put = (kv: KvServer, key: string, value: string) =>
  kv.put({ key: b(key), value: b(value), lease: 0n, prevKv: false, ignoreValue: false, ignoreLease: false });
const del = (kv: KvServer, key: string, rangeEnd = '') => kv.deleteRange({ key: b(key), rangeEnd: b(rangeEnd), prevKv: false });

function spec(over: Partial<CreateWatch>): CreateWatch {
  return {
    watchId: 0,
    key: b('k'),
    rangeEnd: Buffer.alloc(0),
    startRevision: 0,
    progressNotify: false,
    noPut: false,
    noDelete: false,
    prevKv: false,
    fragment: false,
    ...over,
  };
}

const tick = () => new Promise<void>((resolve) => setImmediate(resolve));

/** Pulls everything the stream has until `until` holds, letting catch-ups land in between. */
async function drain(stream: WatchStream, until: (all: StreamResponse[]) => boolean, into: StreamResponse[] = []): Promise<StreamResponse[]> {
  const pulled = (): StreamResponse[] => {
    for (let r = stream.pull(); r !== undefined; r = stream.pull()) into.push(r);
    return into;
  };
  return waitFor(pulled, { what: `drain: ${until.toString()}`, until, timeoutMs: 20_000, intervalMs: 0 });
}

const eventsOf = (responses: StreamResponse[], watchId = 0): Event[] => responses.filter((r) => r.watchId === watchId).flatMap((r) => [...r.events]);
const revs = (events: Event[]) => events.map((e) => e.kv.modRevision);
const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);

describe('WatchHub', () => {
  test('created first, then live events in revision order, one response per revision', async () => {
    const kv = await member();
    const stream = new WatchStream(kv.watchHub);
    stream.create(spec({ key: b('a'), rangeEnd: prefixEnd(b('a')) }));
    await put(kv, 'a1', 'x');
    await kv.txn({
      compare: [],
      success: [
        { kind: 'put', put: { key: b('a2'), value: b('y'), lease: 0n, prevKv: false, ignoreValue: false, ignoreLease: false } },
        { kind: 'put', put: { key: b('a3'), value: b('z'), lease: 0n, prevKv: false, ignoreValue: false, ignoreLease: false } },
        { kind: 'put', put: { key: b('b'), value: b('z'), lease: 0n, prevKv: false, ignoreValue: false, ignoreLease: false } },
      ],
      failure: [],
    });
    const got = await drain(stream, (all) => eventsOf(all).length === 3);
    expect(got[0]).toMatchObject({ created: true, watchId: 0, revision: 1 });
    expect(got.slice(1).map((r) => [r.revision, r.events.map((e) => e.kv.key.toString())])).toEqual([
      [2, ['a1']],
      [3, ['a2', 'a3']],
    ]);
    stream.close();
  });

  test('a stream behind its transport sends each watcher its queued revisions merged, whole and in order', async () => {
    const kv = await member();
    const stream = new WatchStream(kv.watchHub);
    stream.create(spec({ key: b('a'), rangeEnd: prefixEnd(b('a')) }));
    stream.create(spec({ key: b('a'), rangeEnd: prefixEnd(b('a')), noPut: true }));
    const created = await drain(stream, (all) => all.length === 2);
    await put(kv, 'a1', 'x');
    await kv.txn({
      compare: [],
      success: [
        { kind: 'put', put: { key: b('a2'), value: b('y'), lease: 0n, prevKv: false, ignoreValue: false, ignoreLease: false } },
        { kind: 'put', put: { key: b('a3'), value: b('z'), lease: 0n, prevKv: false, ignoreValue: false, ignoreLease: false } },
      ],
      failure: [],
    });
    await del(kv, 'a1');
    const got: StreamResponse[] = [];
    for (let r = stream.pull(true); r !== undefined; r = stream.pull(true)) got.push(r);
    expect(created.map((r) => r.created)).toEqual([true, true]);
    // Watcher 0: three revisions in one response, header at the last one.
    expect(got.filter((r) => r.watchId === 0).map((r) => [r.revision, r.events.map((e) => `${e.type} ${e.kv.key}@${e.kv.modRevision}`)])).toEqual([
      [4, ['put a1@2', 'put a2@3', 'put a3@3', 'delete a1@4']],
    ]);
    // Watcher 1 (no puts): its own filter still applies.
    expect(got.filter((r) => r.watchId === 1).map((r) => [r.revision, r.events.map((e) => `${e.type} ${e.kv.key}`)])).toEqual([[4, ['delete a1']]]);
    // Not behind: one response per revision, as etcd sends a synced watcher's events.
    await put(kv, 'a4', 'x');
    await put(kv, 'a5', 'x');
    expect(await drain(stream, (all) => all.length === 2)).toMatchObject([
      { watchId: 0, revision: 5 },
      { watchId: 0, revision: 6 },
    ]);
    stream.close();
  });

  test('catch-up from storage and the window has no gaps or duplicates while writes continue', async () => {
    const kv = await member();
    // A tiny window forces most of the catch-up through storage scans.
    kv.watchHub.configure({ maxRecentRevisions: 5, maxRevisionsPerDelivery: 50 });
    for (let i = 0; i < 300; i++) await put(kv, `k${i % 7}`, `v${i}`);
    const stream = new WatchStream(kv.watchHub);
    stream.create(spec({ key: b('k'), rangeEnd: prefixEnd(b('k')), startRevision: 2 }));
    const got: StreamResponse[] = [];
    // Keep writing while the watcher catches up.
    const writer = (async () => {
      for (let i = 0; i < 200; i++) await put(kv, `k${i % 5}`, `w${i}`);
    })();
    const draining = drain(stream, (all) => eventsOf(all).length >= 500, got);
    await writer;
    await draining;
    const events = eventsOf(got);
    expect(revs(events)).toEqual(range(2, 501));
    for (const r of got.slice(1)) {
      // Catch-up responses carry whole revisions and at most 50 of them.
      expect(new Set(r.events.map((e) => e.kv.modRevision)).size).toBeLessThanOrEqual(50);
    }
    expect(kv.watchHub.counts).toEqual({ synced: 1, unsynced: 0 });
    stream.close();
  }, 60_000);

  test('with nobody watching, the window keeps only its floor; a watch from an older revision gets every event from storage', async () => {
    const kv = await member();
    kv.watchHub.configure({ minRecentRevisions: 8, maxRevisionsPerDelivery: 30 });
    for (let i = 0; i < 120; i++) await put(kv, `k${i % 3}`, `v${i}`); // revisions 2..121
    // No watcher at all: between the floor and twice the floor, not the 5,000 of the cap.
    expect(kv.watchHub.recentRevisions).toBeGreaterThanOrEqual(8);
    expect(kv.watchHub.recentRevisions).toBeLessThan(16);
    const scan = vi.spyOn(kv.backend, 'scan');
    const stream = new WatchStream(kv.watchHub);
    stream.create(spec({ key: b('k'), rangeEnd: prefixEnd(b('k')), startRevision: 2, prevKv: true }));
    const got = await drain(stream, (all) => eventsOf(all).length === 120);
    expect(scan).toHaveBeenCalled();
    const events = eventsOf(got);
    expect(revs(events)).toEqual(range(2, 121));
    // prev_kv is right across the storage part and the window part alike.
    expect(events.map((e) => e.prevKv?.value.toString())).toEqual(range(0, 119).map((i) => (i < 3 ? undefined : `v${i - 3}`)));
    expect(kv.watchHub.counts).toEqual({ synced: 1, unsynced: 0 });
    // A synced watcher's client may resume from a revision a moment back: the window grows.
    for (let i = 0; i < 40; i++) await put(kv, 'k0', `w${i}`);
    await drain(stream, (all) => eventsOf(all).length === 160, got);
    expect(kv.watchHub.recentRevisions).toBeGreaterThan(40);
    // Nobody watches any more: back to the floor at the next trim.
    stream.close();
    expect(kv.watchHub.counts).toEqual({ synced: 0, unsynced: 0 });
    for (let i = 0; i < 20; i++) await put(kv, 'x', `z${i}`);
    expect(kv.watchHub.recentRevisions).toBeLessThan(16);
  }, 60_000);

  test('a watcher that falls behind keeps the window from its revision on, and catches up from it without storage', async () => {
    const kv = await member();
    kv.watchHub.configure({ minRecentRevisions: 8 });
    // A consumer with room for a couple of events: it falls behind at once and stays unsynced.
    const stream = new WatchStream(kv.watchHub, { maxPendingBytes: 300 });
    stream.create(spec({ key: b('k'), rangeEnd: prefixEnd(b('k')) }));
    await drain(stream, (all) => all.length === 1);
    for (let i = 0; i < 100; i++) await put(kv, 'k', `v${i}`); // revisions 2..101
    expect(kv.watchHub.counts).toEqual({ synced: 0, unsynced: 1 });
    // Everything from the first revision it was not given is still in the window.
    expect(kv.watchHub.recentRevisions).toBeGreaterThan(90);
    const scan = vi.spyOn(kv.backend, 'scan');
    const got = await drain(stream, (all) => eventsOf(all).length === 100);
    expect(revs(eventsOf(got))).toEqual(range(2, 101));
    expect(scan).not.toHaveBeenCalled();
    expect(kv.watchHub.counts).toEqual({ synced: 1, unsynced: 0 });
    // Caught up and gone: the next trim goes back to the floor.
    stream.close();
    for (let i = 0; i < 20; i++) await put(kv, 'x', `w${i}`);
    expect(kv.watchHub.recentRevisions).toBeLessThan(16);
  }, 60_000);

  test('a compacted start revision cancels with the compaction point', async () => {
    const kv = await member();
    for (let i = 0; i < 5; i++) await put(kv, 'k', `v${i}`);
    await kv.compact(4, true);
    const stream = new WatchStream(kv.watchHub);
    stream.create(spec({ startRevision: 2 }));
    stream.create(spec({ startRevision: 4 }));
    const got = await drain(stream, (all) => all.length >= 4);
    const first = got.filter((r) => r.watchId === 0);
    expect(first[1]).toMatchObject({ canceled: true, compactRevision: 4, revision: 0 });
    expect(revs(eventsOf(got, 1))).toEqual([4, 5, 6]);
    stream.close();
  });

  test('filters and prev_kv, live and from storage', async () => {
    const kv = await member();
    kv.watchHub.configure({ maxRecentRevisions: 1 });
    await put(kv, 'k', 'v1'); // 2
    await put(kv, 'k', 'v2'); // 3
    await del(kv, 'k'); // 4
    await put(kv, 'k', 'v3'); // 5
    const stream = new WatchStream(kv.watchHub);
    stream.create(spec({ startRevision: 2, prevKv: true }));
    stream.create(spec({ startRevision: 2, noPut: true, prevKv: true }));
    stream.create(spec({ startRevision: 2, noDelete: true }));
    const got: StreamResponse[] = [];
    await drain(stream, () => kv.watchHub.counts.unsynced === 0, got);
    await put(kv, 'k', 'v4'); // 6
    await del(kv, 'k'); // 7
    await drain(stream, (all) => eventsOf(all, 0).length === 6 && eventsOf(all, 1).length === 2 && eventsOf(all, 2).length === 4, got);
    const all = eventsOf(got, 0);
    expect(all.map((e) => [e.type, e.kv.modRevision, e.prevKv?.value.toString()])).toEqual([
      ['put', 2, undefined],
      ['put', 3, 'v1'],
      ['delete', 4, 'v2'],
      ['put', 5, undefined],
      ['put', 6, 'v3'],
      ['delete', 7, 'v4'],
    ]);
    expect(all[2]!.kv).toMatchObject({ createRevision: 0, version: 0, modRevision: 4 });
    expect(eventsOf(got, 1).map((e) => e.type)).toEqual(['delete', 'delete']);
    expect(revs(eventsOf(got, 2))).toEqual([2, 3, 5, 6]);
    stream.close();
  });

  test('prev_kv: the store is asked to read it only for keys a synced prev_kv watcher covers; catch-ups from the window look it up', async () => {
    const kv = await member();
    const hub = kv.watchHub;
    await put(kv, 'p1', 'a'); // 2
    await put(kv, 'p1', 'b'); // 3: written with no watcher, so its event carries no prev_kv
    await del(kv, 'p1'); // 4: likewise
    const stream = new WatchStream(hub);
    stream.create(spec({ key: b('p'), rangeEnd: prefixEnd(b('p')), prevKv: true }));
    stream.create(spec({ key: b('q'), startRevision: 0 }));
    expect([hub.wantsPrevKv('p1'), hub.wantsPrevKv('p'), hub.wantsPrevKv('o'), hub.wantsPrevKv('q')]).toEqual([true, true, false, false]);
    // From the window: revisions 3 and 4 get their prev_kv looked up now.
    stream.create(spec({ watchId: 2, key: b('p'), rangeEnd: prefixEnd(b('p')), startRevision: 2, prevKv: true }));
    await put(kv, 'p1', 'c'); // 5: a creation, no prev_kv
    await put(kv, 'p1', 'd'); // 6: live, read by the store for the synced prev_kv watchers
    const got = await drain(stream, (all) => eventsOf(all, 0).length === 2 && eventsOf(all, 2).length === 5);
    const shape = (e: Event) => [e.type, e.kv.modRevision, e.prevKv?.value.toString()];
    expect(eventsOf(got, 0).map(shape)).toEqual([
      ['put', 5, undefined],
      ['put', 6, 'c'],
    ]);
    expect(eventsOf(got, 2).map(shape)).toEqual([
      ['put', 2, undefined],
      ['put', 3, 'a'],
      ['delete', 4, 'b'],
      ['put', 5, undefined],
      ['put', 6, 'c'],
    ]);
    stream.close();
    expect(hub.wantsPrevKv('p1')).toBe(false);
  });

  test('a slow consumer goes unsynced instead of buffering, then catches up exactly', async () => {
    const kv = await member();
    kv.watchHub.configure({ maxWatcherPendingBytes: 4096 });
    const slow = new WatchStream(kv.watchHub);
    const fast = new WatchStream(kv.watchHub);
    slow.create(spec({ key: b('k'), rangeEnd: prefixEnd(b('k')) }));
    fast.create(spec({ key: b('k'), rangeEnd: prefixEnd(b('k')) }));
    const fastGot: StreamResponse[] = [];
    for (let i = 0; i < 400; i++) {
      await put(kv, `k${i % 3}`, 'x'.repeat(100));
      for (let r = fast.pull(); r !== undefined; r = fast.pull()) fastGot.push(r);
    }
    // The slow stream never pulled: its queue stayed bounded and it left the synced group.
    expect(kv.watchHub.counts.unsynced).toBe(1);
    expect(slow.pendingBytes).toBeLessThanOrEqual(4096 + 1024);
    expect(revs(eventsOf(fastGot))).toEqual(range(2, 401));
    const slowGot = await drain(slow, (all) => eventsOf(all).length >= 400);
    expect(revs(eventsOf(slowGot))).toEqual(range(2, 401));
    expect(kv.watchHub.counts.unsynced).toBe(0);
    slow.close();
    fast.close();
  });

  test('one busy watcher does not hold back the others of its stream (round robin)', async () => {
    const kv = await member();
    for (let i = 0; i < 100; i++) await put(kv, 'busy', `v${i}`);
    const stream = new WatchStream(kv.watchHub);
    kv.watchHub.configure({ maxRevisionsPerDelivery: 10 });
    stream.create(spec({ key: b('busy'), startRevision: 2 }));
    stream.create(spec({ key: b('quiet') }));
    await put(kv, 'quiet', 'q');
    // Let the busy watcher's whole backlog queue up, then pull one response at a time.
    for (let i = 0; i < 20; i++) await tick();
    const got: StreamResponse[] = [];
    while (eventsOf(got, 1).length === 0) {
      const r = stream.pull();
      if (r !== undefined) got.push(r);
      else await tick();
    }
    // The quiet watcher's event came out after at most one busy response, not after 100 events.
    expect(got.filter((r) => r.watchId === 0 && r.events.length > 0).length).toBeLessThanOrEqual(2);
    await drain(stream, (all) => eventsOf(all, 0).length === 100, got);
    expect(revs(eventsOf(got, 0))).toEqual(range(2, 101));
    stream.close();
  });

  test('watch IDs: auto from 0, client-chosen, duplicates and empty ranges refused', async () => {
    const kv = await member();
    const stream = new WatchStream(kv.watchHub);
    stream.create(spec({}));
    stream.create(spec({ watchId: 5 }));
    stream.create(spec({ watchId: 5 }));
    stream.create(spec({ key: b('z'), rangeEnd: b('a') }));
    stream.create(spec({}));
    stream.cancel(0);
    stream.cancel(42);
    const got = await drain(stream, (all) => all.length >= 6);
    const control = got.filter((r) => r.watchId === -1).map((r) => r.cancelReason);
    expect(control).toEqual(['mvcc: duplicate watch ID provided on the WatchStream', 'mvcc: watcher range is empty']);
    const created = got.filter((r) => r.created && !r.canceled).map((r) => r.watchId);
    expect(created.sort()).toEqual([0, 1, 5]);
    expect(got.filter((r) => r.canceled && !r.created).map((r) => r.watchId)).toEqual([0]);
    stream.close();
  });

  test('progress request answers only when every watcher is synced', async () => {
    const kv = await member();
    await put(kv, 'k', 'v');
    const stream = new WatchStream(kv.watchHub);
    stream.create(spec({}));
    await drain(stream, (all) => all.length === 1);
    stream.requestProgress();
    const got = await drain(stream, (all) => all.length === 1);
    expect(got[0]).toMatchObject({ watchId: -1, revision: 2 });
    kv.watchHub.configure({ maxRecentRevisions: 1 });
    await put(kv, 'x', 'v');
    await put(kv, 'x', 'v');
    stream.create(spec({ startRevision: 1 })); // unsynced until a scan runs
    stream.requestProgress();
    const after = await drain(stream, () => kv.watchHub.counts.unsynced === 0);
    expect(after.some((r) => r.watchId === -1)).toBe(false);
    stream.close();
  });

  test('progress notifications go to idle synced watchers that asked', async () => {
    const kv = await member();
    const stream = new WatchStream(kv.watchHub, { progressNotifyIntervalMs: 20 });
    stream.create(spec({ progressNotify: true }));
    stream.create(spec({ key: b('other') }));
    const got = await drain(stream, (all) => all.filter((r) => r.watchId === 0 && !r.created).length >= 2);
    const notes = got.filter((r) => r.watchId === 0 && !r.created);
    expect(notes.every((r) => r.events.length === 0 && r.revision === 1)).toBe(true);
    expect(got.filter((r) => r.watchId === 1).length).toBe(1);
    stream.close();
  });

  test('a compaction racing a catch-up read of prev_kv drops prev_kv, as etcd does', async () => {
    const kv = await member();
    const scans = await storageScanOfPrevKv(kv, () => {
      throw new CompactedError();
    });
    expect(await scans.ended).toBe('resolved');
    const got = await drain(scans.stream, () => kv.watchHub.counts.unsynced === 0);
    // Revision 4 comes from the window; no prev_kv watcher was synced when it was written, so
    // its prev_kv is looked up at catch-up too, and the planted compaction drops it as well.
    expect(eventsOf(got).map((e) => [e.kv.modRevision, e.prevKv?.value.toString()])).toEqual([
      [2, undefined],
      [3, undefined],
      [4, undefined],
    ]);
  });

  test('an assertion failure while reading prev_kv during a scan is not swallowed', async () => {
    const kv = await member();
    const scans = await storageScanOfPrevKv(kv, () => {
      throw new AssertionError('planted');
    });
    const ended = await scans.ended;
    expect(ended).toBeInstanceOf(AssertionError);
    expect((ended as Error).message).toBe('planted');
  });

  test('an assertion failure during a scan is not swallowed even while the hub shuts down', async () => {
    const kv = await member();
    const scans = await storageScanOfPrevKv(kv, () => {
      kv.watchHub.close();
      throw new AssertionError('planted during shutdown');
    });
    const ended = await scans.ended;
    expect(ended).toBeInstanceOf(AssertionError);
    expect((ended as Error).message).toBe('planted during shutdown');
  });
});

/**
 * Starts a prev_kv watcher whose catch-up must read revision 3's prev_kv from storage, with the
 * store's range replaced by `range`. `ended` is how the hub's storage scan ended: 'resolved' or
 * what it threw. (A scan's rejection is unhandled in production, i.e. it stops the process;
 * here it is caught so that the test can look at it.)
 */
async function storageScanOfPrevKv(kv: KvServer, range: () => never): Promise<{ stream: WatchStream; ended: Promise<unknown> }> {
  kv.watchHub.configure({ maxRecentRevisions: 1 });
  await put(kv, 'k', 'v1'); // 2
  await put(kv, 'k', 'v2'); // 3: its prev_kv is revision 2's value
  await put(kv, 'k', 'v3'); // 4: the only revision in the window
  const ended = nextScanOutcome(kv.watchHub);
  vi.spyOn(kv.mvcc, 'range').mockImplementation(range);
  const stream = new WatchStream(kv.watchHub);
  stream.create(spec({ startRevision: 2, prevKv: true }));
  return { stream, ended };
}

/** How the hub's next storage scan ends: 'resolved', or the error it rejected with. */
function nextScanOutcome(hub: WatchHub): Promise<unknown> {
  const internals = hub as unknown as { scan(group: unknown[]): Promise<void> };
  const real = internals.scan.bind(hub);
  return new Promise((resolve) => {
    internals.scan = (group) => {
      const running = real(group);
      running.then(() => resolve('resolved'), resolve);
      return running.catch(() => undefined);
    };
  });
}

describe('shared deliveries', () => {
  test('a one-event revision hands every unfiltered watcher the same events array; a filtering watcher gets its own', async () => {
    const kv = await member();
    const stream = new WatchStream(kv.watchHub);
    for (let i = 0; i < 3; i++) stream.create(spec({ key: b('s/'), rangeEnd: b('s0') }));
    stream.create(spec({ key: b('s/'), rangeEnd: b('s0'), noDelete: true }));
    await drain(stream, (all) => all.filter((r) => r.created).length === 4);
    await put(kv, 's/1', 'v');
    const responses = await drain(stream, (all) => all.filter((r) => r.events.length > 0).length === 4);
    const byId = new Map(responses.filter((r) => r.events.length > 0).map((r) => [r.watchId, r.events]));
    expect(byId.get(1)).toBe(byId.get(0));
    expect(byId.get(2)).toBe(byId.get(0));
    expect(byId.get(3)).not.toBe(byId.get(0));
    expect(byId.get(3)).toEqual(byId.get(0));
    stream.close();
  });

  test("watchers share a revision's delivery: merging one watcher's queue leaves the others' revisions whole", async () => {
    const kv = await member();
    const behind = new WatchStream(kv.watchHub);
    const synced = new WatchStream(kv.watchHub);
    behind.create(spec({ key: b('m/'), rangeEnd: b('m0') }));
    synced.create(spec({ key: b('m/'), rangeEnd: b('m0') }));
    synced.create(spec({ key: b('m/'), rangeEnd: b('m0') }));
    await drain(behind, (all) => all.length === 1);
    await drain(synced, (all) => all.length === 2);
    for (let i = 1; i <= 3; i++) await put(kv, `m/${i}`, 'v');
    // The stream behind takes its watcher's three revisions as one response...
    const merged: StreamResponse[] = [];
    for (let r = behind.pull(true); r !== undefined; r = behind.pull(true)) merged.push(r);
    expect(merged.map((r) => [r.revision, r.events.map((e) => String(e.kv.key))])).toEqual([[4, ['m/1', 'm/2', 'm/3']]]);
    // ...and the other stream's watchers still get one revision, one event each, round robin.
    const got = await drain(synced, (all) => all.length === 6);
    expect(got.map((r) => [r.watchId, r.revision, r.events.map((e) => String(e.kv.key))])).toEqual([
      [0, 2, ['m/1']],
      [1, 2, ['m/1']],
      [0, 3, ['m/2']],
      [1, 3, ['m/2']],
      [0, 4, ['m/3']],
      [1, 4, ['m/3']],
    ]);
    expect(synced.hasPending).toBe(false);
    behind.close();
    synced.close();
  });
});
