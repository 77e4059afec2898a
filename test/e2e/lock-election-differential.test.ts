// Differential test of `etcdctl lock` and `etcdctl elect` (3.4.23): the same session against
// a fresh real etcd 3.4.23 and a fresh MetaStore must print identical transcripts once
// cluster/member IDs, raft terms and lease IDs are masked. etcdctl runs the client-side
// recipes (clientv3/concurrency over Lease, Txn, Range and Watch), so this checks that those
// APIs behave exactly like etcd's under a real lock queue and a real election.
//
// Long-running etcdctl processes (a lock holder, a waiter, candidates, an observer, prefix
// watchers that show every queue key come and go) are children whose output the test reads;
// each step awaits the output that proves the previous one happened (a key printed, a PUT
// seen by the watcher, an exit). No sleeps. Lease IDs appear inside queue keys
// ("mylock/<lease hex>") and become L1, L2, ... in order of first appearance.

import { spawn, type ChildProcess } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { maskIds, maskVolatile } from '../support/mask.js';
import { expectSameAsEtcd } from '../support/differential.js';
import { etcdctl, requireTool } from '../support/tools.js';

const WAIT_MS = 20_000;

/** An etcdctl child process whose output can be awaited. */
class Etcdctl {
  out = '';
  err = '';
  code: number | null | undefined = undefined;
  private readonly child: ChildProcess;
  private waiters: Array<() => void> = [];

