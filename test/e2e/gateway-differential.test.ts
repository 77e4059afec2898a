// Differential test of etcd's HTTP/JSON gateway (3.4.23): the same HTTP session against a
// fresh real etcd and a fresh MetaStore must give identical status codes and bodies, once
// what differs by design is masked: cluster/member IDs, raft terms, lease IDs, auth tokens,
// database sizes and raft indexes, URLs' ports, and the status field MetaStore does not have
// (dbSizeInUse). Covered: KV with options, txn with compares, compaction, lease grant/
// keepalive/timetolive/leases/revoke, a watch stream seeing puts and a delete, member list,
// status, auth (user, role, enable, authenticate, calls with and without the token, disable),
// election campaign/leader/proclaim/resign, lock/unlock, malformed JSON, wrong JSON types,
// unknown paths, wrong methods, oversized bodies, /v3beta/. The same session runs again over
// HTTPS with a client certificate (--client-cert-auth), which also shows whose CN a gateway
// call is authenticated by.

import fs from 'node:fs';
import https from 'node:https';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectSameAsEtcd } from '../support/differential.js';
import { jsonLines } from '../support/json-lines.js';
import { requireTool } from '../support/tools.js';
import { makeTestPki, type CertPair, type TestPki } from './tls-certs.js';

const b64 = (text: string): string => Buffer.from(text).toString('base64');

/** Values that differ between two servers by design, by JSON key. */
const MASKED_KEYS = new Set([
  'cluster_id',
  'member_id',
  'raft_term',
  'leader',
  'raftTerm',
  'dbSize',
  'raftIndex',
  'raftAppliedIndex',
  'token',
  'ID',
  'grantedTTL',
  'lease',
]);
const DROPPED_KEYS = new Set(['dbSizeInUse']);

function mask(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(mask);
  if (typeof value !== 'object' || value === null) return typeof value === 'string' ? value.replace(/127\.0\.0\.1:\d+/g, '127.0.0.1:<port>') : value;
  const out: Record<string, unknown> = {};
  for (const [key, v] of Object.entries(value)) {
    if (DROPPED_KEYS.has(key)) continue;
    // A lock's key ends with the lease ID (hex); mask the whole key.
    out[key] = MASKED_KEYS.has(key)
      ? `<${key}>`
      : key === 'key' && typeof v === 'string' && /^(mylock|myelection)\//.test(Buffer.from(v, 'base64').toString())
        ? '<lock key>'
        : mask(v);
  }
  return out;
}

/** A body as the transcript shows it: JSON masked (key order kept), anything else verbatim. */
function maskBody(text: string): string {
  try {
    return JSON.stringify(mask(JSON.parse(text)));
  } catch {
    return JSON.stringify(text);
  }
}

/** fetch, or a stand-in that speaks HTTPS with a client certificate. */
type Fetch = (url: string, init?: RequestInit) => Promise<Response>;

interface Client {
  http: Fetch;
  post(path: string, body?: string, headers?: Record<string, string>): Promise<string>;
  raw(path: string, init: RequestInit): Promise<string>;
  leaseId: string;
}

function client(endpoint: string, http: Fetch): Client {
  const raw = async (path: string, init: RequestInit): Promise<string> => {
    const response = await http(`${endpoint}${path}`, init);
    const text = await response.text();
    const lines = text.split('\n').filter((l) => l !== '');
    return `${init.method ?? 'GET'} ${path} -> ${response.status} ${lines.map(maskBody).join('\n')}`;
  };
  return {
    http,
    raw,
    post: (path, body, headers) => raw(path, { method: 'POST', body, headers }),
    leaseId: '',
  };
}

