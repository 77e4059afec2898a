import { describe, expect, it } from 'vitest';
import { compareHashesWithPeers, initialCorruptCheck, peersToCompare, type HashedMember, type PeerHash } from './corruption-check.js';

const LOCAL = { hash: 0xabc, hashRevision: 20, compactRevision: 5 };

function member(clientUrls: Record<string, string[]>): HashedMember {
  return {
    listMembers: () => Object.entries(clientUrls).map(([id, urls]) => ({ id: BigInt(id), clientUrls: urls })),
    hashKv: async (revision) => {
      expect(revision).toBe(0); // this member's current revision
      return LOCAL;
    },
  };
}

/** Peers answer from a table by address; a missing entry is an unreachable peer. */
function fetchFrom(answers: Record<string, PeerHash>) {
  const asked: Array<[string, number]> = [];
  const fetch = async (address: string, revision: number): Promise<PeerHash> => {
    asked.push([address, revision]);
    const answer = answers[address];
    if (answer === undefined) throw new Error('unavailable');
    return answer;
  };
  return { fetch, asked };
}

describe('corruption check: comparing HashKV with the peers', () => {
  it("asks every other member with a client URL, at its dial address, at this member's revision", async () => {
    const m = member({ '1': ['http://127.0.0.1:1/'], '2': ['https://127.0.0.2:2'], '3': [] });
    expect(peersToCompare(m, 1n)).toEqual([{ id: 2n, address: '127.0.0.2:2' }]);
    const { fetch, asked } = fetchFrom({ '127.0.0.2:2': { hash: 0xabc, compactRevision: 5 } });
    const result = await compareHashesWithPeers(m, 1n, fetch);
    expect(asked).toEqual([['127.0.0.2:2', 20]]);
    expect(result).toEqual({ revision: 20, compared: [2n], skipped: [], mismatched: [] });
  });

  it('skips peers that cannot answer or sit at another compaction point; flags a differing hash', async () => {
    const m = member({ '1': ['http://a:1'], '2': ['http://b:2'], '3': ['http://c:3'], '4': ['http://d:4'] });
    const { fetch } = fetchFrom({ 'b:2': { hash: 0xabc, compactRevision: 6 }, 'c:3': { hash: 0xdef, compactRevision: 5 } });
    const result = await compareHashesWithPeers(m, 1n, fetch);
    expect(result.compared).toEqual([3n]);
    expect(result.mismatched).toEqual([{ id: 3n, localHash: 0xabc, peerHash: 0xdef }]);
    expect(result.skipped).toEqual(
      expect.arrayContaining([
        { id: 2n, reason: 'compact revision 6 differs from 5' },
        { id: 4n, reason: 'unavailable' },
      ]),
    );
  });

  it('the initial check passes when no compared peer differs, and fails (logging why) when one does', async () => {
    const lines: Array<[string, object]> = [];
    const log = {
      info: (fields: object, message: string) => lines.push([message, fields]),
      fatal: (fields: object, message: string) => lines.push([message, fields]),
    };
    const m = member({ '1': ['http://a:1'], '2': ['http://b:2'] });
    expect(await initialCorruptCheck(m, 1n, fetchFrom({ 'b:2': { hash: 0xabc, compactRevision: 5 } }).fetch, log)).toBe(true);
    expect(await initialCorruptCheck(m, 1n, fetchFrom({ 'b:2': { hash: 1, compactRevision: 5 } }).fetch, log)).toBe(false);
    expect(lines.map(([message]) => message)).toEqual(['initial corruption check passed', 'found data inconsistency with peers; stopping']);
    expect(lines[1]![1]).toMatchObject({ revision: 20, compared: ['2'], mismatched: [{ id: '2', localHash: 0xabc, peerHash: 1 }] });
  });
});
