// Round trips of the peer message codec: hand-picked edge cases plus a property test over
// random messages and frames, and rejection of malformed bytes with FrameDecodeError.

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { EntryType, MessageType, makeMessage, type Message } from '../raft/types.js';
import {
  FRAME_HEADER_BYTES,
  FrameDecodeError,
  GRPC_PREFIX_BYTES,
  decodeMessage,
  decodePeerFrame,
  encodeMessage,
  encodePeerFrame,
  messageEncodedSize,
} from './message-codec.js';

const u64 = fc.bigInt({ min: 0n, max: 2n ** 64n - 1n });
const u53 = fc.oneof(fc.nat(), fc.constantFrom(0, 1, 2 ** 32 - 1, 2 ** 32, Number.MAX_SAFE_INTEGER));
const bytes = fc.uint8Array({ maxLength: 64 });

const entryArb = fc.record({
  term: u53,
  index: u53,
  type: fc.constantFrom(EntryType.Normal, EntryType.ConfChange),
  data: bytes,
});

const messageArb: fc.Arbitrary<Message> = fc
  .record({
    type: fc.integer({ min: 0, max: 18 }) as fc.Arbitrary<Message['type']>,
    to: u64,
    from: u64,
    term: u53,
    logTerm: u53,
    index: u53,
    entries: fc.array(entryArb, { maxLength: 8 }),
    commit: u53,
    reject: fc.boolean(),
    rejectHint: u53,
    snapshot: fc.option(
      fc.record({
        metadata: fc.record({
          index: u53,
          term: u53,
          confState: fc.record({ voters: fc.array(u64, { maxLength: 5 }), learners: fc.array(u64, { maxLength: 3 }) }),
        }),
        data: fc.constant(new Uint8Array(0)),
      }),
      { nil: undefined },
    ),
    context: fc.option(bytes, { nil: undefined }),
  })
  .map((m) => {
    // Optional fields are absent rather than undefined, as producers build them.
    const out: Message = { ...m };
    if (m.snapshot === undefined) delete out.snapshot;
    if (m.context === undefined) delete out.context;
    return out;
  });

/** Compares with Uint8Array contents rather than Buffer vs Uint8Array identity. */
function normalize(m: Message): unknown {
  return {
    ...m,
    entries: m.entries.map((e) => ({ ...e, data: Array.from(e.data) })),
    context: m.context === undefined ? undefined : Array.from(m.context),
    snapshot: m.snapshot === undefined ? undefined : { ...m.snapshot, data: Array.from(m.snapshot.data) },
  };
}