async function kvSteps(c: Client): Promise<string[]> {
  const out: string[] = [];
  for (const [key, value] of [
    ['a', '1'],
    ['b', '2'],
    ['c', '3'],
    ['a', '4'],
  ]) {
    out.push(await c.post('/v3/kv/put', JSON.stringify({ key: b64(key!), value: b64(value!), prev_kv: true })));
  }
  const range = (body: object): Promise<string> => c.post('/v3/kv/range', JSON.stringify(body));
  out.push(await range({ key: b64('a'), range_end: b64('z') }));
  out.push(await range({ key: b64('a'), range_end: b64('z'), limit: 2, sort_order: 'DESCEND', sort_target: 'KEY' }));
  out.push(await range({ key: b64('a'), range_end: b64('z'), keys_only: true, serializable: true }));
  out.push(await range({ key: b64('a'), range_end: b64('z'), count_only: true }));
  out.push(await range({ key: b64('a'), revision: '2' }));
  out.push(await range({ key: b64('a'), rangeEnd: b64('c'), minModRevision: 3 }));
  out.push(await c.post('/v3beta/kv/range', JSON.stringify({ key: b64('b') })));
  out.push(await c.post('/v3/kv/deleterange', JSON.stringify({ key: b64('b'), prev_kv: true })));
  out.push(await c.post('/v3/kv/deleterange', JSON.stringify({ key: b64('x') })));
  const txn = (value: string): string =>
    JSON.stringify({
      compare: [{ key: b64('a'), result: 'EQUAL', target: 'VALUE', value: b64(value) }],
      success: [{ request_put: { key: b64('t'), value: b64('yes') } }, { request_range: { key: b64('a') } }],
      failure: [{ request_delete_range: { key: b64('c') } }],
    });
  out.push(await c.post('/v3/kv/txn', txn('4')));
  out.push(await c.post('/v3/kv/txn', txn('nope')));
  out.push(await c.post('/v3/kv/compaction', JSON.stringify({ revision: 4, physical: true })));
  out.push(await range({ key: b64('a'), revision: 3 }));
  out.push(await range({ key: b64('a'), revision: 100 }));
  return out;
}

async function errorSteps(c: Client): Promise<string[]> {
  return [
    await c.post('/v3/kv/put', '{}'),
    await c.post('/v3/kv/range', '{bad'),
    await c.post('/v3/kv/range', '{"key":"YQ==",'),
    await c.post('/v3/kv/range', '{"key":"YQ==" "x"}'),
    await c.post('/v3/kv/range', '[]'),
    await c.post('/v3/kv/range', '{"key":123}'),
    await c.post('/v3/kv/range', '{"key":"YQ==","limit":"x"}'),
    await c.post('/v3/kv/range', '{"key":"YQ==","limit":1.5}'),
    await c.post('/v3/kv/range', '{"key":"YQ==","keys_only":"yes"}'),
    await c.post('/v3/kv/range', '{"key":"YQ==","unknown_field":1}'),
    await c.post('/v3/kv/range'),
    await c.post('/v3/kv/nothing', '{}'),
    await c.post('/v3alpha/kv/range', '{}'),
    await c.raw('/nothing', { method: 'GET' }),
    await c.raw('/v3/kv/range', { method: 'GET' }),
    await c.raw('/v3/kv/put', { method: 'PUT', body: '{}' }),
  ];
}

async function leaseSteps(c: Client, endpoint: string): Promise<string[]> {
  const granted = await c.http(`${endpoint}/v3/lease/grant`, { method: 'POST', body: '{"TTL":60}' });
  const id = ((await granted.json()) as { ID: string }).ID;
  const out = [`grant -> ${granted.status}`];
  out.push(await c.post('/v3/kv/put', JSON.stringify({ key: b64('leased'), value: b64('v'), lease: id })));
  out.push(await c.post('/v3/lease/timetolive', JSON.stringify({ ID: id, keys: true })));
  out.push(await c.post('/v3/lease/keepalive', JSON.stringify({ ID: id })));
  out.push(await c.post('/v3/kv/lease/leases', '{}'));
  out.push(await c.post('/v3/lock', JSON.stringify({ name: b64('mylock'), lease: id })));
  out.push(await c.post('/v3/lease/revoke', JSON.stringify({ ID: id })));
  out.push(await c.post('/v3/kv/lease/timetolive', JSON.stringify({ ID: id })));
  out.push(await c.post('/v3/lease/revoke', JSON.stringify({ ID: id })));
  out.push(await c.post('/v3/kv/range', JSON.stringify({ key: b64('leased') })));
  return out;
}

