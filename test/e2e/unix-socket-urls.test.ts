// etcd's unix:// and unixs:// URLs. As in etcd 3.4, a unix URL's host:port text is the socket
// file's name, relative to the member's working directory (`unix://localhost:12345` is the file
// `localhost:12345`), so each server here runs in a directory of its own and etcdctl and curl
// run there too.
// - A client URL serves gRPC (etcdctl) and HTTP/1.1 (/health, the JSON gateway), unix in plain
//   text and unixs over TLS, with the same answers as real etcd 3.4.23 given the same flags.
// - A socket file already in use stops start-up with one line and exit code 2 (etcd's client
//   listener does not remove it either); a clean stop removes the socket file.
// - Three members whose peer URLs are unix sockets (plain, and unixs with peer TLS) form one
//   cluster and replicate.

import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePorts } from '../support/ports.js';
import { removeDirSync, ServerProcess, trackForCleanup } from '../support/processes.js';
import { READY_LINE, REPO_ROOT } from '../support/servers.js';
import { etcdctl, requireTool, run } from '../support/tools.js';
import { makeTestPki, type TestPki } from './tls-certs.js';

const BIN = path.join(REPO_ROOT, 'bin', 'metastore');
type Kind = 'metastore' | 'etcd';

function tempDir(prefix: string): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  trackForCleanup({ label: dir, dispose: async () => removeDirSync(dir), disposeSync: () => removeDirSync(dir) });
  return dir;
}

/** Starts MetaStore or etcd with exactly these flags in `cwd`, with no METASTORE_* / ETCD_* variable of ours. */
async function spawnServer(kind: Kind, label: string, args: readonly string[], cwd: string): Promise<ServerProcess> {
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const key of Object.keys(env)) if (key.startsWith('METASTORE_') || key.startsWith('ETCD_')) delete env[key];
  const server =
    kind === 'etcd'
      ? new ServerProcess(label, await requireTool('etcd', 'etcd-server'), args, env, cwd)
      : new ServerProcess(label, process.execPath, [BIN, ...args], env, cwd);
  trackForCleanup({ label, dispose: async () => void (await server.terminate('SIGKILL')), disposeSync: () => server.killSync() });
  return server;
}

/** One member's flags: client URLs as given, a TCP peer URL on `peerPort`. */
function singleMemberFlags(clientUrl: string, peerPort: number, extra: readonly string[] = []): string[] {
  const peer = `http://127.0.0.1:${peerPort}`;
  return [
    '--name',
    'u',
    '--data-dir',
    'data',
    '--listen-client-urls',
    clientUrl,
    '--advertise-client-urls',
    clientUrl,
    '--listen-peer-urls',
    peer,
    '--initial-advertise-peer-urls',
    peer,
    '--initial-cluster',
    `u=${peer}`,
    ...extra,
  ];
}

