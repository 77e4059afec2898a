// Differential test of `etcdctl watch` (3.4.23): the same watch commands and writes against a
// fresh real etcd 3.4.23 and a fresh MetaStore must print identical transcripts once cluster
// and member IDs and raft terms are masked.
//
// Watch is long-running: each watcher is a child process started with --rev (so it cannot
// miss writes that race with its creation), the writes go through etcdctl, and the test waits
// for the expected events on the watcher's stdout, the last one printed completely (etcdctl
// writes an event line by line), before stopping it. No sleeps.

import { describe, expect, it } from 'vitest';
import { completeLines, EtcdctlProcess, jsonWatchEvents, simpleWatchEvents } from '../support/etcdctl-process.js';
import { maskIds, maskVolatile } from '../support/mask.js';
import { startEtcd, startMetaStore } from '../support/servers.js';
import { etcdctl } from '../support/tools.js';

interface WatchSpec {
  name: string;
  args: string[];
  /** Events this watcher must print before it is stopped. */
  events: number;
  /** Events from history, awaited before the live writes so responses group the same way. */
  history: number;
  json: boolean;
  /** Simple output with --prev-kv only: the lines of the whole transcript. There an event has
   * two or four lines after its header (a PUT of a new key has no previous value), which the
   * output alone cannot tell apart, so the last event is known complete by the line count. */
  lines?: number;
  /** Lines written to `etcdctl watch -i` on its stdin (interactive mode). */
  interactive?: string;
}

/** Events `spec`'s watcher has printed so far (for --prev-kv simple output: headers seen). */
function printedEvents(spec: WatchSpec, out: string): number {
  if (spec.json) return jsonWatchEvents(out).length;
  if (spec.lines === undefined) return simpleWatchEvents(out);
  return completeLines(out).filter((line) => line === 'PUT' || line === 'DELETE').length;
}

/** Waits until the watcher printed `count` events, the last one completely. */
async function awaitEvents(watcher: EtcdctlProcess, spec: WatchSpec, count: number, timeoutMs = 20_000): Promise<void> {
  const lines = count >= spec.events ? (spec.lines ?? 0) : 0;
  await watcher.until(
    `watch ${spec.name}: ${count} events${lines > 0 ? ` in ${lines} lines` : ''}`,
    (out) => printedEvents(spec, out) >= count && completeLines(out).length >= lines,
    timeoutMs,
  );
}

function startWatch(endpoint: string, spec: WatchSpec): Promise<EtcdctlProcess> {
  return EtcdctlProcess.start(endpoint, ['watch', ...spec.args], { stdin: spec.interactive });
}

/** Writes before the watchers start (revisions 2..6 on a fresh server). */
const PRELOAD: string[][] = [
  ['put', 'a', '1'],
  ['put', 'a', '2'],
  ['put', 'b', '1'],
  ['put', 'ab', 'x'],
  ['del', 'b'],
];

/** Writes while the watchers run (revisions 7..12). */
const LIVE: Array<{ args: string[]; stdin?: string }> = [
  { args: ['put', 'a', '3'] },
  { args: ['put', 'b', '2'] },
  { args: ['del', 'a'] },
  { args: ['txn'], stdin: '\nput a 4\nput ac 5\nput zz 6\n\n\n' },
  { args: ['del', '--prefix', 'a'] },
  { args: ['put', 'b', '3'] },
];

const WATCHERS: WatchSpec[] = [
  // History from revision 2 (one catch-up response), then live events, with prev_kv.
  { name: 'prefix-a-history-json', args: ['--prefix', 'a', '--rev=2', '--prev-kv', '-w', 'json'], events: 3 + 7, history: 3, json: true },
  // A single key, simple output, from the middle of history.
  { name: 'key-b-simple', args: ['b', '--rev=4'], events: 2 + 2, history: 2, json: false },
  // Everything from now on, prev_kv, simple output.
  // Lines: 5 for each of the 6 events with a previous value (put a at 7, the 4 deletes, put b
  // at 12), 3 for each of the 4 without (put b at 8 and a at 10 after their deletes, ac, zz).
  { name: 'all-live-prevkv', args: ['--prefix', '', '--rev=7', '--prev-kv'], events: 10, history: 0, json: false, lines: 42 },
  // A range [a, b) as json, from revision 3.
  { name: 'range-a-b-json', args: ['a', 'b', '--rev=3', '-w', 'json'], events: 2 + 7, history: 2, json: true },
  // Interactive mode: the watch command comes on stdin.
  { name: 'interactive-b', args: ['-i'], events: 2 + 2, history: 2, json: false, interactive: 'watch b --rev=4\n' },
];

