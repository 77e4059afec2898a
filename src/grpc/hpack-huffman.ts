// HPACK's static Huffman code (RFC 7541 Appendix B): a decoder, and an encoder for tests.
//
// The client port's HPACK decoder (h2/hpack.ts) must read header values that HTTP/2 clients
// usually send Huffman-coded (grpc-go does whenever it is shorter).
//
// The code is stored only as its 257 code lengths (symbols 0..255 and EOS = 256). It is a
// canonical Huffman code: ordering the symbols by (length, symbol value) and counting upwards,
// widening with zero bits at each length step, yields exactly the codes of Appendix B (the unit
// test checks RFC 7541 C.4.1's example against the RFC's bytes).
//
// Invariants:
// - decode() accepts only what RFC 7541 §5.2 allows: no EOS symbol inside the string, and the
//   final padding is shorter than 8 bits and consists of 1 bits only (a prefix of EOS). Anything
//   else returns undefined; the caller then treats the header block as unreadable.
// - Decoding never reads past the given range and allocates at most one output byte per input
//   bit / 5 (the shortest code is 5 bits).

/** Code lengths in bits, indexed by symbol (byte value); the last entry is EOS (256). */
const CODE_LENGTHS: readonly number[] = [
  13,
  23,
  28,
  28,
  28,
  28,
  28,
  28,
  28,
  24,
  30,
  28,
  28,
  30,
  28,
  28,
  28,
  28,
  28,
  28,
  28,
  28,
  30,
  28,
  28,
  28,
  28,
  28,
  28,
  28,
  28,
  28,
  6,
  10,
  10,
  12,
  13,
  6,
  8,
  11,
  10,
  10,
  8,
  11,
  8,
  6,
  6,
  6,
  5,
  5,
  5,
  6,
  6,
  6,
  6,
  6,
  6,
  6,
  7,
  8,
  15,
  6,
  12,
  10,
  13,
  6,
  7,
  7,
  7,
  7,
  7,
  7,
  7,
  7,
  7,
  7,
  7,
  7,
  7,
  7,
  7,
  7,
  7,
  7,
  7,
  7,
  7,
  7,
  8,
  7,
  8,
  13,
  19,
  13,
  14,
  6,
  15,
  5,
  6,
  5,
  6,
  5,
  6,
  6,
  6,
  5,
  7,
  7,
  6,
  6,
  6,
  5,
  6,
  7,
  6,
  5,
  5,
  6,
  7,
  7,
  7,
  7,
  7,
  15,
  11,
  14,
  13,
  28,
  20,
  22,
  20,
  20,
  22,
  22,
  22,
  23,
  22,
  23,
  23,
  23,
  23,
  23,
  24,
  23,
  24,
  24,
  22,
  23,
  24,
  23,
  23,
  23,
  23,
  21,
  22,
  23,
  22,
  23,
  23,
  24,
  22,
  21,
  20,
  22,
  22,
  23,
  23,
  21,
  23,
  22,
  22,
  24,
  21,
  22,
  23,
  23,
  21,
  21,
  22,
  21,
  23,
  22,
  23,
  23,
  20,
  22,
  22,
  22,
  23,
  22,
  22,
  23,
  26,
  26,
  20,
  19,
  22,
  23,
  22,
  25,
  26,
  26,
  26,
  27,
  27,
  26,
  24,
  25,
  19,
  21,
  26,
  27,
  27,
  26,
  27,
  24,
  21,
  21,
  26,
  26,
  28,
  27,
  27,
  27,
  20,
  24,
  20,
  21,
  22,
  21,
  21,
  23,
  22,
  22,
  25,
  25,
  24,
  24,
  26,
  23,
  26,
  27,
  26,
  26,
  27,
  27,
  27,
  27,
  27,
  28,
  27,
  27,
  27,
  27,
  27,
  26,
  30, // EOS
];

const EOS = 256;
const MAX_LENGTH = 30;

/**
 * The canonical code in the form a bit-serial decoder wants: for each length L, the first code
 * of that length, how many codes have it, and where its symbols start in `sortedSymbols`.
 * Codes fit in 30 bits, so plain numbers (not bigint) are exact.
 */
interface CanonicalTable {
  firstCode: number[];
  count: number[];
  offset: number[];
  sortedSymbols: number[];
  /** code[symbol], for the encoder. */
  codes: number[];
}