/** What a client sees of one server: put, get, member list's client URL, /health, a gateway range. */
async function clientSession(endpoint: string, cwd: string, tlsArgs: { etcdctl: string[]; curl: string[]; base: string }) {
  const ctl = (args: string[]) => etcdctl(endpoint, [...tlsArgs.etcdctl, ...args], { cwd });
  const socket = endpoint.replace(/^unixs?:\/\//, '');
  const curl = (urlPath: string, body?: string) =>
    run('curl', ['-sS', '--unix-socket', socket, ...tlsArgs.curl, ...(body === undefined ? [] : ['-d', body]), `${tlsArgs.base}${urlPath}`], { cwd });
  const put = await ctl(['put', 'sock', 'et']);
  const get = await ctl(['get', 'sock', '--print-value-only']);
  const members = await ctl(['member', 'list', '-w', 'json']);
  const health = await curl('/health');
  const range = await curl('/v3/kv/range', JSON.stringify({ key: Buffer.from('sock').toString('base64') }));
  const clientUrls = (JSON.parse(members.stdout) as { members: { clientURLs: string[] }[] }).members.map((m) => m.clientURLs);
  const kvs = (JSON.parse(range.stdout) as { kvs: { key: string; value: string }[] }).kvs.map((kv) => [kv.key, kv.value]);
  return { put: put.stdout.trim(), get: get.stdout.trim(), clientUrls, health: health.stdout, kvs, stderr: put.stderr + get.stderr + health.stderr };
}

async function stopAndCheckSocketRemoved(server: ServerProcess, socketFile: string): Promise<void> {
  const exit = await server.terminate('SIGTERM');
  expect(exit.signal ?? exit.code, server.logs()).not.toBe('SIGKILL');
  expect(fs.existsSync(socketFile)).toBe(false);
}

describe('a unix:// client URL', () => {
  const expected = {
    put: 'OK',
    get: 'et',
    clientUrls: [['unix://localhost:12345']],
    health: '{"health":"true"}',
    kvs: [[Buffer.from('sock').toString('base64'), Buffer.from('et').toString('base64')]],
    stderr: '',
  };

  it.each(['metastore', 'etcd'] as const)(
    '%s serves etcdctl and curl on the socket, and removes it on a clean stop',
    async (kind) => {
      const dir = tempDir(`unix-${kind}-`);
      const [peerPort] = await freePorts(1);
      const server = await spawnServer(kind, `${kind} unix`, singleMemberFlags('unix://localhost:12345', peerPort!), dir);
      await server.waitForLog(READY_LINE, 60_000);
      expect(fs.statSync(path.join(dir, 'localhost:12345')).isSocket()).toBe(true);
      const session = await clientSession('unix://localhost:12345', dir, { etcdctl: [], curl: [], base: 'http://localhost' });
      expect(session).toEqual(expected);
      await stopAndCheckSocketRemoved(server, path.join(dir, 'localhost:12345'));
    },
    90_000,
  );

  it('a socket file that is in use stops start-up: one line naming the key, exit code 2', async () => {
    const dir = tempDir('unix-taken-');
    const holder = net.createServer();
    await new Promise<void>((resolve) => holder.listen({ path: path.join(dir, 'localhost:12345') }, resolve));
    try {
      const [peerPort] = await freePorts(1);
      const server = await spawnServer('metastore', 'metastore unix taken', singleMemberFlags('unix://localhost:12345', peerPort!), dir);
      const exit = await server.exited;
      expect(exit.code).toBe(2);
      const errorLines = server
        .logs()
        .split('\n')
        .filter((line) => line.includes('config error'));
      expect(errorLines).toEqual([
        'config error: server.grpc.listen_urls (--listen-client-urls): cannot listen on unix socket localhost:12345: the socket file already exists (in use, or left by a process that did not stop cleanly: remove it)',
      ]);
    } finally {
      await new Promise<void>((resolve) => holder.close(() => resolve()));
    }
  }, 60_000);
});

describe('a unixs:// client URL (TLS over the socket)', () => {
  let pki: TestPki;
  beforeAll(() => {
    pki = makeTestPki();
  });
  afterAll(() => pki.remove());

  it.each(['metastore', 'etcd'] as const)(
    '%s serves etcdctl and curl over TLS on the socket',
    async (kind) => {
      const server = pki.issue(`server-${kind}`, { cn: 'localhost' });
      const client = pki.issue(`client-${kind}`, { cn: 'root' });
      const dir = tempDir(`unixs-${kind}-`);
      const [peerPort] = await freePorts(1);
      const certFlags = ['--cert-file', server.cert, '--key-file', server.key, '--trusted-ca-file', pki.ca.cert, '--client-cert-auth'];
      const member = await spawnServer(kind, `${kind} unixs`, singleMemberFlags('unixs://localhost:12345', peerPort!, certFlags), dir);
      await member.waitForLog(READY_LINE, 60_000);
      const session = await clientSession('unixs://localhost:12345', dir, {
        etcdctl: ['--cacert', pki.ca.cert, '--cert', client.cert, '--key', client.key],
        // --http1.1: MetaStore takes a TLS client that negotiates h2 for gRPC (README, limitations).
        curl: ['--http1.1', '--cacert', pki.ca.cert, '--cert', client.cert, '--key', client.key],
        base: 'https://localhost',
      });
      expect(session).toEqual({
        put: 'OK',
        get: 'et',
        clientUrls: [['unixs://localhost:12345']],
        health: '{"health":"true"}',
        kvs: [[Buffer.from('sock').toString('base64'), Buffer.from('et').toString('base64')]],
        stderr: '',
      });
      // Without a client certificate the TLS handshake is refused, as on a TCP https URL.
      const anonymous = await etcdctl('unixs://localhost:12345', ['--cacert', pki.ca.cert, '--dial-timeout', '2s', 'get', 'sock'], { cwd: dir });
      expect(anonymous.code).not.toBe(0);
      await stopAndCheckSocketRemoved(member, path.join(dir, 'localhost:12345'));
    },
    90_000,
  );
});

describe.each(['unix', 'unixs'] as const)('three members whose peer URLs are %s sockets', (scheme) => {
  const members: ServerProcess[] = [];
  let dir = '';
  let clientPorts: number[] = [];
  let pki: TestPki | undefined;

  beforeAll(async () => {
    // Peer sockets are relative to the working directory, so the members share one.
    dir = tempDir(`${scheme}-peers-`);
    clientPorts = await freePorts(3);
    const peerUrl = (i: number) => `${scheme}://localhost:2380${i}`;
    const initialCluster = [0, 1, 2].map((i) => `p${i}=${peerUrl(i)}`).join(',');
    let peerTls: string[] = [];
    if (scheme === 'unixs') {
      pki = makeTestPki();
      const peer = pki.issue('peer', { cn: 'localhost' });
      peerTls = ['--peer-cert-file', peer.cert, '--peer-key-file', peer.key, '--peer-trusted-ca-file', pki.ca.cert, '--peer-client-cert-auth'];
    }
    for (const i of [0, 1, 2]) {
      const clientUrl = `http://127.0.0.1:${clientPorts[i]}`;
      const args = [
        ...['--name', `p${i}`, '--data-dir', `data-${i}`],
        ...['--listen-client-urls', clientUrl, '--advertise-client-urls', clientUrl],
        ...['--listen-peer-urls', peerUrl(i), '--initial-advertise-peer-urls', peerUrl(i)],
        ...['--initial-cluster', initialCluster, '--initial-cluster-token', `${scheme}-peers`],
        ...peerTls,
      ];
      members.push(await spawnServer('metastore', `${scheme} peer p${i}`, args, dir));
    }
    await Promise.all(members.map((m) => m.waitForLog(READY_LINE, 60_000)));
  }, 120_000);

  afterAll(async () => {
    await Promise.all(members.map((m) => m.terminate('SIGTERM')));
    pki?.remove();
  });

  it('forms one cluster that publishes the socket peer URLs and replicates a put to every member', async () => {
    const list = await etcdctl(`127.0.0.1:${clientPorts[0]}`, ['member', 'list', '-w', 'json']);
    const peerUrls = (JSON.parse(list.stdout) as { members: { peerURLs: string[] }[] }).members.flatMap((m) => m.peerURLs).sort();
    expect(peerUrls).toEqual([0, 1, 2].map((i) => `${scheme}://localhost:2380${i}`));
    expect((await etcdctl(`127.0.0.1:${clientPorts[0]}`, ['put', 'over', 'sockets'])).stdout.trim()).toBe('OK');
    for (const port of clientPorts.slice(1)) {
      // Linearizable reads: each goes through the leader over the unix peer sockets.
      expect((await etcdctl(`127.0.0.1:${port}`, ['get', 'over', '--print-value-only'])).stdout.trim()).toBe('sockets');
    }
  }, 60_000);

  it('removes every peer socket file on a clean stop', async () => {
    await Promise.all(members.map((m) => m.terminate('SIGTERM')));
    expect(fs.readdirSync(dir).filter((name) => name.startsWith('localhost:'))).toEqual([]);
  }, 60_000);
});
