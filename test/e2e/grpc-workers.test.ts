// server.grpc.workers = 2: the client port is served by two edge processes that relay every
// call to the member process (src/grpc/edge, src/node/edge-pool.ts). etcdctl works through them
// (put/get/txn/watch/lease keep-alive/member list/snapshot save), HTTP/1.1 on the client port
// (health, metrics, JSON gateway) works, TLS with client-certificate CN auth works, a killed
// edge is replaced without losing an acknowledged put, /metrics counts the calls of every edge,
// and stopping the member stops its edges.

import fs from 'node:fs';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { clients } from '../../src/grpc/proto.js';
import { jsonLines } from '../support/json-lines.js';
import { freePorts } from '../support/ports.js';
import { grpcTarget, RawWatch } from '../support/raw-watch.js';
import { type MetaStoreHandle, startMetaStore } from '../support/servers.js';
import { etcdctl, requireTool } from '../support/tools.js';
import { waitFor } from '../support/wait.js';
import { type CertPair, makeTestPki, type TestPki } from './tls-certs.js';

const WORKERS = { METASTORE_SERVER_GRPC_WORKERS: '2' };

/** The pids the member logged for the edges it started, in order. */
function edgePids(member: MetaStoreHandle): number[] {
  return [...member.logs().matchAll(/"pid":(\d+),"msg":"edge process started"/g)].map((m) => Number(m[1]));
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function ok(endpoint: string, args: string[], stdin?: string): Promise<string> {
  const result = await etcdctl(endpoint, ['--dial-timeout=3s', '--command-timeout=5s', ...args], { stdin });
  expect(
    result.stderr.split('\n').filter((l) => l.startsWith('Error')),
    `etcdctl ${args.join(' ')}`,
  ).toEqual([]);
  expect(result.code).toBe(0);
  return result.stdout;
}

describe('client edge processes (server.grpc.workers = 2)', () => {
  let member: MetaStoreHandle;
  beforeAll(async () => {
    member = await startMetaStore({ env: WORKERS });
  }, 60_000);
  afterAll(async () => member?.destroy());

  it('serves etcdctl through the edges: put, get, txn, watch, lease keep-alive, member list, snapshot save', async () => {
    const ep = member.endpoint;
    expect(edgePids(member)).toHaveLength(2);
    expect(await ok(ep, ['put', 'k', 'v1'])).toBe('OK\n');
    expect(await ok(ep, ['get', 'k', '--print-value-only'])).toBe('v1\n');
    expect(await ok(ep, ['txn'], 'value("k") = "v1"\n\nput k v2\n\nput k never\n\n')).toBe('SUCCESS\n\nOK\n');
    const watch = new RawWatch(ep);
    try {
      watch.send({ createRequest: { key: Buffer.from('w/'), rangeEnd: Buffer.from('w0') } });
      expect((await watch.next(1))[0]!.created).toBe(true);
      await ok(ep, ['put', 'w/1', 'a']);
      const [event] = (await watch.next(1))[0]!.events;
      expect([Buffer.from(event.kv.key).toString(), Buffer.from(event.kv.value).toString()]).toEqual(['w/1', 'a']);
    } finally {
      watch.close();
    }
    const lease = /lease ([0-9a-f]+) granted/.exec(await ok(ep, ['lease', 'grant', '60']))![1]!;
    expect(await ok(ep, ['lease', 'keep-alive', '--once', lease])).toContain(`lease ${lease} keepalived with TTL(60)`);
    expect(await ok(ep, ['member', 'list'])).toContain(`, started, default, `);
    // The endpoint string as :authority (per-endpoint commands): the edges' HTTP/2 takes it.
    expect(JSON.parse(await ok(ep, ['endpoint', 'status', '-w', 'json']))[0].Endpoint).toBe(ep);
    const snapshot = path.join(member.dataDir, '..', `edge-snapshot-${process.pid}.db`);
    try {
      await ok(ep, ['snapshot', 'save', snapshot]);
      expect(fs.statSync(snapshot).size).toBeGreaterThan(0);
    } finally {
      fs.rmSync(snapshot, { force: true });
    }
  }, 60_000);

  it('serves grpc-js clients through the edges: put, range, a request error and a watch seeing a put', async () => {
    const kv = new clients.KV(grpcTarget(member.endpoint), grpc.credentials.createInsecure()) as grpc.Client & Record<string, any>;
    const unary = (method: string, request: object) =>
      new Promise<any>((resolve, reject) =>
        kv[method](request, (error: grpc.ServiceError | null, response: any) => (error ? reject(error) : resolve(response))),
      );
    const watch = new RawWatch(member.endpoint);
    try {
      await unary('put', { key: Buffer.from('js/a'), value: Buffer.from('1') });
      const range = await unary('range', { key: Buffer.from('js/'), rangeEnd: Buffer.from('js0') });
      expect(range.kvs.map((kv: any) => [kv.key.toString(), kv.value.toString()])).toEqual([['js/a', '1']]);
      await expect(unary('range', {})).rejects.toMatchObject({ code: grpc.status.INVALID_ARGUMENT, details: 'etcdserver: key is not provided' });
      watch.send({ createRequest: { key: Buffer.from('js/'), rangeEnd: Buffer.from('js0') } });
      expect((await watch.next(1))[0]!.created).toBe(true);
      await unary('put', { key: Buffer.from('js/b'), value: Buffer.from('2') });
      const [event] = (await watch.next(1))[0]!.events;
      expect([Buffer.from(event.kv.key).toString(), Buffer.from(event.kv.value).toString()]).toEqual(['js/b', '2']);
    } finally {
      watch.close();
      kv.close();
    }
  }, 60_000);

  it('serves HTTP/1.1 on the client port: health, the JSON gateway, and /metrics counting every edge', async () => {
    const health = await fetch(`${member.endpoint}/health`);
    expect(await health.json()).toEqual({ health: 'true' });
    const range = await fetch(`${member.endpoint}/v3/kv/range`, { method: 'POST', body: JSON.stringify({ key: Buffer.from('k').toString('base64') }) });
    const body = (await range.json()) as { kvs: Array<{ value: string }> };
    expect(Buffer.from(body.kvs[0]!.value, 'base64').toString()).toBe('v2');
    // A JSON gateway watch in an edge: the member's batched responses are unframed there.
    const abort = new AbortController();
    const watch = await fetch(`${member.endpoint}/v3/watch`, {
      method: 'POST',
      body: JSON.stringify({ create_request: { key: Buffer.from('gw/').toString('base64'), range_end: Buffer.from('gw0').toString('base64') } }),
      signal: abort.signal,
    });
    try {
      const lines = jsonLines(watch);
      expect(JSON.parse(await lines.next()).result.created).toBe(true);
      await ok(member.endpoint, ['put', 'gw/1', 'x']);
      const event = JSON.parse(await lines.next()).result.events[0];
      expect(Buffer.from(event.kv.key, 'base64').toString()).toBe('gw/1');
    } finally {
      abort.abort();
    }
    const putsBefore = await putCount(member);
    // Separate etcdctl processes: separate connections, handed to the edges in turn.
    for (let i = 0; i < 4; i++) await ok(member.endpoint, ['put', `m/${i}`, 'x']);
    expect(await putCount(member)).toBe(putsBefore + 4);
  }, 60_000);

  it('replaces killed edges; a client reconnects and every acknowledged put is readable', async () => {
    const [victim, survivor] = edgePids(member);
    const kv = new clients.KV(member.endpoint.replace('http://', ''), grpc.credentials.createInsecure()) as unknown as KvStub & grpc.Client;
    try {
      const acknowledged: string[] = [];
      let failures = 0;
      const putOne = (key: string): Promise<boolean> =>
        new Promise((resolve) =>
          kv.put({ key: Buffer.from(key), value: Buffer.from('v') }, { deadline: Date.now() + 5000 }, (error) => resolve(error === null)),
        );
      for (let i = 0; i < 20; i++) if (await putOne(`ack/${i}`)) acknowledged.push(`ack/${i}`);
      // Both original edges die in turn, so the client's connection surely goes with one of them.
      for (const [round, pid] of [victim!, survivor!].entries()) {
        process.kill(pid, 'SIGKILL');
        await waitFor(() => edgePids(member).length === 3 + round, { what: `replacement edge ${round + 1}` });
        for (let i = 0; acknowledged.length < 40 * (round + 1) && i < 200; i++) {
          const key = `ack/${round}/${i}`;
          if (await putOne(key)) acknowledged.push(key);
          else failures++;
        }
      }
      expect(acknowledged.length).toBe(80);
      expect(failures).toBeLessThan(20);
      const keys = (await ok(member.endpoint, ['get', 'ack/', '--prefix', '--keys-only'])).split('\n').filter((l) => l !== '');
      for (const key of acknowledged) expect(keys).toContain(key);
      expect(member.logs().match(/edge process exited; starting a new one/g)).toHaveLength(2);
      expect([victim, survivor].filter((pid) => alive(pid!))).toEqual([]);
    } finally {
      kv.close();
    }
  }, 60_000);

  it('stops its edges when the member stops', async () => {
    const pids = edgePids(member).filter(alive);
    // The two replacements of the previous test.
    expect(pids).toHaveLength(2);
    await member.stop();
    await waitFor(() => pids.every((pid) => !alive(pid)), { what: 'the edges to exit' });
  }, 60_000);
});

interface KvStub {
  put(request: object, options: grpc.CallOptions, callback: (error: grpc.ServiceError | null) => void): void;
}

async function putCount(member: MetaStoreHandle): Promise<number> {
  const text = await (await fetch(`${member.endpoint}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith('grpc_server_request_total{method="Put",code="OK"}'));
  return line === undefined ? 0 : Number(line.split(' ')[1]);
}

describe('client edge processes with TLS and client-certificate auth', () => {
  let pki: TestPki;
  let server: CertPair;
  let rootCert: CertPair;
  let aliceCert: CertPair;
  beforeAll(async () => {
    await requireTool('openssl', 'openssl');
    pki = makeTestPki();
    server = pki.issue('server', { cn: 'server-a' });
    rootCert = pki.issue('root', { cn: 'root' });
    aliceCert = pki.issue('alice', { cn: 'alice' });
  });
  afterAll(() => pki?.remove());

  it('the edge terminates TLS and the member authenticates the certificate CN', async () => {
    const [client, peer, health, metrics] = await freePorts(4);
    const url = `https://127.0.0.1:${client}`;
    const member = await startMetaStore({
      ports: { client: client!, peer: peer!, health: health!, metrics: metrics! },
      clientScheme: 'https',
      env: WORKERS,
      extraArgs: [
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
      ],
    });
    try {
      const as = (pair: CertPair): string[] => ['--cacert', pki.ca.cert, '--cert', pair.cert, '--key', pair.key];
      for (const step of [
        ['user', 'add', 'root', '--no-password'],
        ['role', 'add', 'root'],
        ['user', 'grant-role', 'root', 'root'],
        ['user', 'add', 'alice', '--no-password'],
        ['role', 'add', 'cfg'],
        ['role', 'grant-permission', 'cfg', 'readwrite', 'cfg/', '--prefix=true'],
        ['user', 'grant-role', 'alice', 'cfg'],
        ['auth', 'enable'],
      ])
        await ok(url, [...as(rootCert), ...step]);
      expect(await ok(url, [...as(aliceCert), 'put', 'cfg/a', '1'])).toBe('OK\n');
      const denied = await etcdctl(url, ['--dial-timeout=3s', ...as(aliceCert), 'put', 'other', '1']);
      expect(denied.stderr).toContain('etcdserver: permission denied');
      expect(await ok(url, [...as(rootCert), 'get', 'cfg/a', '--print-value-only'])).toBe('1\n');
    } finally {
      await member.destroy();
    }
  }, 90_000);
});
