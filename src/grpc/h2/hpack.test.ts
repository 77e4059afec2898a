// HPACK: the RFC 7541 Appendix C examples decode to the listed headers with the listed dynamic
// tables (C.3/C.4 requests, C.5/C.6 responses with a 256-byte table and eviction), malformed
// blocks are refused, the header list limit is enforced while the table stays in step, and the
// encoder's output decodes back to its input.

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { HeaderField } from './h2-stream.js';
import { huffmanDecode, huffmanEncode } from '../../../test/support/huffman-reference.js';
import { encodedBlock, encodedBound, encodeFields, HpackDecoder, huffmanDecodeLatin1 } from './hpack.js';

const hex = (s: string): Buffer => Buffer.from(s.replace(/\s+/g, ''), 'hex');

function decodeAll(decoder: HpackDecoder, block: Buffer, limit = 1 << 20): HeaderField[] | null {
  return decoder.decode(block, 0, block.length, limit);
}

const REQUESTS: HeaderField[][] = [
  [
    [':method', 'GET'],
    [':scheme', 'http'],
    [':path', '/'],
    [':authority', 'www.example.com'],
  ],
  [
    [':method', 'GET'],
    [':scheme', 'http'],
    [':path', '/'],
    [':authority', 'www.example.com'],
    ['cache-control', 'no-cache'],
  ],
  [
    [':method', 'GET'],
    [':scheme', 'https'],
    [':path', '/index.html'],
    [':authority', 'www.example.com'],
    ['custom-key', 'custom-value'],
  ],
];
const REQUEST_TABLES: Array<{ size: number; entries: HeaderField[] }> = [
  { size: 57, entries: [[':authority', 'www.example.com']] },
  {
    size: 110,
    entries: [
      ['cache-control', 'no-cache'],
      [':authority', 'www.example.com'],
    ],
  },
  {
    size: 164,
    entries: [
      ['custom-key', 'custom-value'],
      ['cache-control', 'no-cache'],
      [':authority', 'www.example.com'],
    ],
  },
];

const DATE_1 = 'Mon, 21 Oct 2013 20:13:21 GMT';
const DATE_2 = 'Mon, 21 Oct 2013 20:13:22 GMT';
const COOKIE = 'foo=ASDJKHQKBZXOQWEOPIUAXQWEOIU; max-age=3600; version=1';
const RESPONSES: HeaderField[][] = [
  [
    [':status', '302'],
    ['cache-control', 'private'],
    ['date', DATE_1],
    ['location', 'https://www.example.com'],
  ],
  [
    [':status', '307'],
    ['cache-control', 'private'],
    ['date', DATE_1],
    ['location', 'https://www.example.com'],
  ],
  [
    [':status', '200'],
    ['cache-control', 'private'],
    ['date', DATE_2],
    ['location', 'https://www.example.com'],
    ['content-encoding', 'gzip'],
    ['set-cookie', COOKIE],
  ],
];
const RESPONSE_TABLES: Array<{ size: number; entries: HeaderField[] }> = [
  {
    size: 222,
    entries: [
      ['location', 'https://www.example.com'],
      ['date', DATE_1],
      ['cache-control', 'private'],
      [':status', '302'],
    ],
  },
  {
    size: 222,
    entries: [
      [':status', '307'],
      ['location', 'https://www.example.com'],
      ['date', DATE_1],
      ['cache-control', 'private'],
    ],
  },
  {
    size: 215,
    entries: [
      ['set-cookie', COOKIE],
      ['content-encoding', 'gzip'],
      ['date', DATE_2],
    ],
  },
];

function checkSequence(decoder: HpackDecoder, blocks: string[], lists: HeaderField[][], tables: Array<{ size: number; entries: HeaderField[] }>): void {
  blocks.forEach((block, i) => {
    expect(decodeAll(decoder, hex(block))).toEqual(lists[i]);
    expect(decoder.tableSize).toBe(tables[i]!.size);
    expect(decoder.tableEntries()).toEqual(tables[i]!.entries);
  });
}

