// The deployment guide, deployed as it says, on network namespaces this test creates: the
// guide's Basic Configuration and its three High Availability configs verbatim (configs/guide;
// only data_dir and the log file moved to a temp dir), each member in its own namespace at the
// guide's address (10.0.1.10-12), HAProxy with the guide's config (configs/guide/haproxy.cfg)
// in a fourth namespace at 10.0.1.20. The namespaces hang off a bridge that lives in a
// namespace of its own, so no traffic touches the root namespace's network.
//
// Needs root (ip netns). Namespaces, bridge, processes and temp dirs are removed at the end,
// whatever happens (cleanup is registered before anything is created).

import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ServerProcess, removeDirSync, trackForCleanup } from '../support/processes.js';
import { READY_LINE, REPO_ROOT } from '../support/servers.js';
import { createNetwork, inNamespace, type NetworkPlan, removeNetwork, requireRoot } from '../support/netns.js';
import { findExecutable, type RunResult } from '../support/tools.js';

const BIN = join(REPO_ROOT, 'bin', 'metastore');
const GUIDE = join(REPO_ROOT, 'configs', 'guide');
const TAG = `ms${process.pid % 100_000}`;
const NODES = [
  { ns: `${TAG}n1`, ip: '10.0.1.10', config: 'node1.yaml' },
  { ns: `${TAG}n2`, ip: '10.0.1.11', config: 'node2.yaml' },
  { ns: `${TAG}n3`, ip: '10.0.1.12', config: 'node3.yaml' },
] as const;
const LB = { ns: `${TAG}lb`, ip: '10.0.1.20' };
const BASIC_NS = `${TAG}bs`;
const SWITCH_NS = `${TAG}sw`;
// The basic member's namespace has loopback only: its member serves on 127.0.0.1.
const NETWORK: NetworkPlan = { switchNs: SWITCH_NS, hosts: [...NODES, LB], loopbackOnly: [BASIC_NS] };
const ENDPOINTS = NODES.map((n) => `${n.ip}:2379`).join(',');

function removeNamespaces(): void {
  removeNetwork(NETWORK);
}

function etcdctlIn(ns: string, endpoints: string, args: readonly string[]): Promise<RunResult> {
  return inNamespace(ns, findExecutable('etcdctl') ?? 'etcdctl', [`--endpoints=${endpoints}`, '--command-timeout=3s', ...args]);
}

async function eventually<T>(what: string, attempt: () => Promise<T | undefined>, timeoutMs = 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const result = await attempt();
    if (result !== undefined) return result;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

const workDir = mkdtempSync(join(tmpdir(), 'metastore-guide-'));
const processes = new Set<ServerProcess>();

/** The guide's YAML as written, with only data_dir and the log file moved into `dir`. */
function guideConfig(file: string, dir: string): string {
  const text = readFileSync(join(GUIDE, file), 'utf8')
    .replace('data_dir: "/var/lib/metastore"', `data_dir: "${join(dir, 'data')}"`)
    .replace('output: "/var/log/metastore.log"', `output: "${join(dir, 'metastore.log')}"`);
  const path = join(dir, file);
  writeFileSync(path, text);
  return path;
}

function startIn(ns: string, label: string, command: string, args: readonly string[]): ServerProcess {
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const key of Object.keys(env)) if (key.startsWith('METASTORE_')) delete env[key];
  const child = new ServerProcess(label, 'ip', ['netns', 'exec', ns, command, ...args], env);
  processes.add(child);
  return child;
}

async function startMember(node: (typeof NODES)[number], dir: string): Promise<ServerProcess> {
  const member = startIn(node.ns, `guide ${node.config}`, process.execPath, [BIN, '--config', guideConfig(node.config, dir)]);
  await member.waitForLog(READY_LINE, 60_000);
  return member;
}

/** The guide's HAProxy config; maxconn lowered only when this machine's open-file limit cannot hold it. */
function haproxyConfig(): string {
  let text = readFileSync(join(GUIDE, 'haproxy.cfg'), 'utf8');
  const hardLimit = Number(/Max open files\s+\d+\s+(\d+)/.exec(readFileSync('/proc/self/limits', 'utf8'))?.[1] ?? 'NaN');
  // HAProxy needs about two descriptors per connection plus a few of its own.
  if (Number.isFinite(hardLimit) && hardLimit < 2 * 50_000 + 100) text = text.replace('maxconn 50000', `maxconn ${Math.floor((hardLimit - 100) / 2)}`);
  const path = join(workDir, 'haproxy.cfg');
  writeFileSync(path, text);
  return path;
}

trackForCleanup({
  label: 'guide deployment namespaces',
  dispose: async () => {
    await Promise.all([...processes].map((p) => p.terminate('SIGKILL')));
    removeNamespaces();
    removeDirSync(workDir);
  },
  disposeSync: () => {
    for (const p of processes) p.killSync();
    removeNamespaces();
    removeDirSync(workDir);
  },
});

