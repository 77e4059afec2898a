// A bit-at-a-time HPACK Huffman encoder and decoder (RFC 7541 §5.2) over the code of
// src/grpc/h2/huffman-code.ts: the reference the client port's nibble-at-a-time decoder
// (hpack.ts) is compared with, and a maker of Huffman-coded inputs for tests and benches.

import { huffmanCode } from '../../src/grpc/h2/huffman-code.js';

const EOS = 256;
const MAX_LENGTH = 30;

/** symbol by `${length}:${code}`. */
const SYMBOLS = new Map<string, number>();
for (let symbol = 0; symbol <= EOS; symbol++) {
  const { code, length } = huffmanCode(symbol);
  SYMBOLS.set(`${length}:${code}`, symbol);
}

/** Decodes input[start, end); undefined when it is not a valid encoding (EOS inside, bad padding). */
export function huffmanDecode(input: Uint8Array, start = 0, end = input.length): Buffer | undefined {
  const out: number[] = [];
  let code = 0;
  let length = 0;
  let allOnes = true;
  for (let i = start; i < end; i++) {
    for (let bit = 7; bit >= 0; bit--) {
      const b = ((input[i] as number) >> bit) & 1;
      code = code * 2 + b;
      length++;
      allOnes &&= b === 1;
      const symbol = SYMBOLS.get(`${length}:${code}`);
      if (symbol === EOS) return undefined;
      if (symbol !== undefined) {
        out.push(symbol);
        code = 0;
        length = 0;
        allOnes = true;
      } else if (length >= MAX_LENGTH) {
        return undefined;
      }
    }
  }
  // Leftover bits are padding: fewer than 8, all ones (a prefix of EOS).
  if (length > 7 || !allOnes) return undefined;
  return Buffer.from(out);
}

/** Huffman-encodes bytes, padding the last byte with the EOS prefix. */
export function huffmanEncode(input: Uint8Array): Buffer {
  const out: number[] = [];
  let acc = 0;
  let bits = 0;
  for (const symbol of input) {
    const { code, length } = huffmanCode(symbol);
    for (let remaining = length; remaining > 0; ) {
      const take = Math.min(remaining, 8 - bits);
      acc = (acc << take) | (Math.floor(code / 2 ** (remaining - take)) & ((1 << take) - 1));
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
