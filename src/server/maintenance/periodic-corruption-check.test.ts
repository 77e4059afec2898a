import { afterEach, describe, expect, it, vi } from 'vitest';
import { AlarmAction, AlarmType } from '../apply/alarms.js';
import type { PeerHash } from './corruption-check.js';
import { PeriodicCorruptCheck, startPeriodicCorruptCheck, type CheckedMember } from './periodic-corruption-check.js';

class FakeMember implements CheckedMember {
  raft: { isLeader: boolean } | undefined = { isLeader: true };
  hashes = 0;
  alarms: Array<[number, bigint, number]> = [];
  hashFails = false;
  listMembers() {
    return [
      { id: 1n, clientUrls: ['http://a:1'] },
      { id: 2n, clientUrls: ['http://b:2'] },
      { id: 3n, clientUrls: ['http://c:3'] },
    ];
  }
  async hashKv() {
    this.hashes++;
    if (this.hashFails) throw new Error('store closed');
    return { hash: 7, hashRevision: 30, compactRevision: 0 };
  }
  async alarm(action: number, memberId: bigint, alarm: number) {
    this.alarms.push([action, memberId, alarm]);
    return [];
  }
}

function setup(peerHashes: Record<string, number>) {
  const member = new FakeMember();
  const lines: Array<[string, object]> = [];
  const coverage: Array<[string, object]> = [];
  const log = {
    info: (fields: object, message: string) => coverage.push([message, fields]),
    warn: (fields: object, message: string) => lines.push([message, fields]),
    error: (fields: object, message: string) => lines.push([message, fields]),
  };
  // Peers answer once the gate opens (open from the start unless a test holds it).
  let openGate = (): void => {};
  let gate: Promise<void> = Promise.resolve();
  const fetch = async (address: string): Promise<PeerHash> => {
    await gate;
    const hash = peerHashes[address];
    if (hash === undefined) throw new Error('unreachable');
    return { hash, compactRevision: 0 };
  };
  const check = new PeriodicCorruptCheck({ member, selfId: 1n, fetch, log });
  const hold = (): void => {
    gate = new Promise((resolve) => (openGate = resolve));
  };
  return { member, lines, coverage, check, hold, release: () => openGate() };
}

afterEach(() => {
  vi.useRealTimers();
});

describe('periodic corruption check', () => {
  it('the leader raises CORRUPT through the log for each member whose hash differs', async () => {
    const { member, lines, check } = setup({ 'b:2': 7, 'c:3': 8 });
    await check.round();
    expect(member.alarms).toEqual([[AlarmAction.ACTIVATE, 3n, AlarmType.CORRUPT]]);
    expect(lines).toEqual([["member history differs from the leader's; raising CORRUPT", { member: '3', revision: 30, localHash: 7, peerHash: 8 }]]);
  });

  it('logs the compared and skipped peers on the first round and when they change; warns of each skip', async () => {
    const peerHashes: Record<string, number> = { 'b:2': 7, 'c:3': 7 };
    const { lines, coverage, check } = setup(peerHashes);
    await check.round();
    await check.round();
    expect(coverage).toEqual([['corruption check compared hashes with peers', { revision: 30, compared: ['2', '3'], skipped: [] }]]);
    delete peerHashes['c:3'];
    await check.round();
    await check.round();
    expect(coverage.slice(1)).toEqual([
      ['corruption check compared hashes with peers', { revision: 30, compared: ['2'], skipped: [{ id: '3', reason: 'unreachable' }] }],
    ]);
    expect(lines.map(([message]) => message)).toEqual(Array(2).fill('corruption check cannot compare with a peer; skipped'));
  });

  it('followers and members without Raft skip their turn', async () => {
    const { member, check } = setup({ 'b:2': 1, 'c:3': 1 });
    member.raft = { isLeader: false };
    await check.round();
    member.raft = undefined;
    await check.round();
    expect([member.hashes, member.alarms]).toEqual([0, []]);
  });

  it('a round still running makes the next turn a no-op', async () => {
    const { member, check, hold, release } = setup({ 'b:2': 7, 'c:3': 7 });
    hold();
    const first = check.round();
    await vi.waitFor(() => expect(member.hashes).toBe(1));
    await check.round(); // overlaps the first: skipped
    expect(member.hashes).toBe(1);
    release();
    await first;
    await check.round(); // the first has finished: this one runs
    expect(member.hashes).toBe(2);
  });

  it('a failed round is logged and does not stop later rounds', async () => {
    const { member, lines, check } = setup({ 'b:2': 7, 'c:3': 7 });
    member.hashFails = true;
    await check.round();
    expect(lines.map(([message]) => message)).toEqual(['corruption check failed']);
    member.hashFails = false;
    await check.round();
    expect(member.hashes).toBe(2);
  });

  it('runs once per period until stopped', async () => {
    vi.useFakeTimers();
    const { member, check } = setup({ 'b:2': 7, 'c:3': 7 });
    const stop = startPeriodicCorruptCheck(check, 1000);
    await vi.advanceTimersByTimeAsync(999);
    expect(member.hashes).toBe(0);
    await vi.advanceTimersByTimeAsync(1);
    expect(member.hashes).toBe(1);
    await vi.advanceTimersByTimeAsync(2000);
    expect(member.hashes).toBe(3);
    stop();
    await vi.advanceTimersByTimeAsync(5000);
    expect(member.hashes).toBe(3);
  });
});
