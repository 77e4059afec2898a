import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import protobuf from 'protobufjs';
import { describe, expect, it } from 'vitest';
import {
  PROTO_DIR,
  PROTO_FILES,
  clients,
  decodeMessage,
  encodeMessage,
  etcdserverpb,
  messageType,
  packageDefinition,
  services,
  v3electionpb,
  v3lockpb,
} from './proto.js';
import type { Encodable, PutRequest, RangeResponse, StatusResponse, TxnRequest } from './etcd-types.js';
import { CompareResult, CompareTarget, SortOrder } from './etcd-types.js';

// [method, requestStream, responseStream]
type MethodSpec = readonly [string, boolean, boolean];

// Every method of etcd 3.4's services, then the 3.5 additions we also serve.
const EXPECTED_SERVICES: Record<keyof typeof services, { path: string; methods: readonly MethodSpec[] }> = {
  KV: {
    path: 'etcdserverpb.KV',
    methods: [
      ['Range', false, false],
      ['Put', false, false],
      ['DeleteRange', false, false],
      ['Txn', false, false],
      ['Compact', false, false],
    ],
  },
  Watch: { path: 'etcdserverpb.Watch', methods: [['Watch', true, true]] },
  Lease: {
    path: 'etcdserverpb.Lease',
    methods: [
      ['LeaseGrant', false, false],
      ['LeaseRevoke', false, false],
      ['LeaseKeepAlive', true, true],
      ['LeaseTimeToLive', false, false],
      ['LeaseLeases', false, false],
    ],
  },
  Cluster: {
    path: 'etcdserverpb.Cluster',
    methods: [
      ['MemberAdd', false, false],
      ['MemberRemove', false, false],
      ['MemberUpdate', false, false],
      ['MemberList', false, false],
      ['MemberPromote', false, false],
    ],
  },
  Maintenance: {
    path: 'etcdserverpb.Maintenance',
    methods: [
      ['Alarm', false, false],
      ['Status', false, false],
      ['Defragment', false, false],
      ['Hash', false, false],
      ['HashKV', false, false],
      ['Snapshot', false, true],
      ['MoveLeader', false, false],
      ['Downgrade', false, false], // 3.5
    ],
  },
  Auth: {
    path: 'etcdserverpb.Auth',
    methods: [
      ['AuthEnable', false, false],
      ['AuthDisable', false, false],
      ['AuthStatus', false, false], // 3.5
      ['Authenticate', false, false],
      ['UserAdd', false, false],
      ['UserGet', false, false],
      ['UserList', false, false],
      ['UserDelete', false, false],
      ['UserChangePassword', false, false],
      ['UserGrantRole', false, false],
      ['UserRevokeRole', false, false],
      ['RoleAdd', false, false],
      ['RoleGet', false, false],
      ['RoleList', false, false],
      ['RoleDelete', false, false],
      ['RoleGrantPermission', false, false],
      ['RoleRevokePermission', false, false],
    ],
  },
  Lock: {
    path: 'v3lockpb.Lock',
    methods: [
      ['Lock', false, false],
      ['Unlock', false, false],
    ],
  },
  Election: {
    path: 'v3electionpb.Election',
    methods: [
      ['Campaign', false, false],
      ['Proclaim', false, false],
      ['Leader', false, false],
      ['Observe', false, true],
      ['Resign', false, false],
    ],
  },
};

describe('proto loading', () => {
  it('loads all five files from the repo proto/ dir', () => {
    expect(existsSync(join(PROTO_DIR, 'etcd', 'etcdserverpb', 'rpc.proto'))).toBe(true);
    expect(PROTO_FILES).toHaveLength(5);
    expect(packageDefinition['etcdserverpb.PutRequest']).toBeDefined();
    expect(packageDefinition['mvccpb.KeyValue']).toBeDefined();
    expect(packageDefinition['authpb.Permission']).toBeDefined();
    expect(typeof etcdserverpb.KV).toBe('function');
    expect(typeof v3lockpb.Lock).toBe('function');
    expect(typeof v3electionpb.Election).toBe('function');
  });

  it('has every service and method with the right streaming flags', () => {
    expect(Object.keys(services).sort()).toEqual(Object.keys(EXPECTED_SERVICES).sort());
    for (const [name, spec] of Object.entries(EXPECTED_SERVICES)) {
      const service = services[name as keyof typeof services];
      expect(Object.keys(service).sort(), name).toEqual(spec.methods.map(([m]) => m).sort());
      for (const [method, requestStream, responseStream] of spec.methods) {
        const def = service[method];
        expect(def, `${name}.${method}`).toBeDefined();
        expect(def?.path).toBe(`/${spec.path}/${method}`);
        expect(def?.requestStream, `${name}.${method} requestStream`).toBe(requestStream);
        expect(def?.responseStream, `${name}.${method} responseStream`).toBe(responseStream);
      }
      expect(clients[name as keyof typeof clients].service).toBe(service);
    }
  });
});

