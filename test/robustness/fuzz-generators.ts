// Request generators for the fuzz test, all driven by one SeededRandom so a seed replays:
// - randomMessage: any message type of the loaded protos, field by field, with in-range and
//   out-of-range values (64-bit extremes as decimal strings, unknown enum values, empty and
//   odd strings and bytes), oneofs with one member set;
// - laneKv: structured KV requests (keys, ranges, revisions, leases, txn trees) confined to
//   one lane, the key prefix "f/<lane>/", so the model can check them exactly;
// - mutate: byte-level damage to an encoded message (truncation, flipped and inserted
//   bytes, a field sent with the wrong wire type, unknown fields, a repeated field).

import type protobuf from 'protobufjs';
import { SeededRandom } from '../../src/util/random.js';
import type { Wire } from './fuzz-model.js';

export class Dice extends SeededRandom {
  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)]!;
  }
  chance(p: number): boolean {
    return this.float() < p;
  }
  bytes(n: number): Buffer {
    return Buffer.from(Array.from({ length: n }, () => this.int(256)));
  }
}

const INT64_EXTREMES = ['0', '1', '-1', '2', '9223372036854775807', '-9223372036854775808', '9007199254740993', '-9007199254740993', '4294967296'];
const UINT64_EXTREMES = ['0', '1', '18446744073709551615', '9223372036854775808', '9007199254740993'];
const INT32_EXTREMES = [0, 1, -1, 2, 3, 4, 5, 99, 2147483647, -2147483648];
const STRINGS = [
  '',
  'a',
  'user',
  'role',
  'rööt',
  '\u0000',
  ' ',
  'x'.repeat(300),
  'http://127.0.0.1:1',
  'http://[::1]:2380',
  'unix://x',
  'http://127.0.0.1:notaport',
];

function scalar(dice: Dice, field: protobuf.Field): unknown {
  switch (field.type) {
    case 'int64':
    case 'sint64':
    case 'sfixed64':
      return dice.chance(0.6) ? String(dice.int(64) - 8) : dice.pick(INT64_EXTREMES);
    case 'uint64':
    case 'fixed64':
      return dice.chance(0.6) ? String(dice.int(64)) : dice.pick(UINT64_EXTREMES);
    case 'int32':
    case 'sint32':
    case 'uint32':
    case 'fixed32':
    case 'sfixed32':
      return dice.pick(INT32_EXTREMES);
    case 'bool':
      return dice.chance(0.5);
    case 'string':
      return dice.chance(0.5) ? `s${dice.int(8)}` : dice.pick(STRINGS);
    case 'bytes':
      return dice.chance(0.5) ? Buffer.from(`b${dice.int(8)}`) : dice.bytes(dice.pick([0, 1, 3, 40]));
    case 'double':
    case 'float':
      return dice.pick([0, -1, 1.5, 1e300]);
  }
  return undefined;
}

function fieldValue(dice: Dice, field: protobuf.Field, depth: number): unknown {
  const resolved = field.resolve().resolvedType;
  if (resolved !== null && 'fields' in resolved) return depth > 0 ? randomMessage(dice, resolved as protobuf.Type, depth - 1) : {};
  if (resolved !== null) {
    const values = Object.values((resolved as protobuf.Enum).values);
    return dice.chance(0.8) ? dice.pick(values) : dice.pick([-1, 99, 2147483647]);
  }
  return scalar(dice, field);
}

/** A random message of `type`: each field set or not, oneofs with at most one member. */
export function randomMessage(dice: Dice, type: protobuf.Type, depth = 3): Wire {
  const out: Wire = {};
  const oneofMembers = new Set(type.oneofsArray.flatMap((o) => o.fieldsArray.map((f) => f.name)));
  for (const oneof of type.oneofsArray) {
    if (dice.chance(0.7)) {
      const field = dice.pick(oneof.fieldsArray);
      out[field.name] = fieldValue(dice, field, depth);
    }
  }
  for (const field of type.fieldsArray) {
    if (oneofMembers.has(field.name) || dice.chance(0.4)) continue;
    out[field.name] = field.repeated ? Array.from({ length: dice.int(4) }, () => fieldValue(dice, field, depth)) : fieldValue(dice, field, depth);
  }
  return out;
}

// ---------------------------------------------------------------- byte-level mutation

function varint(n: number): Buffer {
  const out: number[] = [];
  while (n > 0x7f) {
    out.push((n & 0x7f) | 0x80);
    n = Math.floor(n / 128);
  }
  out.push(n);
  return Buffer.from(out);
}