async function session(endpoint: string): Promise<Record<string, string>> {
  for (const args of PRELOAD) {
    const r = await etcdctl(endpoint, args);
    if (r.code !== 0) throw new Error(`preload ${args.join(' ')}: ${r.stderr}`);
  }
  const watchers = await Promise.all(WATCHERS.map((spec) => startWatch(endpoint, spec)));
  const transcript: Record<string, string> = {};
  try {
    for (const [i, w] of watchers.entries()) await awaitEvents(w, WATCHERS[i]!, WATCHERS[i]!.history);
    for (const step of LIVE) {
      const r = await etcdctl(endpoint, step.args, { stdin: step.stdin });
      transcript[`write ${step.args.join(' ')}`] = `${r.code}\n${r.stdout}${r.stderr}`;
    }
    for (const [i, w] of watchers.entries()) await awaitEvents(w, WATCHERS[i]!, WATCHERS[i]!.events);
  } finally {
    for (const w of watchers) await w.stop();
  }
  for (const [i, w] of watchers.entries()) transcript[`watch ${WATCHERS[i]!.name}`] = w.out;
  const masked: Record<string, string> = {};
  for (const [k, v] of Object.entries(transcript)) masked[k] = maskVolatile(maskIds(v), [endpoint]);
  return masked;
}

/** A key under a 2 s lease, watched until the lease expires (the minimum TTL on both servers). */
async function expirySession(endpoint: string): Promise<Record<string, string>> {
  const grant = await etcdctl(endpoint, ['lease', 'grant', '2']);
  const id = /lease ([0-9a-f]+) granted/.exec(grant.stdout)?.[1];
  if (id === undefined) throw new Error(`lease grant: ${grant.stdout}${grant.stderr}`);
  const put = await etcdctl(endpoint, ['put', 'leased', 'v', `--lease=${id}`]);
  // The PUT of the new key (3 lines), then the DELETE of the expiry with its previous value (5).
  const spec: WatchSpec = { name: 'leased', args: ['leased', '--rev=2', '--prev-kv'], events: 2, history: 1, json: false, lines: 8 };
  const watcher = await startWatch(endpoint, spec);
  try {
    await awaitEvents(watcher, spec, spec.events, 30_000);
  } finally {
    await watcher.stop();
  }
  const get = await etcdctl(endpoint, ['get', 'leased']);
  const ttl = await etcdctl(endpoint, ['lease', 'timetolive', id]);
  const mask = (text: string) => maskVolatile(maskIds(text.replaceAll(id, '<lease>')), [endpoint]);
  return {
    grant: mask(grant.stdout.replace(/TTL\(\d+\)/, 'TTL(n)')),
    put: mask(put.stdout),
    watch: mask(watcher.out),
    'get after expiry': mask(`${get.code}\n${get.stdout}`),
    'timetolive after expiry': mask(ttl.stdout),
  };
}

describe('etcdctl watch: MetaStore vs etcd 3.4.23', () => {
  it('the expiry of a leased key is seen by a watcher, as with etcd', async () => {
    const etcd = await startEtcd();
    let expected: Record<string, string>;
    try {
      expected = await expirySession(etcd.endpoint);
    } finally {
      await etcd.stop();
    }
    const metastore = await startMetaStore();
    let actual: Record<string, string>;
    try {
      actual = await expirySession(metastore.endpoint);
    } finally {
      await metastore.destroy();
    }
    for (const key of Object.keys(expected)) expect({ [key]: actual[key] }).toEqual({ [key]: expected[key] });
    expect(expected.watch).toContain('DELETE');
  }, 120_000);

  it('prints identical transcripts for history, live, prefix, range, prev_kv and json watches', async () => {
    const etcd = await startEtcd();
    let expected: Record<string, string>;
    try {
      expected = await session(etcd.endpoint);
    } finally {
      await etcd.stop();
    }
    const metastore = await startMetaStore();
    let actual: Record<string, string>;
    try {
      actual = await session(metastore.endpoint);
    } finally {
      await metastore.destroy();
    }
    if (process.env.WATCH_DIFF_DUMP) console.log(JSON.stringify(actual, null, 1));
    for (const key of Object.keys(expected)) expect({ [key]: actual[key] }).toEqual({ [key]: expected[key] });
  }, 120_000);
});
