// The deployment guide's optional HTTP API port (server.http.port, off by default): the client
// port's HTTP/1.1 endpoints (etcd's JSON gateway, /health, ...) on a port of their own, set here
// through METASTORE_SERVER_HTTP_PORT as an operator would. With client TLS it is HTTPS with the
// client port's certificate and client-certificate check. A taken port stops start-up with one
// line naming the key, exit code 2. Without the key nothing listens there.

import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePorts } from '../support/ports.js';
import { startMetaStore, type MetaStoreHandle } from '../support/servers.js';
import { run } from '../support/tools.js';
import { makeTestPki, type TestPki } from './tls-certs.js';

const b64 = (text: string) => Buffer.from(text).toString('base64');

async function curl(args: readonly string[]): Promise<{ status: number; body: string }> {
  const result = await run('curl', ['-sS', '-o', '-', '-w', '\n%{http_code}', ...args]);
  const cut = result.stdout.lastIndexOf('\n');
  return { status: Number(result.stdout.slice(cut + 1)), body: result.stdout.slice(0, cut) };
}

/** Resolves true when something accepts a TCP connection on the port. */
function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: '127.0.0.1', port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

describe('server.http.port (plain text)', () => {
  let member: MetaStoreHandle;
  let httpPort = 0;

  beforeAll(async () => {
    [httpPort] = (await freePorts(1)) as [number];
    // The gateway is off on the client URLs; the HTTP API port still serves it.
    member = await startMetaStore({ env: { METASTORE_SERVER_HTTP_PORT: String(httpPort) }, extraArgs: ['--enable-grpc-gateway=false'] });
  }, 60_000);
  afterAll(async () => member?.destroy());

  it('serves the JSON gateway and /health on its own port', async () => {
    const base = `http://127.0.0.1:${httpPort}`;
    const put = await curl(['-X', 'POST', '-d', JSON.stringify({ key: b64('api'), value: b64('port') }), `${base}/v3/kv/put`]);
    expect(put.status).toBe(200);
    expect(JSON.parse(put.body)).toMatchObject({ header: { revision: '2' } });
    const range = await curl(['-X', 'POST', '-d', JSON.stringify({ key: b64('api') }), `${base}/v3/kv/range`]);
    expect(JSON.parse(range.body)).toMatchObject({ kvs: [{ key: b64('api'), value: b64('port') }], count: '1' });
    expect(await curl([`${base}/health`])).toEqual({ status: 200, body: '{"health":"true"}' });
    expect(member.logs()).toContain(`"address":"http://127.0.0.1:${httpPort}","msg":"serving the HTTP API`);
  });

  it('leaves the client port as --enable-grpc-gateway=false says: no gateway there, /health still', async () => {
    const put = await curl(['-X', 'POST', '-d', '{}', `${member.endpoint}/v3/kv/range`]);
    expect(put.status).toBe(404);
    expect((await curl([`${member.endpoint}/health`])).status).toBe(200);
  });

  it('a taken port stops a second member with one line naming the key, exit code 2', async () => {
    const second = startMetaStore({ env: { METASTORE_SERVER_HTTP_PORT: String(httpPort) } });
    await expect(second).rejects.toThrow(
      /exited \(code 2, signal null\)[\s\S]*\nconfig error: server\.http\.port: cannot listen on 127\.0\.0\.1:\d+: port \d+ is already in use\n/,
    );
  }, 60_000);
});

describe('without server.http.port', () => {
  it('opens no HTTP API port', async () => {
    const [unused] = (await freePorts(1)) as [number];
    const member = await startMetaStore();
    try {
      expect(member.logs()).not.toContain('serving the HTTP API');
      expect(await accepts(unused)).toBe(false);
      // The member's other ports are all it opened: the usual ones answer.
      expect(await accepts(member.clientPort)).toBe(true);
    } finally {
      await member.destroy();
    }
  }, 60_000);
});

describe('server.http.port with client TLS', () => {
  let pki: TestPki;
  let member: MetaStoreHandle;
  let httpPort = 0;

  beforeAll(async () => {
    pki = makeTestPki();
    const server = pki.issue('server', { cn: 'localhost' });
    [httpPort] = (await freePorts(1)) as [number];
    member = await startMetaStore({
      clientScheme: 'https',
      env: { METASTORE_SERVER_HTTP_PORT: String(httpPort) },
      extraArgs: ['--cert-file', server.cert, '--key-file', server.key, '--trusted-ca-file', pki.ca.cert, '--client-cert-auth'],
    });
  }, 60_000);
  afterAll(async () => {
    await member?.destroy();
    pki?.remove();
  });

  it('is HTTPS with the client port certificate and requires a client certificate', async () => {
    const client = pki.issue('client', { cn: 'root' });
    const base = `https://127.0.0.1:${httpPort}`;
    // Without --http1.1: the port offers only HTTP/1.1 in ALPN, so curl's default works.
    const withCert = ['--cacert', pki.ca.cert, '--cert', client.cert, '--key', client.key];
    const put = await curl([...withCert, '-X', 'POST', '-d', JSON.stringify({ key: b64('tls'), value: b64('api') }), `${base}/v3/kv/put`]);
    expect(put.status).toBe(200);
    const range = await curl([...withCert, '-X', 'POST', '-d', JSON.stringify({ key: b64('tls') }), `${base}/v3/kv/range`]);
    expect(JSON.parse(range.body)).toMatchObject({ kvs: [{ value: b64('api') }] });
    expect(await curl([...withCert, `${base}/health`])).toEqual({ status: 200, body: '{"health":"true"}' });
    const anonymous = await run('curl', ['-sS', '--cacert', pki.ca.cert, `${base}/health`]);
    expect(anonymous.code).not.toBe(0);
  });
});