describe('wire encoding', () => {
  it('encodes PutRequest byte-for-byte as protobuf requires', () => {
    const put: Encodable<PutRequest> = { key: Buffer.from('a'), value: Buffer.from('b'), lease: '7' };
    // field 1 (key, LEN): 0a 01 'a'; field 2 (value, LEN): 12 01 'b'; field 3 (lease, VARINT): 18 07
    const expected = Buffer.from([0x0a, 0x01, 0x61, 0x12, 0x01, 0x62, 0x18, 0x07]);
    expect(services.KV.Put?.requestSerialize(put)).toEqual(expected);
    expect(encodeMessage('etcdserverpb.PutRequest', put)).toEqual(expected);
    expect(encodeMessage('etcdserverpb.PutRequest', { ...put, lease: 7 })).toEqual(expected);

    const decoded = services.KV.Put?.requestDeserialize(expected) as PutRequest;
    expect(decoded).toEqual({
      key: Buffer.from('a'),
      value: Buffer.from('b'),
      lease: '7',
      prevKv: false,
      ignoreValue: false,
      ignoreLease: false,
    });
  });

  it('decodes 64-bit values as exact decimal strings', () => {
    // RangeResponse.header (field 1, LEN 11) { cluster_id (field 1, VARINT) = 2^64-1 }
    const bytes = Buffer.from([0x0a, 0x0b, 0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]);
    const decoded = services.KV.Range?.responseDeserialize(bytes) as RangeResponse;
    expect(decoded.header?.clusterId).toBe('18446744073709551615');
    expect(decoded.header?.memberId).toBe('0');
    expect(decoded.kvs).toEqual([]);
    expect(decoded.count).toBe('0');
    expect(decodeMessage<RangeResponse>('etcdserverpb.RangeResponse', bytes).header?.clusterId).toBe('18446744073709551615');

    const response: Encodable<RangeResponse> = {
      header: { clusterId: '18446744073709551615', memberId: '9372538179322589801', revision: '9007199254740993', raftTerm: '3' },
      kvs: [{ key: Buffer.from('k'), value: Buffer.from('v'), lease: '9223372036854775807', modRevision: 5 }],
      count: '1',
    };
    expect(services.KV.Range?.responseSerialize({ header: { clusterId: '18446744073709551615' } })).toEqual(bytes);
    const encoded = services.KV.Range?.responseSerialize(response);
    const back = services.KV.Range?.responseDeserialize(encoded ?? Buffer.alloc(0)) as RangeResponse;
    expect(back.header).toEqual({
      clusterId: '18446744073709551615',
      memberId: '9372538179322589801',
      revision: '9007199254740993', // 2^53 + 1: would round as a JS number
      raftTerm: '3',
    });
    expect(back.kvs[0]?.lease).toBe('9223372036854775807');
    expect(back.kvs[0]?.modRevision).toBe('5');
  });

  it('names the set oneof member and round-trips a Txn', () => {
    const txn: Encodable<TxnRequest> = {
      compare: [{ result: CompareResult.EQUAL, target: CompareTarget.MOD, key: Buffer.from('k'), modRevision: '0' }],
      success: [{ requestPut: { key: Buffer.from('k'), value: Buffer.from('v') } }],
      failure: [{ requestRange: { key: Buffer.from('k'), sortOrder: SortOrder.DESCEND } }],
    };
    const decoded = services.KV.Txn?.requestDeserialize(services.KV.Txn.requestSerialize(txn)) as TxnRequest;
    const cmp = decoded.compare[0];
    expect(cmp?.targetUnion).toBe('modRevision');
    expect(cmp?.targetUnion === 'modRevision' ? cmp.modRevision : undefined).toBe('0');
    expect(decoded.success[0]?.request).toBe('requestPut');
    expect(decoded.failure[0]?.request).toBe('requestRange');
    const op = decoded.failure[0];
    expect(op?.request === 'requestRange' ? op.requestRange.sortOrder : undefined).toBe(SortOrder.DESCEND);
  });

  it('fills defaults for an empty StatusResponse, including the 3.6 fields', () => {
    const status = services.Maintenance.Status?.responseDeserialize(Buffer.alloc(0)) as StatusResponse;
    expect(status.header).toBeNull();
    expect(status.raftAppliedIndex).toBe('0');
    expect(status.errors).toEqual([]);
    expect(status.dbSizeQuota).toBe('0');
    expect(status.downgradeInfo).toBeNull();
    expect(messageType('etcdserverpb.StatusResponse').fields.isLearner?.id).toBe(10);
  });
});

