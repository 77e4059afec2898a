// grpc-go's ping strikes: what a client may ping without being sent GOAWAY too_many_pings.

import { describe, expect, it } from 'vitest';
import { DEFAULT_MIN_TIME_MS, PING_WITHOUT_CALLS_MS, PingStrikes } from './ping-strikes.js';

/** Feeds pings at the given times; returns the index of the ping that closed the connection, or -1. */
function closingPing(strikes: PingStrikes, times: number[], openStreams: number, serverWroteAt: ReadonlySet<number> = new Set()): number {
  return times.findIndex((nowMs, i) => strikes.ping({ nowMs, openStreams, serverWrote: serverWroteAt.has(i) }));
}

describe('PingStrikes', () => {
  it('with a call open: pings closer than MinTime strike, the third strike closes (the fourth ping)', () => {
    expect(closingPing(new PingStrikes(5000), [0, 1000, 2000, 3000, 4000], 1)).toBe(3);
  });

  it('with a call open: pings MinTime apart never strike', () => {
    expect(closingPing(new PingStrikes(5000), [0, 5000, 10_000, 15_000, 20_000, 25_000], 1)).toBe(-1);
  });

  it('without a call: any ping within two hours of the previous strikes, whatever MinTime is', () => {
    expect(closingPing(new PingStrikes(10), [0, 60_000, 120_000, 180_000], 0)).toBe(3);
    expect(closingPing(new PingStrikes(10), [0, PING_WITHOUT_CALLS_MS, 2 * PING_WITHOUT_CALLS_MS], 0)).toBe(-1);
  });

  it('a ping after the server wrote headers or data clears the strikes', () => {
    expect(closingPing(new PingStrikes(5000), [0, 1, 2, 3, 4, 5, 6], 1, new Set([3, 6]))).toBe(-1);
    expect(closingPing(new PingStrikes(5000), [0, 1, 2, 3, 4, 5, 6], 1, new Set([2]))).toBe(5);
  });

  it("MinTime 0 means grpc-go's default of five minutes", () => {
    const times = [0, 1, 2, 3].map((i) => i * (DEFAULT_MIN_TIME_MS - 1));
    expect(closingPing(new PingStrikes(0), times, 1)).toBe(3);
    expect(
      closingPing(
        new PingStrikes(0),
        [0, 1, 2, 3].map((i) => i * DEFAULT_MIN_TIME_MS),
        1,
      ),
    ).toBe(-1);
  });
});