/** A field `number` of `wireType` with a payload fitting that type (possibly wrong for the schema). */
function rawField(dice: Dice, number: number, wireType: number): Buffer {
  const tag = varint(number * 8 + wireType);
  switch (wireType) {
    case 0:
      return Buffer.concat([tag, varint(dice.int(1 << 30))]);
    case 1:
      return Buffer.concat([tag, dice.bytes(8)]);
    case 2: {
      const payload = dice.bytes(dice.int(12));
      return Buffer.concat([tag, varint(payload.length), payload]);
    }
    default:
      return Buffer.concat([tag, dice.bytes(4)]);
  }
}

export type Mutation = 'truncate' | 'flip' | 'insert' | 'wrong-wire-type' | 'unknown-field' | 'repeat' | 'garbage' | 'bad-length';

/** Damages `bytes` in one of several ways; the field numbers come from `type`. */
export function mutate(dice: Dice, bytes: Buffer, type: protobuf.Type): { bytes: Buffer; mutation: Mutation } {
  const mutation = dice.pick<Mutation>(['truncate', 'flip', 'insert', 'wrong-wire-type', 'unknown-field', 'repeat', 'garbage', 'bad-length']);
  const at = bytes.length === 0 ? 0 : dice.int(bytes.length);
  switch (mutation) {
    case 'truncate':
      return { bytes: bytes.subarray(0, at), mutation };
    case 'flip': {
      const copy = Buffer.from(bytes.length === 0 ? [0x0a] : bytes);
      const at = dice.int(copy.length);
      copy[at] = copy[at]! ^ (1 << dice.int(8));
      return { bytes: copy, mutation };
    }
    case 'insert':
      return { bytes: Buffer.concat([bytes.subarray(0, at), dice.bytes(1 + dice.int(4)), bytes.subarray(at)]), mutation };
    case 'wrong-wire-type': {
      const field = type.fieldsArray.length > 0 ? dice.pick(type.fieldsArray) : undefined;
      return { bytes: Buffer.concat([bytes, rawField(dice, field?.id ?? 1, dice.pick([0, 1, 2, 5]))]), mutation };
    }
    case 'unknown-field':
      return { bytes: Buffer.concat([bytes, rawField(dice, 1000 + dice.int(1000), dice.pick([0, 1, 2, 5]))]), mutation };
    case 'repeat':
      return { bytes: Buffer.concat([bytes, bytes]), mutation };
    case 'garbage':
      return { bytes: dice.bytes(1 + dice.int(32)), mutation };
    case 'bad-length':
      // A length-delimited field claiming more bytes than follow.
      return { bytes: Buffer.concat([bytes, Buffer.from([0x0a]), varint(1000 + dice.int(1 << 20)), dice.bytes(dice.int(6))]), mutation };
  }
}

// ---------------------------------------------------------------- lane-confined KV requests

const SUFFIXES = ['a', 'b', 'c', 'd', 'e', 'a/x', 'b0', 'zz'];

export function lanePrefix(lane: number): string {
  return `f/${lane}/`;
}

/** The end of a lane's prefix ("f/3/" -> "f/30"), excluding other lanes. */
export function laneEnd(lane: number): string {
  return `f/${lane}0`;
}

export interface LaneContext {
  lane: number;
  /** The store's revision when the round began; reads never name one between it and the round's end. */
  roundRevision: number;
  /** Lease IDs that exist (long TTL) and IDs that never will. */
  liveLeases: readonly string[];
  missingLeases: readonly string[];
}

function laneKey(dice: Dice, c: LaneContext): Buffer {
  if (dice.chance(0.03)) return Buffer.alloc(0);
  const suffix = dice.chance(0.9) ? Buffer.from(dice.pick(SUFFIXES)) : dice.bytes(1 + dice.int(3));
  return Buffer.concat([Buffer.from(lanePrefix(c.lane)), suffix]);
}

function laneRangeEnd(dice: Dice, c: LaneContext, key: Buffer): Buffer {
  const choice = dice.int(5);
  if (choice === 0) return Buffer.from(laneEnd(c.lane));
  if (choice === 1) return laneKey(dice, c);
  if (choice === 2) return Buffer.concat([key, Buffer.from([0])]);
  return Buffer.alloc(0);
}

