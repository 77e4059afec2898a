// etcd's command line gets etcd's port footprint: a member started with etcd's flags only
// listens on the URLs it is given (every --listen-client-urls URL, --listen-peer-urls,
// --listen-metrics-urls) and on nothing else (no MetaStore health or metrics side port).
// The client URLs also answer HTTP/1.1 (/health as etcd 3.4.23 answers it, plain and TLS);
// port 0 picks a free port that is logged and published; a taken port stops start-up with one
// line naming the key and the port, exit code 2.

import { readFileSync, readdirSync, readlinkSync, mkdtempSync } from 'node:fs';
import https from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePorts } from '../support/ports.js';
import { ServerProcess, removeDirSync, trackForCleanup } from '../support/processes.js';
import { READY_LINE, REPO_ROOT, startEtcd, type EtcdHandle } from '../support/servers.js';
import { etcdctl } from '../support/tools.js';
import { makeTestPki, type TestPki } from './tls-certs.js';

const BIN = join(REPO_ROOT, 'bin', 'metastore');

/** Starts bin/metastore with exactly these flags: no METASTORE_* variable from our environment. */
function spawnMember(label: string, args: readonly string[]): ServerProcess {
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const key of Object.keys(env)) if (key.startsWith('METASTORE_')) delete env[key];
  const member = new ServerProcess(label, process.execPath, [BIN, ...args], env);
  trackForCleanup({ label, dispose: async () => void (await member.terminate('SIGKILL')), disposeSync: () => member.killSync() });
  return member;
}

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'metastore-footprint-'));
  trackForCleanup({ label: dir, dispose: async () => removeDirSync(dir), disposeSync: () => removeDirSync(dir) });
  return dir;
}

/** The TCP ports a process listens on: its socket inodes matched against the LISTEN rows of /proc/<pid>/net/tcp{,6}. */
function listeningPorts(pid: number): number[] {
  const inodes = new Set<string>();
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    try {
      const match = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`));
      if (match) inodes.add(match[1]!);
    } catch {
      // The descriptor closed while we listed them: not a listening socket.
    }
  }
  const ports = new Set<number>();
  for (const table of ['tcp', 'tcp6']) {
    for (const row of readFileSync(`/proc/${pid}/net/${table}`, 'utf8').trim().split('\n').slice(1)) {
      const fields = row.trim().split(/\s+/);
      const [local, state, inode] = [fields[1]!, fields[3]!, fields[9]!];
      if (state === '0A' && inodes.has(inode)) ports.add(parseInt(local.split(':')[1]!, 16));
    }
  }
  return [...ports].sort((a, b) => a - b);
}

async function httpGet(url: string): Promise<{ status: number; body: string }> {
  const response = await fetch(url);
  return { status: response.status, body: await response.text() };
}

function pidOf(member: ServerProcess): number {
  const pid = member.pid;
  if (pid === undefined) throw new Error('member has no pid');
  return pid;
}

describe("three members on etcd's flags only", () => {
  const members: ServerProcess[] = [];
  let ports: number[] = [];
  let etcd: EtcdHandle | undefined;

  beforeAll(async () => {
    ports = await freePorts(7); // client x3, peer x3, metrics for member 3
    const peerUrl = (i: number) => `http://127.0.0.1:${ports[3 + i]}`;
    const clientUrl = (i: number) => `http://127.0.0.1:${ports[i]}`;
    const initialCluster = [0, 1, 2].map((i) => `m${i}=${peerUrl(i)}`).join(',');
    for (const i of [0, 1, 2]) {
      const args = [
        '--name',
        `m${i}`,
        '--data-dir',
        join(tempDir(), 'data'),
        '--listen-client-urls',
        clientUrl(i),
        '--advertise-client-urls',
        clientUrl(i),
        '--listen-peer-urls',
        peerUrl(i),
        '--initial-advertise-peer-urls',
        peerUrl(i),
        '--initial-cluster',
        initialCluster,
        '--initial-cluster-token',
        'footprint',
        ...(i === 2 ? ['--listen-metrics-urls', `http://127.0.0.1:${ports[6]}`] : []),
      ];
      members.push(spawnMember(`footprint m${i}`, args));
    }
    await Promise.all(members.map((m) => m.waitForLog(READY_LINE, 60_000)));
    etcd = await startEtcd();
  }, 120_000);

  afterAll(async () => {
    await Promise.all(members.map((m) => m.terminate('SIGTERM')));
    await etcd?.stop();
  });

  it('all three serve: a put on one is read on the others', async () => {
    expect((await etcdctl(`127.0.0.1:${ports[0]}`, ['put', 'footprint', 'yes'])).stdout.trim()).toBe('OK');
    for (const i of [1, 2]) {
      const read = await etcdctl(`127.0.0.1:${ports[i]}`, ['get', 'footprint', '--print-value-only']);
      expect(read.stdout.trim()).toBe('yes');
    }
  });

  it('each listens only on its client and peer URLs (and its metrics URL): no 8080, no 9090', () => {
    for (const i of [0, 1, 2]) {
      const expected = [ports[i]!, ports[3 + i]!, ...(i === 2 ? [ports[6]!] : [])].sort((a, b) => a - b);
      expect(listeningPorts(pidOf(members[i]!))).toEqual(expected);
    }
  });

  it("HTTP/1.1 on the client URL: /health as etcd 3.4.23's, /version, /readiness, /metrics", async () => {
    const ours = await httpGet(`http://127.0.0.1:${ports[0]}/health`);
    const theirs = await httpGet(`${etcd!.endpoint}/health`);
    expect(ours).toEqual(theirs);
    expect(ours).toEqual({ status: 200, body: '{"health":"true"}' });
    expect(await httpGet(`http://127.0.0.1:${ports[1]}/version`)).toEqual(await httpGet(`${etcd!.endpoint}/version`));
    expect(await httpGet(`http://127.0.0.1:${ports[1]}/readiness`)).toEqual({ status: 200, body: '{"status":"ready"}' });
    expect(await httpGet(`http://127.0.0.1:${ports[1]}/liveness`)).toEqual({ status: 200, body: '{"status":"alive"}' });
    const metrics = await httpGet(`http://127.0.0.1:${ports[2]}/metrics`);
    expect(metrics.status).toBe(200);
    expect(metrics.body).toContain('etcd_server_has_leader 1');
  });

  it('--listen-metrics-urls serves /metrics and /health', async () => {
    expect((await httpGet(`http://127.0.0.1:${ports[6]}/metrics`)).body).toContain('etcd_server_has_leader 1');
    expect(await httpGet(`http://127.0.0.1:${ports[6]}/health`)).toEqual({ status: 200, body: '{"health":"true"}' });
  });

  it('a member on a taken client port exits 2 with one line naming the key and the port', async () => {
    const [peer] = await freePorts(1);
    const taken = ports[0]!;
    const member = spawnMember('footprint taken', [
      '--name',
      'x',
      '--data-dir',
      join(tempDir(), 'data'),
      '--listen-client-urls',
      `http://127.0.0.1:${taken}`,
      '--listen-peer-urls',
      `http://127.0.0.1:${peer}`,
      '--initial-advertise-peer-urls',
      `http://127.0.0.1:${peer}`,
      '--initial-cluster',
      `x=http://127.0.0.1:${peer}`,
    ]);
    const exit = await member.exited;
    expect(exit.code).toBe(2);
    const stderr = member
      .logs()
      .split('\n')
      .filter((line) => line.startsWith('config error'));
    expect(stderr).toEqual([
      `config error: server.grpc.listen_urls (--listen-client-urls): cannot listen on 127.0.0.1:${taken}: port ${taken} is already in use`,
    ]);
    expect(member.logs()).not.toMatch(/\n\s+at /); // no stack trace
  });
});

