// The 16 bytes in front of every entry and conf change context this member proposes: the
// proposing member's ID, then its request ID, each a u64, big-endian. When the entry is applied
// the proposer finds the waiting caller by it; other members see a header not their own.
//
// Why not BigInt: writing and reading 64-bit fields as BigInts allocated ~220 bytes of garbage
// per put (heap sampling of bench/member-put.ts), on the hottest path of a member. Request IDs
// are counters that stay far below 2^53, and the member ID is compared as two 32-bit halves.

export const PROPOSAL_HEADER_BYTES = 16;
const TWO_32 = 0x1_0000_0000;

export class ProposalHeader {
  private readonly memberHigh: number;
  private readonly memberLow: number;

  constructor(memberId: bigint) {
    const id = BigInt.asUintN(64, memberId);
    this.memberHigh = Number(id >> 32n);
    this.memberLow = Number(id & 0xffff_ffffn);
  }

  /** Writes the header for request `id` (a safe integer) into the first 16 bytes of `into`. */
  write(into: Buffer, id: number): void {
    into.writeUInt32BE(this.memberHigh, 0);
    into.writeUInt32BE(this.memberLow, 4);
    into.writeUInt32BE(Math.floor(id / TWO_32), 8);
    into.writeUInt32BE(id >>> 0, 12);
  }

  /** The request ID in a header this member wrote; undefined for another member's. */
  ownRequestId(header: Buffer): number | undefined {
    if (header.readUInt32BE(0) !== this.memberHigh || header.readUInt32BE(4) !== this.memberLow) return undefined;
    return header.readUInt32BE(8) * TWO_32 + header.readUInt32BE(12);
  }
}
