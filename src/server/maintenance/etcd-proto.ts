// The few etcd protobuf messages an etcd backend stores (mvccpb.KeyValue, leasepb.Lease,
// authpb.User/Role/Permission, etcdserverpb.AlarmMember), encoded by hand the way etcd's gogo
// marshalers do: fields in number order, proto3 zero values left out, int64 as 64-bit
// two's-complement varints. Byte-identical output lets a round trip through MetaStore give back
// etcd's own bucket values.

import { SnapshotFileError as EtcdSnapshotError } from './backup-format.js';

const VARINT = 0;
const LENGTH_DELIMITED = 2;

class ProtoWriter {
  private readonly parts: Buffer[] = [];

  varint(field: number, value: bigint | number | boolean): this {
    const n = BigInt.asUintN(64, BigInt(value));
    if (n === 0n) return this;
    this.parts.push(encodeVarint(BigInt(field << 3) | BigInt(VARINT)), encodeVarint(n));
    return this;
  }

  bytes(field: number, value: Buffer | undefined, options: { evenIfEmpty?: boolean } = {}): this {
    if (value === undefined || (value.length === 0 && !options.evenIfEmpty)) return this;
    this.parts.push(encodeVarint(BigInt((field << 3) | LENGTH_DELIMITED)), encodeVarint(BigInt(value.length)), value);
    return this;
  }

  finish(): Buffer {
    return Buffer.concat(this.parts);
  }
}

function encodeVarint(value: bigint): Buffer {
  const bytes: number[] = [];
  let n = value;
  while (n >= 0x80n) {
    bytes.push(Number(n & 0x7fn) | 0x80);
    n >>= 7n;
  }
  bytes.push(Number(n));
  return Buffer.from(bytes);
}

/** A message's fields: number -> values in order (varints as unsigned 64-bit bigint). */
type Fields = Map<number, Array<bigint | Buffer>>;

function decodeFields(message: Buffer, what: string): Fields {
  const fields: Fields = new Map();
  let at = 0;
  const varint = (): bigint => {
    let result = 0n;
    for (let shift = 0n; shift < 70n; shift += 7n) {
      if (at >= message.length) throw new EtcdSnapshotError(`${what}: truncated varint`);
      const byte = message[at++]!;
      result |= BigInt(byte & 0x7f) << shift;
      if ((byte & 0x80) === 0) return BigInt.asUintN(64, result);
    }
    throw new EtcdSnapshotError(`${what}: varint too long`);
  };
  while (at < message.length) {
    const tag = Number(varint());
    const field = tag >>> 3;
    let value: bigint | Buffer;
    if ((tag & 7) === VARINT) value = varint();
    else if ((tag & 7) === LENGTH_DELIMITED) {
      const length = Number(varint());
      if (at + length > message.length) throw new EtcdSnapshotError(`${what}: field ${field} overruns the message`);
      value = message.subarray(at, at + length);
      at += length;
    } else throw new EtcdSnapshotError(`${what}: unexpected wire type ${tag & 7} for field ${field}`);
    const list = fields.get(field) ?? [];
    list.push(value);
    fields.set(field, list);
  }
  return fields;
}

function int64(fields: Fields, field: number): bigint {
  const value = fields.get(field)?.at(-1);
  return typeof value === 'bigint' ? BigInt.asIntN(64, value) : 0n;
}

function bytes(fields: Fields, field: number): Buffer {
  const value = fields.get(field)?.at(-1);
  return Buffer.isBuffer(value) ? value : Buffer.alloc(0);
}

function safe(value: bigint, what: string): number {
  if (value < BigInt(Number.MIN_SAFE_INTEGER) || value > BigInt(Number.MAX_SAFE_INTEGER)) throw new EtcdSnapshotError(`${what} ${value} is out of range`);
  return Number(value);
}

// ---------------------------------------------------------------- mvccpb.KeyValue

export interface EtcdKeyValue {
  key: Buffer;
  createRevision: number;
  modRevision: number;
  version: number;
  value: Buffer;
  lease: bigint;
}

