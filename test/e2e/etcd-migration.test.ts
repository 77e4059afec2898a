// Two-way migration with real etcd 3.4.23 (issue 13's acceptance), driven by the real etcdctl.
//
// A source etcd gets puts, overwrites, deletes, a compaction, leases, users, roles and auth.
// What it answers (`get --prefix -w json`, `get --rev` at old revisions, `watch --rev`, lease
// list/timetolive, user and role listings, logins) is the reference, compared after masking
// the cluster/member IDs and raft terms (a restored cluster is a new cluster) and the seconds
// a lease has left. The same answers must come from:
//   - MetaStore restored from `etcdctl snapshot save` (bin/metastore snapshot restore);
//   - real etcd restored (`etcdctl snapshot restore`) from `etcdctl snapshot save` against that
//     MetaStore, with a user MetaStore added logging in to etcd;
//   - MetaStore migrated from the stopped etcd's data dir (bin/metastore migrate), and
//     MetaStore started on that data dir itself (imported once, etcd's files untouched, etcd
//     still starts on it afterwards);
//   - a 3-member MetaStore cluster restored from the etcd snapshot (a 4th member added later
//     does not catch up yet: see the known defect at the end).

import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { maskIds } from '../support/mask.js';
import { freePorts } from '../support/ports.js';
import {
  REPO_ROOT,
  planMetaStoreCluster,
  startEtcd,
  startMetaStore,
  startMetaStoreCluster,
  type MetaStoreCluster,
  type MetaStoreClusterPlan,
  type MetaStoreHandle,
} from '../support/servers.js';
import { waitFor } from '../support/wait.js';
import { etcdctl, requireTool, run } from '../support/tools.js';

const scratch = mkdtempSync(join(tmpdir(), 'etcd-migration-e2e-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

const ROOT = ['--user', 'root:rootpw'];
const BIN = join(REPO_ROOT, 'bin', 'metastore');
/** The revision watches start from (after the compaction point). */
const WATCH_FROM = 5;

async function ok(endpoint: string, args: string[]): Promise<string> {
  const result = await etcdctl(endpoint, args);
  expect(result.code, `etcdctl ${args.join(' ')}: ${result.stderr}`).toBe(0);
  return result.stdout;
}

async function metastore(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return run(process.execPath, [BIN, ...args], { timeoutMs: 60_000 });
}

/** Fills the source etcd; returns its last revision. Every write is one revision. */
async function fill(e: string): Promise<{ revision: number; leases: string[] }> {
  for (const [op, ...args] of [
    ['put', 'a', '1'],
    ['put', 'b', '1'],
    ['put', 'a', '2'],
    ['del', 'b'],
    ['put', 'c', '3'],
    ['put', 'a', '3'],
  ]) {
    await ok(e, [op!, ...args]); // revisions 2..7
  }
  await ok(e, ['compact', '4', '--physical']);
  const grant = async (ttl: string) => /lease ([0-9a-f]+) granted/.exec(await ok(e, ['lease', 'grant', ttl]))![1]!;
  const leases = [await grant('600'), await grant('900')];
  await ok(e, ['put', 'd', '4', `--lease=${leases[0]}`]); // 8
  await ok(e, ['put', '/foo/x', 'fx']); // 9
  await ok(e, ['del', 'c']); // 10
  await ok(e, ['put', 'c', '4']); // 11
  await ok(e, ['put', 'e', Buffer.alloc(3000, 'v').toString()]); // 12: a value past a quarter page
  await ok(e, ['user', 'add', 'root:rootpw', '--interactive=false']);
  await ok(e, ['user', 'add', 'alice:secret', '--interactive=false']);
  await ok(e, ['role', 'add', 'r1']);
  await ok(e, ['role', 'add', 'r2']);
  await ok(e, ['role', 'grant-permission', 'r1', 'readwrite', '/foo/', '--prefix=true']);
  await ok(e, ['user', 'grant-role', 'alice', 'r1']);
  await ok(e, ['auth', 'enable']);
  return { revision: 12, leases };
}

/** etcdctl watch --rev from WATCH_FROM until `count` events arrived: the events, flattened. */
async function watchHistory(endpoint: string, count: number): Promise<string> {
  const binary = await requireTool('etcdctl', 'etcd-client');
  const child = spawn(binary, [`--endpoints=${endpoint}`, ...ROOT, 'watch', '--prefix', '', `--rev=${WATCH_FROM}`, '-w', 'json'], {
    env: { PATH: process.env.PATH, ETCDCTL_API: '3' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  child.stderr.on('data', (chunk: Buffer) => (err += chunk.toString()));
  const events = (): unknown[] =>
    out
      .split('\n')
      .filter((line) => line.startsWith('{'))
      .flatMap((line) => {
        try {
          return (JSON.parse(line) as { Events?: unknown[] }).Events ?? [];
        } catch {
          return []; // a line still arriving
        }
      });
  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`watch on ${endpoint}: ${events().length}/${count} events\n${out}\n${err}`)), 30_000);
      child.stdout.on('data', (chunk: Buffer) => {
        out += chunk.toString();
        if (events().length >= count) {
          clearTimeout(timer);
          resolve();
        }
      });
      child.on('exit', () => reject(new Error(`watch on ${endpoint} exited early\n${out}\n${err}`)));
    });
  } finally {
    child.kill('SIGKILL');
  }
  return JSON.stringify(events());
}