// ---------------------------------------------------------------- etcd 3.4 comparison

const ETCD_SRC = '/usr/share/gocode/src/go.etcd.io/etcd';
const ETCD_FILES = [
  'mvcc/mvccpb/kv.proto',
  'auth/authpb/auth.proto',
  'etcdserver/etcdserverpb/rpc.proto',
  'etcdserver/api/v3lock/v3lockpb/v3lock.proto',
  'etcdserver/api/v3election/v3electionpb/v3election.proto',
];
const PACKAGES = ['mvccpb', 'authpb', 'etcdserverpb', 'v3lockpb', 'v3electionpb'];

// What we carry beyond etcd 3.4, all from etcd 3.5/3.6, with the exact shape expected.
const EXTRA_TYPES = new Map([
  ['etcdserverpb.DowngradeRequest', 'message'],
  ['etcdserverpb.DowngradeRequest.DowngradeAction', 'enum [["VALIDATE",0],["ENABLE",1],["CANCEL",2]]'],
  ['etcdserverpb.DowngradeResponse', 'message'],
  ['etcdserverpb.DowngradeInfo', 'message'],
  ['etcdserverpb.AuthStatusRequest', 'message'],
  ['etcdserverpb.AuthStatusResponse', 'message'],
]);
const EXTRA_FIELDS = new Map([
  ['etcdserverpb.HashKVResponse.hash_revision', '#4 singular int64 oneof=-'],
  ['etcdserverpb.SnapshotResponse.version', '#4 singular string oneof=-'],
  ['etcdserverpb.MemberListRequest.linearizable', '#1 singular bool oneof=-'],
  ['etcdserverpb.StatusResponse.storageVersion', '#11 singular string oneof=-'],
  ['etcdserverpb.StatusResponse.dbSizeQuota', '#12 singular int64 oneof=-'],
  ['etcdserverpb.StatusResponse.downgradeInfo', '#13 singular etcdserverpb.DowngradeInfo oneof=-'],
  ['etcdserverpb.DowngradeInfo.enabled', '#1 singular bool oneof=-'],
  ['etcdserverpb.DowngradeInfo.targetVersion', '#2 singular string oneof=-'],
  ['etcdserverpb.DowngradeRequest.action', '#1 singular etcdserverpb.DowngradeRequest.DowngradeAction oneof=-'],
  ['etcdserverpb.DowngradeRequest.version', '#2 singular string oneof=-'],
  ['etcdserverpb.DowngradeResponse.header', '#1 singular etcdserverpb.ResponseHeader oneof=-'],
  ['etcdserverpb.DowngradeResponse.version', '#2 singular string oneof=-'],
  ['etcdserverpb.AuthStatusResponse.header', '#1 singular etcdserverpb.ResponseHeader oneof=-'],
  ['etcdserverpb.AuthStatusResponse.enabled', '#2 singular bool oneof=-'],
  ['etcdserverpb.AuthStatusResponse.authRevision', '#3 singular uint64 oneof=-'],
  ['etcdserverpb.AuthUserAddRequest.hashedPassword', '#4 singular string oneof=-'],
  ['etcdserverpb.AuthUserChangePasswordRequest.hashedPassword', '#3 singular string oneof=-'],
]);
const EXTRA_METHODS = new Map([
  ['etcdserverpb.Maintenance.Downgrade', 'etcdserverpb.DowngradeRequest -> etcdserverpb.DowngradeResponse'],
  ['etcdserverpb.Auth.AuthStatus', 'etcdserverpb.AuthStatusRequest -> etcdserverpb.AuthStatusResponse'],
]);

