// JSON <-> protobuf as etcd's gateway (grpc-gateway's JSONPb with OrigName) does it: proto
// field names, 64-bit integers as strings, bytes as base64, enums by name, zero values left
// out; requests accept either the proto name or its lowerCamelCase JSON name, numbers or
// strings for integers, names or numbers for enums. Wrong types fail with the text Go's
// decoder uses, because etcd passes that text to the client.
//
// Requests become protobuf bytes (which the method's own deserializer then decodes, exactly
// as for a gRPC call); responses are read back from the bytes the method's serializer makes,
// so JSON shows what a gRPC client would have received.

import protobuf from 'protobufjs';
import { join } from 'node:path';
import { PROTO_DIR, PROTO_FILES } from '../proto.js';
import { GoJsonError, JsonNumber, goKind, goString, type JsonValue } from './go-json.js';

let root: protobuf.Root | undefined;

/** The etcd protos with their original field names (the gateway's JSON names). */
function origNameRoot(): protobuf.Root {
  if (root === undefined) {
    const r = new protobuf.Root();
    r.resolvePath = (_origin: string, target: string): string => (target.startsWith('/') ? target : join(PROTO_DIR, target));
    r.loadSync([...PROTO_FILES], { keepCase: true });
    r.resolveAll();
    root = r;
  }
  return root;
}

export function origType(fullName: string): protobuf.Type {
  return origNameRoot().lookupType(fullName);
}

/** protoc's JSON name of a field: underscores dropped, the letter after each capitalised. */
function jsonName(name: string): string {
  return name.replace(/_([a-z0-9])/g, (_m, c: string) => c.toUpperCase());
}

const INT_RANGES: Record<string, [bigint, bigint]> = {
  int64: [-(2n ** 63n), 2n ** 63n - 1n],
  sint64: [-(2n ** 63n), 2n ** 63n - 1n],
  sfixed64: [-(2n ** 63n), 2n ** 63n - 1n],
  uint64: [0n, 2n ** 64n - 1n],
  fixed64: [0n, 2n ** 64n - 1n],
  int32: [-(2n ** 31n), 2n ** 31n - 1n],
  sint32: [-(2n ** 31n), 2n ** 31n - 1n],
  sfixed32: [-(2n ** 31n), 2n ** 31n - 1n],
  uint32: [0n, 2n ** 32n - 1n],
  fixed32: [0n, 2n ** 32n - 1n],
};

function cannot(value: JsonValue, goType: string): GoJsonError {
  return new GoJsonError(`json: cannot unmarshal ${goKind(value)} into Go value of type ${goType}`);
}

/** An integer field: a number, or a string holding one (jsonpb unquotes integers). */
function integer(value: JsonValue, type: string): string {
  const goType = type.replace(/^s?fixed|^sint/, (m) => (m.startsWith('s') ? 'int' : 'uint'));
  let text: string;
  if (value instanceof JsonNumber) text = value.text;
  else if (typeof value === 'string') {
    text = value;
    if (text.trim() === '') throw new GoJsonError('unexpected end of JSON input');
    if (!/^-?\d/.test(text)) throw new GoJsonError(`invalid character '${text.trimStart()[0]}' looking for beginning of value`);
  } else throw cannot(value, goType);
  const [min, max] = INT_RANGES[type]!;
  if (!/^-?\d+$/.test(text) || BigInt(text) < min || BigInt(text) > max) {
    throw new GoJsonError(`json: cannot unmarshal number ${text} into Go value of type ${goType}`);
  }
  return text;
}

function goEnumName(enumType: protobuf.Enum): string {
  const parent = enumType.parent;
  const pkg = enumType.fullName.slice(1).split('.')[0]!;
  return parent instanceof protobuf.Type ? `${pkg}.${parent.name}_${enumType.name}` : `${pkg}.${enumType.name}`;
}

