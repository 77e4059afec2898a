// The Lease service over gRPC on an in-process member: grant rules and errors, attach/detach
// through Put and DeleteRange, revoke deleting the keys in one revision, keep-alive streams,
// time-to-live, the lease list, and expiry observed by a watcher (no sleeps: the test awaits
// the watch DELETE event, with a deadline, and checks only that it came after the TTL).

import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { clients } from '../../src/grpc/proto.js';
import { within } from '../support/wait.js';
import { startInProcessMember, type InProcessMember } from './in-process.js';

let member: InProcessMember;

beforeAll(async () => {
  member = await startInProcessMember();
});
afterAll(async () => {
  await member.close();
});

const b = (text: string): Buffer => Buffer.from(text);

async function expectStatus(promise: Promise<unknown>, code: grpc.status, details: string): Promise<void> {
  await expect(promise).rejects.toMatchObject({ code, details });
}

async function get(key: string): Promise<any> {
  return member.call('KV', 'Range', { key: b(key) });
}

describe('Lease service (in-process)', () => {
  it('grants with a server-chosen positive ID, raising the TTL to the 2 s minimum', async () => {
    const response = await member.call('Lease', 'LeaseGrant', { TTL: 1 });
    const id = BigInt(response.ID);
    expect(id > 0n && id < 1n << 63n).toBe(true);
    expect(response.TTL).toBe('2');
    expect(response.header.memberId).toBe('2');
    const second = await member.call('Lease', 'LeaseGrant', { TTL: 60 });
    expect(second.ID).not.toBe(response.ID);
    expect(second.TTL).toBe('60');
  });

  it('a client-chosen ID, "lease already exists", and the TTL ceiling', async () => {
    const response = await member.call('Lease', 'LeaseGrant', { TTL: 30, ID: '1000' });
    expect(response.ID).toBe('1000');
    await expectStatus(member.call('Lease', 'LeaseGrant', { TTL: 30, ID: '1000' }), grpc.status.FAILED_PRECONDITION, 'etcdserver: lease already exists');
    await expectStatus(member.call('Lease', 'LeaseGrant', { TTL: '9000000001' }), grpc.status.OUT_OF_RANGE, 'etcdserver: too large lease TTL');
    const max = await member.call('Lease', 'LeaseGrant', { TTL: '9000000000' });
    expect(max.TTL).toBe('9000000000');
  });

  it('put attaches, put without a lease detaches, revoke deletes the rest in one revision', async () => {
    const { ID: id } = await member.call('Lease', 'LeaseGrant', { TTL: 100 });
    for (const key of ['r/b', 'r/a', 'r/c']) await member.call('KV', 'Put', { key: b(key), value: b('v'), lease: id });
    let ttl = await member.call('Lease', 'LeaseTimeToLive', { ID: id, keys: true });
    expect(ttl.keys.map(String)).toEqual(['r/a', 'r/b', 'r/c']);
    expect(ttl.grantedTTL).toBe('100');
    expect(Number(ttl.TTL)).toBeGreaterThanOrEqual(99);

    await member.call('KV', 'Put', { key: b('r/c'), value: b('no lease') });
    await member.call('KV', 'Put', { key: b('r/b'), value: b('keeps lease'), ignoreLease: true });
    await member.call('KV', 'DeleteRange', { key: b('r/a') });
    ttl = await member.call('Lease', 'LeaseTimeToLive', { ID: id, keys: true });
    expect(ttl.keys.map(String)).toEqual(['r/b']);
    await member.call('KV', 'Put', { key: b('r/a'), value: b('again'), lease: id });

    const before = Number((await get('r/c')).header.revision);
    const revoked = await member.call('Lease', 'LeaseRevoke', { ID: id });
    // Two keys deleted, one revision.
    expect(Number(revoked.header.revision)).toBe(before + 1);
    expect((await get('r/a')).kvs).toEqual([]);
    expect((await get('r/b')).kvs).toEqual([]);
    expect((await get('r/c')).kvs[0].value.toString()).toBe('no lease');

    await expectStatus(member.call('Lease', 'LeaseRevoke', { ID: id }), grpc.status.NOT_FOUND, 'etcdserver: requested lease not found');
    await expectStatus(member.call('KV', 'Put', { key: b('r/x'), value: b('v'), lease: id }), grpc.status.NOT_FOUND, 'etcdserver: requested lease not found');
    const unknown = await member.call('Lease', 'LeaseTimeToLive', { ID: id, keys: true });
    expect(unknown.TTL).toBe('-1');
    expect(unknown.grantedTTL).toBe('0');
    expect(unknown.ID).toBe(id);
  });

  it('revoking a lease without keys does not bump the revision', async () => {
    const { ID: id } = await member.call('Lease', 'LeaseGrant', { TTL: 10 });
    const before = Number((await get('nothing')).header.revision);
    const revoked = await member.call('Lease', 'LeaseRevoke', { ID: id });
    expect(Number(revoked.header.revision)).toBe(before);
  });

  it('keep-alive answers each request with the granted TTL, or 0 for an unknown lease', async () => {
    const { ID: id } = await member.call('Lease', 'LeaseGrant', { TTL: 7 });
    const client = new clients.Lease(member.endpoint, grpc.credentials.createInsecure());
    try {
      const stream = (client as any).LeaseKeepAlive();
      const responses: any[] = [];
      const done = new Promise<void>((resolve, reject) => {
        stream.on('data', (r: any) => {
          responses.push(r);
          if (responses.length === 3) stream.end();
        });
        stream.on('end', resolve);
        stream.on('error', reject);
      });
      stream.write({ ID: id });
      stream.write({ ID: '424242' });
      stream.write({ ID: id });
      await done;
      expect(responses.map((r) => [r.ID, r.TTL])).toEqual([
        [id, '7'],
        ['424242', '0'],
        [id, '7'],
      ]);
      expect(responses[0].header.clusterId).toBe('1');
    } finally {
      client.close();
    }
  });

  it('lists every lease', async () => {
    const { ID: id } = await member.call('Lease', 'LeaseGrant', { TTL: 50 });
    const list = await member.call('Lease', 'LeaseLeases', {});
    expect(list.leases.map((l: any) => l.ID)).toContain(id);
    expect(list.header.revision).toBeDefined();
  });

  it('an expired lease is revoked through the log: a watcher sees its key deleted, not before the TTL', async () => {
    // Taken before the grant: the member starts the TTL when it applies the grant, later.
    const requested = performance.now();
    const { ID: id, TTL } = await member.call('Lease', 'LeaseGrant', { TTL: 2 });
    expect(TTL).toBe('2');
    const put = await member.call('KV', 'Put', { key: b('exp/k'), value: b('v'), lease: id });
    const client = new clients.Watch(member.endpoint, grpc.credentials.createInsecure());
    try {
      const stream = (client as any).Watch();
      const deleted = new Promise<any>((resolve, reject) => {
        stream.on('data', (r: any) => {
          const event = r.events?.find((e: any) => e.type === 1);
          if (event) resolve(event);
        });
        stream.on('error', reject);
      });
      stream.write({ createRequest: { key: b('exp/k'), startRevision: Number(put.header.revision) + 1 } });
      const event = await within(deleted, { what: 'the DELETE event of the expiry', timeoutMs: 10_000 });
      const elapsedMs = performance.now() - requested;
      stream.cancel();
      expect(event.kv.key.toString()).toBe('exp/k');
      // The one bound the protocol gives: a lease never expires before its TTL (same process,
      // same monotonic clock). How late it expires depends on the machine's load.
      expect(elapsedMs).toBeGreaterThanOrEqual(2000);
    } finally {
      client.close();
    }
    expect((await get('exp/k')).kvs).toEqual([]);
    expect((await member.call('Lease', 'LeaseTimeToLive', { ID: id })).TTL).toBe('-1');
  });
});
