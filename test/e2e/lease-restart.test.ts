// Leases across restarts of a real MetaStore process: after kill -9 and after SIGTERM a
// granted lease is still there with its granted TTL, its attached keys and a remaining TTL no
// larger than what it had, a revoked lease stays revoked, and revoking after the restart still
// deletes the keys attached before it (the attachment was rebuilt from the persisted state).

import { afterEach, describe, expect, it } from 'vitest';
import { startMetaStore, type MetaStoreHandle } from '../support/servers.js';
import { etcdctl } from '../support/tools.js';

let server: MetaStoreHandle | undefined;

afterEach(async () => {
  await server?.destroy();
  server = undefined;
});

async function ok(endpoint: string, args: string[]): Promise<string> {
  const r = await etcdctl(endpoint, args);
  if (r.code !== 0) throw new Error(`etcdctl ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}

async function timeToLive(endpoint: string, id: string): Promise<{ ttl: number; granted: number; keys: string[] }> {
  const json = JSON.parse(await ok(endpoint, ['lease', 'timetolive', id, '--keys', '-w', 'json']));
  return { ttl: json.ttl, granted: json['granted-ttl'], keys: (json.keys ?? []).map((k: string) => Buffer.from(k, 'base64').toString()).sort() };
}

describe('leases survive restarts', () => {
  it('kill -9 then SIGTERM: lease, TTL and attached keys are kept; revoke still deletes the keys', async () => {
    server = await startMetaStore();
    const endpoint = server.endpoint;
    const id = /^lease ([0-9a-f]+) granted/.exec(await ok(endpoint, ['lease', 'grant', '300']))![1]!;
    const gone = /^lease ([0-9a-f]+) granted/.exec(await ok(endpoint, ['lease', 'grant', '300']))![1]!;
    await ok(endpoint, ['put', `--lease=${id}`, 'a', '1']);
    await ok(endpoint, ['put', `--lease=${id}`, 'b', '2']);
    await ok(endpoint, ['put', `--lease=${gone}`, 'c', '3']);
    await ok(endpoint, ['lease', 'revoke', gone]);
    const before = await timeToLive(endpoint, id);
    expect(before).toMatchObject({ granted: 300, keys: ['a', 'b'] });

    await server.kill9();
    await server.restart();
    let after = await timeToLive(endpoint, id);
    expect(after.granted).toBe(300);
    expect(after.keys).toEqual(['a', 'b']);
    // Restored from the last checkpoint (the grant), plus at most one election timeout (1 s).
    expect(after.ttl).toBeGreaterThan(280);
    expect(after.ttl).toBeLessThanOrEqual(301);
    expect((await timeToLive(endpoint, gone)).ttl).toBe(-1);
    expect(await ok(endpoint, ['get', 'c'])).toBe('');

    await server.stop();
    await server.restart();
    after = await timeToLive(endpoint, id);
    expect(after).toMatchObject({ granted: 300, keys: ['a', 'b'] });
    expect(await ok(endpoint, ['lease', 'list'])).toBe(`found 1 leases\n${id}\n`);
    expect(await ok(endpoint, ['lease', 'keep-alive', '--once', id])).toBe(`lease ${id} keepalived with TTL(300)\n`);

    await ok(endpoint, ['lease', 'revoke', id]);
    expect(await ok(endpoint, ['get', '--prefix', ''])).toBe('');
    await server.kill9();
    await server.restart();
    expect(await ok(endpoint, ['lease', 'list'])).toBe('found 0 leases\n');
    expect(await ok(endpoint, ['get', '--prefix', ''])).toBe('');
  });
});
