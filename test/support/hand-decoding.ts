// Shared by the tests of the requests decoded by hand (src/grpc/*-request-decoding.test.ts):
// the rule for each is "what proto-loader gives, or undefined and proto-loader decodes", and
// damaged input is where a hand decoder would drift from it.

import { expect } from 'vitest';
import { encodeMessage } from '../../src/grpc/proto.js';

/** A deterministic generator (the cases must be the same on every run). */
export function seeded(seed: number): () => number {
  let state = seed;
  return () => {
    state = (state * 1_103_515_245 + 12_345) % 2 ** 31;
    return state / 2 ** 31;
  };
}

/**
 * Encodes 2,000 random requests of `messageType`, every third with `unknownFields` appended (a
 * newer client's fields, of every skippable wire type) and every fifth with `repeated` encoded
 * again after it (the last value of a field wins), and expects the hand decoder to give what
 * proto-loader gives.
 */
export function expectWellFormedDecodedAsProtoLoader(
  messageType: string,
  randomRequest: (random: () => number) => object,
  decode: (bytes: Buffer) => object | undefined,
  protoLoaderDecode: (bytes: Buffer) => object,
  extras: { unknownFields: Buffer; repeated: object },
): void {
  const random = seeded(15);
  for (let i = 0; i < 2000; i++) {
    let bytes = encodeMessage(messageType, randomRequest(random));
    if (i % 3 === 0) bytes = Buffer.concat([bytes, extras.unknownFields]);
    if (i % 5 === 0) bytes = Buffer.concat([bytes, encodeMessage(messageType, extras.repeated)]);
    expect(decode(bytes), bytes.toString('hex')).toEqual(protoLoaderDecode(bytes));
  }
}

/**
 * Encodes 5,000 random requests of `messageType`, changes, cuts or extends a few bytes of each,
 * and expects the hand decoder to give what proto-loader gives whenever it does not decline.
 */
export function expectDamagedBytesDecodedAsProtoLoader(
  messageType: string,
  randomRequest: (random: () => number) => object,
  decode: (bytes: Buffer) => object | undefined,
  protoLoaderDecode: (bytes: Buffer) => object,
): void {
  const random = seeded(42);
  let handled = 0;
  for (let i = 0; i < 5000; i++) {
    const bytes = Buffer.from(encodeMessage(messageType, randomRequest(random)));
    for (let n = 0; n < 1 + Math.floor(random() * 3); n++) bytes[Math.floor(random() * bytes.length)] = Math.floor(random() * 256);
    const damaged = random() < 0.3 ? bytes.subarray(0, Math.floor(random() * bytes.length)) : bytes;
    const fast = decode(damaged);
    if (fast === undefined) continue;
    handled++;
    expect(fast, damaged.toString('hex')).toEqual(protoLoaderDecode(damaged));
  }
  // Damage often leaves a valid message: those must have been decoded by hand, and compared.
  expect(handled).toBeGreaterThan(500);
}