describe('several client URLs, port 0, and TLS', () => {
  let pki: TestPki | undefined;

  afterAll(() => pki?.remove());

  it('binds every client URL; port 0 is a free port, logged and published', async () => {
    const [peer] = await freePorts(1);
    const member = spawnMember('footprint port0', [
      '--name',
      'z',
      '--data-dir',
      join(tempDir(), 'data'),
      '--listen-client-urls',
      'http://127.0.0.1:0,http://127.0.0.2:0',
      '--listen-peer-urls',
      `http://127.0.0.1:${peer}`,
      '--initial-advertise-peer-urls',
      `http://127.0.0.1:${peer}`,
      '--initial-cluster',
      `z=http://127.0.0.1:${peer}`,
    ]);
    try {
      await member.waitForLog(READY_LINE, 60_000);
      const bound = [...member.logs().matchAll(/"address":"(http:\/\/127\.0\.0\.[12]:\d+)","msg":"listening for client traffic/g)].map((m) => m[1]!);
      expect(bound).toHaveLength(2);
      const boundPorts = bound.map((url) => Number(url.split(':')[2]));
      expect(listeningPorts(pidOf(member))).toEqual([...boundPorts, peer!].sort((a, b) => a - b));
      expect((await etcdctl(bound[1]!, ['put', 'k', 'v'])).stdout.trim()).toBe('OK');
      const list = await etcdctl(bound[0]!, ['member', 'list']);
      expect(list.stdout).toContain(`${bound[0]},${bound[1]}`);
    } finally {
      await member.terminate('SIGTERM');
    }
  });

  it('a TLS client URL serves gRPC and HTTP/1.1 (/health) on the same port', async () => {
    pki = makeTestPki();
    const server = pki.issue('server', { cn: 'server' });
    const [client, peer] = await freePorts(2);
    const url = `https://127.0.0.1:${client}`;
    const member = spawnMember('footprint tls', [
      '--name',
      't',
      '--data-dir',
      join(tempDir(), 'data'),
      '--listen-client-urls',
      url,
      '--advertise-client-urls',
      url,
      '--cert-file',
      server.cert,
      '--key-file',
      server.key,
      '--listen-peer-urls',
      `http://127.0.0.1:${peer}`,
      '--initial-advertise-peer-urls',
      `http://127.0.0.1:${peer}`,
      '--initial-cluster',
      `t=http://127.0.0.1:${peer}`,
    ]);
    try {
      await member.waitForLog(READY_LINE, 60_000);
      const put = await etcdctl(url, ['--cacert', pki.ca.cert, 'put', 'k', 'v']);
      expect(put.stdout.trim()).toBe('OK');
      const ca = readFileSync(pki.ca.cert);
      const health = await new Promise<{ status: number; body: string }>((resolve, reject) => {
        https
          .get({ host: '127.0.0.1', port: client, path: '/health', ca }, (response) => {
            let body = '';
            response.on('data', (chunk) => (body += chunk));
            response.on('end', () => resolve({ status: response.statusCode ?? 0, body }));
          })
          .on('error', reject);
      });
      expect(health).toEqual({ status: 200, body: '{"health":"true"}' });
    } finally {
      await member.terminate('SIGTERM');
    }
  });
});
