// Every RPC of every service, called with auth enabled twice: without a token and with the
// token of a user that has no roles. Each answers etcd's error for that case (or succeeds
// where etcd 3.4 checks nothing: Compact, LeaseGrant, LeaseKeepAlive, LeaseLeases,
// MemberList, Alarm GET, Status). The table must name every method the proto declares.

import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { clients, services, type ServiceName } from '../../src/grpc/proto.js';
import { startInProcessMember, type InProcessMember } from './in-process.js';

let member: InProcessMember;
const stubs = new Map<string, any>();
let nobody = '';
let rootToken = '';
let leaseWithKey = '';
let emptyLease = '';
let compactTo = 1;

const b = (text: string): Buffer => Buffer.from(text);

function stub(service: ServiceName): any {
  let s = stubs.get(service);
  if (!s) {
    s = new clients[service](member.endpoint, grpc.credentials.createInsecure());
    stubs.set(service, s);
  }
  return s;
}

function meta(token: string | undefined): grpc.Metadata {
  const metadata = new grpc.Metadata();
  if (token !== undefined) metadata.set('token', token);
  return metadata;
}

type Outcome = { ok: true } | { code: number; details: string } | { canceled: string };

function unaryCall(service: ServiceName, method: string, request: object, token?: string): Promise<Outcome> {
  return new Promise((resolve) => {
    stub(service)[method](request, meta(token), { deadline: Date.now() + 5000 }, (error: grpc.ServiceError | null) =>
      resolve(error ? { code: error.code, details: error.details } : { ok: true }),
    );
  });
}

/** A server stream: its first message is success, its error the outcome. */
function serverStream(service: ServiceName, method: string, request: object, token?: string): Promise<Outcome> {
  return new Promise((resolve) => {
    const call = stub(service)[method](request, meta(token));
    call.on('data', () => {
      call.cancel();
      resolve({ ok: true });
    });
    call.on('error', (error: grpc.ServiceError) => resolve({ code: error.code, details: error.details }));
  });
}

/** A bidi stream: one request; the first response decides (a canceled watch counts as refused). */
function bidi(service: ServiceName, method: string, request: object, token?: string): Promise<Outcome> {
  return new Promise((resolve) => {
    const call = stub(service)[method](meta(token));
    call.on('data', (response: any) => {
      call.cancel();
      resolve(response.canceled ? { canceled: response.cancelReason } : { ok: true });
    });
    call.on('error', (error: grpc.ServiceError) => {
      if (error.code !== grpc.status.CANCELLED) resolve({ code: error.code, details: error.details });
    });
    call.write(request);
  });
}

const EMPTY = { code: grpc.status.INVALID_ARGUMENT, details: 'etcdserver: user name is empty' };
const DENIED = { code: grpc.status.PERMISSION_DENIED, details: 'etcdserver: permission denied' };
/** Lock and Election answer recipe errors as codes.Unknown with etcd's text. */
const RECIPE_EMPTY = { code: grpc.status.UNKNOWN, details: EMPTY.details };
const RECIPE_DENIED = { code: grpc.status.UNKNOWN, details: DENIED.details };
const OK = { ok: true } as const;
const CHECKED = [EMPTY, DENIED] as const;
const UNCHECKED = [OK, OK] as const;

interface Row {
  run(token: string | undefined): Promise<Outcome>;
  /** Expected without a token, and with the unprivileged token. */
  expect: readonly [Outcome, Outcome];
}