function buildCanonical(lengths: readonly number[]): CanonicalTable {
  if (lengths.length !== 257) throw new Error('HPACK Huffman table must list 257 code lengths');
  const sortedSymbols = lengths.map((_, symbol) => symbol).sort((a, b) => lengths[a]! - lengths[b]! || a - b);
  const firstCode = new Array<number>(MAX_LENGTH + 1).fill(0);
  const count = new Array<number>(MAX_LENGTH + 1).fill(0);
  const offset = new Array<number>(MAX_LENGTH + 1).fill(0);
  const codes = new Array<number>(257).fill(0);
  let code = 0;
  let length = lengths[sortedSymbols[0]!]!;
  for (let i = 0; i < sortedSymbols.length; i++) {
    const symbol = sortedSymbols[i]!;
    const symbolLength = lengths[symbol]!;
    // Moving to a longer length appends zero bits to the next free code.
    if (symbolLength > length) {
      code *= 2 ** (symbolLength - length);
      length = symbolLength;
    }
    if (count[length] === 0) {
      firstCode[length] = code;
      offset[length] = i;
    }
    count[length]!++;
    codes[symbol] = code;
    code++;
  }
  // A complete prefix code uses every code of the longest length: EOS is the all-ones code.
  if (code !== 2 ** MAX_LENGTH || codes[EOS] !== 2 ** MAX_LENGTH - 1) throw new Error('HPACK Huffman code lengths are not a complete code');
  return { firstCode, count, offset, sortedSymbols, codes };
}

const TABLE = buildCanonical(CODE_LENGTHS);

/**
 * Decodes a Huffman-coded HPACK string literal (the bytes after its length prefix).
 * Returns undefined when the input is not a valid encoding (RFC 7541 §5.2).
 */
export function huffmanDecode(input: Uint8Array, start = 0, end = input.length): Buffer | undefined {
  const out: number[] = [];
  let code = 0;
  let length = 0;
  // Whether every bit of the current partial code is 1 (so it could be EOS padding).
  let allOnes = true;
  for (let i = start; i < end; i++) {
    const byte = input[i]!;
    for (let bit = 7; bit >= 0; bit--) {
      const b = (byte >> bit) & 1;
      code = code * 2 + b;
      length++;
      allOnes &&= b === 1;
      // The canonical property: codes of one length form a contiguous range.
      const index = code - TABLE.firstCode[length]!;
      if (TABLE.count[length]! > 0 && index >= 0 && index < TABLE.count[length]!) {
        const symbol = TABLE.sortedSymbols[TABLE.offset[length]! + index]!;
        if (symbol === EOS) return undefined;
        out.push(symbol);
        code = 0;
        length = 0;
        allOnes = true;
      } else if (length >= MAX_LENGTH) {
        return undefined;
      }
    }
  }
  // Leftover bits are padding: fewer than 8, all ones.
  if (length > 7 || !allOnes) return undefined;
  return Buffer.from(out);
}

/** Huffman-encodes bytes (RFC 7541 §5.2), padding the last byte with the EOS prefix. */
export function huffmanEncode(input: Uint8Array): Buffer {
  const out: number[] = [];
  let acc = 0;
  let bits = 0;
  for (const symbol of input) {
    const symbolLength = CODE_LENGTHS[symbol]!;
    const symbolCode = TABLE.codes[symbol]!;
    // Feed the code most significant bit first, a byte at a time, so `acc` stays small.
    for (let remaining = symbolLength; remaining > 0; ) {
      const take = Math.min(remaining, 8 - bits);
      const chunk = Math.floor(symbolCode / 2 ** (remaining - take)) & ((1 << take) - 1);
      acc = (acc << take) | chunk;
      bits += take;
      remaining -= take;
      if (bits === 8) {
        out.push(acc);
        acc = 0;
        bits = 0;
      }
    }
  }
  if (bits > 0) out.push((acc << (8 - bits)) | ((1 << (8 - bits)) - 1));
  return Buffer.from(out);
}

/** The code of `symbol` (0..256) and its length, for table checks. */
export function huffmanCode(symbol: number): { code: number; length: number } {
  const length = CODE_LENGTHS[symbol];
  if (length === undefined) throw new RangeError(`no Huffman code for symbol ${symbol}`);
  return { code: TABLE.codes[symbol]!, length };
}
