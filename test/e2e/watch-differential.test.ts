// Differential test of `etcdctl watch` (3.4.23): the same watch commands and writes against a
// fresh real etcd 3.4.23 and a fresh MetaStore must print identical transcripts once cluster
// and member IDs and raft terms are masked.
//
// Watch is long-running: each watcher is a child process started with --rev (so it cannot
// miss writes that race with its creation), the writes go through etcdctl, and the test waits
// for the expected number of events on the watcher's stdout before stopping it. No sleeps.

import { spawn, type ChildProcess } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { maskIds, maskVolatile } from '../support/mask.js';
import { startEtcd, startMetaStore } from '../support/servers.js';
import { etcdctl, requireTool } from '../support/tools.js';

interface WatchSpec {
  name: string;
  args: string[];
  /** Events this watcher must print before it is stopped. */
  events: number;
  /** Events from history, awaited before the live writes so responses group the same way. */
  history: number;
  json: boolean;
  /** Lines written to `etcdctl watch -i` on its stdin (interactive mode). */
  interactive?: string;
}

class WatchProcess {
  out = '';
  err = '';
  private readonly child: ChildProcess;
  private waiters: Array<() => void> = [];
  private exited = false;

  constructor(binary: string, endpoint: string, readonly spec: WatchSpec) {
    const env: NodeJS.ProcessEnv = { ...process.env, ETCDCTL_API: '3' };
    for (const key of Object.keys(env)) if (key.startsWith('ETCDCTL_') && key !== 'ETCDCTL_API') delete env[key];
    const stdin = spec.interactive === undefined ? 'ignore' : 'pipe';
    this.child = spawn(binary, [`--endpoints=${endpoint}`, 'watch', ...spec.args], { env, stdio: [stdin, 'pipe', 'pipe'] });
    if (spec.interactive !== undefined) this.child.stdin!.write(spec.interactive);
    this.child.stdout!.on('data', (chunk: Buffer) => {
      this.out += chunk.toString();
      this.wake();
    });
    this.child.stderr!.on('data', (chunk: Buffer) => {
      this.err += chunk.toString();
    });
    this.child.on('exit', () => {
      this.exited = true;
      this.wake();
    });
  }

  private wake(): void {
    for (const w of this.waiters.splice(0)) w();
  }

  eventCount(): number {
    if (this.spec.json) {
      let n = 0;
      for (const line of this.out.split('\n')) {
        if (!line.startsWith('{')) continue;
        try {
          n += (JSON.parse(line).Events ?? []).length;
        } catch {
          // A line still being written.
        }
      }
      return n;
    }
    return this.out.split('\n').filter((l) => l === 'PUT' || l === 'DELETE').length;
  }

  /** Resolves once the expected events are printed (bounded so a failure reports output). */
  async waitForEvents(count: number, timeoutMs = 20_000): Promise<void> {
    const timer = setTimeout(() => this.wake(), timeoutMs);
    const deadline = Date.now() + timeoutMs;
    try {
      while (this.eventCount() < count) {
        if (this.exited || Date.now() >= deadline) {
          throw new Error(`watch ${this.spec.name}: ${this.eventCount()}/${count} events\nstdout:\n${this.out}\nstderr:\n${this.err}`);
        }
        await new Promise<void>((resolve) => {
          this.waiters.push(resolve);
          setTimeout(resolve, 250);
        });
      }
    } finally {
      clearTimeout(timer);
    }
  }

  async stop(): Promise<void> {
    if (this.exited) return;
    const done = new Promise<void>((resolve) => this.child.once('exit', () => resolve()));
    this.child.kill('SIGTERM');
    await done;
  }
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
  { name: 'all-live-prevkv', args: ['--prefix', '', '--rev=7', '--prev-kv'], events: 10, history: 0, json: false },
  // A range [a, b) as json, from revision 3.
  { name: 'range-a-b-json', args: ['a', 'b', '--rev=3', '-w', 'json'], events: 2 + 7, history: 2, json: true },
  // Interactive mode: the watch command comes on stdin.
  { name: 'interactive-b', args: ['-i'], events: 2 + 2, history: 2, json: false, interactive: 'watch b --rev=4\n' },
];

async function session(endpoint: string): Promise<Record<string, string>> {
  const binary = await requireTool('etcdctl', 'etcd-client');
  for (const args of PRELOAD) {
    const r = await etcdctl(endpoint, args);
    if (r.code !== 0) throw new Error(`preload ${args.join(' ')}: ${r.stderr}`);
  }
  const watchers = WATCHERS.map((spec) => new WatchProcess(binary, endpoint, spec));
  const transcript: Record<string, string> = {};
  try {
    for (const w of watchers) await w.waitForEvents(w.spec.history);
    for (const step of LIVE) {
      const r = await etcdctl(endpoint, step.args, { stdin: step.stdin });
      transcript[`write ${step.args.join(' ')}`] = `${r.code}\n${r.stdout}${r.stderr}`;
    }
    for (const w of watchers) await w.waitForEvents(w.spec.events);
  } finally {
    for (const w of watchers) await w.stop();
  }
  for (const w of watchers) transcript[`watch ${w.spec.name}`] = w.out;
  const masked: Record<string, string> = {};
  for (const [k, v] of Object.entries(transcript)) masked[k] = maskVolatile(maskIds(v), [endpoint]);
  return masked;
}

/** A key under a 2 s lease, watched until the lease expires (the minimum TTL on both servers). */
async function expirySession(endpoint: string): Promise<Record<string, string>> {
  const binary = await requireTool('etcdctl', 'etcd-client');
  const grant = await etcdctl(endpoint, ['lease', 'grant', '2']);
  const id = /lease ([0-9a-f]+) granted/.exec(grant.stdout)?.[1];
  if (id === undefined) throw new Error(`lease grant: ${grant.stdout}${grant.stderr}`);
  const put = await etcdctl(endpoint, ['put', 'leased', 'v', `--lease=${id}`]);
  const watcher = new WatchProcess(binary, endpoint, { name: 'leased', args: ['leased', '--rev=2', '--prev-kv'], events: 2, history: 1, json: false });
  try {
    await watcher.waitForEvents(2, 30_000); // the PUT, then the DELETE of the expiry
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
    expect(expected['watch']).toContain('DELETE');
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
