// Watches on a 3-member cluster across a leader kill, through the real etcdctl:
// - `etcdctl watch --prefix` on a follower sees puts that go through another member;
// - the leader is killed with SIGKILL and puts continue through the survivors: the watcher on
//   the surviving follower keeps streaming, and the revisions it prints for the written keys
//   are contiguous and strictly increasing (no gap, no duplicate) and include every
//   acknowledged put;
// - the killed member is restarted and a watch with --rev from before the kill replays
//   exactly what the surviving watcher printed.
// Watch output is awaited on the child's stdout; no sleeps stand in for events.

import { spawn, type ChildProcess } from 'node:child_process';
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { clients } from '../../src/grpc/proto.js';
import { leaderIndex, memberStatuses, waitUntil } from '../support/cluster-status.js';
import { startMetaStoreCluster, type MetaStoreCluster } from '../support/servers.js';
import { requireTool } from '../support/tools.js';

interface Seen {
  key: string;
  value: string;
  revision: number;
}

/** `etcdctl watch ... -w json` as a child process; its events parsed as they arrive. */
class JsonWatch {
  readonly events: Seen[] = [];
  private out = '';
  private err = '';
  private exited = false;
  private waiters: Array<() => void> = [];
  private readonly child: ChildProcess;

  constructor(binary: string, endpoint: string, args: string[]) {
    const env: NodeJS.ProcessEnv = { ...process.env, ETCDCTL_API: '3' };
    for (const key of Object.keys(env)) if (key.startsWith('ETCDCTL_') && key !== 'ETCDCTL_API') delete env[key];
    this.child = spawn(binary, [`--endpoints=${endpoint}`, 'watch', ...args, '-w', 'json'], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    this.child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
      this.out += chunk;
      let newline: number;
      while ((newline = this.out.indexOf('\n')) >= 0) {
        const line = this.out.slice(0, newline).trim();
        this.out = this.out.slice(newline + 1);
        if (!line.startsWith('{')) continue;
        for (const e of JSON.parse(line).Events ?? []) {
          this.events.push({
            key: Buffer.from(e.kv.key, 'base64').toString(),
            value: Buffer.from(e.kv.value ?? '', 'base64').toString(),
            revision: Number(e.kv.mod_revision),
          });
        }
      }
      this.wake();
    });
    this.child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (this.err += chunk));
    this.child.on('exit', () => {
      this.exited = true;
      this.wake();
    });
  }

  private wake(): void {
    for (const w of this.waiters.splice(0)) w();
  }

  /** Resolves once `count` events were printed; fails with the output on exit or timeout. */
  async waitFor(count: number, timeoutMs = 30_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (this.events.length < count) {
      if (this.exited || Date.now() >= deadline) {
        throw new Error(`watch: ${this.events.length}/${count} events (exited: ${this.exited})\nstderr:\n${this.err}`);
      }
      await new Promise<void>((resolve) => {
        this.waiters.push(resolve);
        setTimeout(resolve, Math.max(0, deadline - Date.now()));
      });
    }
  }

  async stop(): Promise<void> {
    if (this.exited) return;
    const done = new Promise<void>((resolve) => this.child.once('exit', () => resolve()));
    this.child.kill('SIGTERM');
    await done;
  }
}

let cluster: MetaStoreCluster;

beforeAll(async () => {
  cluster = await startMetaStoreCluster(3);
}, 60_000);

afterAll(async () => {
  await cluster?.destroy();
});

describe('watch on a cluster across a leader kill', () => {
  it('a follower watcher streams without gaps or duplicates; --rev on the restarted member replays exactly', async () => {
    const binary = await requireTool('etcdctl', 'etcd-client');
    const host = (i: number): string => cluster.members[i]!.endpoint.replace('http://', '');
    const leader = await leaderIndex(cluster);
    const [watchAt, writeAt] = [0, 1, 2].filter((i) => i !== leader) as [number, number];
    const stubs = new Map<number, any>([watchAt, writeAt].map((i) => [i, new clients.KV(host(i), grpc.credentials.createInsecure())]));
    const acked = new Map<number, string>(); // revision -> key
    const attempted = new Set<string>();

    /** Puts `w/<n>` through `writeAt`, falling back to the other survivor, until acknowledged. */
    const put = async (n: number): Promise<number> => {
      const key = `w/${String(n).padStart(4, '0')}`;
      attempted.add(key);
      for (let attempt = 0; ; attempt++) {
        const target = attempt % 2 === 0 ? writeAt : watchAt;
        const result = await new Promise<number | Error>((resolve) =>
          stubs.get(target).Put({ key: Buffer.from(key), value: Buffer.from(`v${n}`) }, { deadline: Date.now() + 3000 }, (error: Error | null, r: any) =>
            resolve(error ?? Number(r.header.revision)),
          ),
        );
        if (typeof result === 'number') {
          acked.set(result, key);
          return result;
        }
        if (attempt > 200) throw result;
        // No leader yet (election in progress): there is no event to await from here.
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    };

    // The first put's revision anchors the watch (--rev), so no event can slip in before the
    // watch exists; from there on it streams live.
    let n = 0;
    const firstRevision = await put(n++);
    const live = new JsonWatch(binary, host(watchAt), ['--prefix', 'w/', `--rev=${firstRevision}`]);
    try {
      await live.waitFor(1);
      expect(live.events[0]!.revision).toBe(firstRevision);
      for (; n < 20; n++) await put(n);
      await live.waitFor(20);

      await cluster.members[leader]!.kill9();
      for (; n < 60; n++) await put(n);
      const lastAcked = Math.max(...acked.keys());
      await live.waitFor([...acked.keys()].length);
      // A put whose answer was lost in the kill may have been applied and then retried: the
      // watcher shows it too. Wait until the watcher reached the last acknowledged revision.
      while (live.events[live.events.length - 1]!.revision < lastAcked) await live.waitFor(live.events.length + 1);

      const revisions = live.events.map((e) => e.revision);
      console.log(`cluster watch: ${acked.size} puts acknowledged, ${revisions.length} events seen across the leader kill`);
      // Contiguous and strictly increasing: only these puts write to the cluster.
      expect(revisions).toEqual(Array.from({ length: revisions.length }, (_, i) => firstRevision + i));
      for (const [revision, key] of acked) expect(live.events.find((e) => e.revision === revision)?.key).toBe(key);
      for (const e of live.events) expect(attempted.has(e.key)).toBe(true);

      // The killed member comes back; a watch from before the kill replays exactly.
      await cluster.members[leader]!.restart();
      // etcdctl watch requires a leader (hasleader metadata). etcd logs "ready" only once a
      // restarted member has published itself through a leader; MetaStore's restarted member
      // may still be looking for one, so wait until it knows it.
      await waitUntil('the restarted member to know a leader', () => memberStatuses(host(leader)), (s) => s.length === 1 && s[0]!.leader !== '0');
      const replay = new JsonWatch(binary, host(leader), ['--prefix', 'w/', `--rev=${firstRevision}`]);
      try {
        await replay.waitFor(live.events.length);
        expect(replay.events).toEqual(live.events);
      } finally {
        await replay.stop();
      }
      // The surviving watcher is still live: one more put reaches it once.
      const extra = await put(n++);
      await live.waitFor(revisions.length + 1);
      expect(live.events.slice(revisions.length).map((e) => e.revision)).toEqual([extra]);
    } finally {
      await live.stop();
      for (const stub of stubs.values()) stub.close();
    }
  }, 180_000);
});
