import { describe, expect, it } from 'vitest';
import { expectDamagedBytesDecodedAsProtoLoader, expectWellFormedDecodedAsProtoLoader } from '../../test/support/hand-decoding.js';
import { withRequestSizes } from './handler.js';
import { encodeMessage, services } from './proto.js';
import { decodeRangeRequest } from './range-request-decoding.js';

/** proto-loader's own decoder for RangeRequest (what the Range handler received before). */
const protoLoaderDecode = services.KV.Range!.requestDeserialize as (bytes: Buffer) => object;

const INT64S = [
  '0',
  '1',
  '-1',
  '127',
  '128',
  '16384',
  '9007199254740991',
  '9007199254740993',
  '-9223372036854775808',
  '9223372036854775807',
  '562949953421312',
];

function randomRequest(random: () => number): object {
  const pick = <T>(list: readonly T[]): T => list[Math.floor(random() * list.length)]!;
  const bytes = (): Buffer => Buffer.from(Array.from({ length: pick([0, 1, 8, 200]) }, () => Math.floor(random() * 256)));
  const request: Record<string, unknown> = {};
  if (random() < 0.9) request.key = bytes();
  if (random() < 0.5) request.rangeEnd = bytes();
  for (const field of ['limit', 'revision', 'minModRevision', 'maxModRevision', 'minCreateRevision', 'maxCreateRevision']) {
    if (random() < 0.4) request[field] = pick(INT64S);
  }
  if (random() < 0.4) request.sortOrder = pick([0, 1, 2, 7, -1]);
  if (random() < 0.4) request.sortTarget = pick([0, 4, 1000]);
  for (const field of ['serializable', 'keysOnly', 'countOnly']) if (random() < 0.5) request[field] = random() < 0.5;
  return request;
}

describe('RangeRequest decoding', () => {
  it('gives what proto-loader gives for well-formed requests, with unknown fields and repeated fields', () => {
    expectWellFormedDecodedAsProtoLoader('etcdserverpb.RangeRequest', randomRequest, decodeRangeRequest, protoLoaderDecode, {
      unknownFields: Buffer.from([0xa0, 0x01, 0x05, 0xa9, 0x01, 1, 2, 3, 4, 5, 6, 7, 8, 0xb2, 0x01, 0x02, 9, 9, 0xbd, 0x01, 1, 2, 3, 4]),
      repeated: { limit: '77', key: Buffer.from('again') },
    });
  });

  it('gives what proto-loader gives, or leaves the message to it, for damaged bytes', () => {
    expectDamagedBytesDecodedAsProtoLoader('etcdserverpb.RangeRequest', randomRequest, decodeRangeRequest, protoLoaderDecode);
  });

  it('leaves groups, invalid wire types and known fields of the wrong wire type to proto-loader', () => {
    const cases = ['0b0c', '0f', '1801' + '1a0161', '0a', '0a05616263', 'ffffffffffffffffffffff01', '00'];
    for (const hex of cases) expect(decodeRangeRequest(Buffer.from(hex, 'hex')), hex).toBeUndefined();
    // A bool or enum written as a ten-byte varint is well-formed: its low 32 bits count.
    for (const hex of ['38ffffffffffffffffff01', '28feffffffffffffffff01', '388080808010']) {
      expect(decodeRangeRequest(Buffer.from(hex, 'hex')), hex).toEqual(protoLoaderDecode(Buffer.from(hex, 'hex')));
    }
  });

  it('is what the served KV definition decodes Range requests with', () => {
    const definition = withRequestSizes(services.KV, 4 << 20);
    const bytes = encodeMessage('etcdserverpb.RangeRequest', { key: Buffer.from('k'), limit: '-5', serializable: true });
    const decoded = definition.Range!.requestDeserialize(bytes);
    expect(decoded).toEqual(protoLoaderDecode(bytes));
    expect(decodeRangeRequest(Buffer.concat([bytes, Buffer.from('a301a401', 'hex')]))).toBeUndefined();
    // A message the hand decoder leaves alone still reaches the handler, decoded by proto-loader.
    const odd = Buffer.concat([bytes, Buffer.from('a301a401', 'hex')]); // an empty group, field 20
    expect(definition.Range!.requestDeserialize(odd)).toEqual(protoLoaderDecode(odd));
  });
});