async function authSteps(c: Client, endpoint: string): Promise<string[]> {
  const out = [
    await c.post('/v3/auth/user/add', JSON.stringify({ name: 'root', password: 'secret' })),
    await c.post('/v3/auth/user/grant', JSON.stringify({ user: 'root', role: 'root' })),
    await c.post('/v3/auth/role/add', JSON.stringify({ name: 'reader' })),
    await c.post('/v3/auth/role/grant', JSON.stringify({ name: 'reader', perm: { permType: 'READ', key: b64('a'), range_end: b64('b') } })),
    await c.post('/v3/auth/role/get', JSON.stringify({ role: 'reader' })),
    await c.post('/v3/auth/enable', '{}'),
    await c.post('/v3/kv/range', JSON.stringify({ key: b64('a') })),
    // With an Accept header etcd ignores any certificate CN on a gateway call.
    await c.post('/v3/kv/range', JSON.stringify({ key: b64('a') }), { Accept: 'application/json' }),
    await c.post('/v3/auth/authenticate', JSON.stringify({ name: 'root', password: 'wrong' })),
  ];
  const authenticated = await c.http(`${endpoint}/v3/auth/authenticate`, { method: 'POST', body: JSON.stringify({ name: 'root', password: 'secret' }) });
  const answer = await authenticated.text();
  // Over HTTPS with a client certificate etcd refuses every /v3/ call once auth is on (text).
  const token = authenticated.status === 200 ? (JSON.parse(answer) as { token: string }).token : '';
  out.push(`authenticate -> ${authenticated.status} ${authenticated.status === 200 ? '' : maskBody(answer)}`);
  out.push(await c.post('/v3/kv/range', JSON.stringify({ key: b64('a') }), { Authorization: token }));
  out.push(await c.post('/v3/kv/range', JSON.stringify({ key: b64('a') }), { Authorization: 'not-a-token' }));
  out.push(await c.post('/v3/auth/user/list', '{}', { Authorization: token }));
  out.push(await c.post('/v3/auth/disable', '{}', { Authorization: token }));
  out.push(await c.post('/v3/kv/range', JSON.stringify({ key: b64('a') })));
  return out;
}

async function watchSteps(endpoint: string, c: Client): Promise<string[]> {
  const abort = new AbortController();
  const response = await c.http(`${endpoint}/v3/watch`, {
    method: 'POST',
    body: JSON.stringify({ create_request: { key: b64('w'), range_end: b64('x'), prev_kv: true } }),
    signal: abort.signal,
  });
  const lines = jsonLines(response);
  const nextLine = async (): Promise<string> => maskBody(await lines.next());
  const out = [`watch -> ${response.status}`, await nextLine()];
  for (const [key, value] of [
    ['w1', 'a'],
    ['w2', 'b'],
    ['w1', 'c'],
  ]) {
    await c.post('/v3/kv/put', JSON.stringify({ key: b64(key!), value: b64(value!) }));
    out.push(await nextLine());
  }
  await c.post('/v3/kv/deleterange', JSON.stringify({ key: b64('w1') }));
  out.push(await nextLine());
  abort.abort();
  await lines.cancel();
  return out;
}

async function grantLease(c: Client, endpoint: string): Promise<string> {
  const granted = await c.http(`${endpoint}/v3/lease/grant`, { method: 'POST', body: '{"TTL":60}' });
  return ((await granted.json()) as { ID: string }).ID;
}

/** Campaign, leader, proclaim, resign and the errors around them; lock/unlock as 3.4 serves them. */
async function electionSteps(c: Client, endpoint: string): Promise<string[]> {
  const lease = await grantLease(c, endpoint);
  const name = b64('myelection');
  const out = [await c.post('/v3/election/leader', JSON.stringify({ name }))];
  const campaigned = await c.http(`${endpoint}/v3/election/campaign`, { method: 'POST', body: JSON.stringify({ name, lease, value: b64('v1') }) });
  const campaignText = await campaigned.text();
  out.push(`campaign -> ${campaigned.status} ${maskBody(campaignText)}`);
  const leader = (JSON.parse(campaignText) as { leader: object }).leader;
  out.push(await c.post('/v3/election/leader', JSON.stringify({ name })));
  out.push(await c.post('/v3/election/proclaim', JSON.stringify({ leader, value: b64('v2') })));
  out.push(await c.post('/v3/election/leader', JSON.stringify({ name })));
  out.push(await c.post('/v3/election/proclaim', JSON.stringify({ leader: { ...leader, rev: '1' }, value: b64('v3') })));
  out.push(await c.post('/v3/election/resign', JSON.stringify({ leader })));
  out.push(await c.post('/v3/election/leader', JSON.stringify({ name })));
  out.push(await c.post('/v3/election/resign', JSON.stringify({ leader })));
  out.push(await c.post('/v3/lock/lock', JSON.stringify({ name: b64('mylock'), lease })));
  out.push(await c.post('/v3/kv/put', JSON.stringify({ key: b64('held'), value: b64('1') })));
  out.push(await c.post('/v3/lock/unlock', JSON.stringify({ key: b64('held') })));
  out.push(await c.post('/v3/lock/unlock', JSON.stringify({ key: b64('never') })));
  out.push(await c.post('/v3/kv/range', JSON.stringify({ key: b64('held') })));
  return out;
}

