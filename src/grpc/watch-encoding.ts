// WatchResponse bytes built from parts encoded once: each event's `events` field is encoded the
// first time any watcher sends it (per prev_kv choice) and reused by every other watcher of
// every stream; the envelope (header, watch ID, flags) is a few varints written here. The parts
// are framed straight into a stream's batch buffer (message-frames.ts, watch-service.ts); the
// JSON gateway gets each message's bytes (handler.ts lets a handler hand over encoded bytes).
//
// Invariants:
// - The bytes are what protobufjs (and etcd's gogo) would write for the same message: fields
//   in number order, proto3 zero values left out, int64 as two's-complement varints.
// - An event's cached bytes depend only on the event object and the prev_kv choice; events
//   are never changed after they are queued (the hub shares them between watchers), so a
//   cache keyed by the object is safe. The cache has a byte budget (EncodedEvents).

import type { Event } from '../mvcc/types.js';
import type { StreamResponse } from '../server/watch/watch-stream.js';
import { toWireKeyValue } from './kv-convert.js';
import type { MessagePart } from './message-frames.js';
import { encodeMessage } from './proto.js';

const EVENT_PUT = 0;
const EVENT_DELETE = 1;
/** Field 11 (events), wire type 2: (11 << 3) | 2. */
const EVENTS_TAG = 0x5a;

/** The header fields as ResponseHeaders gives them (uint64s as decimal strings). */
export interface WireHeader {
  clusterId: string;
  memberId: string;
  revision: number;
  raftTerm: number;
}

export function wireEvent(event: Event, withPrevKv: boolean): object {
  const out: { type: number; kv: object; prevKv?: object } = {
    type: event.type === 'put' ? EVENT_PUT : EVENT_DELETE,
    kv: toWireKeyValue(event.kv),
  };
  if (withPrevKv && event.prevKv !== undefined) out.prevKv = toWireKeyValue(event.prevKv);
  return out;
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
  const cache = prevKv && event.prevKv !== undefined ? withPrevKv : withoutPrevKv;
  let field = cache.get(event);
  if (field === undefined) {
    const body = encodeMessage('mvccpb.Event', wireEvent(event, prevKv));
    const length = varint(body.length);
    // A buffer of its own: a slice of Node's shared 8 KiB pool would keep the whole slab alive.
    field = Buffer.allocUnsafeSlow(1 + length.length + body.length);
    field[0] = EVENTS_TAG;
    length.copy(field, 1);
    body.copy(field, 1 + length.length);
    cache.set(event, field);
  }
  return field;
}

/** The envelope of a response: every field but the events, in field order. */
export function envelope(r: StreamResponse, header: WireHeader, fragment: boolean): Buffer {
  return Buffer.from(envelopeBytes(r, header, fragment));
}

/** The envelope's bytes as a plain array: framed straight into the batch buffer (message-frames.ts), never a Buffer of its own. */
function envelopeBytes(r: StreamResponse, header: WireHeader, fragment: boolean): number[] {
  const headerBody = encodeHeader(header);
  const out: number[] = [0x0a];
  pushVarint(out, headerBody.length);
  for (const byte of headerBody) out.push(byte);
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

/** A whole WatchResponse as its parts (envelope, then the event fields): concatenated, the message. */
export function watchResponseParts(r: StreamResponse, header: WireHeader, fields: readonly Buffer[], fragment = false): MessagePart[] {
  return [envelopeBytes(r, header, fragment), ...fields];
}

/** A whole WatchResponse: its envelope followed by the given event fields. */
export function watchResponseBytes(r: StreamResponse, header: WireHeader, fields: readonly Buffer[], fragment = false): Buffer {
  return Buffer.concat([envelope(r, header, fragment), ...fields]);
}

/** The last header encoded: watchers of one revision share it. */
let lastHeader: { h: WireHeader; bytes: Buffer } | undefined;

function encodeHeader(h: WireHeader): Buffer {
  const last = lastHeader?.h;
  if (last && last.revision === h.revision && last.raftTerm === h.raftTerm && last.clusterId === h.clusterId && last.memberId === h.memberId) {
    return lastHeader!.bytes;
  }
  const parts: Buffer[] = [];
  const add = (tag: number, value: number | bigint): void => {
    if (value !== 0 && value !== 0n) parts.push(Buffer.from([tag]), varint(value));
  };
  add(0x08, BigInt(h.clusterId));
  add(0x10, BigInt(h.memberId));
  add(0x18, h.revision);
  add(0x20, h.raftTerm);
  const bytes = Buffer.concat(parts);
  lastHeader = { h: { ...h }, bytes };
  return bytes;
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
