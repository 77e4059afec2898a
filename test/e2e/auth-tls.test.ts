// Differential test of CN-based login (etcd 3.4.23 vs MetaStore): with --client-cert-auth and
// auth enabled, a request without a token acts as the user named by its client certificate's
// CN. Certificates are made by the test with openssl. The transcripts (exit code, stdout, final
// error line) must be identical.

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePorts } from '../support/ports.js';
import { ServerProcess, removeDirSync, trackForCleanup } from '../support/processes.js';
import { READY_LINE, startMetaStore } from '../support/servers.js';
import { etcdctl, requireTool } from '../support/tools.js';
import { makeTestPki, type CertPair, type TestPki } from './tls-certs.js';

let pki: TestPki;
let server: CertPair;
let rootCert: CertPair;
let aliceCert: CertPair;
let bobCert: CertPair;

beforeAll(async () => {
  await requireTool('openssl', 'openssl');
  pki = makeTestPki();
  server = pki.issue('server', { cn: 'server-a' });
  rootCert = pki.issue('root', { cn: 'root' });
  aliceCert = pki.issue('alice', { cn: 'alice' });
  bobCert = pki.issue('bob', { cn: 'bob' });
});

afterAll(() => pki?.remove());

function clientTlsFlags(port: number): string[] {
  const url = `https://127.0.0.1:${port}`;
  return [
    '--listen-client-urls',
    url,
    '--advertise-client-urls',
    url,
    '--cert-file',
    server.cert,
    '--key-file',
    server.key,
    '--trusted-ca-file',
    pki.ca.cert,
    '--client-cert-auth',
  ];
}

async function startTlsEtcd(): Promise<{ endpoint: string; stop(): Promise<void> }> {
  const binary = await requireTool('etcd', 'etcd-server');
  const [clientPort, peerPort] = await freePorts(2);
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'etcd-auth-tls-'));
  const peer = `http://127.0.0.1:${peerPort}`;
  const args = [
    '--name',
    'default',
    '--data-dir',
    dataDir,
    '--listen-peer-urls',
    peer,
    '--initial-advertise-peer-urls',
    peer,
    '--initial-cluster',
    `default=${peer}`,
    ...clientTlsFlags(clientPort!),
  ];
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const key of Object.keys(env)) if (key.startsWith('ETCD_')) delete env[key];
  const proc = new ServerProcess(`etcd-auth-tls :${clientPort}`, binary, args, env);
  const untrack = trackForCleanup({
    label: proc.label,
    dispose: async () => {
      await proc.terminate('SIGKILL');
      removeDirSync(dataDir);
    },
    disposeSync: () => {
      proc.killSync();
      removeDirSync(dataDir);
    },
  });
  await proc.waitForLog(READY_LINE, 30_000);
  return {
    endpoint: `https://127.0.0.1:${clientPort}`,
    stop: async () => {
      await proc.terminate('SIGTERM');
      removeDirSync(dataDir);
      untrack();
    },
  };
}

async function startTlsMetaStore(): Promise<{ endpoint: string; stop(): Promise<void> }> {
  const [clientPort, peerPort, health, metrics] = await freePorts(4);
  const handle = await startMetaStore({
    ports: { client: clientPort!, peer: peerPort!, health: health!, metrics: metrics! },
    extraArgs: clientTlsFlags(clientPort!),
  });
  return { endpoint: `https://127.0.0.1:${clientPort}`, stop: () => handle.stop() };
}

const as = (pair: CertPair): string[] => ['--cacert', pki.ca.cert, '--cert', pair.cert, '--key', pair.key];

async function transcript(endpoint: string): Promise<string[]> {
  const out: string[] = [];
  const step = async (cert: CertPair, args: string[], extra: string[] = []): Promise<void> => {
    const r = await etcdctl(endpoint, ['--dial-timeout=2s', '--command-timeout=3s', ...as(cert), ...extra, ...args]);
    const errorLine =
      r.stderr
        .split('\n')
        .filter((l) => l.startsWith('Error:'))
        .pop() ?? '';
    out.push(`$ [${path.basename(cert.cert)}] etcdctl ${[...extra, ...args].join(' ')}\nexit ${r.code}\n${r.stdout}${errorLine}`);
  };
  await step(rootCert, ['user', 'add', 'root', '--no-password']);
  await step(rootCert, ['role', 'add', 'root']);
  await step(rootCert, ['user', 'grant-role', 'root', 'root']);
  await step(rootCert, ['user', 'add', 'alice', '--no-password']);
  await step(rootCert, ['role', 'add', 'cfg']);
  await step(rootCert, ['role', 'grant-permission', 'cfg', 'readwrite', 'cfg/', '--prefix=true']);
  await step(rootCert, ['user', 'grant-role', 'alice', 'cfg']);
  await step(rootCert, ['auth', 'enable']);
  await step(aliceCert, ['put', 'cfg/a', '1']);
  await step(aliceCert, ['get', 'cfg/', '--prefix']);
  await step(aliceCert, ['put', 'other', '1']);
  await step(aliceCert, ['user', 'list']);
  await step(bobCert, ['put', 'cfg/b', '1']);
  await step(bobCert, ['get', 'cfg/a']);
  await step(rootCert, ['put', 'other', 'root-wrote']);
  await step(rootCert, ['get', 'other']);
  await step(aliceCert, ['get', 'cfg/a'], ['--user=alice:x']);
  await step(rootCert, ['role', 'revoke-permission', 'cfg', 'cfg/', '--prefix=true']);
  await step(aliceCert, ['get', 'cfg/a']);
  await step(rootCert, ['auth', 'disable']);
  await step(bobCert, ['put', 'cfg/b', '2']);
  return out;
}

describe('CN-based login with --client-cert-auth (etcd 3.4.23 vs MetaStore)', () => {
  it('the certificate CN is the user when no token is sent: identical transcripts', async () => {
    const etcd = await startTlsEtcd();
    let expected: string[];
    try {
      expected = await transcript(etcd.endpoint);
    } finally {
      await etcd.stop();
    }
    const metastore = await startTlsMetaStore();
    let actual: string[];
    try {
      actual = await transcript(metastore.endpoint);
    } finally {
      await metastore.stop();
    }
    for (let i = 0; i < expected.length; i++) expect(actual[i]).toBe(expected[i]);
    expect(actual.length).toBe(expected.length);
  }, 120_000);
});
