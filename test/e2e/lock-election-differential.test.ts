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

import { describe, expect, it } from 'vitest';
import { expectSameAsEtcd } from '../support/differential.js';
import { EtcdctlProcess, simpleWatchEvents } from '../support/etcdctl-process.js';
import { maskIds, maskVolatile } from '../support/mask.js';
import { etcdctl } from '../support/tools.js';

/** Watch output: waits until `count` PUT and DELETE events are printed, the last one whole. */
async function events(watch: EtcdctlProcess, count: number): Promise<void> {
  await watch.until(`${count} events`, (out) => simpleWatchEvents(out) >= count);
}

function transcriptOf(p: EtcdctlProcess): string {
  // etcdctl's retry warnings are zap JSON lines on stderr; keep the rest.
  const stderr = p.err
    .split('\n')
    .filter((l) => !l.startsWith('{'))
    .join('\n');
  return `$ etcdctl ${p.args.join(' ')}\n[${p.code}]\n${p.out}${stderr}`;
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
  const start = (args: string[]): Promise<EtcdctlProcess> => EtcdctlProcess.start(endpoint, args);

  // --- lock: one-shot commands run while holding the lock.
  await run(['lock', 'mylock', 'echo', 'done']);
  await run(['lock', 'mylock', '--', 'sh', '-c', 'echo key=$ETCD_LOCK_KEY rev=$ETCD_LOCK_REV']);
  await run(['lock', 'mylock', 'false']);
  await run(['lock']);

  // --- lock: a holder, a queued waiter, release on the holder's ordinary shutdown.
  const lockWatch = await start(['watch', '--prefix', 'mylock/', `--rev=${await nextRevision()}`]);
  const holder = await start(['lock', 'mylock']);
  await holder.lines('held key', 2);
  await events(lockWatch, 1);
  const waiter = await start(['lock', 'mylock', '--', 'sh', '-c', 'echo got=$ETCD_LOCK_KEY rev=$ETCD_LOCK_REV']);
  await events(lockWatch, 2);
  // Queued behind the holder: it can only have printed something after the holder unlocks.
  expect(waiter.out).toBe('');
  await holder.stop();
  await waiter.exit();
  await events(lockWatch, 4);
  await lockWatch.stop();
  for (const p of [lockWatch, holder, waiter]) record(transcriptOf(p));
  await run(['get', '--prefix', 'mylock']);

  // --- elect: an observer, two candidates; the leader resigns on shutdown, the next one wins.
  const electWatch = await start(['watch', '--prefix', 'myel/', `--rev=${await nextRevision()}`]);
  const observer = await start(['elect', '-l', 'myel']);
  const first = await start(['elect', 'myel', 'p1']);
  await first.lines('leader key and value', 2);
  await observer.lines('first leader', 2);
  await events(electWatch, 1);
  const second = await start(['elect', 'myel', 'p2']);
  await events(electWatch, 2);
  expect(second.out).toBe('');
  await first.stop();
  await second.lines('leader key and value', 2);
  await observer.lines('second leader', 4);
  await second.stop();
  await events(electWatch, 4);
  await observer.stop();
  await electWatch.stop();
  for (const p of [electWatch, observer, first, second]) record(transcriptOf(p));
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