/** Removes gogoproto and google.api annotations so plain protobufjs can parse etcd's files. */
function stripAnnotations(source: string): string {
  let out = source
    .replace(/^\s*import\s+"gogoproto\/[^"]*";\s*$/gm, '')
    .replace(/^\s*import\s+"google\/api\/annotations\.proto";\s*$/gm, '')
    .replace(/^\s*option\s+\(gogoproto\.[^)]*\)\s*=\s*[^;]*;\s*$/gm, '')
    .replace(/\s*\[\s*\(gogoproto\.[^\]]*\]/g, '');
  const marker = /option\s+\(google\.api\.http\)\s*=\s*\{/;
  for (let m = marker.exec(out); m !== null; m = marker.exec(out)) {
    let depth = 0;
    let i = m.index + m[0].length - 1;
    for (; i < out.length; i++) {
      if (out[i] === '{') depth++;
      else if (out[i] === '}' && --depth === 0) break;
    }
    const semicolon = out.indexOf(';', i);
    if (depth !== 0 || semicolon < 0) throw new Error('unbalanced google.api.http option');
    out = out.slice(0, m.index) + out.slice(semicolon + 1);
  }
  return out;
}

function parseInto(sources: readonly string[]): protobuf.Root {
  const root = new protobuf.Root();
  for (const source of sources) protobuf.parse(source, root, { keepCase: true });
  root.resolveAll();
  return root;
}

interface Described {
  types: Map<string, string>; // full name -> description of the type itself
  fields: Map<string, string>; // full field name -> description
  methods: Map<string, string>;
}

function describeRoot(root: protobuf.Root): Described {
  const d: Described = { types: new Map(), fields: new Map(), methods: new Map() };
  const walk = (ns: protobuf.NamespaceBase): void => {
    for (const obj of ns.nestedArray) {
      const name = obj.fullName.replace(/^\./, '');
      if (obj instanceof protobuf.Type) {
        d.types.set(name, 'message');
        for (const field of obj.fieldsArray) {
          const type = field.resolvedType ? field.resolvedType.fullName.replace(/^\./, '') : field.type;
          const rule = field.repeated ? 'repeated' : 'singular';
          const oneof = field.partOf ? field.partOf.name : '-';
          d.fields.set(`${name}.${field.name}`, `#${field.id} ${rule} ${type} oneof=${oneof}`);
        }
      } else if (obj instanceof protobuf.Enum) {
        d.types.set(name, `enum ${JSON.stringify(Object.entries(obj.values).sort((a, b) => a[1] - b[1]))}`);
      } else if (obj instanceof protobuf.Service) {
        d.types.set(name, 'service');
        for (const method of obj.methodsArray) {
          const req = method.resolvedRequestType?.fullName.replace(/^\./, '');
          const res = method.resolvedResponseType?.fullName.replace(/^\./, '');
          d.methods.set(`${name}.${method.name}`, `${method.requestStream ? 'stream ' : ''}${req} -> ${method.responseStream ? 'stream ' : ''}${res}`);
        }
      }
      if (obj instanceof protobuf.Namespace || obj instanceof protobuf.Type) walk(obj);
    }
  };
  walk(root);
  for (const map of [d.types, d.fields, d.methods]) {
    for (const key of [...map.keys()]) if (!PACKAGES.some((p) => key.startsWith(`${p}.`))) map.delete(key);
  }
  return d;
}

describe('field-for-field match with etcd 3.4', () => {
  it('our protos declare every etcd 3.4 message, field, enum and method identically', () => {
    if (!existsSync(join(ETCD_SRC, ETCD_FILES[2] ?? ''))) {
      throw new Error(`etcd 3.4 protos not found under ${ETCD_SRC}: run \`apt-get install -y golang-etcd-server-dev\` (this test must not be skipped)`);
    }
    const etcd = describeRoot(parseInto(ETCD_FILES.map((f) => stripAnnotations(readFileSync(join(ETCD_SRC, f), 'utf8')))));
    const ours = describeRoot(parseInto(PROTO_FILES.map((f) => readFileSync(join(PROTO_DIR, f), 'utf8'))));

    expect(etcd.fields.size).toBeGreaterThan(200); // the strip/parse really saw etcd's files
    for (const [kind, theirs, mine, extras] of [
      ['type', etcd.types, ours.types, EXTRA_TYPES],
      ['field', etcd.fields, ours.fields, EXTRA_FIELDS],
      ['method', etcd.methods, ours.methods, EXTRA_METHODS],
    ] as const) {
      for (const [name, desc] of theirs) expect(mine.get(name), `${kind} ${name}`).toBe(desc);
      const added = [...mine].filter(([name]) => !theirs.has(name)).sort();
      expect(added, `${kind}s beyond etcd 3.4`).toEqual([...extras].sort());
    }
  });
});