describe('the deployment guide on network namespaces', () => {
  beforeAll(() => {
    requireRoot('guide-deployment.test.ts');
    if (findExecutable('haproxy') === undefined) throw new Error('haproxy is not installed (apt-get install -y haproxy)');
    removeNamespaces(); // leftovers of a run killed before its cleanup
    createNetwork(NETWORK);
  });

  afterAll(async () => {
    await Promise.all([...processes].map((p) => p.terminate('SIGKILL')));
    removeNamespaces();
    removeDirSync(workDir);
  });

  it('Basic Configuration: a one-member cluster of member 1 serves etcdctl put/get and /health', async () => {
    const dir = mkdtempSync(join(workDir, 'basic-'));
    const member = startIn(BASIC_NS, 'guide basic.yaml', process.execPath, [BIN, '--config', guideConfig('basic.yaml', dir)]);
    await eventually('the basic member to be ready', async () => (readLog(dir).includes(READY_LINE) ? true : undefined));
    expect((await etcdctlIn(BASIC_NS, '127.0.0.1:2379', ['put', 'guide', 'basic'])).stdout.trim()).toBe('OK');
    expect((await etcdctlIn(BASIC_NS, '127.0.0.1:2379', ['get', 'guide', '--print-value-only'])).stdout.trim()).toBe('basic');
    const health = await inNamespace(BASIC_NS, 'curl', ['-s', 'http://localhost:8080/health']);
    expect(JSON.parse(health.stdout)).toMatchObject({ status: 'healthy', checks: { store: {}, raft: {}, disk: {} } });
    await member.terminate('SIGTERM');
  }, 120_000);

  describe('3-node cluster behind HAProxy', () => {
    const members = new Map<number, ServerProcess>();
    const dirs = NODES.map(() => mkdtempSync(join(workDir, 'node-')));
    let haproxy: ServerProcess | undefined;

    it("the three HA configs form one cluster; member list shows the guide's URLs", async () => {
      const started = await Promise.all(NODES.map((node, i) => startMember(node, dirs[i]!)));
      for (const [i, member] of started.entries()) members.set(i, member);
      const list = await eventually('a member list with every client URL', async () => {
        const result = await etcdctlIn(LB.ns, ENDPOINTS, ['member', 'list']);
        return NODES.every((n) => result.stdout.includes(`http://${n.ip}:2379`)) ? result.stdout : undefined;
      });
      // etcdctl's rows: ID, status, name, peer URLs, client URLs, is learner.
      const rows = list
        .trim()
        .split('\n')
        .map((row) => row.split(', '));
      expect(rows.map((row) => [row[1], row[3], row[4], row[5]]).sort()).toEqual(
        NODES.map((n) => ['started', `http://${n.ip}:12379`, `http://${n.ip}:2379`, 'false']),
      );
      expect(rows.map((row) => BigInt(`0x${row[0]}`)).sort()).toEqual([1n, 2n, 3n]);
    }, 180_000);

    it('HAProxy health-checks /readiness on 8080 and routes etcdctl', async () => {
      haproxy = startIn(LB.ns, 'guide haproxy', findExecutable('haproxy')!, ['-db', '-f', haproxyConfig()]);
      const put = await eventually('a put through HAProxy', async () => {
        const result = await etcdctlIn(LB.ns, `${LB.ip}:2379`, ['put', 'via/lb', 'yes']);
        return result.code === 0 ? result.stdout : undefined;
      });
      expect(put.trim()).toBe('OK');
      // The check HAProxy makes, from HAProxy's namespace.
      for (const node of NODES) {
        const readiness = await inNamespace(LB.ns, 'curl', ['-s', '-w', ' %{http_code}', `http://${node.ip}:8080/readiness`]);
        expect(readiness.stdout).toBe('{"status":"ready"} 200');
      }
    }, 120_000);

    it('after a kill -9 of the leader, writes through HAProxy go on, none acknowledged is lost, the member catches up', async () => {
      const leader = await leaderIndex();
      const acknowledged: string[] = [];
      const write = async (key: string): Promise<void> => {
        const result = await etcdctlIn(LB.ns, `${LB.ip}:2379`, ['put', key, key]);
        if (result.code === 0) acknowledged.push(key);
      };
      for (let i = 0; i < 10; i++) await write(`ha/before/${i}`);
      await members.get(leader)!.terminate('SIGKILL');
      // HAProxy notices through its /readiness check (inter 5s) and stops routing there.
      await eventually('HAProxy to mark the killed node down', async () =>
        haproxy!.logs().includes(`grpc_backend/node${leader + 1} is DOWN`) ? true : undefined,
      );
      for (let i = 0; i < 20; i++) await write(`ha/after/${i}`);
      expect(acknowledged.filter((k) => k.startsWith('ha/after/')).length).toBeGreaterThanOrEqual(15);

      members.set(leader, await startMember(NODES[leader]!, dirs[leader]!));
      const keys = await etcdctlIn(LB.ns, ENDPOINTS, ['get', 'ha/', '--prefix', '--keys-only']);
      const stored = new Set(keys.stdout.split('\n').filter((line) => line !== ''));
      expect(acknowledged.filter((k) => !stored.has(k))).toEqual([]);
      await eventually('equal hashkv on all three members', async () => {
        const result = await etcdctlIn(LB.ns, ENDPOINTS, ['endpoint', 'hashkv', '--write-out=json']);
        if (result.code !== 0) return undefined;
        const hashes = (JSON.parse(result.stdout) as Array<{ HashKV: { hash: number; header: { revision: number } } }>).map(
          (e) => `${e.HashKV.hash}@${e.HashKV.header.revision}`,
        );
        return hashes.length === 3 && new Set(hashes).size === 1 ? true : undefined;
      });
    }, 240_000);

    async function leaderIndex(): Promise<number> {
      const result = await etcdctlIn(LB.ns, ENDPOINTS, ['endpoint', 'status', '--write-out=json']);
      const statuses = JSON.parse(result.stdout) as Array<{ Endpoint: string; Status: { leader: number; header: { member_id: number } } }>;
      const leader = statuses.find((s) => s.Status.leader === s.Status.header.member_id);
      if (leader === undefined) throw new Error(`no leader in ${result.stdout}`);
      return NODES.findIndex((n) => leader.Endpoint === `${n.ip}:2379`);
    }
  });
});

function readLog(dir: string): string {
  try {
    return readFileSync(join(dir, 'metastore.log'), 'utf8');
  } catch {
    return '';
  }
}