describe('HPACK decoder: RFC 7541 Appendix C', () => {
  it('C.2: literal with and without indexing, never indexed, indexed', () => {
    const d = new HpackDecoder();
    expect(decodeAll(d, hex('400a637573746f6d2d6b65790d637573746f6d2d686561646572'))).toEqual([['custom-key', 'custom-header']]);
    expect(d.tableSize).toBe(55);
    expect(decodeAll(d, hex('040c2f73616d706c652f70617468'))).toEqual([[':path', '/sample/path']]);
    expect(decodeAll(d, hex('100870617373776f726406736563726574'))).toEqual([['password', 'secret']]);
    expect(decodeAll(d, hex('82'))).toEqual([[':method', 'GET']]);
    expect(d.tableSize).toBe(55);
  });

  it('C.3: requests without Huffman share the dynamic table', () => {
    checkSequence(
      new HpackDecoder(),
      ['828684410f7777772e6578616d706c652e636f6d', '828684be58086e6f2d6361636865', '828785bf400a637573746f6d2d6b65790c637573746f6d2d76616c7565'],
      REQUESTS,
      REQUEST_TABLES,
    );
  });

  it('C.4: requests with Huffman', () => {
    checkSequence(
      new HpackDecoder(),
      ['828684418cf1e3c2e5f23a6ba0ab90f4ff', '828684be5886a8eb10649cbf', '828785bf408825a849e95ba97d7f8925a849e95bb8e8b4bf'],
      REQUESTS,
      REQUEST_TABLES,
    );
  });

  it('C.5: responses without Huffman, 256-byte table, eviction', () => {
    checkSequence(
      new HpackDecoder(256),
      [
        '4803333032580770726976617465611d4d6f6e2c203231204f637420323031332032303a31333a323120474d546e1768747470733a2f2f7777772e6578616d706c652e636f6d',
        '4803333037c1c0bf',
        '88c1611d4d6f6e2c203231204f637420323031332032303a31333a323220474d54c05a04677a69707738666f6f3d4153444a4b48514b425a584f5157454f50495541585157454f49553b206d61782d6167653d333630303b2076657273696f6e3d31',
      ],
      RESPONSES,
      RESPONSE_TABLES,
    );
  });

  it('C.6: responses with Huffman, 256-byte table, eviction', () => {
    checkSequence(
      new HpackDecoder(256),
      [
        '488264025885aec3771a4b6196d07abe941054d444a8200595040b8166e082a62d1bff6e919d29ad171863c78f0b97c8e9ae82ae43d3',
        '4883640effc1c0bf',
        '88c16196d07abe941054d444a8200595040b8166e084a62d1bffc05a839bd9ab77ad94e7821dd7f2e6c7b335dfdfcd5b3960d5af27087f3672c1ab270fb5291f9587316065c003ed4ee5b1063d5007',
      ],
      RESPONSES,
      RESPONSE_TABLES,
    );
  });

  it('returns the stored tuple on a dynamic-table hit (no copy)', () => {
    const d = new HpackDecoder();
    const first = decodeAll(d, hex('828684410f7777772e6578616d706c652e636f6d'))!;
    const second = decodeAll(d, hex('828684be58086e6f2d6361636865'))!;
    expect(second[3]).toBe(first[3]);
  });
});

describe('HPACK decoder: errors and limits', () => {
  it('refuses malformed blocks', () => {
    const bad = [
      '80', // index 0
      'be', // index 62 with an empty dynamic table
      'ff', // truncated integer
      'ffffffffff0f', // integer too large
      '4005616263', // literal name longer than the block
      '00838080', // Huffman string with invalid padding
      '82 3fe11f', // size update after a field
      '3fe21f', // size update above 4096
    ];
    for (const b of bad) expect(decodeAll(new HpackDecoder(), hex(b)), b).toBeNull();
  });

  it('applies a size update at the start of a block and evicts', () => {
    const d = new HpackDecoder();
    decodeAll(d, hex('828684410f7777772e6578616d706c652e636f6d'));
    expect(d.tableSize).toBe(57);
    expect(decodeAll(d, hex('20 82'))).toEqual([[':method', 'GET']]);
    expect(d.tableSize).toBe(0);
    expect(decodeAll(d, hex('be'))).toBeNull();
  });

  it('drops an over-limit list but keeps the table in step', () => {
    const d = new HpackDecoder();
    const block = hex('828684410f7777772e6578616d706c652e636f6d');
    expect(d.decode(block, 0, block.length, 100)).toEqual([]);
    expect(d.tooLarge).toBe(true);
    // The :authority insertion happened anyway: index 62 resolves.
    expect(decodeAll(d, hex('be'))).toEqual([[':authority', 'www.example.com']]);
    expect(d.tooLarge).toBe(false);
  });

  it('never throws on random input', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), (bytes) => {
        const d = new HpackDecoder();
        const b = Buffer.from(bytes);
        const r = d.decode(b, 0, b.length, 4096);
        expect(r === null || Array.isArray(r)).toBe(true);
        expect(d.tableSize).toBeLessThanOrEqual(4096);
      }),
      { numRuns: 2000 },
    );
  });
});

