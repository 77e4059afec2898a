// etcdctl 3.4's per-endpoint commands against MetaStore with URL endpoints.
//
// `endpoint status|health|hashkv` and `--cluster` send the endpoint string ("http://host:port")
// as the HTTP/2 :authority, which Node's nghttp2 refused (RST_STREAM PROTOCOL_ERROR); the client
// port's own HTTP/2 connection (src/grpc/h2) takes any :authority. Each command here must
// succeed exactly as it does against etcd, and ordinary requests on the same kind of endpoint
// keep working.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startMetaStore, type MetaStoreHandle } from '../support/servers.js';
import { etcdctl } from '../support/tools.js';

let server: MetaStoreHandle;

beforeAll(async () => {
  server = await startMetaStore();
});

afterAll(async () => {
  await server?.destroy();
});

/** Parses etcdctl JSON with 64-bit IDs kept as strings. */
function parseJson(text: string): any {
  return JSON.parse(text.replace(/"(member_id|leader|cluster_id|ID)":(\d+)/g, '"$1":"$2"'));
}

describe('etcdctl endpoint commands with an http:// endpoint', () => {
  it('endpoint status succeeds and reports this member', async () => {
    const result = await etcdctl(server.endpoint, ['endpoint', 'status', '-w', 'json', '--command-timeout=5s']);
    expect(result.stderr).not.toMatch(/RST_STREAM|PROTOCOL_ERROR/);
    expect(result.code).toBe(0);
    const [status] = parseJson(result.stdout) as Array<{ Endpoint: string; Status: any }>;
    expect(status?.Endpoint).toBe(server.endpoint);
    expect(status?.Status.header.member_id).toMatch(/^\d+$/);
    expect(status?.Status.version).toBeTruthy();
  });

  it('endpoint health succeeds', async () => {
    const result = await etcdctl(server.endpoint, ['endpoint', 'health', '--command-timeout=5s']);
    expect(result.code).toBe(0);
    expect(result.stdout + result.stderr).toContain(`${server.endpoint} is healthy`);
  });

  it('endpoint hashkv succeeds', async () => {
    const result = await etcdctl(server.endpoint, ['endpoint', 'hashkv', '-w', 'json', '--command-timeout=5s']);
    expect(result.code).toBe(0);
    // (hash is omitted from the JSON while it is 0, as for an empty store.)
    const [entry] = parseJson(result.stdout) as Array<{ Endpoint: string; HashKV: { header: { member_id: string } } }>;
    expect(entry?.Endpoint).toBe(server.endpoint);
    expect(entry?.HashKV.header.member_id).toMatch(/^\d+$/);
  });

  it('endpoint status --cluster reaches the single member through its advertised client URL', async () => {
    const result = await etcdctl(server.endpoint, ['endpoint', 'status', '--cluster', '-w', 'json', '--command-timeout=5s']);
    expect(result.code).toBe(0);
    const statuses = parseJson(result.stdout) as Array<{ Endpoint: string; Status: any }>;
    expect(statuses.map((s) => s.Endpoint)).toEqual([server.endpoint]);
  });

  it('endpoint health --cluster succeeds', async () => {
    const result = await etcdctl(server.endpoint, ['endpoint', 'health', '--cluster', '--command-timeout=5s']);
    expect(result.code).toBe(0);
    expect(result.stdout + result.stderr).toContain(`${server.endpoint} is healthy`);
  });

  it('the same endpoint, with and without the scheme, serves puts and gets', async () => {
    const bare = server.endpoint.replace('http://', '');
    expect((await etcdctl(server.endpoint, ['put', 'authority-key', 'v1'])).stdout.trim()).toBe('OK');
    expect((await etcdctl(bare, ['get', 'authority-key', '--print-value-only'])).stdout.trim()).toBe('v1');
    const status = await etcdctl(bare, ['endpoint', 'status', '-w', 'json']);
    expect(status.code).toBe(0);
    expect((parseJson(status.stdout) as Array<{ Endpoint: string }>)[0]?.Endpoint).toBe(bare);
  });
});
