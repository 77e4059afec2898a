// The Auth service and its enforcement over gRPC on an in-process member: management calls and
// their errors, enable/disable, Authenticate, tokens (forged, no token, unprivileged), range
// permissions on Range/Put/DeleteRange/Txn (nested), revision bumps, password change killing
// old tokens, and the state surviving a restart of the KV server.

import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { clients } from '../../src/grpc/proto.js';
import { startInProcessMember, type InProcessMember } from './in-process.js';

let member: InProcessMember;
const stubs = new Map<string, any>();

beforeAll(async () => {
  member = await startInProcessMember();
});
afterAll(async () => {
  for (const stub of stubs.values()) stub.close();
  await member.close();
});

const b = (text: string): Buffer => Buffer.from(text);

function call<T = any>(service: keyof typeof clients, method: string, request: object, token?: string): Promise<T> {
  let stub = stubs.get(service);
  if (!stub) {
    stub = new clients[service](member.endpoint, grpc.credentials.createInsecure());
    stubs.set(service, stub);
  }
  const metadata = new grpc.Metadata();
  if (token !== undefined) metadata.set('token', token);
  return new Promise((resolve, reject) => {
    stub[method](request, metadata, (error: grpc.ServiceError | null, response: T) => (error ? reject(error) : resolve(response)));
  });
}

async function expectError(promise: Promise<unknown>, code: grpc.status, details: string): Promise<void> {
  await expect(promise).rejects.toMatchObject({ code, details });
}

const READ = 0;
const WRITE = 1;
const READWRITE = 2;

async function login(name: string, password: string): Promise<string> {
  return (await call('Auth', 'Authenticate', { name, password })).token;
}

