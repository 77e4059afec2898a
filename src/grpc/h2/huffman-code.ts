// HPACK's static Huffman code (RFC 7541 Appendix B): the code of each symbol, from which the
// client port's HPACK decoder (hpack.ts) builds its nibble-at-a-time machine.
//
// The code is stored only as its 257 code lengths (symbols 0..255 and EOS = 256). It is a
// canonical Huffman code: ordering the symbols by (length, symbol value) and counting upwards,
// widening with zero bits at each length step, yields exactly the codes of Appendix B (the unit
// test checks spot codes and RFC 7541 Appendix C's examples through the decoder).

/** Code lengths in bits, indexed by symbol (byte value); the last entry is EOS (256). */
// biome-ignore format: sixteen symbols per row
const CODE_LENGTHS: readonly number[] = [
  13, 23, 28, 28, 28, 28, 28, 28, 28, 24, 30, 28, 28, 30, 28, 28, // 0x00-0x0f
  28, 28, 28, 28, 28, 28, 30, 28, 28, 28, 28, 28, 28, 28, 28, 28, // 0x10-0x1f
  6, 10, 10, 12, 13, 6, 8, 11, 10, 10, 8, 11, 8, 6, 6, 6, // 0x20-0x2f
  5, 5, 5, 6, 6, 6, 6, 6, 6, 6, 7, 8, 15, 6, 12, 10, // 0x30-0x3f
  13, 6, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, // 0x40-0x4f
  7, 7, 7, 7, 7, 7, 7, 7, 8, 7, 8, 13, 19, 13, 14, 6, // 0x50-0x5f
  15, 5, 6, 5, 6, 5, 6, 6, 6, 5, 7, 7, 6, 6, 6, 5, // 0x60-0x6f
  6, 7, 6, 5, 5, 6, 7, 7, 7, 7, 7, 15, 11, 14, 13, 28, // 0x70-0x7f
  20, 22, 20, 20, 22, 22, 22, 23, 22, 23, 23, 23, 23, 23, 24, 23, // 0x80-0x8f
  24, 24, 22, 23, 24, 23, 23, 23, 23, 21, 22, 23, 22, 23, 23, 24, // 0x90-0x9f
  22, 21, 20, 22, 22, 23, 23, 21, 23, 22, 22, 24, 21, 22, 23, 23, // 0xa0-0xaf
  21, 21, 22, 21, 23, 22, 23, 23, 20, 22, 22, 22, 23, 22, 22, 23, // 0xb0-0xbf
  26, 26, 20, 19, 22, 23, 22, 25, 26, 26, 26, 27, 27, 26, 24, 25, // 0xc0-0xcf
  19, 21, 26, 27, 27, 26, 27, 24, 21, 21, 26, 26, 28, 27, 27, 27, // 0xd0-0xdf
  20, 24, 20, 21, 22, 21, 21, 23, 22, 22, 25, 25, 24, 24, 26, 23, // 0xe0-0xef
  26, 27, 26, 26, 27, 27, 27, 27, 27, 28, 27, 27, 27, 27, 27, 26, // 0xf0-0xff
  30, // EOS
];

const EOS = 256;
const MAX_LENGTH = 30;

/** code[symbol] of the canonical code with these lengths. Codes fit in 30 bits: plain numbers are exact. */
function canonicalCodes(lengths: readonly number[]): number[] {
  if (lengths.length !== 257) throw new Error('HPACK Huffman table must list 257 code lengths');
  const sortedSymbols = lengths.map((_, symbol) => symbol).sort((a, b) => lengths[a]! - lengths[b]! || a - b);
  const codes = new Array<number>(257).fill(0);
  let code = 0;
  let length = lengths[sortedSymbols[0]!]!;
  for (const symbol of sortedSymbols) {
    const symbolLength = lengths[symbol]!;
    // Moving to a longer length appends zero bits to the next free code.
    if (symbolLength > length) {
      code *= 2 ** (symbolLength - length);
      length = symbolLength;
    }
    codes[symbol] = code;
    code++;
  }
  // A complete prefix code uses every code of the longest length: EOS is the all-ones code.
  if (code !== 2 ** MAX_LENGTH || codes[EOS] !== 2 ** MAX_LENGTH - 1) throw new Error('HPACK Huffman code lengths are not a complete code');
  return codes;
}

const CODES = canonicalCodes(CODE_LENGTHS);

/** The code of `symbol` (0..256) and its length. */
export function huffmanCode(symbol: number): { code: number; length: number } {
  const length = CODE_LENGTHS[symbol];
  if (length === undefined) throw new RangeError(`no Huffman code for symbol ${symbol}`);
  return { code: CODES[symbol]!, length };
}
