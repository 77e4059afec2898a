// HPACK Huffman code: the codes derived from the lengths, and the client port's decoder
// (hpack.ts) on RFC 7541 Appendix C's vectors, a full-alphabet round trip and the §5.2
// rejections (EOS in the string, over-long or non-EOS padding); the reference encoder
// (test/support) on the same vectors.

import { describe, expect, it } from 'vitest';
import { huffmanEncode } from '../../../test/support/huffman-reference.js';
import { huffmanDecodeLatin1 } from './hpack.js';
import { huffmanCode } from './huffman-code.js';

/** The client port's decoder over buf[start, end), as a Buffer (undefined: refused). */
function huffmanDecode(buf: Buffer, start = 0, end = buf.length): Buffer | undefined {
  const text = huffmanDecodeLatin1(buf, start, end);
  return text === null ? undefined : Buffer.from(text, 'latin1');
}

const hex = (s: string): Buffer => Buffer.from(s.replace(/\s+/g, ''), 'hex');

// RFC 7541 C.4 (requests) and C.6 (responses), Huffman-coded string literals.
const RFC_VECTORS: ReadonlyArray<[string, string]> = [
  ['www.example.com', 'f1e3 c2e5 f23a 6ba0 ab90 f4ff'],
  ['no-cache', 'a8eb 1064 9cbf'],
  ['custom-key', '25a8 49e9 5ba9 7d7f'],
  ['custom-value', '25a8 49e9 5bb8 e8b4 bf'],
  ['302', '6402'],
  ['private', 'aec3 771a 4b'],
  ['Mon, 21 Oct 2013 20:13:21 GMT', 'd07a be94 1054 d444 a820 0595 040b 8166 e082 a62d 1bff'],
  ['https://www.example.com', '9d29 ad17 1863 c78f 0b97 c8e9 ae82 ae43 d3'],
  ['gzip', '9bd9 ab'],
  [
    'foo=ASDJKHQKBZXOQWEOPIUAXQWEOIU; max-age=3600; version=1',
    '94e7 821d d7f2 e6c7 b335 dfdf cd5b 3960 d5af 2708 7f36 72c1 ab27 0fb5 291f 9587 3160 65c0 03ed 4ee5 b106 3d50 07',
  ],
];

describe('HPACK Huffman code', () => {
  it('derives Appendix B codes from the lengths (spot checks and EOS)', () => {
    expect(huffmanCode(0x30)).toEqual({ code: 0x0, length: 5 }); // '0'
    expect(huffmanCode(0x61)).toEqual({ code: 0x3, length: 5 }); // 'a'
    expect(huffmanCode(0x2f)).toEqual({ code: 0x18, length: 6 }); // '/'
    expect(huffmanCode(0x00)).toEqual({ code: 0x1ff8, length: 13 });
    expect(huffmanCode(0xff)).toEqual({ code: 0x3ffffee, length: 26 });
    expect(huffmanCode(256)).toEqual({ code: 0x3fffffff, length: 30 });
  });

  it.each(RFC_VECTORS)('encodes and decodes %j as in RFC 7541 Appendix C', (text, encoded) => {
    expect(huffmanEncode(Buffer.from(text, 'latin1')).toString('hex')).toBe(hex(encoded).toString('hex'));
    expect(huffmanDecode(hex(encoded))?.toString('latin1')).toBe(text);
  });

  it('decodes the :authority grpc-go (etcdctl 3.4) actually sent', () => {
    // Captured from `etcdctl --endpoints=http://127.0.0.1:23999 endpoint status`.
    expect(huffmanDecode(hex('9d29aee30c044eae05c0b86e0997df7f'))?.toString()).toBe('http://127.0.0.1:23999');
  });

  it('round-trips every byte value, including the 30-bit codes', () => {
    const all = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
    expect(huffmanDecode(huffmanEncode(all))).toEqual(all);
    expect(huffmanDecode(Buffer.alloc(0))).toEqual(Buffer.alloc(0));
  });

  it('decodes a range within a larger buffer', () => {
    const framed = Buffer.concat([Buffer.from([0xaa, 0xbb]), hex('9bd9 ab'), Buffer.from([0xcc])]);
    expect(huffmanDecode(framed, 2, 5)?.toString()).toBe('gzip');
  });

  it.each([
    ['EOS inside the string', 'ffff ffff fc'],
    ['padding of 8 bits', 'ff'],
    ['"a" and a byte of excess padding', '1fff'],
    ['"a" and 29 bits of excess padding', 'ff9f ffff ff'],
    ['padding that is not a prefix of EOS (zero bits)', '00'],
    ['padding ending in a partial symbol', '52bc 30ff ffff ff'],
  ])('rejects %s', (_name, encoded) => {
    expect(huffmanDecode(hex(encoded))).toBeUndefined();
  });
});
