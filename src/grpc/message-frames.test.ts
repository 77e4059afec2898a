import { describe, expect, it } from 'vitest';
import { frameMessages, unframeMessages } from './message-frames.js';

describe('gRPC message framing', () => {
  it('frames each message as grpc-js does (flag 0, big-endian length, bytes), back to back', () => {
    const framed = frameMessages([Buffer.from([1, 2, 3]), Buffer.alloc(0), Buffer.alloc(300, 7)]);
    expect([...framed.subarray(0, 8)]).toEqual([0, 0, 0, 0, 3, 1, 2, 3]);
    expect([...framed.subarray(8, 13)]).toEqual([0, 0, 0, 0, 0]);
    expect([...framed.subarray(13, 18)]).toEqual([0, 0, 0, 1, 44]);
    expect(framed.length).toBe(8 + 5 + 305);
  });

  it('unframes what it framed, in order', () => {
    const messages = [Buffer.from('a'), Buffer.alloc(70_000, 2), Buffer.from('xyz')];
    expect(unframeMessages(frameMessages(messages))).toEqual(messages);
  });

  it('refuses a truncated batch (a bug, not input)', () => {
    expect(() => unframeMessages(frameMessages([Buffer.from('abc')]).subarray(0, 6))).toThrow(/runs past the end/);
  });
});
