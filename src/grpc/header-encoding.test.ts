import { describe, expect, it } from 'vitest';
import { withRequestSizes } from './handler.js';
import { hasHeaderField } from './header-encoding.js';
import { decodeMessage, encodeMessage, services } from './proto.js';

const header = { clusterId: '14841639068965178418', memberId: '10276657743932975437', revision: 42, raftTerm: 3 };
const kv = { key: Buffer.from('k'), value: Buffer.from('v'), createRevision: '5', modRevision: '42', version: '2', lease: '0' };

/** The KV service's served definition, as the server wraps it. */
const kvDefinition = withRequestSizes(services.KV, 4 << 20);
const serialize = (method: string, value: object): Buffer => Buffer.from(kvDefinition[method]!.responseSerialize(value));

describe('response header encoding', () => {
  it('writes the bytes protobufjs wrote for responses with and without other fields', () => {
    const cases: Array<[string, string, object]> = [
      ['Put', 'etcdserverpb.PutResponse', { header }],
      ['Put', 'etcdserverpb.PutResponse', { header, prevKv: kv }],
      ['Put', 'etcdserverpb.PutResponse', { header, prevKv: undefined }],
      ['Range', 'etcdserverpb.RangeResponse', { header, kvs: [], more: false, count: '0' }],
      ['Range', 'etcdserverpb.RangeResponse', { header, kvs: [kv, kv], more: true, count: '2' }],
      ['DeleteRange', 'etcdserverpb.DeleteRangeResponse', { header, deleted: '1', prevKvs: [kv] }],
      ['Put', 'etcdserverpb.PutResponse', { header: { ...header, revision: '0', raftTerm: 0 } }],
      ['Put', 'etcdserverpb.PutResponse', { header: { ...header, revision: -1 } }],
      ['Put', 'etcdserverpb.PutResponse', { header: { clusterId: '1', revision: 2 ** 40 } }],
      ['Put', 'etcdserverpb.PutResponse', { header: { ...header, clusterId: 18446744073709551615n } }],
    ];
    for (const [method, type, response] of cases) {
      expect(serialize(method, response), `${type} ${JSON.stringify(response, (_k, v) => (typeof v === 'bigint' ? String(v) : v))}`).toEqual(
        encodeMessage(type, response),
      );
    }
  });

  it('round-trips the header values clients read', () => {
    const decoded = decodeMessage<{ header: typeof header }>('etcdserverpb.PutResponse', serialize('Put', { header }));
    expect(decoded.header).toEqual({ ...header, revision: '42', raftTerm: '3' });
  });

  it('leaves values that are not plain integers to protobufjs', () => {
    const odd = { header: { ...header, revision: 1.5 } };
    expect(serialize('Put', odd)).toEqual(encodeMessage('etcdserverpb.PutResponse', odd));
  });

  it('recognises the header field from the loaded descriptors', () => {
    expect(hasHeaderField(services.KV.Put!)).toBe(true);
    expect(hasHeaderField(services.Watch.Watch!)).toBe(true);
    expect(hasHeaderField({})).toBe(false);
  });
});