describe('Auth service (in-process)', () => {
  let root = '';
  let alice = '';

  it('refuses to enable without root, manages users and roles with etcd errors', async () => {
    await expectError(call('Auth', 'AuthEnable', {}), grpc.status.FAILED_PRECONDITION, 'etcdserver: root user does not exist');
    await call('Auth', 'UserAdd', { name: 'root', password: 'rootpw' });
    await expectError(call('Auth', 'AuthEnable', {}), grpc.status.FAILED_PRECONDITION, 'etcdserver: root user does not have root role');
    await expectError(call('Auth', 'UserAdd', { name: 'root', password: 'x' }), grpc.status.FAILED_PRECONDITION, 'etcdserver: user name already exists');
    await expectError(call('Auth', 'UserAdd', { name: '', password: 'x' }), grpc.status.INVALID_ARGUMENT, 'etcdserver: user name is empty');
    await call('Auth', 'RoleAdd', { name: 'root' });
    await call('Auth', 'UserGrantRole', { user: 'root', role: 'root' });
    await call('Auth', 'UserAdd', { name: 'alice', password: 'alicepw' });
    await call('Auth', 'UserAdd', { name: 'certonly', options: { noPassword: true } });
    await call('Auth', 'RoleAdd', { name: 'foo-rw' });
    await expectError(call('Auth', 'RoleAdd', { name: 'foo-rw' }), grpc.status.FAILED_PRECONDITION, 'etcdserver: role name already exists');
    await call('Auth', 'RoleGrantPermission', { name: 'foo-rw', perm: { permType: READWRITE, key: b('foo'), rangeEnd: b('fop') } });
    await call('Auth', 'RoleGrantPermission', { name: 'foo-rw', perm: { permType: READ, key: b('pub'), rangeEnd: b('') } });
    await call('Auth', 'UserGrantRole', { user: 'alice', role: 'foo-rw' });
    await expectError(call('Auth', 'UserGrantRole', { user: 'alice', role: 'nope' }), grpc.status.FAILED_PRECONDITION, 'etcdserver: role name not found');
    await expectError(
      call('Auth', 'UserRevokeRole', { name: 'root', role: 'foo-rw' }),
      grpc.status.FAILED_PRECONDITION,
      'etcdserver: role is not granted to the user',
    );
    await expectError(
      call('Auth', 'RoleRevokePermission', { role: 'foo-rw', key: b('zzz'), rangeEnd: b('') }),
      grpc.status.FAILED_PRECONDITION,
      'etcdserver: permission is not granted to the role',
    );
    expect((await call('Auth', 'UserList', {})).users).toEqual(['alice', 'certonly', 'root']);
    expect((await call('Auth', 'RoleList', {})).roles).toEqual(['foo-rw', 'root']);
    expect((await call('Auth', 'UserGet', { name: 'alice' })).roles).toEqual(['foo-rw']);
    const perms = (await call('Auth', 'RoleGet', { role: 'foo-rw' })).perm;
    expect(perms.map((p: any) => [p.key.toString(), p.rangeEnd.toString(), p.permType])).toEqual([
      ['foo', 'fop', READWRITE],
      ['pub', '', READ],
    ]);
    await expectError(
      call('Auth', 'Authenticate', { name: 'root', password: 'rootpw' }),
      grpc.status.FAILED_PRECONDITION,
      'etcdserver: authentication is not enabled',
    );
    const before = Number((await call('Auth', 'AuthStatus', {})).authRevision);
    await call('Auth', 'AuthEnable', {});
    const status = await call('Auth', 'AuthStatus', {}, await login('root', 'rootpw'));
    expect(status.enabled).toBe(true);
    expect(Number(status.authRevision)).toBe(before + 1);
  });

  it('logs in, refuses bad passwords, no-password users and forged tokens', async () => {
    root = await login('root', 'rootpw');
    alice = await login('alice', 'alicepw');
    await expectError(login('alice', 'wrong'), grpc.status.INVALID_ARGUMENT, 'etcdserver: authentication failed, invalid user ID or password');
    await expectError(login('nobody', 'x'), grpc.status.INVALID_ARGUMENT, 'etcdserver: authentication failed, invalid user ID or password');
    await expectError(login('certonly', ''), grpc.status.UNKNOWN, 'auth: authentication failed, password was given for no password user');
    const forged = alice.replace(/^[^.]+/, Buffer.from('root').toString('base64url'));
    await expectError(call('KV', 'Range', { key: b('foo') }, forged), grpc.status.UNAUTHENTICATED, 'etcdserver: invalid auth token');
    await expectError(call('KV', 'Range', { key: b('foo') }, 'garbage'), grpc.status.UNAUTHENTICATED, 'etcdserver: invalid auth token');
  });

  it('enforces key-range permissions on every KV call, nested txns included', async () => {
    await expectError(call('KV', 'Put', { key: b('foo1'), value: b('v') }), grpc.status.INVALID_ARGUMENT, 'etcdserver: user name is empty');
    await expectError(call('KV', 'Range', { key: b('foo1') }), grpc.status.INVALID_ARGUMENT, 'etcdserver: user name is empty');
    await call('KV', 'Put', { key: b('foo1'), value: b('v') }, alice);
    expect((await call('KV', 'Range', { key: b('foo'), rangeEnd: b('fop') }, alice)).count).toBe('1');
    await expectError(call('KV', 'Range', { key: b('foo'), rangeEnd: b('\0') }, alice), grpc.status.PERMISSION_DENIED, 'etcdserver: permission denied');
    await expectError(call('KV', 'Put', { key: b('pub'), value: b('v') }, alice), grpc.status.PERMISSION_DENIED, 'etcdserver: permission denied');
    await call('KV', 'Put', { key: b('pub'), value: b('v') }, root);
    expect((await call('KV', 'Range', { key: b('pub') }, alice)).kvs[0].value.toString()).toBe('v');
    await expectError(call('KV', 'DeleteRange', { key: b('a'), rangeEnd: b('z') }, alice), grpc.status.PERMISSION_DENIED, 'etcdserver: permission denied');
    await call('KV', 'DeleteRange', { key: b('foo1') }, alice);
    const nested = {
      compare: [],
      success: [{ requestTxn: { success: [{ requestPut: { key: b('bar'), value: b('x') } }] } }],
    };
    await expectError(call('KV', 'Txn', nested, alice), grpc.status.PERMISSION_DENIED, 'etcdserver: permission denied');
    const allowed = {
      compare: [{ key: b('foo2'), target: 'VERSION', result: 'EQUAL', version: 0 }],
      success: [{ requestPut: { key: b('foo2'), value: b('t') } }],
    };
    expect((await call('KV', 'Txn', allowed, alice)).succeeded).toBe(true);
    await expectError(
      call('KV', 'Txn', { compare: [{ key: b('x'), target: 'VERSION', result: 'EQUAL', version: 0 }] }, alice),
      grpc.status.PERMISSION_DENIED,
      'etcdserver: permission denied',
    );
  });

  it('keeps auth management to root', async () => {
    await expectError(call('Auth', 'UserList', {}, alice), grpc.status.PERMISSION_DENIED, 'etcdserver: permission denied');
    await expectError(call('Auth', 'RoleAdd', { name: 'x' }, alice), grpc.status.PERMISSION_DENIED, 'etcdserver: permission denied');
    await expectError(call('Auth', 'AuthDisable', {}), grpc.status.INVALID_ARGUMENT, 'etcdserver: user name is empty');
    expect((await call('Auth', 'UserGet', { name: 'alice' }, alice)).roles).toEqual(['foo-rw']);
    expect((await call('Auth', 'RoleGet', { role: 'foo-rw' }, alice)).perm).toHaveLength(2);
    await expectError(call('Auth', 'UserDelete', { name: 'root' }, root), grpc.status.INVALID_ARGUMENT, 'etcdserver: invalid auth management');
  });

  it('checks Watch, Lease, Lock, Election, Maintenance and Cluster calls', async () => {
    const watch = (token: string | undefined, key: string): Promise<any> => {
      const stub: any = new clients.Watch(member.endpoint, grpc.credentials.createInsecure());
      const metadata = new grpc.Metadata();
      if (token !== undefined) metadata.set('token', token);
      const stream = stub.Watch(metadata);
      return new Promise((resolve, reject) => {
        stream.on('data', (response: any) => {
          stream.cancel();
          stub.close();
          resolve(response);
        });
        stream.on('error', (error: grpc.ServiceError) => {
          if (error.code !== grpc.status.CANCELLED) reject(error);
        });
        stream.write({ createRequest: { key: b(key) } });
      });
    };
    expect(await watch(alice, 'bar')).toMatchObject({ created: true, canceled: true, watchId: '-1', cancelReason: 'etcdserver: permission denied' });
    expect(await watch(undefined, 'foo1')).toMatchObject({ canceled: true, cancelReason: 'etcdserver: user name is empty' });
    expect(await watch(alice, 'foo1')).toMatchObject({ created: true, canceled: false });

    const lease = (await call('Lease', 'LeaseGrant', { TTL: 60 }, alice)).ID;
    await call('KV', 'Put', { key: b('pub'), value: b('leased'), lease }, root);
    // alice may read "pub" but not write it: time-to-live yes, revoke no.
    expect((await call('Lease', 'LeaseTimeToLive', { ID: lease, keys: true }, alice)).keys).toEqual([b('pub')]);
    await expectError(call('Lease', 'LeaseTimeToLive', { ID: lease, keys: true }), grpc.status.INVALID_ARGUMENT, 'etcdserver: user name is empty');
    await expectError(call('Lease', 'LeaseRevoke', { ID: lease }, alice), grpc.status.PERMISSION_DENIED, 'etcdserver: permission denied');
    await call('Lease', 'LeaseRevoke', { ID: lease }, root);

    const mine = (await call('Lease', 'LeaseGrant', { TTL: 60 }, alice)).ID;
    const held = await call('Lock', 'Lock', { name: b('foo-lock'), lease: mine }, alice);
    expect(held.key.toString()).toMatch(/^foo-lock\//);
    await call('Lock', 'Unlock', { key: held.key }, alice);
    await expect(call('Lock', 'Lock', { name: b('bar-lock'), lease: mine }, alice)).rejects.toMatchObject({ details: 'etcdserver: permission denied' });
    await expect(call('Election', 'Campaign', { name: b('bar-election'), lease: mine, value: b('v') }, alice)).rejects.toMatchObject({
      details: 'etcdserver: permission denied',
    });

    for (const [method, request] of [
      ['Hash', {}],
      ['HashKV', {}],
      ['Defragment', {}],
    ] as const) {
      await expectError(call('Maintenance', method, request, alice), grpc.status.PERMISSION_DENIED, 'etcdserver: permission denied');
      await expectError(call('Maintenance', method, request), grpc.status.INVALID_ARGUMENT, 'etcdserver: user name is empty');
      await call('Maintenance', method, request, root);
    }
    await call('Maintenance', 'Status', {}, alice);
    await expectError(call('Cluster', 'MemberRemove', { ID: '7' }, alice), grpc.status.PERMISSION_DENIED, 'etcdserver: permission denied');
  });

  it('revoking a permission and changing a password take effect at once', async () => {
    await call('Auth', 'RoleRevokePermission', { role: 'foo-rw', key: b('foo'), rangeEnd: b('fop') }, root);
    await expectError(call('KV', 'Put', { key: b('foo3'), value: b('v') }, alice), grpc.status.PERMISSION_DENIED, 'etcdserver: permission denied');
    await call('Auth', 'RoleGrantPermission', { name: 'foo-rw', perm: { permType: WRITE, key: b('foo3'), rangeEnd: b('') } }, root);
    await call('KV', 'Put', { key: b('foo3'), value: b('v') }, alice);
    await call('Auth', 'UserChangePassword', { name: 'alice', password: 'new' }, root);
    await expectError(call('KV', 'Put', { key: b('foo3'), value: b('v') }, alice), grpc.status.UNAUTHENTICATED, 'etcdserver: invalid auth token');
    alice = await login('alice', 'new');
    await call('KV', 'Put', { key: b('foo3'), value: b('w') }, alice);
  });

  it('disable turns checks off and kills tokens for the next enable', async () => {
    await call('Auth', 'AuthDisable', {}, root);
    await call('KV', 'Put', { key: b('anything'), value: b('v') });
    await call('Auth', 'AuthEnable', {});
    await expectError(call('KV', 'Range', { key: b('foo3') }, alice), grpc.status.UNAUTHENTICATED, 'etcdserver: invalid auth token');
    root = await login('root', 'rootpw');
    await call('Auth', 'AuthDisable', {}, root);
  });
});