/** Waits until `endpoint` answers an authenticated read (a new cluster elects, a joiner catches up). */
async function waitUntilServes(endpoint: string): Promise<void> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    const r = await etcdctl(endpoint, [...ROOT, 'get', 'a', '--command-timeout=2s']);
    if (r.code === 0) return;
    if (Date.now() > deadline) throw new Error(`${endpoint} does not serve: ${r.stderr}`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

/** Everything compared between the source etcd and each copy; `logins` are tried as given. */
async function observe(endpoint: string, leases: string[], logins: Array<[string, string]>): Promise<string[]> {
  const step = async (args: string[]): Promise<string> => {
    const r = await etcdctl(endpoint, args);
    const text = `$ ${args.join(' ')}\n${r.stdout}${r.stderr.replace(/^\{"level".*\n/gm, '')}`;
    return maskIds(text).replace(/"ttl":\d+/g, '"ttl":<ttl>');
  };
  const out = [await step([...ROOT, 'get', '', '--prefix', '-w', 'json'])];
  for (const rev of [3, 4, 5, 7, 8, 10, 12]) out.push(await step([...ROOT, 'get', '', '--prefix', `--rev=${rev}`, '-w', 'json']));
  out.push(`watch --rev=${WATCH_FROM}\n${await watchHistory(endpoint, 12 - WATCH_FROM + 1)}`);
  const list = await step([...ROOT, 'lease', 'list']);
  out.push(list.split('\n').sort().join('\n')); // etcd lists leases in map order
  for (const lease of leases) {
    out.push(await step([...ROOT, 'lease', 'timetolive', lease, '--keys', '-w', 'json']));
    const ttl = JSON.parse((await etcdctl(endpoint, [...ROOT, 'lease', 'timetolive', lease, '-w', 'json'])).stdout) as { ttl: number; 'granted-ttl': number };
    expect(ttl.ttl, `lease ${lease} is alive`).toBeGreaterThan(0);
    expect(ttl.ttl).toBeLessThanOrEqual(ttl['granted-ttl']);
  }
  for (const args of [
    ['user', 'list'],
    ['role', 'list'],
    ['user', 'get', 'alice'],
    ['role', 'get', 'r1'],
    ['role', 'get', 'r2'],
  ])
    out.push(await step([...ROOT, ...args]));
  for (const [user, password] of logins) {
    out.push(await step(['--user', `${user}:${password}`, 'get', '/foo/', '--prefix', '--print-value-only']));
  }
  return out;
}

const LOGINS: Array<[string, string]> = [
  ['alice', 'secret'],
  ['alice', 'wrong'],
  ['bob', 'bobpw'],
];

/** Content hashes of every file under `dir` (etcd's member/ directory stays byte-identical). */
function fileHashes(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (at: string): void => {
    for (const name of readdirSync(at)) {
      const path = join(at, name);
      if (statSync(path).isDirectory()) walk(path);
      else out[relative(dir, path)] = createHash('sha256').update(readFileSync(path)).digest('hex');
    }
  };
  walk(dir);
  return out;
}

async function restoredMetaStore(file: string, name = 'default'): Promise<MetaStoreHandle> {
  const [client, peer, health, metrics] = await freePorts(4);
  const dataDir = join(scratch, `ms-${client}`);
  const peerUrl = `http://127.0.0.1:${peer}`;
  const restored = await metastore([
    'snapshot',
    'restore',
    file,
    '--data-dir',
    dataDir,
    '--name',
    name,
    '--initial-cluster',
    `${name}=${peerUrl}`,
    '--initial-advertise-peer-urls',
    peerUrl,
  ]);
  expect(restored.code, restored.stderr).toBe(0);
  expect(restored.stdout).toMatch(/^restored etcd snapshot .* \(revision 12, compacted at 4, \d+ entries\)/);
  return startMetaStore({ name, dataDir, ports: { client: client!, peer: peer!, health: health!, metrics: metrics! } });
}

let source: { revision: number; leases: string[] };
let reference: string[];
const etcdDir = join(scratch, 'etcd-source');
const etcdSnapshot = join(scratch, 'etcd.db');

beforeAll(async () => {
  const etcd = await startEtcd({ extraArgs: ['--data-dir', etcdDir] });
  try {
    source = await fill(etcd.endpoint);
    reference = await observe(etcd.endpoint, source.leases, LOGINS);
    await ok(etcd.endpoint, [...ROOT, 'snapshot', 'save', etcdSnapshot]);
  } finally {
    await etcd.stop();
  }
}, 120_000);

describe('etcd -> MetaStore -> etcd', () => {
  it('the reference itself shows what is compared: history, the compaction, leases, auth', () => {
    expect(reference[1]).toContain('required revision has been compacted');
    expect(reference.at(-3)).toContain('fx'); // alice logs in and reads /foo/
    expect(reference.at(-2)).toContain('authentication failed');
    expect(reference.at(-1)).toContain('authentication failed'); // no bob in etcd
  });

  it('snapshot status of the etcd file: bin/metastore prints what etcdctl prints', async () => {
    for (const format of ['json', 'table', 'simple']) {
      const theirs = await ok('http://127.0.0.1:1', ['snapshot', 'status', etcdSnapshot, '-w', format]);
      const ours = await metastore(['snapshot', 'status', etcdSnapshot, '-w', format]);
      expect(ours.code, ours.stderr).toBe(0);
      expect(ours.stdout, format).toBe(theirs);
    }
  });

  it("restored into MetaStore it answers as etcd did; MetaStore's snapshot restores into etcd, which answers the same and lets a MetaStore user in", async () => {
    const ms = await restoredMetaStore(etcdSnapshot);
    let afterBob: string[];
    const msSnapshot = join(scratch, 'metastore.db');
    try {
      expect(await observe(ms.endpoint, source.leases, LOGINS)).toEqual(reference);
      // A user made by MetaStore (its password hashed by MetaStore) must log in to etcd later.
      await ok(ms.endpoint, [...ROOT, 'user', 'add', 'bob:bobpw', '--interactive=false']);
      await ok(ms.endpoint, [...ROOT, 'user', 'grant-role', 'bob', 'r1']);
      afterBob = await observe(ms.endpoint, source.leases, LOGINS);
      expect(afterBob.at(-1)).toContain('fx');
      await ok(ms.endpoint, [...ROOT, 'snapshot', 'save', msSnapshot]);
    } finally {
      await ms.destroy();
    }

    const theirs = JSON.parse(await ok('http://127.0.0.1:1', ['snapshot', 'status', msSnapshot, '-w', 'json'])) as { revision: number };
    expect(theirs.revision).toBe(source.revision);
    const ours = await metastore(['snapshot', 'status', msSnapshot, '-w', 'json']);
    expect(JSON.parse(ours.stdout)).toEqual(theirs);

    const [peer] = await freePorts(1);
    const etcdBack = join(scratch, 'etcd-back');
    const peerUrl = `http://127.0.0.1:${peer}`;
    await ok('http://127.0.0.1:1', [
      'snapshot',
      'restore',
      msSnapshot,
      '--name',
      'default',
      '--data-dir',
      etcdBack,
      '--initial-cluster',
      `default=${peerUrl}`,
      '--initial-advertise-peer-urls',
      peerUrl,
    ]);
    const etcd = await startEtcd({ extraArgs: ['--data-dir', etcdBack] });
    try {
      expect(await observe(etcd.endpoint, source.leases, LOGINS)).toEqual(afterBob);
    } finally {
      await etcd.stop();
    }
  }, 240_000);

  it('refuses a truncated, corrupted or foreign file and writes nothing; --skip-hash-check skips the hash only', async () => {
    const whole = readFileSync(etcdSnapshot);
    const cases: Array<[string, Buffer, string[], RegExp]> = [
      ['truncated', whole.subarray(0, whole.length - 1000), [], /missing hash/],
      ['truncated', whole.subarray(0, 8192), ['--skip-hash-check'], /damaged etcd snapshot|integrity check failed/],
      [
        'corrupted',
        Buffer.concat([whole.subarray(0, 9000), Buffer.from([whole[9000]! ^ 1]), whole.subarray(9001)]),
        [],
        /expected sha256 [0-9a-f]{64}, got [0-9a-f]{64}/,
      ],
      ['foreign', Buffer.alloc(4096 + 32, 'x'), ['--skip-hash-check'], /neither an etcd snapshot \(bbolt database\) nor a MetaStore snapshot/],
    ];
    for (const [what, bytes, flags, message] of cases) {
      const file = join(scratch, `${what}.db`);
      writeFileSync(file, bytes);
      const target = join(scratch, `refused-${what}`);
      const result = await metastore(['snapshot', 'restore', file, '--data-dir', target, ...flags]);
      expect(result.code, what).toBe(1);
      expect(result.stderr, what).toMatch(/^snapshot restore failed: /);
      expect(result.stderr, what).toMatch(message);
      expect(
        readdirSync(scratch).filter((name) => name.startsWith('refused-')),
        what,
      ).toEqual([]);
    }
    const status = await metastore(['snapshot', 'status', join(scratch, 'foreign.db')]);
    expect(status.code).toBe(1);
    expect(status.stderr).toContain('neither an etcd snapshot');
  });
});

describe('from a stopped etcd data dir', () => {
  it("migrate gives the same answers, reading etcd's files only", async () => {
    const before = fileHashes(etcdDir);
    const [client, peer, health, metrics] = await freePorts(4);
    const dataDir = join(scratch, 'migrated');
    const peerUrl = `http://127.0.0.1:${peer}`;
    const migrated = await metastore([
      'migrate',
      '--from-etcd-data-dir',
      etcdDir,
      '--data-dir',
      dataDir,
      '--name',
      'default',
      '--initial-cluster',
      `default=${peerUrl}`,
      '--initial-advertise-peer-urls',
      peerUrl,
    ]);
    expect(migrated.code, migrated.stderr).toBe(0);
    expect(migrated.stdout).toMatch(/^restored etcd etcd data dir .* \(revision 12, compacted at 4/);
    const ms = await startMetaStore({ dataDir, ports: { client: client!, peer: peer!, health: health!, metrics: metrics! } });
    try {
      expect(await observe(ms.endpoint, source.leases, LOGINS)).toEqual(reference);
    } finally {
      await ms.destroy();
    }
    expect(fileHashes(etcdDir)).toEqual(before);
  }, 120_000);

  it("MetaStore started on the etcd data dir imports it once, leaves etcd's files as they were, and etcd can start on it again", async () => {
    const before = fileHashes(join(etcdDir, 'member'));
    const ms = await startMetaStore({ dataDir: etcdDir });
    try {
      expect(ms.logs()).toContain("imported etcd's data dir");
      expect(await observe(ms.endpoint, source.leases, LOGINS)).toEqual(reference);
      await ms.restart();
      expect(ms.logs().split('[harness] start #2')[1]).not.toContain("imported etcd's data dir");
      await ms.stop();
      expect(fileHashes(join(etcdDir, 'member'))).toEqual(before);
      const etcd = await startEtcd({ extraArgs: ['--data-dir', etcdDir] });
      try {
        expect(await observe(etcd.endpoint, source.leases, LOGINS)).toEqual(reference);
      } finally {
        await etcd.stop();
      }
    } finally {
      await ms.destroy();
    }
  }, 180_000);
});

describe('a 3-member MetaStore cluster restored from the etcd snapshot', () => {
  let cluster: MetaStoreCluster;
  let plan: MetaStoreClusterPlan;
  // Started here, not in a test: a test's processes are stopped when that test ends, and the
  // second test needs the cluster the first one checked.
  beforeAll(async () => {
    plan = await planMetaStoreCluster(3);
    const dataDirs = plan.names.map((name) => join(scratch, `cluster-${name}`));
    for (let i = 0; i < 3; i++) {
      const restored = await metastore([
        'snapshot',
        'restore',
        etcdSnapshot,
        '--data-dir',
        dataDirs[i]!,
        '--name',
        plan.names[i]!,
        '--initial-cluster',
        plan.initialCluster,
        '--initial-advertise-peer-urls',
        plan.peerUrls[i]!,
      ]);
      expect(restored.code, restored.stderr).toBe(0);
    }
    cluster = await startMetaStoreCluster(3, { plan, dataDirs });
  }, 120_000);
  afterAll(async () => {
    await cluster?.destroy();
  });

  it('serves the same answers on every member', async () => {
    for (const member of cluster.members) {
      await waitUntilServes(member.endpoint);
      expect(await observe(member.endpoint, source.leases, LOGINS)).toEqual(reference);
    }
  }, 240_000);

  // The restored state is in no log entry: the restore writes a Raft snapshot at the index of
  // the last bootstrap entry, so the log starts after it and a joiner is sent the whole state.
  it('a member added later catches up from a snapshot of the restored state', async () => {
    const [client, peer, health, metrics] = await freePorts(4);
    const peerUrl = `http://127.0.0.1:${peer}`;
    // etcd's strict reconfig check refuses a member add until the leader has heard from a
    // quorum recently ("not enough started members" right after the cluster starts): retry it.
    await waitFor(() => etcdctl(cluster.endpoints, [...ROOT, 'member', 'add', 'm4', `--peer-urls=${peerUrl}`]), {
      what: 'member add m4 to be accepted',
      until: (result) => result.code === 0 || !result.stderr.includes('not enough started members'),
    }).then((result) => expect(result.code, result.stderr).toBe(0));
    const joiner = await startMetaStore({
      name: 'm4',
      ports: { client: client!, peer: peer!, health: health!, metrics: metrics! },
      initialCluster: `${plan.initialCluster},m4=${peerUrl}`,
      extraArgs: ['--initial-cluster-state', 'existing'],
    });
    await waitUntilServes(joiner.endpoint);
    expect(joiner.logs()).toContain('installed snapshot from leader');
    expect(await observe(joiner.endpoint, source.leases, LOGINS)).toEqual(reference);
  }, 120_000);
});
