// Loads MetaStore's etcd-wire-compatible .proto files (proto/etcd/...) once, at
// module init, and exposes the gRPC service definitions plus codecs for tests.
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import protobuf from 'protobufjs';

/** Proto files, relative to the include dir. */
export const PROTO_FILES = [
  'etcd/mvccpb/kv.proto',
  'etcd/authpb/auth.proto',
  'etcd/etcdserverpb/rpc.proto',
  'etcd/v3lockpb/v3lock.proto',
  'etcd/v3electionpb/v3election.proto',
] as const;

/**
 * The loader options the whole edge relies on: camelCase field names, int64 as
 * decimal strings (no precision loss), enums as numbers, defaults filled in,
 * a virtual field naming the set member of each oneof, bytes as Buffer.
 */
export const LOADER_OPTIONS = {
  keepCase: false,
  longs: String,
  enums: Number,
  defaults: true,
  oneofs: true,
  bytes: Buffer,
} as const;

/**
 * Finds the repo's proto/ dir by walking up from this module: works from
 * src/grpc/ (tsx, vitest) and from dist/src/grpc/ (after tsc).
 */
function findProtoDir(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const candidate = join(dir, 'proto');
    if (existsSync(join(candidate, 'etcd'))) return candidate;
    const parent = dirname(dir);
    if (parent === dir) {
      throw new Error(`proto/etcd not found in any parent of ${fileURLToPath(import.meta.url)}`);
    }
    dir = parent;
  }
}

/** Absolute path of the include dir holding etcd/... */
export const PROTO_DIR: string = findProtoDir();

/** The raw proto-loader package definition (keys are fully qualified names). */
export const packageDefinition: protoLoader.PackageDefinition = protoLoader.loadSync([...PROTO_FILES], {
  ...LOADER_OPTIONS,
  includeDirs: [PROTO_DIR],
});

const loaded = grpc.loadPackageDefinition(packageDefinition);

function subPackage(name: string): grpc.GrpcObject {
  const pkg = loaded[name];
  if (pkg === undefined || typeof pkg === 'function' || !isGrpcObject(pkg)) {
    throw new Error(`package ${name} missing from loaded protos`);
  }
  return pkg;
}

function isGrpcObject(value: unknown): value is grpc.GrpcObject {
  return typeof value === 'object' && value !== null && !('format' in value);
}

/** Loaded gRPC objects per package (client constructors, message/enum defs). */
export const etcdserverpb: grpc.GrpcObject = subPackage('etcdserverpb');
export const mvccpb: grpc.GrpcObject = subPackage('mvccpb');
export const authpb: grpc.GrpcObject = subPackage('authpb');
export const v3lockpb: grpc.GrpcObject = subPackage('v3lockpb');
export const v3electionpb: grpc.GrpcObject = subPackage('v3electionpb');

function serviceOf(pkg: grpc.GrpcObject, name: string): grpc.ServiceDefinition {
  const ctor = pkg[name];
  if (typeof ctor !== 'function' || !('service' in ctor)) {
    throw new Error(`service ${name} missing from loaded protos`);
  }
  return ctor.service;
}

/** Service definitions, ready for `server.addService(services.KV, impl)`. */
export const services = Object.freeze({
  KV: serviceOf(etcdserverpb, 'KV'),
  Watch: serviceOf(etcdserverpb, 'Watch'),
  Lease: serviceOf(etcdserverpb, 'Lease'),
  Cluster: serviceOf(etcdserverpb, 'Cluster'),
  Maintenance: serviceOf(etcdserverpb, 'Maintenance'),
  Auth: serviceOf(etcdserverpb, 'Auth'),
  Lock: serviceOf(v3lockpb, 'Lock'),
  Election: serviceOf(v3electionpb, 'Election'),
});

export type ServiceName = keyof typeof services;

/** Client constructors (for tests and tools): `new clients.KV(addr, creds)`. */
export const clients = Object.freeze({
  KV: etcdserverpb.KV as grpc.ServiceClientConstructor,
  Watch: etcdserverpb.Watch as grpc.ServiceClientConstructor,
  Lease: etcdserverpb.Lease as grpc.ServiceClientConstructor,
  Cluster: etcdserverpb.Cluster as grpc.ServiceClientConstructor,
  Maintenance: etcdserverpb.Maintenance as grpc.ServiceClientConstructor,
  Auth: etcdserverpb.Auth as grpc.ServiceClientConstructor,
  Lock: v3lockpb.Lock as grpc.ServiceClientConstructor,
  Election: v3electionpb.Election as grpc.ServiceClientConstructor,
});

let root: protobuf.Root | undefined;

/** A protobufjs Root over the same files (keepCase false, like the loader). */
export function protobufRoot(): protobuf.Root {
  if (root === undefined) {
    const r = new protobuf.Root();
    r.resolvePath = (_origin: string, target: string): string => (target.startsWith('/') ? target : join(PROTO_DIR, target));
    r.loadSync([...PROTO_FILES], { keepCase: false });
    r.resolveAll();
    root = r;
  }
  return root;
}

/** protobufjs Type for a fully qualified message name, e.g. 'etcdserverpb.PutRequest'. */
export function messageType(fullName: string): protobuf.Type {
  return protobufRoot().lookupType(fullName);
}

/** Encodes a plain object exactly as the gRPC server/client would. */
export function encodeMessage(fullName: string, value: object): Buffer {
  const type = messageType(fullName);
  return Buffer.from(type.encode(type.fromObject(value as Record<string, unknown>)).finish());
}

/** Decodes bytes into the plain-object shape the gRPC handlers see. */
export function decodeMessage<T = Record<string, unknown>>(fullName: string, bytes: Uint8Array): T {
  const type = messageType(fullName);
  return type.toObject(type.decode(bytes), LOADER_OPTIONS) as T;
}