  constructor(binary: string, endpoint: string, readonly args: string[]) {
    const env: NodeJS.ProcessEnv = { ...process.env, ETCDCTL_API: '3' };
    for (const key of Object.keys(env)) if (key.startsWith('ETCDCTL_') && key !== 'ETCDCTL_API') delete env[key];
    this.child = spawn(binary, [`--endpoints=${endpoint}`, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    this.child.stdout!.on('data', (chunk: Buffer) => {
      this.out += chunk.toString();
      this.wake();
    });
    this.child.stderr!.on('data', (chunk: Buffer) => {
      this.err += chunk.toString();
    });
    this.child.on('exit', (code) => {
      this.code = code;
      this.wake();
    });
  }

  private wake(): void {
    for (const w of this.waiters.splice(0)) w();
  }

  /** Resolves once `ready(stdout)` holds; fails (with the output) if the process exits first
   * or nothing happens within WAIT_MS. */
  async waitFor(what: string, ready: (out: string) => boolean): Promise<void> {
    const deadline = performance.now() + WAIT_MS;
    while (!ready(this.out)) {
      if (this.code !== undefined || performance.now() >= deadline) {
        throw new Error(`etcdctl ${this.args.join(' ')}: no ${what}\nstdout:\n${this.out}\nstderr:\n${this.err}`);
      }
      await new Promise<void>((resolve) => {
        this.waiters.push(resolve);
        setTimeout(resolve, Math.max(0, deadline - performance.now()));
      });
    }
  }

  async lines(what: string, count: number): Promise<void> {
    await this.waitFor(what, (out) => out.split('\n').length - 1 >= count);
  }

  /** Watch output: the number of PUT and DELETE events printed. */
  async events(count: number): Promise<void> {
    await this.waitFor(`${count} events`, (out) => out.split('\n').filter((l) => l === 'PUT' || l === 'DELETE').length >= count);
  }

  async exit(): Promise<number | null> {
    if (this.code === undefined) await new Promise<void>((resolve) => this.child.once('exit', () => resolve()));
    return this.code ?? null;
  }

  /** SIGTERM (etcdctl's ordinary shutdown: unlock / resign), then the exit code. */
  async stop(): Promise<number | null> {
    if (this.code === undefined) this.child.kill('SIGTERM');
    return this.exit();
  }

  transcript(): string {
    // etcdctl's retry warnings are zap JSON lines on stderr; keep the rest.
    const stderr = this.err
      .split('\n')
      .filter((l) => !l.startsWith('{'))
      .join('\n');
    return `$ etcdctl ${this.args.join(' ')}\n[${this.code}]\n${this.out}${stderr}`;
  }
}

function maskLeases(text: string, names: Map<string, string>): string {
  return text.replace(/\b(mylock|myel)\/([0-9a-f]+)\b/g, (_m, name: string, hex: string) => {
    let n = names.get(hex);
    if (n === undefined) {
      n = `L${names.size + 1}`;
      names.set(hex, n);
    }
    return `${name}/${n}`;
  });
}

async function session(endpoint: string): Promise<string[]> {
  const binary = await requireTool('etcdctl', 'etcd-client');
  const transcript: string[] = [];
  const record = (text: string): void => {
    transcript.push(maskVolatile(maskIds(text), [endpoint]));
  };
  const run = async (args: string[]): Promise<void> => {
    const r = await etcdctl(endpoint, args);
    const stderr = r.stderr
      .split('\n')
      .filter((l) => !l.startsWith('{'))
      .join('\n');
    record(`$ etcdctl ${args.join(' ')}\n[${r.code}]\n${r.stdout}${stderr}`);
  };
  const nextRevision = async (): Promise<number> => {
    const r = await etcdctl(endpoint, ['get', 'nothing', '-w', 'json']);
    return Number(JSON.parse(r.stdout).header.revision) + 1;
  };
  const start = (args: string[]): Etcdctl => new Etcdctl(binary, endpoint, args);

  // --- lock: one-shot commands run while holding the lock.
  await run(['lock', 'mylock', 'echo', 'done']);
  await run(['lock', 'mylock', '--', 'sh', '-c', 'echo key=$ETCD_LOCK_KEY rev=$ETCD_LOCK_REV']);
  await run(['lock', 'mylock', 'false']);
  await run(['lock']);

  // --- lock: a holder, a queued waiter, release on the holder's ordinary shutdown.
  const lockWatch = start(['watch', '--prefix', 'mylock/', `--rev=${await nextRevision()}`]);
  const holder = start(['lock', 'mylock']);
  await holder.lines('held key', 2);
  await lockWatch.events(1);
  const waiter = start(['lock', 'mylock', '--', 'sh', '-c', 'echo got=$ETCD_LOCK_KEY rev=$ETCD_LOCK_REV']);
  await lockWatch.events(2);
  // Queued behind the holder: it can only have printed something after the holder unlocks.
  expect(waiter.out).toBe('');
  await holder.stop();
  await waiter.exit();
  await lockWatch.events(4);
  await lockWatch.stop();
  for (const p of [lockWatch, holder, waiter]) record(p.transcript());
  await run(['get', '--prefix', 'mylock']);

  // --- elect: an observer, two candidates; the leader resigns on shutdown, the next one wins.
  const electWatch = start(['watch', '--prefix', 'myel/', `--rev=${await nextRevision()}`]);
  const observer = start(['elect', '-l', 'myel']);
  const first = start(['elect', 'myel', 'p1']);
  await first.lines('leader key and value', 2);
  await observer.lines('first leader', 2);
  await electWatch.events(1);
  const second = start(['elect', 'myel', 'p2']);
  await electWatch.events(2);
  expect(second.out).toBe('');
  await first.stop();
  await second.lines('leader key and value', 2);
  await observer.lines('second leader', 4);
  await second.stop();
  await electWatch.events(4);
  await observer.stop();
  await electWatch.stop();
  for (const p of [electWatch, observer, first, second]) record(p.transcript());
  await run(['get', '--prefix', 'myel']);
  await run(['elect', 'myel']);

  const names = new Map<string, string>();
  return transcript.map((text) => maskLeases(text, names));
}

describe('etcdctl lock and elect: MetaStore vs etcd 3.4.23', () => {
  it('lock with commands, a queued waiter, elect with an observer and two candidates', async () => {
    await expectSameAsEtcd(session);
  }, 120_000);
});
