// The 3-member cluster of configs/local/ (what `npm run cluster` starts), with its ports and
// data dirs moved by METASTORE_SERVER_* environment overrides so the test runs on free ports:
// a put through member 1 is seen by a linearizable get through member 3; after kill -9 of the
// leader the survivors take writes; the restarted member catches up and its HashKV equals the
// others'; a fourth member joins with the ID `member add` printed.

import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { memberStatuses, waitForLeader } from '../support/cluster-status.js';
import { freePorts } from '../support/ports.js';
import { trackForCleanup } from '../support/processes.js';
import { REPO_ROOT, READY_LINE } from '../support/servers.js';
import { etcdctl } from '../support/tools.js';
import { waitFor } from '../support/wait.js';

interface Member {
  name: string;
  endpoint: string;
  env: NodeJS.ProcessEnv;
  child?: ChildProcess;
  logs: string;
}

const dataRoot = mkdtempSync(join(tmpdir(), 'metastore-local-'));
const members: Member[] = [];

function start(member: Member): Promise<void> {
  const config = join(REPO_ROOT, 'configs', 'local', `${member.name}.yaml`);
  const child = spawn(process.execPath, [join(REPO_ROOT, 'bin', 'metastore'), '--config', config], { env: member.env, stdio: ['ignore', 'pipe', 'pipe'] });
  member.child = child;
  member.logs = '';
  return new Promise((resolve, reject) => {
    const onData = (chunk: Buffer) => {
      member.logs += chunk;
      if (member.logs.includes(READY_LINE)) resolve();
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
    child.once('exit', (code) => reject(new Error(`${member.name} exited (${code}): ${member.logs.slice(-2000)}`)));
  });
}

function stop(member: Member, signal: NodeJS.Signals): Promise<void> {
  const child = member.child;
  if (child === undefined || child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    child.once('exit', () => resolve());
    child.kill(signal);
  });
}

beforeAll(async () => {
  const ports = await freePorts(12);
  const peers = [0, 1, 2].map((i) => `${i + 1}@127.0.0.1:${ports[4 * i + 1]}`).join(',');
  for (let i = 0; i < 3; i++) {
    const env: NodeJS.ProcessEnv = { ...process.env };
    for (const key of Object.keys(env)) if (key.startsWith('METASTORE_')) delete env[key];
    Object.assign(env, {
      METASTORE_SERVER_GRPC_PORT: String(ports[4 * i]),
      METASTORE_SERVER_RAFT_PORT: String(ports[4 * i + 1]),
      METASTORE_SERVER_HEALTH_PORT: String(ports[4 * i + 2]),
      METASTORE_SERVER_MONITORING_PROMETHEUS_PORT: String(ports[4 * i + 3]),
      METASTORE_SERVER_RAFT_PEERS: peers,
      METASTORE_SERVER_DATA_DIR: join(dataRoot, `member${i + 1}`),
    });
    members.push({ name: `member${i + 1}`, endpoint: `127.0.0.1:${ports[4 * i]}`, env, logs: '' });
  }
  trackForCleanup({
    label: 'configs/local cluster',
    dispose: async () => {
      await Promise.all(members.map((m) => stop(m, 'SIGKILL')));
      rmSync(dataRoot, { recursive: true, force: true });
    },
    disposeSync: () => {
      for (const m of members) m.child?.kill('SIGKILL');
      rmSync(dataRoot, { recursive: true, force: true });
    },
  });
  await Promise.all(members.map(start));
  await waitForLeader(members.map((m) => m.endpoint).join(','), 3);
}, 60_000);

afterAll(async () => {
  await Promise.all(members.map((m) => stop(m, 'SIGTERM')));
  rmSync(dataRoot, { recursive: true, force: true });
});

it('member list shows each member under its server.name (raft.peers mode)', async () => {
  const all = members.map((m) => m.endpoint).join(',');
  const names = async (): Promise<string> => {
    const list = await etcdctl(all, ['member', 'list', '-w', 'json']);
    return (JSON.parse(list.stdout) as { members: { name: string }[] }).members
      .map((m) => m.name)
      .sort()
      .join(',');
  };
  // Each member publishes its own name through the log; until then a peer may list it as member-N.
  expect(await waitFor(names, { what: 'every member listed under its server.name', until: (listed) => listed === 'member1,member2,member3' })).toBe(
    'member1,member2,member3',
  );
});

