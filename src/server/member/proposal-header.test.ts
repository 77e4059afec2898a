import { describe, expect, it } from 'vitest';
import { PROPOSAL_HEADER_BYTES, ProposalHeader } from './proposal-header.js';

describe('ProposalHeader', () => {
  it('writes the member ID and the request ID as two big-endian u64s (the bytes BigInt writes gave)', () => {
    const memberId = 0x8e9e_05c5_2164_694dn;
    const requestId = 2 ** 40 + 7;
    const header = Buffer.alloc(PROPOSAL_HEADER_BYTES);
    new ProposalHeader(memberId).write(header, requestId);
    const expected = Buffer.alloc(PROPOSAL_HEADER_BYTES);
    expected.writeBigUInt64BE(memberId, 0);
    expected.writeBigUInt64BE(BigInt(requestId), 8);
    expect(header.equals(expected)).toBe(true);
  });

  it("reads back its own request IDs and no other member's", () => {
    const mine = new ProposalHeader(0xffff_ffff_0000_0001n);
    const header = Buffer.alloc(PROPOSAL_HEADER_BYTES);
    mine.write(header, 42);
    expect(mine.ownRequestId(header)).toBe(42);
    expect(new ProposalHeader(0xffff_ffff_0000_0002n).ownRequestId(header)).toBeUndefined();
    expect(new ProposalHeader(0x0000_0001_0000_0001n).ownRequestId(header)).toBeUndefined();
  });
});
