// Record encoding: a versioned binary format holding key, value, createRevision, version,
// lease and the tombstone flag.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { decodeRecord, encodeRecord, encodeTombstone, RECORD_FORMAT_VERSION } from './record.js';

const bytes = fc.uint8Array({ maxLength: 64 }).map((a) => Buffer.from(a));
const int64 = fc.bigInt({ min: -(1n << 63n), max: (1n << 63n) - 1n });

describe('mvcc records', () => {
  it('round-trips puts', () => {
    fc.assert(
      fc.property(bytes, bytes, fc.maxSafeNat(), fc.maxSafeNat(), int64, (key, value, createRevision, version, lease) => {
        const record = encodeRecord({ key, value, createRevision, version, lease });
        expect(record[0]).toBe(RECORD_FORMAT_VERSION);
        expect(decodeRecord(record)).toEqual({ key, value, createRevision, version, lease, tombstone: false });
      }),
    );
  });

  it('round-trips tombstones with zeroed fields', () => {
    const record = encodeTombstone(Buffer.from('k'));
    expect(decodeRecord(record)).toEqual({
      key: Buffer.from('k'),
      value: Buffer.alloc(0),
      createRevision: 0,
      version: 0,
      lease: 0n,
      tombstone: true,
    });
  });

  it('decodes to views of the record, not copies', () => {
    const record = encodeRecord({ key: Buffer.from('k'), value: Buffer.from('v'), createRevision: 2, version: 1, lease: 0n });
    expect(decodeRecord(record).value.buffer).toBe(record.buffer);
  });

  it('rejects unknown versions, flags, truncation and out-of-range leases', () => {
    const record = encodeRecord({ key: Buffer.from('key'), value: Buffer.from('v'), createRevision: 2, version: 1, lease: 7n });
    expect(() => decodeRecord(Buffer.concat([Buffer.from([9]), record.subarray(1)]))).toThrow(/format/);
    const flagged = Buffer.from(record);
    flagged[1] = 4;
    expect(() => decodeRecord(flagged)).toThrow(/flags/);
    expect(() => decodeRecord(record.subarray(0, 31))).toThrow();
    expect(() => decodeRecord(record.subarray(0, 10))).toThrow();
    expect(() => encodeRecord({ key: Buffer.alloc(0), value: Buffer.alloc(0), createRevision: 0, version: 0, lease: 1n << 63n })).toThrow();
  });
});
