// Encoding of every response's ResponseHeader without protobufjs: its fromObject turned the
// header's decimal-string IDs into Long objects (Long.fromString) on every call, a measurable
// share of a put's CPU (bench/RESULTS.md, "Member CPU per put"). The header is field 1 of every
// etcd response, and protobuf lets a message be written as the concatenation of its fields, so
// a response is [field 1: header bytes, encoded here] + [the other fields, encoded by
// protobufjs]: the same bytes as before, fields in number order, a field written when present
// (as protobufjs writes them, zero included).

/** A ResponseHeader as the handlers build it (responseHeaders in handler.ts). */
type HeaderNumber = string | number | bigint;
export interface HeaderObject {
  clusterId?: HeaderNumber | null;
  memberId?: HeaderNumber | null;
  revision?: HeaderNumber | null;
  raftTerm?: HeaderNumber | null;
}

const TWO_POW_64 = 1n << 64n;

/**
 * The varint bytes of a 64-bit field's value (int64 negatives as two's complement, as
 * protobuf does), or undefined when the value is not a plain integer (left to protobufjs).
 */
function varintOf(value: HeaderNumber): number[] | undefined {
  if (typeof value === 'number') {
    if (!Number.isSafeInteger(value)) return undefined;
    return value >= 0 ? smallVarint(value) : bigVarint(BigInt(value));
  }
  if (typeof value === 'string' && !DECIMAL.test(value)) return undefined;
  return bigVarint(BigInt(value));
}

const DECIMAL = /^-?[0-9]{1,20}$/;

function smallVarint(value: number): number[] {
  const out: number[] = [];
  let v = value;
  while (v >= 0x80) {
    out.push((v % 0x80) | 0x80);
    v = Math.floor(v / 0x80);
  }
  out.push(v);
  return out;
}

function bigVarint(value: bigint): number[] | undefined {
  if (value >= TWO_POW_64 || value < -(TWO_POW_64 / 2n)) return undefined;
  let v = BigInt.asUintN(64, value);
  const out: number[] = [];
  while (v >= 0x80n) {
    out.push(Number(v & 0x7fn) | 0x80);
    v >>= 7n;
  }
  out.push(Number(v));
  return out;
}

/** Decimal IDs repeat on every call (cluster and member ID): their varints are kept. */
const stringVarints = new Map<string, number[] | undefined>();
const STRING_CACHE_MAX = 64;

function cachedVarint(value: HeaderNumber): number[] | undefined {
  if (typeof value !== 'string') return varintOf(value);
  let bytes = stringVarints.get(value);
  if (bytes === undefined && !stringVarints.has(value)) {
    bytes = varintOf(value);
    if (stringVarints.size >= STRING_CACHE_MAX) stringVarints.clear();
    stringVarints.set(value, bytes);
  }
  return bytes;
}

/** Room for the largest header field: tag, length, 4 x (tag + 10-byte varint). */
const scratch = Buffer.allocUnsafe(2 + 4 * 11);

/** Writes `value` as field `number` at `at`; the offset after it, or -1 if not a plain integer. */
function putField(number: number, value: HeaderNumber | null | undefined, at: number): number {
  if (value === undefined || value === null) return at;
  let n = at;
  scratch[n++] = number << 3;
  if (typeof value === 'number' && value >= 0 && value <= 0xfffffff) {
    // The common case (revisions, terms): no allocation at all.
    let v = value;
    while (v >= 0x80) {
      scratch[n++] = (v & 0x7f) | 0x80;
      v >>>= 7;
    }
    scratch[n++] = v;
    return n;
  }
  const bytes = cachedVarint(value);
  if (bytes === undefined) return -1;
  for (const byte of bytes) scratch[n++] = byte;
  return n;
}

/**
 * The bytes of field 1 (tag, length, ResponseHeader), or undefined when some value is not a
 * plain integer (the caller then lets protobufjs encode the whole response, as before).
 */
export function encodeHeaderField(header: HeaderObject): Buffer | undefined {
  let n = putField(1, header.clusterId, 2);
  if (n >= 0) n = putField(2, header.memberId, n);
  if (n >= 0) n = putField(3, header.revision, n);
  if (n >= 0) n = putField(4, header.raftTerm, n);
  if (n < 0) return undefined;
  scratch[0] = 0x0a; // field 1, length-delimited
  scratch[1] = n - 2; // at most 44: one varint byte
  // One allocation per response: copied out by hand (no subarray view, no native copy call).
  const out = Buffer.allocUnsafe(n);
  for (let i = 0; i < n; i++) out[i] = scratch[i] as number;
  return out;
}

/** True when the response has a field other than the header to encode. */
function hasOtherFields(response: object): boolean {
  for (const key in response) {
    if (key !== 'header' && (response as Record<string, unknown>)[key] != null) return true;
  }
  return false;
}

/** True when a method's response type has `ResponseHeader header = 1` (proto-loader's descriptor). */
export function hasHeaderField(method: object): boolean {
  const type = (method as { responseType?: { type?: { field?: Array<{ name?: string; number?: number; typeName?: string }> } } }).responseType?.type;
  const header = type?.field?.find((f) => f.name === 'header');
  return header !== undefined && header.number === 1 && (header.typeName ?? '').endsWith('ResponseHeader');
}

/**
 * Encodes a response whose type has the header as field 1: the header by hand, the rest with
 * `encode` (given the response without its header). Falls back to `encode` for the whole
 * response when there is no header object or it holds something other than integers.
 */
export function encodeWithHeader(response: unknown, encode: (value: unknown) => Uint8Array): Uint8Array {
  if (typeof response !== 'object' || response === null) return encode(response);
  const header = (response as { header?: unknown }).header;
  if (typeof header !== 'object' || header === null) return encode(response);
  const headerField = encodeHeaderField(header as HeaderObject);
  if (headerField === undefined) return encode(response);
  if (!hasOtherFields(response)) return headerField;
  const rest = encode({ ...response, header: undefined });
  if (rest.length === 0) return headerField;
  return Buffer.concat([headerField, rest], headerField.length + rest.length);
}