it('replicates, survives kill -9 of the leader, and the restarted member has the same HashKV', async () => {
  const all = members.map((m) => m.endpoint).join(',');
  expect((await etcdctl(members[0]!.endpoint, ['put', 'local', 'yes'])).code).toBe(0);
  expect((await etcdctl(members[2]!.endpoint, ['get', 'local', '--print-value-only'])).stdout.trim()).toBe('yes');

  const statuses = await memberStatuses(all);
  const leader = statuses.find((s) => s.memberId === s.leader)!;
  const victim = members.find((m) => m.endpoint === leader.endpoint)!;
  await stop(victim, 'SIGKILL');
  const survivors = members
    .filter((m) => m !== victim)
    .map((m) => m.endpoint)
    .join(',');
  await waitFor(() => etcdctl(survivors, ['put', 'after-kill', 'yes', '--command-timeout=2s']), {
    what: 'a write through the survivors',
    until: (r) => r.code === 0,
  });
  for (let i = 0; i < 10; i++) expect((await etcdctl(survivors, ['put', `more/${i}`, String(i)])).code).toBe(0);

  await start(victim);
  const target = Math.max(...(await memberStatuses(survivors)).map((s) => s.appliedIndex));
  await waitFor(() => memberStatuses(victim.endpoint), {
    what: 'the restarted member to catch up',
    until: (s) => s[0] !== undefined && s[0].appliedIndex >= target,
  });
  const hashes = await etcdctl(all, ['endpoint', 'hashkv', '-w', 'json']);
  expect(hashes.code, hashes.stderr).toBe(0);
  const values = (JSON.parse(hashes.stdout) as Array<{ HashKV: { hash: number } }>).map((h) => h.HashKV.hash);
  expect(values).toHaveLength(3);
  expect(new Set(values).size).toBe(1);
}, 60_000);

// raft.peers mode keeps explicit IDs: a member joining it is configured with the ID that
// `member add` printed (etcd's, time mixed in), in server.member_id and in the peer list.
it('a fourth member joins in raft.peers mode under the ID member add printed', async () => {
  const all = members.map((m) => m.endpoint).join(',');
  await waitForLeader(all, 3);
  const [client, raft, health, metrics] = await freePorts(4);
  const add = await waitFor(() => etcdctl(all, ['member', 'add', 'member4', `--peer-urls=http://127.0.0.1:${raft}`]), {
    what: 'member add member4 to be accepted',
    until: (r) => r.code === 0 || !/unhealthy cluster|not enough started members/.test(r.stderr),
  });
  expect(add.code, add.stderr).toBe(0);
  const id = /Member\s+([0-9a-f]+) added/.exec(add.stdout)![1]!;
  // Started from member3's YAML (start() picks the file by name), every key that differs overridden.
  const joiner: Member = {
    name: 'member3',
    endpoint: `127.0.0.1:${client}`,
    logs: '',
    env: {
      ...members[2]!.env,
      METASTORE_SERVER_NAME: 'member4',
      METASTORE_SERVER_MEMBER_ID: `0x${id}`,
      METASTORE_SERVER_INITIAL_CLUSTER_STATE: 'existing',
      METASTORE_SERVER_GRPC_PORT: String(client),
      METASTORE_SERVER_RAFT_PORT: String(raft),
      METASTORE_SERVER_HEALTH_PORT: String(health),
      METASTORE_SERVER_MONITORING_PROMETHEUS_PORT: String(metrics),
      METASTORE_SERVER_RAFT_PEERS: `${members[2]!.env.METASTORE_SERVER_RAFT_PEERS},0x${id}@127.0.0.1:${raft}`,
      METASTORE_SERVER_DATA_DIR: join(dataRoot, 'member4'),
    },
  };
  members.push(joiner);
  await start(joiner);
  const listed = await waitFor(() => etcdctl(all, ['member', 'list']), {
    what: 'member4 started under the added ID',
    until: (r) => r.stdout.includes(`${id}, started, member4`),
  });
  expect(listed.code).toBe(0);
  const read = await waitFor(() => etcdctl(joiner.endpoint, ['get', 'local', '--print-value-only', '--consistency=s']), {
    what: 'member4 caught up',
    until: (r) => r.stdout.trim() === 'yes',
  });
  expect(read.stdout.trim()).toBe('yes');
}, 60_000);
