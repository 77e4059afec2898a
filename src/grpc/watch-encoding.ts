// WatchResponse bytes built from parts encoded once: each event's `events` field is encoded the
// first time any watcher sends it (per prev_kv choice) and reused by every other watcher of
// every stream; the envelope (header, watch ID, flags) is a few varints written here. The parts
// are framed straight into a stream's batch buffer (message-frames.ts, watch-service.ts); the
// JSON gateway gets each message's bytes (handler.ts lets a handler hand over encoded bytes).
//
// Invariants:
// - The bytes decode as what protobufjs (and etcd's gogo) would write for the same message:
//   fields in number order, int64 as two's-complement varints; the envelope leaves proto3 zero
//   values out (as gogo does), an event field is byte for byte what protobufjs wrote for an
//   mvccpb.Event with the type always set and every KeyValue field (watch-encoding.test.ts).
// - An event's cached bytes depend only on the event object and the prev_kv choice; events
//   are never changed after they are queued (the hub shares them between watchers), so a
//   cache keyed by the object is safe. The cache has a byte budget (EncodedEvents).

import type { Event } from '../mvcc/types.js';
import type { StreamResponse } from '../server/watch/watch-stream.js';
import type { MessagePart } from './message-frames.js';
import { keyValueSize, varintSize, writeKeyValue, writeVarint } from './range-encoding.js';
import { assert } from '../util/assert.js';

const EVENT_PUT = 0;
const EVENT_DELETE = 1;
/** Field 11 (events), wire type 2: (11 << 3) | 2. */
const EVENTS_TAG = 0x5a;
/** mvccpb.Event fields: type (1, varint), kv (2) and prev_kv (3), length-delimited. */
const EVENT_TYPE_TAG = 0x08;
const EVENT_KV_TAG = 0x12;
const EVENT_PREV_KV_TAG = 0x1a;

/** The header fields as ResponseHeaders gives them (uint64s as decimal strings). */
export interface WireHeader {
  clusterId: string;
  memberId: string;
  revision: number;
  raftTerm: number;
}

/**
 * Encoded event fields by event, oldest first, up to a byte budget: the events of the latest
 * revisions, which every synced watcher sends and lagging ones send soon after. Older events
 * are encoded again when asked for (a catch-up from history reads new event objects anyway).
 */
class EncodedEvents {
  private readonly fields = new Map<Event, Buffer>();
  private bytes = 0;

  constructor(private readonly maxBytes: number) {}

  get(event: Event): Buffer | undefined {
    return this.fields.get(event);
  }

  set(event: Event, field: Buffer): void {
    this.fields.set(event, field);
    this.bytes += field.length;
    for (const [oldest, oldField] of this.fields) {
      if (this.bytes <= this.maxBytes || this.fields.size === 1) break;
      this.fields.delete(oldest);
      this.bytes -= oldField.length;
    }
  }
}

/** Per prev_kv choice; 4 MiB each holds a few seconds of events at thousands of events/s. */
const withPrevKv = new EncodedEvents(4 * 1024 * 1024);
const withoutPrevKv = new EncodedEvents(4 * 1024 * 1024);

/** The event as one `events` field of a WatchResponse (tag, length, mvccpb.Event), cached. */
export function eventField(event: Event, prevKv: boolean): Buffer {
  const withPrev = prevKv && event.prevKv !== undefined;
  const cache = withPrev ? withPrevKv : withoutPrevKv;
  let field = cache.get(event);
  if (field === undefined) {
    field = encodeEventField(event, withPrev);
    cache.set(event, field);
  }
  return field;
}

/**
 * Written by hand, in one buffer of the exact size. Through protobufjs (a type lookup by name,
 * fromObject, its writer, two copies) the first stream to send a revision took 10-80 us per
 * event, on the path of every watcher's event, since all the streams' writes leave together
 * after the last flush (bench/RESULTS.md). The bytes are the ones protobufjs wrote: the type
 * always (0 for a put), every KeyValue field (range-encoding.ts).
 */
function encodeEventField(event: Event, withPrev: boolean): Buffer {
  const kvSize = keyValueSize(event.kv);
  const prevSize = withPrev ? keyValueSize(event.prevKv!) : 0;
  let body = 2 + 1 + varintSize(kvSize) + kvSize;
  if (withPrev) body += 1 + varintSize(prevSize) + prevSize;
  // A buffer of its own: a slice of Node's shared 8 KiB pool would keep the whole slab alive.
  const field = Buffer.allocUnsafeSlow(1 + varintSize(body) + body);
  let at = 0;
  field[at++] = EVENTS_TAG;
  at = writeVarint(field, at, body);
  field[at++] = EVENT_TYPE_TAG;
  field[at++] = event.type === 'put' ? EVENT_PUT : EVENT_DELETE;
  field[at++] = EVENT_KV_TAG;
  at = writeVarint(field, at, kvSize);
  at = writeKeyValue(field, at, event.kv);
  if (withPrev) {
    field[at++] = EVENT_PREV_KV_TAG;
    at = writeVarint(field, at, prevSize);
    at = writeKeyValue(field, at, event.prevKv!);
  }
  assert(at === field.length, `watch: event encoded in ${at} bytes, sized ${field.length}`);
  return field;
}

/** The encoded size of a response's envelope: every field but the events. */
export function envelopeSize(r: StreamResponse, header: WireHeader, fragment: boolean): number {
  return headerField(header).length + envelopeTail(r, fragment).length;
}