describe('HPACK encoder', () => {
  function encode(fields: HeaderField[]): Buffer {
    const out = Buffer.alloc(encodedBound(fields));
    return out.subarray(0, encodeFields(fields, out, 0));
  }

  it('uses one byte for a static name+value, an indexed name otherwise', () => {
    expect(encode([[':status', '200']])).toEqual(hex('88'));
    // content-type is static index 31: 0000 1111 + 16 (4-bit prefix continuation), raw value.
    expect(encode([['content-type', 'application/grpc']])).toEqual(Buffer.concat([hex('0f10 10'), Buffer.from('application/grpc')]));
    expect(encode([['grpc-status', '0']])).toEqual(Buffer.concat([hex('00 0b'), Buffer.from('grpc-status'), hex('01'), Buffer.from('0')]));
  });

  it('round-trips through our decoder', () => {
    const field = fc.tuple(
      fc.oneof(fc.constantFrom(':status', 'content-type', 'grpc-status', 'grpc-message', 'date'), fc.string({ minLength: 1, maxLength: 40 })),
      fc.oneof(fc.constantFrom('200', '204', '0', 'application/grpc'), fc.string({ maxLength: 300 })),
    );
    fc.assert(
      fc.property(fc.array(field, { maxLength: 12 }), (raw) => {
        // latin1 strings: what the encoder writes one byte per char.
        const fields = raw.map(([n, v]) => [Buffer.from(n, 'latin1').toString('latin1'), Buffer.from(v, 'latin1').toString('latin1')] as HeaderField);
        const block = encode(fields);
        expect(new HpackDecoder().decode(block, 0, block.length, 1 << 20)).toEqual(fields);
      }),
      { numRuns: 500 },
    );
  });
});

describe('HPACK Huffman decoding a nibble at a time', () => {
  it('decodes what the reference encoder encodes (every byte value)', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 100 }), (bytes) => {
        const coded = huffmanEncode(bytes);
        expect(huffmanDecodeLatin1(coded, 0, coded.length)).toBe(Buffer.from(bytes).toString('latin1'));
      }),
      { numRuns: 2000 },
    );
  });

  it('accepts and refuses exactly what the bit-at-a-time reference does', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 12 }), (bytes) => {
        const b = Buffer.from(bytes);
        const reference = huffmanDecode(b);
        expect(huffmanDecodeLatin1(b, 0, b.length)).toBe(reference === undefined ? null : reference.toString('latin1'));
      }),
      { numRuns: 5000 },
    );
    // EOS inside the string, padding of 8 one bits, padding with a zero bit.
    for (const bad of ['ffffffff', 'ff', '00' /* '0' then 3 zero bits of padding */]) {
      const b = hex(bad);
      expect(huffmanDecodeLatin1(b, 0, b.length), bad).toBeNull();
      expect(huffmanDecode(b), bad).toBeUndefined();
    }
  });
});

describe('HPACK encoded block cache', () => {
  it('returns the same bytes for the same list, and re-encodes a list changed since', () => {
    const list: HeaderField[] = [
      [':status', '200'],
      ['content-type', 'application/grpc'],
    ];
    const first = encodedBlock(list);
    expect(encodedBlock(list)).toBe(first);
    list[1] = ['content-type', 'application/grpc+proto'];
    const changed = encodedBlock(list);
    expect(changed).not.toBe(first);
    expect(new HpackDecoder().decode(changed, 0, changed.length, 1 << 20)).toEqual(list);
  });
});
