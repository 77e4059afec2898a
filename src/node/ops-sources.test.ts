import { describe, expect, it } from 'vitest';
import type { RangeRequest } from '../mvcc/types.js';
import { AlarmType, type AlarmMember } from '../server/apply/alarms.js';
import { KeySpace } from '../storage/backend.js';
import { NodeStatus, opsSources, type OpsMember } from './ops-sources.js';

class FakeMember implements OpsMember {
  raft: { leader: bigint; isLeader: boolean } | undefined = { leader: 2n, isLeader: false };
  appliedIndex = 10;
  commitIndex = 12;
  lastIndex = 15;
  currentRevision = 7;
  compactedRevision = 3;
  alarms: AlarmMember[] = [];
  readonly applier = { alarms: { all: this.alarms } };
  readonly ranges: RangeRequest[] = [];
  readonly mvcc = { liveKeyCount: 42 };
  readRefused = false;
  readonly backend = {
    sizeBytes: async () => 4096,
    spaceSizeBytes: async (space: KeySpace) => (space === KeySpace.mvcc ? 1024 : -1),
  };
  readonly watchHub = { counts: { synced: 4, unsynced: 2 } };
  range(request: RangeRequest) {
    if (this.readRefused) throw new Error('corrupt');
    this.ranges.push(request);
    return { result: { count: 42 } };
  }
}

describe('ops sources: what the health and metrics ports read', () => {
  it('leadership comes from Raft; a member without Raft leads itself', () => {
    const member = new FakeMember();
    const sources = opsSources(member, new NodeStatus());
    expect([sources.hasLeader(), sources.isLeader()]).toEqual([true, false]);
    member.raft = { leader: 0n, isLeader: false };
    expect(sources.hasLeader()).toBe(false);
    member.raft = undefined;
    expect([sources.hasLeader(), sources.isLeader()]).toEqual([true, true]);
  });

  it('indexes, revisions and pending proposals (never negative)', () => {
    const member = new FakeMember();
    const sources = opsSources(member, new NodeStatus());
    expect([sources.appliedIndex(), sources.committedIndex(), sources.pendingProposals()]).toEqual([10, 12, 5]);
    expect([sources.currentRevision(), sources.compactedRevision()]).toEqual([7, 3]);
    member.lastIndex = 8; // applied past the last index known to the log view
    expect(sources.pendingProposals()).toBe(0);
  });

  it('alarms by their etcd names', () => {
    const member = new FakeMember();
    member.alarms.push({ memberId: 1n, alarm: AlarmType.NOSPACE }, { memberId: 2n, alarm: AlarmType.CORRUPT });
    expect(opsSources(member, new NodeStatus()).alarms()).toEqual(['NOSPACE', 'CORRUPT']);
  });

  it("the read check is a serializable read of the store; the key count is the store's own", async () => {
    const member = new FakeMember();
    const sources = opsSources(member, new NodeStatus());
    await sources.checkRead();
    expect(member.ranges[0]).toMatchObject({ key: Buffer.from('health'), limit: 1, keysOnly: true });
    expect(sources.keysTotal()).toBe(42);
    expect(member.ranges).toHaveLength(1); // no walk over every key per scrape
    member.readRefused = true;
    await expect(sources.checkRead()).rejects.toThrow('corrupt');
  });

  it('sizes, watchers, connections and the shutdown flag', async () => {
    const member = new FakeMember();
    const status = new NodeStatus();
    const sources = opsSources(member, status);
    expect([await sources.dbSizeBytes(), await sources.dbSizeInUseBytes()]).toEqual([4096, 1024]);
    expect(sources.watchers?.()).toBe(6);
    status.clientConnections = () => 9;
    expect(sources.activeConnections()).toBe(9);
    expect(sources.shuttingDown()).toBe(false);
    status.shuttingDown = true;
    expect(sources.shuttingDown()).toBe(true);
  });
});
