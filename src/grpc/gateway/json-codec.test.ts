import { describe, expect, it } from 'vitest';
import { decodeMessage, encodeMessage } from '../proto.js';
import { GoJsonError, readJsonValue } from './go-json.js';
import { encodeJsonRequest, responseJson } from './json-codec.js';

const parse = (text: string) => readJsonValue(text)?.value;

describe('Go-style JSON reading', () => {
  it.each([
    ['{bad', "invalid character 'b' looking for beginning of object key string"],
    ['{"a" 1}', "invalid character '1' after object key"],
    ['{"a":1 "b"}', `invalid character '"' after object key:value pair`],
    ['{"a":x}', "invalid character 'x' looking for beginning of value"],
    ['{"a":tru}', "invalid character '}' in literal true (expecting 'e')"],
    ['{"a":', 'unexpected EOF'],
  ])("%s fails with Go's text", (text, message) => {
    expect(() => parse(text)).toThrow(new GoJsonError(message));
  });

  it('reads one value and leaves the rest (a stream of requests)', () => {
    const first = readJsonValue('{"a":1} {"b":2}');
    expect(first?.end).toBe(7);
    expect(readJsonValue('{"a":1} {"b":2}', first!.end)?.end).toBe(15);
    expect(readJsonValue('  \n')).toBeUndefined();
  });
});

describe('gateway JSON <-> protobuf', () => {
  it('takes proto and camelCase names, int64 as strings or numbers, bytes as base64, enums by name', () => {
    const bytes = encodeJsonRequest(
      'etcdserverpb.RangeRequest',
      parse('{"key":"YQ==","rangeEnd":"Yg==","limit":"9007199254740993","revision":2,"sort_order":"DESCEND"}')!,
    );
    const request = decodeMessage<{ key: Buffer; rangeEnd: Buffer; limit: string; revision: string; sortOrder: number }>('etcdserverpb.RangeRequest', bytes);
    expect([request.key.toString(), request.rangeEnd.toString(), request.limit, request.revision, request.sortOrder]).toEqual([
      'a',
      'b',
      '9007199254740993',
      '2',
      2,
    ]);
  });

  it.each([
    ['{"key":123}', 'json: cannot unmarshal number into Go value of type []uint8'],
    ['{"limit":1.5}', 'json: cannot unmarshal number 1.5 into Go value of type int64'],
    ['{"sort_order":"UP"}', 'unknown value "\\"UP\\"" for enum etcdserverpb.RangeRequest_SortOrder'],
    ['[]', 'json: cannot unmarshal array into Go value of type map[string]json.RawMessage'],
  ])('%s is refused as Go refuses it', (text, message) => {
    expect(() => encodeJsonRequest('etcdserverpb.RangeRequest', parse(text)!)).toThrow(new GoJsonError(message));
  });

  it('writes proto names, 64-bit integers as strings, enums by name, zero values left out', () => {
    const bytes = encodeMessage('etcdserverpb.WatchResponse', {
      header: { clusterId: '1', memberId: '0', revision: '5', raftTerm: '2' },
      created: false,
      events: [
        { type: 1, kv: { key: Buffer.from('k<'), modRevision: '5' } },
        { type: 0, kv: { key: Buffer.from('v'), version: '1' } },
      ],
    });
    expect(responseJson('etcdserverpb.WatchResponse', bytes)).toBe(
      '{"header":{"cluster_id":"1","revision":"5","raft_term":"2"},"events":[{"type":"DELETE","kv":{"key":"azw=","mod_revision":"5"}},{"kv":{"key":"dg==","version":"1"}}]}',
    );
  });
});