function scalar(field: protobuf.Field, value: JsonValue): unknown {
  const resolved = field.resolvedType;
  if (resolved instanceof protobuf.Type) return requestObject(resolved, value);
  if (resolved instanceof protobuf.Enum) {
    if (typeof value === 'string') {
      const number = resolved.values[value];
      if (number === undefined) throw new GoJsonError(`unknown value ${JSON.stringify(JSON.stringify(value))} for enum ${goEnumName(resolved)}`);
      return number;
    }
    return Number(integer(value, 'int32'));
  }
  if (field.type in INT_RANGES) return integer(value, field.type);
  if (field.type === 'bool') {
    if (typeof value !== 'boolean') throw cannot(value, 'bool');
    return value;
  }
  if (field.type === 'string' || field.type === 'bytes') {
    if (typeof value !== 'string') throw cannot(value, field.type === 'bytes' ? '[]uint8' : 'string');
    if (field.type === 'bytes' && !/^[A-Za-z0-9+/]*={0,2}$/.test(value)) throw new GoJsonError('illegal base64 data at input byte 0');
    return value;
  }
  if (!(value instanceof JsonNumber)) throw cannot(value, field.type === 'float' ? 'float32' : 'float64');
  return Number(value.text);
}

/** A plain object (original names) that `type.fromObject` turns into the message. */
function requestObject(type: protobuf.Type, value: JsonValue): Record<string, unknown> {
  if (!(value instanceof Map)) throw cannot(value, 'map[string]json.RawMessage');
  const out: Record<string, unknown> = {};
  for (const field of type.fieldsArray) {
    const given = value.has(field.name) ? value.get(field.name) : value.get(jsonName(field.name));
    if (given === undefined || given === null) continue;
    if (field.repeated) {
      if (!Array.isArray(given)) throw cannot(given, '[]json.RawMessage');
      out[field.name] = given.map((item) => scalar(field, item));
    } else out[field.name] = scalar(field, given);
  }
  return out;
}

/** The protobuf bytes of a request given as JSON (Go's decoding errors as GoJsonError). */
export function encodeJsonRequest(typeName: string, value: JsonValue): Buffer {
  const type = origType(typeName);
  return Buffer.from(type.encode(type.fromObject(requestObject(type, value))).finish());
}

// ---------------------------------------------------------------- responses

function isZero(value: unknown): boolean {
  if (value === null || value === undefined || value === 0 || value === false || value === '') return true;
  if (value instanceof Uint8Array) return value.length === 0;
  if (typeof value === 'object' && 'isZero' in value && typeof value.isZero === 'function') return value.isZero() as boolean;
  return false;
}

function jsonScalar(field: protobuf.Field, value: unknown): string {
  const resolved = field.resolvedType;
  if (resolved instanceof protobuf.Type) return messageJson(resolved, value as protobuf.Message);
  if (resolved instanceof protobuf.Enum) {
    const name = resolved.valuesById[value as number];
    return name === undefined ? String(value) : goString(name);
  }
  if (field.type === 'bytes') return goString(Buffer.from(value as Uint8Array).toString('base64'));
  if (field.type === 'string') return goString(value as string);
  if (/64$/.test(field.type)) return goString(String(value));
  return String(value);
}

function messageJson(type: protobuf.Type, message: protobuf.Message): string {
  const parts: string[] = [];
  const own = message as unknown as Record<string, unknown>;
  for (const field of type.fieldsArray) {
    if (!Object.hasOwn(own, field.name)) continue;
    const value = own[field.name];
    if (field.repeated) {
      const items = value as unknown[];
      if (items.length > 0) parts.push(`${goString(field.name)}:[${items.map((item) => jsonScalar(field, item)).join(',')}]`);
    } else if (field.resolvedType instanceof protobuf.Type ? value !== null && value !== undefined : !isZero(value)) {
      parts.push(`${goString(field.name)}:${jsonScalar(field, value)}`);
    }
  }
  return `{${parts.join(',')}}`;
}

/** etcd's gateway JSON of a message given as protobuf bytes. */
export function responseJson(typeName: string, bytes: Uint8Array): string {
  const type = origType(typeName);
  return messageJson(type, type.decode(bytes));
}

/** The request and response message names of a method, from its gRPC path ("/pkg.Service/Method"). */
export function methodTypes(grpcPath: string): { requestType: string; responseType: string } {
  const [, service, method] = grpcPath.split('/');
  const rpc = origNameRoot().lookupService(service!).methods[method!];
  if (rpc?.resolvedRequestType == null || rpc.resolvedResponseType == null) throw new Error(`no method ${grpcPath} in the loaded protos`);
  return { requestType: rpc.resolvedRequestType.fullName.slice(1), responseType: rpc.resolvedResponseType.fullName.slice(1) };
}