/** The envelope's fields after the header, as a plain array: framed straight into the batch buffer (message-frames.ts), never a Buffer of its own. */
function envelopeTail(r: StreamResponse, fragment: boolean): number[] {
  const out: number[] = [];
  if (r.watchId !== 0) {
    out.push(0x10);
    pushVarint(out, r.watchId);
  }
  if (r.created) out.push(0x18, 1);
  if (r.canceled) out.push(0x20, 1);
  if (r.compactRevision !== 0) {
    out.push(0x28);
    pushVarint(out, r.compactRevision);
  }
  if (r.cancelReason !== '') {
    const reason = Buffer.from(r.cancelReason);
    out.push(0x32);
    pushVarint(out, reason.length);
    for (const byte of reason) out.push(byte);
  }
  if (fragment) out.push(0x38, 1);
  return out;
}

/**
 * A whole WatchResponse as its parts (the header field, the rest of the envelope, then the
 * event fields): concatenated, the message. The header field is one Buffer shared by every
 * response of a revision, so a watcher's own bytes are a few varints.
 */
export function watchResponseParts(r: StreamResponse, header: WireHeader, fields: readonly Buffer[], fragment = false): MessagePart[] {
  const tail = envelopeTail(r, fragment);
  return tail.length === 0 ? [headerField(header), ...fields] : [headerField(header), tail, ...fields];
}

/** The last header field encoded: watchers of one revision share it. */
let lastHeader: { h: WireHeader; field: Buffer } | undefined;
/** The cluster and member ID fields of the last header encoded: they change once in a member's life at most. */
let lastIds: { clusterId: string; memberId: string; fields: Buffer } | undefined;

/** The header as field 1 of a WatchResponse (tag, length, ResponseHeader); never changed once made. */
function headerField(h: WireHeader): Buffer {
  const last = lastHeader?.h;
  if (last && last.revision === h.revision && last.raftTerm === h.raftTerm && last.clusterId === h.clusterId && last.memberId === h.memberId) {
    return lastHeader!.field;
  }
  // Once per revision, on the path of every event: the two 64-bit IDs (BigInt varints) are
  // encoded once, the revision and term written straight into the field.
  if (Number.isSafeInteger(h.revision) && h.revision >= 0 && Number.isSafeInteger(h.raftTerm) && h.raftTerm >= 0) {
    if (lastIds?.clusterId !== h.clusterId || lastIds.memberId !== h.memberId) {
      lastIds = { clusterId: h.clusterId, memberId: h.memberId, fields: idFields(h) };
    }
    const ids = lastIds.fields;
    let body = ids.length;
    if (h.revision !== 0) body += 1 + varintSize(h.revision);
    if (h.raftTerm !== 0) body += 1 + varintSize(h.raftTerm);
    const field = Buffer.allocUnsafeSlow(1 + varintSize(body) + body);
    field[0] = 0x0a;
    let at = writeVarint(field, 1, body);
    at += ids.copy(field, at);
    if (h.revision !== 0) {
      field[at++] = 0x18;
      at = writeVarint(field, at, h.revision);
    }
    if (h.raftTerm !== 0) {
      field[at++] = 0x20;
      at = writeVarint(field, at, h.raftTerm);
    }
    assert(at === field.length, `watch: header encoded in ${at} bytes, sized ${field.length}`);
    lastHeader = { h: { ...h }, field };
    return field;
  }
  const parts: Buffer[] = [];
  const add = (tag: number, value: number | bigint): void => {
    if (value !== 0 && value !== 0n) parts.push(Buffer.from([tag]), varint(value));
  };
  add(0x08, BigInt(h.clusterId));
  add(0x10, BigInt(h.memberId));
  add(0x18, h.revision);
  add(0x20, h.raftTerm);
  const body = Buffer.concat(parts);
  const field = Buffer.concat([Buffer.from([0x0a]), varint(body.length), body]);
  lastHeader = { h: { ...h }, field };
  return field;
}

/** ResponseHeader fields 1 and 2 (cluster_id, member_id; uint64, left out when zero). */
function idFields(h: WireHeader): Buffer {
  const parts: Buffer[] = [];
  const clusterId = BigInt(h.clusterId);
  const memberId = BigInt(h.memberId);
  if (clusterId !== 0n) parts.push(Buffer.from([0x08]), varint(clusterId));
  if (memberId !== 0n) parts.push(Buffer.from([0x10]), varint(memberId));
  return Buffer.concat(parts);
}

/** Appends a varint to `out` (the common case, a small non-negative number, without allocating). */
function pushVarint(out: number[], value: number): void {
  if (!(Number.isSafeInteger(value) && value >= 0)) {
    for (const byte of varint(value)) out.push(byte);
    return;
  }
  let v = value;
  while (v >= 0x80) {
    out.push((v % 0x80) | 0x80);
    v = Math.floor(v / 0x80);
  }
  out.push(v);
}

/** A protobuf varint; negative values as 64-bit two's complement (ten bytes), as int64 is. */
export function varint(value: number | bigint): Buffer {
  const out: number[] = [];
  if (typeof value === 'number' && Number.isSafeInteger(value) && value >= 0) {
    let v = value;
    while (v >= 0x80) {
      out.push((v % 0x80) | 0x80);
      v = Math.floor(v / 0x80);
    }
    out.push(v);
    return Buffer.from(out);
  }
  let v = BigInt.asUintN(64, BigInt(value));
  while (v >= 0x80n) {
    out.push(Number(v & 0x7fn) | 0x80);
    v >>= 7n;
  }
  out.push(Number(v));
  return Buffer.from(out);
}