const put = { key: b('k'), value: b('v') };
const table: Record<string, Row> = {
  'KV.Range': { run: (t) => unaryCall('KV', 'Range', { key: b('k') }, t), expect: CHECKED },
  'KV.Put': { run: (t) => unaryCall('KV', 'Put', put, t), expect: CHECKED },
  'KV.DeleteRange': { run: (t) => unaryCall('KV', 'DeleteRange', { key: b('k') }, t), expect: CHECKED },
  'KV.Txn': { run: (t) => unaryCall('KV', 'Txn', { success: [{ requestPut: put }] }, t), expect: CHECKED },
  'KV.Compact': { run: (t) => unaryCall('KV', 'Compact', { revision: compactTo++ }, t), expect: UNCHECKED },
  'Watch.Watch': {
    run: (t) => bidi('Watch', 'Watch', { createRequest: { key: b('k') } }, t),
    expect: [{ canceled: EMPTY.details }, { canceled: DENIED.details }],
  },
  'Lease.LeaseGrant': { run: (t) => unaryCall('Lease', 'LeaseGrant', { TTL: 60 }, t), expect: UNCHECKED },
  'Lease.LeaseRevoke': { run: (t) => unaryCall('Lease', 'LeaseRevoke', { ID: leaseWithKey }, t), expect: CHECKED },
  'Lease.LeaseKeepAlive': { run: (t) => bidi('Lease', 'LeaseKeepAlive', { ID: emptyLease }, t), expect: UNCHECKED },
  'Lease.LeaseTimeToLive': { run: (t) => unaryCall('Lease', 'LeaseTimeToLive', { ID: leaseWithKey }, t), expect: CHECKED },
  'Lease.LeaseLeases': { run: (t) => unaryCall('Lease', 'LeaseLeases', {}, t), expect: UNCHECKED },
  'Cluster.MemberAdd': { run: (t) => unaryCall('Cluster', 'MemberAdd', { peerURLs: ['http://127.0.0.1:1'] }, t), expect: CHECKED },
  'Cluster.MemberRemove': { run: (t) => unaryCall('Cluster', 'MemberRemove', { ID: '2' }, t), expect: CHECKED },
  'Cluster.MemberUpdate': { run: (t) => unaryCall('Cluster', 'MemberUpdate', { ID: '2', peerURLs: ['http://127.0.0.1:1'] }, t), expect: CHECKED },
  'Cluster.MemberList': { run: (t) => unaryCall('Cluster', 'MemberList', {}, t), expect: UNCHECKED },
  'Cluster.MemberPromote': { run: (t) => unaryCall('Cluster', 'MemberPromote', { ID: '2' }, t), expect: CHECKED },
  'Maintenance.Alarm': { run: (t) => unaryCall('Maintenance', 'Alarm', { action: 0 }, t), expect: UNCHECKED },
  'Maintenance.Status': { run: (t) => unaryCall('Maintenance', 'Status', {}, t), expect: UNCHECKED },
  'Maintenance.Defragment': { run: (t) => unaryCall('Maintenance', 'Defragment', {}, t), expect: CHECKED },
  'Maintenance.Hash': { run: (t) => unaryCall('Maintenance', 'Hash', {}, t), expect: CHECKED },
  'Maintenance.HashKV': { run: (t) => unaryCall('Maintenance', 'HashKV', {}, t), expect: CHECKED },
  'Maintenance.Snapshot': { run: (t) => serverStream('Maintenance', 'Snapshot', {}, t), expect: CHECKED },
  'Maintenance.MoveLeader': { run: (t) => unaryCall('Maintenance', 'MoveLeader', { targetID: '9' }, t), expect: CHECKED },
  'Maintenance.Downgrade': {
    run: (t) => unaryCall('Maintenance', 'Downgrade', {}, t),
    expect: [
      { code: grpc.status.UNIMPLEMENTED, details: 'MetaStore does not implement Maintenance.Downgrade yet' },
      { code: grpc.status.UNIMPLEMENTED, details: 'MetaStore does not implement Maintenance.Downgrade yet' },
    ],
  },
  'Auth.AuthEnable': { run: (t) => unaryCall('Auth', 'AuthEnable', {}, t), expect: CHECKED },
  'Auth.AuthDisable': { run: (t) => unaryCall('Auth', 'AuthDisable', {}, t), expect: CHECKED },
  'Auth.AuthStatus': { run: (t) => unaryCall('Auth', 'AuthStatus', {}, t), expect: CHECKED },
  'Auth.Authenticate': {
    run: (t) => unaryCall('Auth', 'Authenticate', { name: 'root', password: 'wrong' }, t),
    expect: [
      { code: grpc.status.INVALID_ARGUMENT, details: 'etcdserver: authentication failed, invalid user ID or password' },
      { code: grpc.status.INVALID_ARGUMENT, details: 'etcdserver: authentication failed, invalid user ID or password' },
    ],
  },
  'Auth.UserAdd': { run: (t) => unaryCall('Auth', 'UserAdd', { name: 'x', password: 'x' }, t), expect: CHECKED },
  'Auth.UserGet': { run: (t) => unaryCall('Auth', 'UserGet', { name: 'root' }, t), expect: CHECKED },
  'Auth.UserList': { run: (t) => unaryCall('Auth', 'UserList', {}, t), expect: CHECKED },
  'Auth.UserDelete': { run: (t) => unaryCall('Auth', 'UserDelete', { name: 'root' }, t), expect: CHECKED },
  'Auth.UserChangePassword': { run: (t) => unaryCall('Auth', 'UserChangePassword', { name: 'root', password: 'x' }, t), expect: CHECKED },
  'Auth.UserGrantRole': { run: (t) => unaryCall('Auth', 'UserGrantRole', { user: 'nobody', role: 'root' }, t), expect: CHECKED },
  'Auth.UserRevokeRole': { run: (t) => unaryCall('Auth', 'UserRevokeRole', { name: 'root', role: 'root' }, t), expect: CHECKED },
  'Auth.RoleAdd': { run: (t) => unaryCall('Auth', 'RoleAdd', { name: 'x' }, t), expect: CHECKED },
  'Auth.RoleGet': { run: (t) => unaryCall('Auth', 'RoleGet', { role: 'root' }, t), expect: CHECKED },
  'Auth.RoleList': { run: (t) => unaryCall('Auth', 'RoleList', {}, t), expect: CHECKED },
  'Auth.RoleDelete': { run: (t) => unaryCall('Auth', 'RoleDelete', { role: 'root' }, t), expect: CHECKED },
  'Auth.RoleGrantPermission': {
    run: (t) => unaryCall('Auth', 'RoleGrantPermission', { name: 'root', perm: { permType: 0, key: b('k') } }, t),
    expect: CHECKED,
  },
  'Auth.RoleRevokePermission': { run: (t) => unaryCall('Auth', 'RoleRevokePermission', { role: 'root', key: b('k') }, t), expect: CHECKED },
  'Lock.Lock': { run: (t) => unaryCall('Lock', 'Lock', { name: b('l'), lease: emptyLease }, t), expect: [RECIPE_EMPTY, RECIPE_DENIED] },
  'Lock.Unlock': { run: (t) => unaryCall('Lock', 'Unlock', { key: b('l/1') }, t), expect: [RECIPE_EMPTY, RECIPE_DENIED] },
  'Election.Campaign': {
    run: (t) => unaryCall('Election', 'Campaign', { name: b('e'), lease: emptyLease, value: b('v') }, t),
    expect: [RECIPE_EMPTY, RECIPE_DENIED],
  },
  'Election.Proclaim': {
    run: (t) => unaryCall('Election', 'Proclaim', { leader: { name: b('e'), key: b('e/1'), rev: 1, lease: emptyLease }, value: b('v') }, t),
    expect: [RECIPE_EMPTY, RECIPE_DENIED],
  },
  'Election.Leader': { run: (t) => unaryCall('Election', 'Leader', { name: b('e') }, t), expect: [RECIPE_EMPTY, RECIPE_DENIED] },
  // The stream ends with the status itself (not wrapped as Unknown like the unary recipes).
  'Election.Observe': { run: (t) => serverStream('Election', 'Observe', { name: b('e') }, t), expect: CHECKED },
  'Election.Resign': {
    run: (t) => unaryCall('Election', 'Resign', { leader: { name: b('e'), key: b('e/1'), rev: 1, lease: emptyLease } }, t),
    expect: [RECIPE_EMPTY, RECIPE_DENIED],
  },
};

