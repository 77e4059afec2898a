import { describe, expect, it } from 'vitest';
import { expectDamagedBytesDecodedAsProtoLoader, expectWellFormedDecodedAsProtoLoader } from '../../test/support/hand-decoding.js';
import { withRequestSizes } from './handler.js';
import { encodeMessage, services } from './proto.js';
import { decodePutRequest } from './put-request-decoding.js';

/** proto-loader's own decoder for PutRequest (what the Put handler received before). */
const protoLoaderDecode = services.KV.Put!.requestDeserialize as (bytes: Buffer) => object;

const LEASES = ['0', '1', '-1', '128', '9007199254740993', '-9223372036854775808', '9223372036854775807', '7587862418718395906'];

function randomRequest(random: () => number): object {
  const pick = <T>(list: readonly T[]): T => list[Math.floor(random() * list.length)]!;
  const bytes = (): Buffer => Buffer.from(Array.from({ length: pick([0, 1, 8, 256]) }, () => Math.floor(random() * 256)));
  const request: Record<string, unknown> = {};
  if (random() < 0.9) request.key = bytes();
  if (random() < 0.8) request.value = bytes();
  if (random() < 0.4) request.lease = pick(LEASES);
  for (const field of ['prevKv', 'ignoreValue', 'ignoreLease']) if (random() < 0.4) request[field] = random() < 0.5;
  return request;
}

describe('PutRequest decoding', () => {
  it('gives what proto-loader gives for well-formed requests, with unknown fields and repeated fields', () => {
    expectWellFormedDecodedAsProtoLoader('etcdserverpb.PutRequest', randomRequest, decodePutRequest, protoLoaderDecode, {
      unknownFields: Buffer.from([0x38, 0x05, 0x41, 1, 2, 3, 4, 5, 6, 7, 8, 0x4a, 0x02, 9, 9, 0x55, 1, 2, 3, 4]),
      repeated: { lease: '77', key: Buffer.from('again') },
    });
  });

  it('gives what proto-loader gives, or leaves the message to it, for damaged bytes', () => {
    expectDamagedBytesDecodedAsProtoLoader('etcdserverpb.PutRequest', randomRequest, decodePutRequest, protoLoaderDecode);
  });

  it('leaves groups, invalid wire types and known fields of the wrong wire type to proto-loader', () => {
    for (const hex of ['0b0c', '0f', '1a0161', '0801', '0a', '0a05616263', 'ffffffffffffffffffffff01', '00']) {
      expect(decodePutRequest(Buffer.from(hex, 'hex')), hex).toBeUndefined();
    }
    // A bool written as a ten-byte varint is well-formed: its low 32 bits count.
    for (const hex of ['20ffffffffffffffffff01', '2880808080f0ffffffff01', '308080808010']) {
      expect(decodePutRequest(Buffer.from(hex, 'hex')), hex).toEqual(protoLoaderDecode(Buffer.from(hex, 'hex')));
    }
  });

  it('is what the served KV definition decodes Put requests with', () => {
    const definition = withRequestSizes(services.KV, 4 << 20);
    const bytes = encodeMessage('etcdserverpb.PutRequest', { key: Buffer.from('k'), value: Buffer.from('v'), lease: '-5', prevKv: true });
    expect(definition.Put!.requestDeserialize(bytes)).toEqual(protoLoaderDecode(bytes));
    const odd = Buffer.concat([bytes, Buffer.from('a301a401', 'hex')]); // an empty group, field 20
    expect(decodePutRequest(odd)).toBeUndefined();
    expect(definition.Put!.requestDeserialize(odd)).toEqual(protoLoaderDecode(odd));
  });
});