/** Bodies beyond the server's request limit (1.5 MiB by default): a big value, a big key. */
async function oversizedSteps(c: Client): Promise<string[]> {
  const big = 'x'.repeat(2 * 1024 * 1024);
  return [
    await c.post('/v3/kv/put', JSON.stringify({ key: b64('big'), value: b64(big) })),
    await c.post('/v3/kv/range', JSON.stringify({ key: b64(big) })),
    await c.post('/v3/kv/range', JSON.stringify({ key: b64('big') })),
  ];
}

async function session(endpoint: string, http: Fetch = fetch): Promise<string[]> {
  const c = client(endpoint, http);
  const out = [...(await kvSteps(c)), ...(await errorSteps(c))];
  out.push(...(await leaseSteps(c, endpoint)));
  out.push(...(await watchSteps(endpoint, c)));
  out.push(...(await electionSteps(c, endpoint)));
  out.push(...(await oversizedSteps(c)));
  out.push(await c.post('/v3/cluster/member/list', '{}'));
  out.push(await c.post('/v3/maintenance/status', '{}'));
  out.push(...(await authSteps(c, endpoint)));
  return out;
}

describe('HTTP/JSON gateway (differential against etcd 3.4.23)', () => {
  it('answers a curl session as etcd does', async () => {
    await expectSameAsEtcd(session);
  }, 120_000);
});

/** A fetch over HTTPS with a client certificate, offering only HTTP/1.1 by ALPN (as curl
 * --http1.1 does); Node's own fetch cannot present a client certificate. */
function httpsFetch(pki: TestPki, pair: CertPair): Fetch {
  const tlsOptions = { ca: fs.readFileSync(pki.ca.cert), cert: fs.readFileSync(pair.cert), key: fs.readFileSync(pair.key), ALPNProtocols: ['http/1.1'] };
  return (url, init = {}) =>
    new Promise((resolve, reject) => {
      const headers = (init.headers ?? {}) as Record<string, string>;
      const request = https.request(url, { method: init.method ?? 'GET', headers, signal: init.signal ?? undefined, ...tlsOptions }, (response) => {
        resolve(new Response(Readable.toWeb(response) as ReadableStream, { status: response.statusCode ?? 0 }));
      });
      request.on('error', reject);
      request.end(typeof init.body === 'string' ? init.body : undefined);
    });
}

describe('HTTP/JSON gateway over HTTPS with a client certificate (differential against etcd 3.4.23)', () => {
  let pki: TestPki;
  beforeAll(async () => {
    await requireTool('openssl', 'openssl');
    pki = makeTestPki();
  });
  afterAll(() => pki?.remove());

  it('answers the same session as etcd does, CN-authenticated calls included', async () => {
    // etcd's gateway calls its own gRPC port with the server's certificate: with auth on, a call
    // without token and without Accept header runs as the server certificate's CN (root here),
    // never as the HTTP client's (alice, no such user).
    const server = pki.issue('server', { cn: 'root' });
    const http = httpsFetch(pki, pki.issue('client', { cn: 'alice' }));
    const extraArgs = ['--cert-file', server.cert, '--key-file', server.key, '--trusted-ca-file', pki.ca.cert, '--client-cert-auth'];
    await expectSameAsEtcd((endpoint) => session(endpoint, http), { clientScheme: 'https', extraArgs });
  }, 180_000);
});

describe('--enable-grpc-gateway=false', () => {
  it('leaves /v3/ unserved while the rest of the client port still answers', async () => {
    const { startMetaStore } = await import('../support/servers.js');
    const server = await startMetaStore({ extraArgs: ['--enable-grpc-gateway=false'] });
    try {
      const off = await fetch(`${server.endpoint}/v3/kv/range`, { method: 'POST', body: JSON.stringify({ key: b64('a') }) });
      expect([off.status, await off.text()]).toEqual([404, '404 page not found\n']);
      const version = await fetch(`${server.endpoint}/version`);
      expect(version.status).toBe(200);
    } finally {
      await server.destroy();
    }
  }, 60_000);
});
