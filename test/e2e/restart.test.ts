// Durability across restarts of a real MetaStore process: after SIGTERM and after kill -9,
// every acknowledged write is there with its value, and the revision continues where it
// stopped (a graceful stop loses nothing at all; a crash loses nothing acknowledged).

import * as grpc from '@grpc/grpc-js';
import { afterEach, describe, expect, it } from 'vitest';
import { clients } from '../../src/grpc/proto.js';
import { startMetaStore, type MetaStoreHandle } from '../support/servers.js';
import { etcdctl } from '../support/tools.js';

let server: MetaStoreHandle | undefined;

afterEach(async () => {
  await server?.destroy();
  server = undefined;
});

function kvClient(endpoint: string): {
  put(key: string, value: string): Promise<number>;
  range(key: string): Promise<{ revision: number; value?: string }>;
  close(): void;
} {
  const client = new clients.KV(endpoint.replace('http://', ''), grpc.credentials.createInsecure()) as any;
  return {
    put: (key, value) =>
      new Promise((resolve, reject) =>
        client.Put({ key: Buffer.from(key), value: Buffer.from(value) }, (error: Error | null, response: any) =>
          error ? reject(error) : resolve(Number(response.header.revision)),
        ),
      ),
    range: (key) =>
      new Promise((resolve, reject) =>
        client.Range({ key: Buffer.from(key) }, (error: Error | null, response: any) =>
          error ? reject(error) : resolve({ revision: Number(response.header.revision), value: response.kvs[0]?.value.toString() }),
        ),
      ),
    close: () => client.close(),
  };
}

describe('restart', () => {
  it('after SIGTERM: every key, the same revision, and the next write continues the revision', async () => {
    server = await startMetaStore();
    for (let i = 0; i < 20; i++) {
      const put = await etcdctl(server.endpoint, ['put', `k${i}`, `v${i}`]);
      expect(put.code).toBe(0);
    }
    const before = await etcdctl(server.endpoint, ['get', 'k', '--prefix', '-w', 'json']);
    await server.stop();
    await server.restart();
    const after = await etcdctl(server.endpoint, ['get', 'k', '--prefix', '-w', 'json']);
    // Everything but the Raft term (a restarted member campaigns again, as etcd's does).
    const withoutTerm = (text: string) => text.replace(/"raft_term":\d+/, '"raft_term":0');
    expect(withoutTerm(after.stdout)).toBe(withoutTerm(before.stdout));
    const next = JSON.parse((await etcdctl(server.endpoint, ['put', 'k-next', 'x', '-w', 'json'])).stdout);
    expect(next.header.revision).toBe(JSON.parse(before.stdout).header.revision + 1);
  });

  it('after kill -9 under concurrent load: every acknowledged write survives and revisions go on', async () => {
    server = await startMetaStore();
    const kv = kvClient(server.endpoint);
    const acked = new Map<string, { value: string; revision: number }>();
    let stop = false;
    let killed!: () => void;
    const killedOnce = new Promise<void>((resolve) => (killed = resolve));
    // 32 writers keep writing; the test kills the server once 2,000 writes were acknowledged.
    const writers = Array.from({ length: 32 }, async (_, w) => {
      for (let i = 0; !stop; i++) {
        const key = `w${w}/${i % 50}`;
        const value = `${w}-${i}`;
        try {
          const revision = await kv.put(key, value);
          acked.set(key, { value, revision });
          if (acked.size >= 1600 || i > 300) killed();
        } catch {
          return; // the server is gone: unacknowledged, so it may or may not have happened
        }
      }
    });
    await killedOnce;
    await server.kill9();
    stop = true;
    await Promise.all(writers);
    kv.close();
    expect(acked.size).toBeGreaterThan(100);

    await server.restart();
    const check = kvClient(server.endpoint);
    let maxAcked = 0;
    for (const [key, { value, revision }] of acked) {
      maxAcked = Math.max(maxAcked, revision);
      const got = await check.range(key);
      // A later write to the same key may have landed without its ack; then it has a larger
      // revision than the acked one. Otherwise the acked value must be exactly there.
      if (got.value !== value) {
        const detail = await new Promise<any>((resolve, reject) =>
          (new clients.KV(server!.endpoint.replace('http://', ''), grpc.credentials.createInsecure()) as any).Range(
            { key: Buffer.from(key) },
            (error: Error | null, response: any) => (error ? reject(error) : resolve(response)),
          ),
        );
        expect(Number(detail.kvs[0].modRevision), `${key} lost its acknowledged value ${value}`).toBeGreaterThan(revision);
      }
    }
    const next = await check.put('after-crash', 'x');
    expect(next).toBeGreaterThan(maxAcked);
    check.close();
  });
});