beforeAll(async () => {
  member = await startInProcessMember();
  const auth = async (method: string, request: object): Promise<void> => {
    const outcome = await unaryCall('Auth', method, request);
    expect(outcome).toEqual(OK);
  };
  await auth('UserAdd', { name: 'root', password: 'rootpw' });
  await auth('RoleAdd', { name: 'root' });
  await auth('UserGrantRole', { user: 'root', role: 'root' });
  await auth('UserAdd', { name: 'nobody', password: 'pw' });
  const grant = (): Promise<any> =>
    new Promise((resolve, reject) => stub('Lease').LeaseGrant({ TTL: 600 }, (e: Error | null, r: any) => (e ? reject(e) : resolve(r))));
  leaseWithKey = (await grant()).ID;
  emptyLease = (await grant()).ID;
  expect(await unaryCall('KV', 'Put', { key: b('k'), value: b('v'), lease: leaseWithKey })).toEqual(OK);
  expect(await unaryCall('KV', 'Put', { key: b('k2'), value: b('v') })).toEqual(OK);
  await auth('AuthEnable', {});
  const login = (name: string, password: string): Promise<string> =>
    new Promise((resolve, reject) => stub('Auth').Authenticate({ name, password }, (e: Error | null, r: any) => (e ? reject(e) : resolve(r.token))));
  nobody = await login('nobody', 'pw');
  rootToken = await login('root', 'rootpw');
});

afterAll(async () => {
  for (const s of stubs.values()) s.close();
  await member.close();
});

describe('every RPC under auth', () => {
  it('the table names every method of every service', () => {
    const declared = (Object.keys(services) as ServiceName[]).flatMap((name) => Object.keys(services[name]).map((m) => `${name}.${m}`));
    expect(Object.keys(table).sort()).toEqual(declared.sort());
  });

  for (const [name, row] of Object.entries(table)) {
    it(`${name}: without a token, and with an unprivileged token`, async () => {
      expect(await row.run(undefined)).toEqual(row.expect[0]);
      expect(await row.run(nobody)).toEqual(row.expect[1]);
    });
  }

  it('root still gets through (the state was not changed by the refused calls)', async () => {
    expect(await unaryCall('Auth', 'UserList', {}, rootToken)).toEqual(OK);
    expect(await unaryCall('KV', 'Range', { key: b('k') }, rootToken)).toEqual(OK);
  });
});
