import { describe, expect, it } from 'vitest';
import type { Event, KeyValue } from '../mvcc/types.js';
import type { StreamResponse } from '../server/watch/watch-stream.js';
import { toWireKeyValue } from './kv-convert.js';
import { decodeMessage, encodeMessage } from './proto.js';
import { envelopeSize, eventField, watchResponseParts, type WireHeader } from './watch-encoding.js';

function kv(key: string, value: string, modRevision: number, lease = 0n): KeyValue {
  return { key: Buffer.from(key), value: Buffer.from(value), createRevision: 2, modRevision, version: 3, lease };
}

const put: Event = { type: 'put', kv: kv('a', 'one', 7, 0x7fffffffffffffffn), prevKv: kv('a', 'zero', 6) };
const del: Event = { type: 'delete', kv: { ...kv('b', '', 7), createRevision: 0, version: 0 } };

/** The mvccpb.Event protobufjs is given for the reference encoding (type always, every KeyValue field). */
function wireEvent(event: Event, withPrevKv: boolean): object {
  const out: { type: number; kv: object; prevKv?: object } = { type: event.type === 'put' ? 0 : 1, kv: toWireKeyValue(event.kv) };
  if (withPrevKv && event.prevKv !== undefined) out.prevKv = toWireKeyValue(event.prevKv);
  return out;
}

/** The message the stream frames from its parts. */
function watchResponseBytes(r: StreamResponse, header: WireHeader, fields: readonly Buffer[], fragment = false): Buffer {
  return Buffer.concat(watchResponseParts(r, header, fields, fragment).map((part) => Buffer.from(part)));
}

function response(fields: Partial<StreamResponse>): StreamResponse {
  return {
    watchId: 0,
    revision: 7,
    events: [],
    created: false,
    canceled: false,
    cancelReason: '',
    compactRevision: 0,
    prevKv: false,
    fragment: false,
    ...fields,
  };
}

/** What protobufjs writes for the same response, as the handlers used to hand it to grpc-js
 * (it writes the zero fields it was given; etcd's gogo and watch-encoding.ts leave them out). */
function reference(r: StreamResponse, header: WireHeader, fragment = false): Buffer {
  return encodeMessage('etcdserverpb.WatchResponse', {
    header,
    watchId: r.watchId,
    created: r.created,
    canceled: r.canceled,
    compactRevision: r.compactRevision,
    cancelReason: r.cancelReason,
    fragment,
    events: r.events.map((e) => wireEvent(e, r.prevKv)),
  });
}

function decode(bytes: Buffer): unknown {
  return decodeMessage('etcdserverpb.WatchResponse', bytes);
}

describe('WatchResponse encoding from parts', () => {
  const header: WireHeader = { clusterId: '18446744073709551615', memberId: '9372538179322589801', revision: 7, raftTerm: 2 };

  it.each([
    ['events without prev_kv', response({ watchId: 3, events: [put, del] })],
    ['events with prev_kv (only where an event has one)', response({ watchId: 3, events: [put, del], prevKv: true })],
    ['created, watch ID 0', response({ created: true })],
    [
      'a failed create: watch ID -1, canceled with a reason',
      response({ watchId: -1, created: true, canceled: true, cancelReason: 'mvcc: watcher range is empty' }),
    ],
    ['compacted', response({ watchId: 2 ** 40, canceled: true, compactRevision: 5 })],
  ])('%s: decodes as the protobufjs encoding does', (_, r) => {
    const fields = r.events.map((e) => eventField(e, r.prevKv));
    for (const fragment of [false, true]) {
      expect(decode(watchResponseBytes(r, header, fields, fragment))).toEqual(decode(reference(r, header, fragment)));
      const eventBytes = fields.reduce((sum, field) => sum + field.length, 0);
      expect(envelopeSize(r, header, fragment)).toBe(watchResponseBytes(r, header, fields, fragment).length - eventBytes);
    }
  });

  it('leaves zero fields out, as etcd (gogo) does: a created answer is header + created only', () => {
    const bytes = watchResponseBytes(response({ created: true }), { ...header, clusterId: '1', memberId: '2' }, []);
    expect(bytes.toString('hex')).toBe('0a08' + '0801' + '1002' + '1807' + '2002' + '1801');
  });

  it('a zero header (a compaction answer) and a changed term encode as protobufjs does', () => {
    const r = response({ watchId: 1, canceled: true, compactRevision: 9 });
    for (const h of [{ ...header, revision: 0 }, { ...header, raftTerm: 5 }, header]) {
      expect(decode(watchResponseBytes(r, h, []))).toEqual(decode(reference(r, h)));
    }
  });

  it('writes the header field byte for byte as protobufjs writes a ResponseHeader without its zero fields', () => {
    const headers: WireHeader[] = [
      header,
      { ...header, revision: 0 },
      { ...header, raftTerm: 0 },
      { clusterId: '0', memberId: '1', revision: 2 ** 40, raftTerm: 2 ** 31 },
      { clusterId: '1', memberId: '0', revision: 127, raftTerm: 128 },
      { ...header, revision: 8 },
      { ...header, clusterId: '5' },
    ];
    for (const h of headers) {
      const nonZero = Object.fromEntries(Object.entries(h).filter(([, value]) => value !== 0 && value !== '0'));
      const body = encodeMessage('etcdserverpb.ResponseHeader', nonZero);
      const expected = Buffer.concat([Buffer.from([0x0a, body.length]), body]);
      expect(Buffer.from(watchResponseParts(response({ created: true }), h, [])[0]!).toString('hex')).toBe(expected.toString('hex'));
    }
  });

  it('writes an event field byte for byte as protobufjs wrote it (negative lease, empty value, large revisions)', () => {
    const big: Event = { type: 'put', kv: { ...kv('k'.repeat(300), 'v'.repeat(200), 2 ** 40, -5n), version: 2 ** 31 }, prevKv: kv('k', '', 1) };
    for (const event of [put, del, big]) {
      for (const withPrev of [false, true]) {
        const body = encodeMessage('mvccpb.Event', wireEvent(event, withPrev));
        const field = eventField(event, withPrev);
        const expected = encodeMessage('etcdserverpb.WatchResponse', { events: [wireEvent(event, withPrev)] });
        expect(field.toString('hex')).toBe(expected.toString('hex'));
        expect(field.subarray(field.length - body.length).equals(body)).toBe(true);
      }
    }
  });

  it('encodes an event once per prev_kv choice and hands every watcher the same bytes', () => {
    const event: Event = { type: 'put', kv: kv('k', 'v', 9), prevKv: kv('k', 'u', 8) };
    const first = eventField(event, false);
    expect(eventField(event, false)).toBe(first);
    const withPrev = eventField(event, true);
    expect(eventField(event, true)).toBe(withPrev);
    expect(withPrev.length).toBeGreaterThan(first.length);
  });
});
