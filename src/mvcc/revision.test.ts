// Revision keys: fixed 16-byte big-endian encoding whose byte order is revision order.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { compareRevisions, decodeRevisionKey, encodeRevisionKey } from './revision.js';

const revision = fc.record({ main: fc.maxSafeNat(), sub: fc.maxSafeNat() });

describe('revision keys', () => {
  it('encodes main then sub as 64-bit big-endian', () => {
    expect(encodeRevisionKey({ main: 2, sub: 1 }).toString('hex')).toBe('0000000000000002' + '0000000000000001');
    expect(encodeRevisionKey({ main: 2 ** 40 + 5, sub: 0 }).toString('hex')).toBe('0000010000000005' + '0000000000000000');
  });

  it('leaves the asked room in front of the key for a prefix, the key itself unchanged', () => {
    const key = encodeRevisionKey({ main: 2, sub: 1 }, 1);
    expect(key.length).toBe(17);
    expect(key.subarray(1).toString('hex')).toBe('0000000000000002' + '0000000000000001');
  });

  it('round-trips every safe revision', () => {
    fc.assert(
      fc.property(revision, (rev) => {
        expect(decodeRevisionKey(encodeRevisionKey(rev))).toEqual(rev);
      }),
    );
  });

  it('byte order equals revision order (LevelDB scans in revision order)', () => {
    fc.assert(
      fc.property(revision, revision, (a, b) => {
        const bytes = Math.sign(Buffer.compare(encodeRevisionKey(a), encodeRevisionKey(b)));
        expect(bytes).toBe(Math.sign(compareRevisions(a, b)));
      }),
    );
  });

  it('rejects unsafe or negative numbers and wrong lengths', () => {
    expect(() => encodeRevisionKey({ main: -1, sub: 0 })).toThrow();
    expect(() => encodeRevisionKey({ main: 2 ** 53, sub: 0 })).toThrow();
    expect(() => encodeRevisionKey({ main: 1.5, sub: 0 })).toThrow();
    expect(() => decodeRevisionKey(Buffer.alloc(15))).toThrow();
    expect(() => decodeRevisionKey(Buffer.from('ffffffffffffffff0000000000000000', 'hex'))).toThrow();
  });
});