describe('message codec', () => {
  it('round-trips a MsgApp with entries and a context', () => {
    const m = makeMessage({
      type: MessageType.MsgApp,
      to: 2n,
      from: 0xffff_ffff_ffff_fffen,
      term: 7,
      logTerm: 6,
      index: 100,
      commit: 99,
      entries: [
        { term: 7, index: 101, type: EntryType.Normal, data: new Uint8Array([1, 2, 3]) },
        { term: 7, index: 102, type: EntryType.ConfChange, data: new Uint8Array(0) },
      ],
      context: new Uint8Array([9]),
    });
    const encoded = encodeMessage(m);
    expect(encoded.length).toBe(1 + messageEncodedSize(m));
    expect(normalize(decodeMessage(encoded))).toEqual(normalize(m));
  });

  it('encodes snapshot metadata but not snapshot data', () => {
    const m = makeMessage({
      type: MessageType.MsgSnap,
      to: 3n,
      from: 1n,
      term: 4,
      snapshot: {
        metadata: { index: 50, term: 3, confState: { voters: [1n, 2n, 3n], learners: [4n] } },
        data: new Uint8Array(1000),
      },
    });
    const decoded = decodeMessage(encodeMessage(m));
    expect(decoded.snapshot?.metadata).toEqual(m.snapshot!.metadata);
    expect(decoded.snapshot?.data.length).toBe(0);
    expect(encodeMessage(m).length).toBeLessThan(200);
  });

  it('hands out entry data as views into the frame, not copies', () => {
    const m = makeMessage({
      type: MessageType.MsgApp,
      to: 2n,
      from: 1n,
      entries: [{ term: 1, index: 1, type: EntryType.Normal, data: new Uint8Array([5, 6, 7]) }],
    });
    const wire = encodePeerFrame({ clusterId: 1n, fromId: 1n, toId: 2n }, [m]);
    const data = decodePeerFrame(wire).messages[0]!.entries[0]!.data as Buffer;
    expect(data.buffer).toBe(wire.buffer);
  });

  it('round-trips random messages', () => {
    fc.assert(
      fc.property(messageArb, (m) => {
        const encoded = encodeMessage(m);
        expect(encoded.length).toBe(1 + messageEncodedSize(m));
        const expected = m.snapshot ? { ...m, snapshot: { ...m.snapshot, data: new Uint8Array(0) } } : m;
        expect(normalize(decodeMessage(encoded))).toEqual(normalize(expected));
      }),
      { numRuns: 500 },
    );
  });

  it('round-trips random frames and sub-ranges of a batch', () => {
    fc.assert(
      fc.property(
        fc.record({ clusterId: u64, fromId: u64, toId: u64 }),
        fc.array(messageArb, { maxLength: 10 }),
        fc.nat(),
        fc.nat(),
        (header, messages, a, b) => {
          const start = messages.length === 0 ? 0 : a % (messages.length + 1);
          const end = start + (messages.length === 0 ? 0 : b % (messages.length - start + 1));
          const sizes = messages.map(messageEncodedSize);
          const wire = encodePeerFrame(header, messages, { start, end, sizes });
          const frame = decodePeerFrame(wire);
          expect({ clusterId: frame.clusterId, fromId: frame.fromId, toId: frame.toId }).toEqual(header);
          const strip = (m: Message): Message => (m.snapshot ? { ...m, snapshot: { ...m.snapshot, data: new Uint8Array(0) } } : m);
          expect(frame.messages.map(normalize)).toEqual(messages.slice(start, end).map(strip).map(normalize));
        },
      ),
      { numRuns: 300 },
    );
  });

  it('puts the gRPC message prefix (uncompressed, big-endian length) before a frame when asked', () => {
    const header = { clusterId: 1n, fromId: 2n, toId: 3n };
    const messages = [1, 2, 3].map((i) => makeMessage({ type: MessageType.MsgHeartbeat, from: 2n, to: 3n, term: 1, commit: i }));
    const plain = encodePeerFrame(header, messages, { start: 1, end: 3 });
    const prefixed = encodePeerFrame(header, messages, { start: 1, end: 3, grpcPrefix: true });
    expect(prefixed.length).toBe(GRPC_PREFIX_BYTES + plain.length);
    expect(prefixed[0]).toBe(0);
    expect(prefixed.readUInt32BE(1)).toBe(plain.length);
    expect(prefixed.subarray(GRPC_PREFIX_BYTES).equals(plain)).toBe(true);
    expect(decodePeerFrame(prefixed.subarray(GRPC_PREFIX_BYTES)).messages.map((m) => m.commit)).toEqual([2, 3]);
  });

  it('rejects truncated, padded and unknown-version input with FrameDecodeError', () => {
    const m = makeMessage({ type: MessageType.MsgHeartbeat, to: 2n, from: 1n, term: 3, commit: 9 });
    const encoded = encodeMessage(m);
    for (let cut = 0; cut < encoded.length; cut++) {
      expect(() => decodeMessage(encoded.subarray(0, cut))).toThrow(FrameDecodeError);
    }
    expect(() => decodeMessage(Buffer.concat([encoded, Buffer.from([0])]))).toThrow(FrameDecodeError);
    const badVersion = Buffer.from(encoded);
    badVersion[0] = 99;
    expect(() => decodeMessage(badVersion)).toThrow(FrameDecodeError);
    const badType = Buffer.from(encoded);
    badType[1] = 200;
    expect(() => decodeMessage(badType)).toThrow(/unknown message type/);
  });

  it('never throws anything but FrameDecodeError on random bytes', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (raw) => {
        try {
          decodePeerFrame(Buffer.from(raw));
        } catch (error) {
          expect(error).toBeInstanceOf(FrameDecodeError);
        }
      }),
      { numRuns: 1000 },
    );
  });

  it('rejects a frame claiming more messages than it holds before allocating them', () => {
    const wire = encodePeerFrame({ clusterId: 1n, fromId: 1n, toId: 2n }, []);
    // The count is the last field of the header: claim 2^32 - 1 messages.
    wire.writeUInt32BE(0xffffffff, wire.length - 4);
    expect(wire.length).toBe(2 + FRAME_HEADER_BYTES);
    expect(() => decodePeerFrame(wire)).toThrow(/truncated/);
  });

  it('refuses to encode values that would not survive the trip', () => {
    expect(() => encodeMessage(makeMessage({ type: MessageType.MsgApp, term: -1 }))).toThrow(/term/);
    expect(() => encodeMessage(makeMessage({ type: MessageType.MsgApp, index: 2 ** 53 }))).toThrow(/index/);
    expect(() => encodeMessage(makeMessage({ type: MessageType.MsgApp, to: 2n ** 64n }))).toThrow(RangeError);
  });
});
