import { describe, expect, it } from 'vitest';
import type { KeyValue, RangeResult } from '../mvcc/types.js';
import { toWireRange } from './kv-convert.js';
import { decodeMessage, encodeMessage } from './proto.js';
import { encodeRangeResponse } from './range-encoding.js';

const header = { clusterId: '14841639068965178418', memberId: '10276657743932975437', revision: 42, raftTerm: 3 };

function kv(key: string, value: Buffer, fields: Partial<KeyValue> = {}): KeyValue {
  return { key: Buffer.from(key), value, createRevision: 5, modRevision: 42, version: 2, lease: 0n, ...fields };
}

/** What the Range handler answered before: the object, encoded by protobufjs. */
function protobufjsBytes(result: RangeResult, h: object = header): Buffer {
  return encodeMessage('etcdserverpb.RangeResponse', { header: h, ...toWireRange(result) });
}

describe('RangeResponse encoding', () => {
  it('writes the bytes protobufjs wrote for the same answer', () => {
    const results: RangeResult[] = [
      { kvs: [], more: false, count: 0 },
      { kvs: [kv('k', Buffer.from('v'))], more: false, count: 1 },
      { kvs: [kv('a', Buffer.alloc(0)), kv('b', Buffer.alloc(300, 7))], more: true, count: 100_000 },
      // Lengths and numbers across varint byte boundaries; a key longer than the loop copy.
      { kvs: [kv('x'.repeat(127), Buffer.alloc(128, 1), { createRevision: 2 ** 35, modRevision: 2 ** 53 - 1, version: 16_384 })], more: false, count: 2 ** 31 },
      { kvs: [kv('l', Buffer.from('v'), { lease: 7587852937214525701n }), kv('m', Buffer.from('w'), { lease: 127n })], more: false, count: 2 },
      // A lease ID is an int64: a negative one (not one MetaStore grants) is ten bytes.
      { kvs: [kv('n', Buffer.from('v'), { lease: -5n })], more: false, count: 1 },
      { kvs: [kv('big', Buffer.alloc(1 << 20, 9))], more: false, count: 1 },
    ];
    for (const result of results) {
      const bytes = encodeRangeResponse(header, result);
      expect(bytes, `${result.kvs.length} kvs, count ${result.count}`).toEqual(protobufjsBytes(result));
    }
  });

  it('decodes to the answer it was given', () => {
    const result: RangeResult = { kvs: [kv('k1', Buffer.from('v1')), kv('k2', Buffer.from('v2'), { lease: 9n })], more: true, count: 5 };
    const decoded = decodeMessage<{ header: { revision: string }; kvs: Array<{ key: Buffer; value: Buffer; lease: string }>; more: boolean; count: string }>(
      'etcdserverpb.RangeResponse',
      encodeRangeResponse(header, result)!,
    );
    expect(decoded.header.revision).toBe('42');
    expect(decoded.kvs.map((k) => [k.key.toString(), k.value.toString(), k.lease])).toEqual([
      ['k1', 'v1', '0'],
      ['k2', 'v2', '9'],
    ]);
    expect([decoded.more, decoded.count]).toEqual([true, '5']);
  });

  it('leaves a header that is not plain integers to protobufjs', () => {
    expect(encodeRangeResponse({ ...header, revision: 'forty-two' }, { kvs: [], more: false, count: 0 })).toBeUndefined();
  });
});