/** A revision that is not inside the current round: current, past, negative, far future. */
function readRevision(dice: Dice, c: LaneContext): string {
  const choice = dice.int(10);
  if (choice < 5) return '0';
  if (choice < 8) return String(1 + dice.int(Math.max(1, c.roundRevision)));
  if (choice === 8) return dice.pick(['-1', '-2', '-9223372036854775808']);
  return dice.pick(['9223372036854775807', String(2 ** 40), '9007199254740993']);
}

function lease(dice: Dice, c: LaneContext): string {
  const choice = dice.int(10);
  if (choice < 6) return '0';
  if (choice < 9) return dice.pick(c.liveLeases);
  return dice.pick(c.missingLeases);
}

export function laneRange(dice: Dice, c: LaneContext): Wire {
  const key = laneKey(dice, c);
  return {
    key,
    rangeEnd: laneRangeEnd(dice, c, key),
    limit: dice.chance(0.7) ? '0' : dice.pick(['1', '2', '-1', '9223372036854775807']),
    revision: readRevision(dice, c),
    sortOrder: dice.chance(0.7) ? 0 : dice.pick([0, 1, 2, 2, 7]),
    sortTarget: dice.chance(0.7) ? 0 : dice.pick([0, 1, 2, 3, 4, 9]),
    serializable: dice.chance(0.5),
    keysOnly: dice.chance(0.1),
    countOnly: dice.chance(0.1),
    minModRevision: dice.chance(0.9) ? '0' : String(dice.int(c.roundRevision + 2)),
    maxModRevision: dice.chance(0.9) ? '0' : String(dice.int(c.roundRevision + 2)),
    minCreateRevision: dice.chance(0.9) ? '0' : String(dice.int(c.roundRevision + 2)),
    maxCreateRevision: dice.chance(0.9) ? '0' : String(dice.int(c.roundRevision + 2)),
  };
}

export function lanePut(dice: Dice, c: LaneContext): Wire {
  const ignoreValue = dice.chance(0.1);
  const ignoreLease = dice.chance(0.1);
  return {
    key: laneKey(dice, c),
    value: ignoreValue && dice.chance(0.7) ? Buffer.alloc(0) : dice.chance(0.9) ? Buffer.from(`v${dice.int(1000)}`) : dice.bytes(dice.int(64)),
    lease: ignoreLease && dice.chance(0.7) ? '0' : lease(dice, c),
    prevKv: dice.chance(0.3),
    ignoreValue,
    ignoreLease,
  };
}

export function laneDeleteRange(dice: Dice, c: LaneContext): Wire {
  const key = laneKey(dice, c);
  return { key, rangeEnd: laneRangeEnd(dice, c, key), prevKv: dice.chance(0.5) };
}

function laneCompare(dice: Dice, c: LaneContext): Wire {
  const key = laneKey(dice, c);
  const target = dice.chance(0.95) ? dice.int(5) : 9;
  const unions = ['version', 'createRevision', 'modRevision', 'value', 'lease'];
  // Mostly the member matching the target; sometimes another one (Go reads it as zero).
  const union = dice.chance(0.9) && target < 5 ? unions[target === 0 ? 0 : target === 1 ? 1 : target === 2 ? 2 : target === 3 ? 3 : 4]! : dice.pick(unions);
  const value =
    union === 'value'
      ? dice.chance(0.5)
        ? Buffer.from(`v${dice.int(1000)}`)
        : Buffer.alloc(0)
      : union === 'lease'
        ? lease(dice, c)
        : String(dice.int(c.roundRevision + 3) - 1);
  return {
    key,
    rangeEnd: dice.chance(0.8) ? Buffer.alloc(0) : laneRangeEnd(dice, c, key),
    target,
    result: dice.chance(0.95) ? dice.int(4) : 7,
    [union]: value,
  };
}

function laneOp(dice: Dice, c: LaneContext, depth: number): Wire {
  const choice = dice.int(depth > 0 ? 10 : 9);
  if (choice < 3) return { requestRange: laneRange(dice, c) };
  if (choice < 6) return { requestPut: lanePut(dice, c) };
  if (choice < 8) return { requestDeleteRange: laneDeleteRange(dice, c) };
  if (choice === 8) return dice.chance(0.2) ? {} : { requestPut: lanePut(dice, c) };
  return { requestTxn: laneTxn(dice, c, depth - 1) };
}

export function laneTxn(dice: Dice, c: LaneContext, depth = 1): Wire {
  const ops = (): Wire[] => Array.from({ length: dice.chance(0.02) ? 9 : dice.int(4) }, () => laneOp(dice, c, depth));
  return { compare: Array.from({ length: dice.int(3) }, () => laneCompare(dice, c)), success: ops(), failure: ops() };
}