export function encodeKeyValue(kv: EtcdKeyValue): Buffer {
  return new ProtoWriter()
    .bytes(1, kv.key)
    .varint(2, kv.createRevision)
    .varint(3, kv.modRevision)
    .varint(4, kv.version)
    .bytes(5, kv.value)
    .varint(6, kv.lease)
    .finish();
}

export function decodeKeyValue(message: Buffer): EtcdKeyValue {
  const f = decodeFields(message, 'mvccpb.KeyValue');
  return {
    key: bytes(f, 1),
    createRevision: safe(int64(f, 2), 'create_revision'),
    modRevision: safe(int64(f, 3), 'mod_revision'),
    version: safe(int64(f, 4), 'version'),
    value: bytes(f, 5),
    lease: int64(f, 6),
  };
}

// ---------------------------------------------------------------- leasepb.Lease

export interface EtcdLease {
  id: bigint;
  ttlSeconds: number;
  /** 0: never checkpointed, the full TTL remains. */
  remainingTtlSeconds: number;
}

export function encodeLease(lease: EtcdLease): Buffer {
  return new ProtoWriter().varint(1, lease.id).varint(2, lease.ttlSeconds).varint(3, lease.remainingTtlSeconds).finish();
}

export function decodeLease(message: Buffer): EtcdLease {
  const f = decodeFields(message, 'leasepb.Lease');
  return { id: int64(f, 1), ttlSeconds: safe(int64(f, 2), 'TTL'), remainingTtlSeconds: safe(int64(f, 3), 'RemainingTTL') };
}

// ---------------------------------------------------------------- authpb

export interface EtcdUser {
  name: Buffer;
  password: Buffer;
  roles: string[];
  noPassword: boolean;
}

export function encodeUser(user: EtcdUser): Buffer {
  const out = new ProtoWriter().bytes(1, user.name).bytes(2, user.password);
  for (const role of user.roles) out.bytes(3, Buffer.from(role), { evenIfEmpty: true });
  if (user.noPassword) out.bytes(4, new ProtoWriter().varint(1, true).finish(), { evenIfEmpty: true });
  return out.finish();
}

export function decodeUser(message: Buffer): EtcdUser {
  const f = decodeFields(message, 'authpb.User');
  const options = f.get(4)?.at(-1);
  return {
    name: bytes(f, 1),
    password: bytes(f, 2),
    roles: (f.get(3) ?? []).map((r) => (r as Buffer).toString()),
    noPassword: Buffer.isBuffer(options) && int64(decodeFields(options, 'authpb.UserAddOptions'), 1) !== 0n,
  };
}

export interface EtcdPermission {
  permType: number;
  key: Buffer;
  rangeEnd: Buffer;
}

export interface EtcdRole {
  name: Buffer;
  permissions: EtcdPermission[];
}

export function encodeRole(role: EtcdRole): Buffer {
  const out = new ProtoWriter().bytes(1, role.name);
  for (const p of role.permissions) {
    out.bytes(2, new ProtoWriter().varint(1, p.permType).bytes(2, p.key).bytes(3, p.rangeEnd).finish(), { evenIfEmpty: true });
  }
  return out.finish();
}

export function decodeRole(message: Buffer): EtcdRole {
  const f = decodeFields(message, 'authpb.Role');
  return {
    name: bytes(f, 1),
    permissions: (f.get(2) ?? []).map((raw) => {
      const p = decodeFields(raw as Buffer, 'authpb.Permission');
      return { permType: Number(int64(p, 1)), key: bytes(p, 2), rangeEnd: bytes(p, 3) };
    }),
  };
}

// ---------------------------------------------------------------- etcdserverpb.AlarmMember

export interface EtcdAlarm {
  memberId: bigint;
  alarm: number;
}

export function encodeAlarm(alarm: EtcdAlarm): Buffer {
  return new ProtoWriter().varint(1, alarm.memberId).varint(2, alarm.alarm).finish();
}

export function decodeAlarm(message: Buffer): EtcdAlarm {
  const f = decodeFields(message, 'etcdserverpb.AlarmMember');
  return { memberId: BigInt.asUintN(64, int64(f, 1)), alarm: Number(int64(f, 2)) };
}
