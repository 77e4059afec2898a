// Behavioural tests of the Raft core, grouped by the section of the Raft paper (and thesis)
// whose rule they check. They drive RawNodes through the Ready contract via TestCluster.

import { describe, expect, it } from 'vitest';
import { TestCluster, enc } from '../../test/raft/test-harness.js';
import { ConfChangeType, MessageType, NONE, StateRole, makeMessage, type MessageType as MessageTypeT } from './types.js';
import { ProposalDroppedError } from './raft.js';
import { ProgressState } from './progress.js';
import { MemoryStorage } from './storage.js';
import { RawNode } from './raw-node.js';
import { SeededRandom } from '../util/random.js';

const ids3 = [1n, 2n, 3n];
const ids5 = [1n, 2n, 3n, 4n, 5n];

describe('§5.2 leader election', () => {
  it('a campaigning node wins with a majority and others follow', () => {
    const c = new TestCluster(ids3);
    c.campaign(1n);
    expect(c.get(1n).node.raft.state).toBe(StateRole.Leader);
    expect(c.get(2n).node.raft.lead).toBe(1n);
    expect(c.get(3n).node.raft.lead).toBe(1n);
    // Term 1 belongs to the bootstrap entries; the first election moves to term 2.
    expect(c.get(1n).node.raft.term).toBe(2);
  });

  it('elects a leader by ticking alone, within 2 election timeouts', () => {
    const c = new TestCluster(ids5);
    c.tick(25);
    const leaders = [...c.nodes.values()].filter((n) => n.node.isLeader);
    expect(leaders.length).toBe(1);
  });

  it('randomized election timeout lies in [electionTick, 1.25 x electionTick) and uses the whole range', () => {
    // Production ticks: a tenth of a heartbeat, so a 1 s election timeout is 100 ticks.
    const n = new RawNode({ id: 1n, electionTick: 100, heartbeatTick: 10, storage: new MemoryStorage(), random: new SeededRandom(7), peers: ids3 });
    const seen: number[] = [];
    for (let i = 0; i < 500; i++) {
      n.raft.becomeFollower(n.raft.term + 1, NONE);
      seen.push(n.raft.randomizedElectionTimeout);
    }
    expect(Math.min(...seen)).toBeGreaterThanOrEqual(100);
    expect(Math.max(...seen)).toBeLessThan(125);
    // Not quantised to a few values: two followers rarely pick the same tick.
    expect(new Set(seen).size).toBe(25);
  });

  it('ticksUntilElection counts down to the tick that campaigns; Infinity where no tick does', () => {
    const n = new RawNode({ id: 1n, electionTick: 100, heartbeatTick: 10, storage: new MemoryStorage(), random: new SeededRandom(7), peers: ids3 });
    n.raft.becomeFollower(n.raft.term + 1, 2n);
    const timeout = n.raft.randomizedElectionTimeout;
    expect(n.raft.ticksUntilElection()).toBe(timeout);
    for (let i = 1; i < timeout; i++) {
      n.tick();
      expect(n.raft.ticksUntilElection()).toBe(timeout - i);
    }
    n.tick(); // the timeout's tick: the timer starts over
    expect(n.raft.ticksUntilElection()).toBe(n.raft.randomizedElectionTimeout);

    const c = new TestCluster(ids3, { learners: [4n] });
    c.campaign(1n);
    expect(c.get(1n).node.raft.ticksUntilElection()).toBe(Number.POSITIVE_INFINITY);
    expect(c.get(4n).node.raft.ticksUntilElection()).toBe(Number.POSITIVE_INFINITY);
    expect(c.get(2n).node.raft.ticksUntilElection()).toBeLessThan(Number.POSITIVE_INFINITY);
  });

  it('a coarse election timeout still randomizes over at least 5 ticks', () => {
    const n = new RawNode({ id: 1n, electionTick: 10, heartbeatTick: 1, storage: new MemoryStorage(), random: new SeededRandom(7), peers: ids3 });
    const seen = new Set<number>();
    for (let i = 0; i < 200; i++) {
      n.raft.becomeFollower(n.raft.term + 1, NONE);
      seen.add(n.raft.randomizedElectionTimeout);
    }
    expect([...seen].sort((a, b) => a - b)).toEqual([10, 11, 12, 13, 14]);
  });

  it('a split vote is decided within half an election timeout, not after another whole one', () => {
    const electionTick = 100;
    const c = new TestCluster(ids3, { electionTick, heartbeatTick: 10 });
    c.campaign(1n);
    c.isolate(1n);
    // Both followers time out together: each grants the other's pre-vote, then votes for itself.
    c.get(2n).node.campaign();
    c.get(3n).node.campaign();
    c.stabilize();
    const [r2, r3] = [c.get(2n).node.raft, c.get(3n).node.raft];
    expect([r2.state, r3.state]).toEqual([StateRole.Candidate, StateRole.Candidate]);
    expect(r2.term).toBe(r3.term);
    let ticks = 0;
    while (!r2.lead && ticks < 3 * electionTick) {
      c.tick(1, [2n, 3n]);
      ticks++;
    }
    expect(r2.lead === 2n || r2.lead === 3n).toBe(true);
    expect(r3.lead).toBe(r2.lead);
    expect(ticks).toBeLessThan(electionTick / 2);
  });

  it('a pre-vote round that gets no quorum is tried again every quarter to half election timeout', () => {
    const electionTick = 100;
    const c = new TestCluster(ids3, { electionTick, heartbeatTick: 10 });
    c.campaign(1n);
    let tick = 0;
    const rounds: number[] = [];
    // Nothing node 2 sends arrives (nor anything sent to it); record when it asks for pre-votes.
    c.filters.push((m) => {
      if (m.from === 2n && m.to === 3n && m.type === MessageType.MsgPreVote) rounds.push(tick);
      return m.from === 2n || m.to === 2n;
    });
    c.get(2n).node.campaign();
    c.stabilize();
    for (tick = 1; tick <= 2 * electionTick; tick++) c.tick(1, [2n]);
    expect(c.get(2n).node.raft.state).toBe(StateRole.PreCandidate);
    expect(rounds[0]).toBe(0);
    const gaps = rounds.slice(1).map((t, i) => t - (rounds[i] as number));
    expect(gaps.length).toBeGreaterThanOrEqual(4);
    for (const gap of gaps) expect(gap >= electionTick / 4 && gap < electionTick / 2, `gaps ${gaps.join(' ')}`).toBe(true);
  });

  it('a candidate without a majority does not become leader', () => {
    const c = new TestCluster(ids3, { preVote: false });
    c.isolate(1n);
    c.campaign(1n);
    expect(c.get(1n).node.raft.state).toBe(StateRole.Candidate);
  });

  it('votes at most once per term (first come first served)', () => {
    const c = new TestCluster(ids3, { preVote: false });
    const r3 = c.get(3n).node.raft;
    r3.step(makeMessage({ type: MessageType.MsgVote, from: 1n, to: 3n, term: 2, index: 3, logTerm: 1 }));
    expect(r3.vote).toBe(1n);
    r3.readMessages();
    r3.step(makeMessage({ type: MessageType.MsgVote, from: 2n, to: 3n, term: 2, index: 3, logTerm: 1 }));
    const resp = r3.readMessages();
    expect(resp[0]?.type).toBe(MessageType.MsgVoteResp);
    expect(resp[0]?.reject).toBe(true);
  });

  it('a node with a higher term steps the leader down on contact', () => {
    const c = new TestCluster(ids3, { preVote: false, checkQuorum: false });
    c.campaign(1n);
    c.isolate(1n);
    c.campaign(2n);
    expect(c.get(2n).node.raft.state).toBe(StateRole.Leader);
    c.heal();
    c.get(1n).node.propose(enc('x'));
    c.stabilize();
    c.tick(1);
    expect(c.get(1n).node.raft.state).toBe(StateRole.Follower);
    expect(c.get(1n).node.raft.term).toBe(3);
  });
});

describe('§5.3 log replication', () => {
  it('replicates and commits proposals on all nodes in order', () => {
    const c = new TestCluster(ids3);
    c.campaign(1n);
    for (let i = 0; i < 10; i++) c.get(1n).node.propose(enc(`v${i}`));
    c.stabilize();
    for (const id of ids3) expect(c.appliedData(id)).toEqual(Array.from({ length: 10 }, (_, i) => `v${i}`));
  });

  it('batches proposals made in one turn into one MsgApp per follower', () => {
    const c = new TestCluster(ids3);
    c.campaign(1n);
    c.log = [];
    for (let i = 0; i < 50; i++) c.get(1n).node.propose(enc(`v${i}`));
    c.stabilize();
    const apps = c.log.filter((m) => m.type === MessageType.MsgApp && m.entries.length > 0);
    expect(apps.length).toBe(2);
    expect(apps[0]?.entries.length).toBe(50);
  });

  it('followers forward proposals to the leader', () => {
    const c = new TestCluster(ids3);
    c.campaign(1n);
    c.get(3n).node.propose(enc('from3'));
    c.stabilize();
    expect(c.appliedData(1n)).toEqual(['from3']);
  });

  it('respects maxSizePerMsg and the inflight window', () => {
    const c = new TestCluster(ids3, { maxSizePerMsg: 100, maxInflightMsgs: 2 });
    c.campaign(1n);
    c.isolate(2n);
    c.isolate(3n);
    for (let i = 0; i < 20; i++) c.get(1n).node.propose(new Uint8Array(60));
    c.stabilize();
    const pr = c.get(1n).node.status().progress.get(2n);
    expect(pr?.state).toBe(ProgressState.Replicate);
    expect(pr?.inflight).toBe(2);
    c.heal();
    c.tick(3);
    for (const id of ids3) expect(c.get(id).applied.filter((e) => e.type === 0 && e.data.length > 0).length).toBe(20);
  });

  it('a lagging follower is repaired with fast backtracking (few probes)', () => {
    const c = new TestCluster(ids3, { preVote: false, checkQuorum: false });
    c.campaign(1n);
    c.get(1n).node.propose(enc('a'));
    c.stabilize();
    // Node 3 misses a long stretch written under several leaders; its own log diverges too.
    c.isolate(3n);
    for (let t = 0; t < 3; t++) {
      const lead = t % 2 === 0 ? 2n : 1n;
      c.campaign(lead);
      for (let i = 0; i < 30; i++) c.get(lead).node.propose(enc(`t${t}-${i}`));
      c.stabilize();
    }
    c.heal();
    c.log = [];
    c.tick(2);
    const rejects = c.log.filter((m) => m.type === MessageType.MsgAppResp && m.reject).length;
    expect(rejects).toBeLessThan(5);
    expect(c.appliedData(3n)).toEqual(c.appliedData(1n));
  });

  it('a follower overwrites conflicting uncommitted entries', () => {
    const c = new TestCluster(ids3, { preVote: false, checkQuorum: false });
    c.campaign(1n);
    c.isolate(1n);
    c.get(1n).node.propose(enc('lost1'));
    c.get(1n).node.propose(enc('lost2'));
    c.stabilize();
    c.heal();
    c.isolate(1n);
    c.campaign(2n);
    c.get(2n).node.propose(enc('kept'));
    c.stabilize();
    c.heal();
    c.tick(3);
    for (const id of ids3) expect(c.appliedData(id)).toEqual(['kept']);
  });
});

describe('§5.4 safety', () => {
  it('§5.4.1 a voter rejects a candidate whose log is less up to date', () => {
    const c = new TestCluster(ids3, { preVote: false, checkQuorum: false });
    c.campaign(1n);
    c.get(1n).node.propose(enc('x'));
    c.stabilize();
    const r2 = c.get(2n).node.raft;
    r2.step(makeMessage({ type: MessageType.MsgVote, from: 3n, to: 2n, term: 5, index: 4, logTerm: 1 }));
    const resp = r2.readMessages().find((m) => m.type === MessageType.MsgVoteResp);
    expect(resp?.reject).toBe(true);
  });

  it('§5.4.2 entries of an old term are not committed by counting replicas', () => {
    // Leader of term 3 holds an entry of term 1 at index 2 (written by an earlier leader).
    const storage = new MemoryStorage({ confState: { voters: ids3, learners: [] } });
    storage.append([
      { term: 1, index: 1, type: 0, data: enc('a') },
      { term: 1, index: 2, type: 0, data: enc('old') },
    ]);
    storage.setHardState({ term: 2, vote: NONE, commit: 1 });
    const node = new RawNode({ id: 1n, electionTick: 10, heartbeatTick: 1, storage, random: new SeededRandom(3), preVote: false });
    const r = node.raft;
    r.becomeCandidate();
    r.becomeLeader();
    expect(r.term).toBe(3);
    expect(r.raftLog.lastIndex()).toBe(3);
    // A majority (1 and 2) holds index 2, but it is of term 1: no commit by counting.
    r.step(makeMessage({ type: MessageType.MsgAppResp, from: 2n, to: 1n, term: 3, index: 2 }));
    expect(r.raftLog.committed).toBe(1);
    // The term-3 entry is on 2, but the leader's own copy is not yet durable: no majority yet.
    r.step(makeMessage({ type: MessageType.MsgAppResp, from: 2n, to: 1n, term: 3, index: 3 }));
    expect(r.raftLog.committed).toBe(1);
    // Once the leader's write of it lands, it and everything before it commit.
    storage.append(node.ready().entries);
    node.persisted();
    expect(r.raftLog.committed).toBe(3);
  });

  it('the leader appends an empty entry of its term on election', () => {
    const c = new TestCluster(ids3);
    c.campaign(1n);
    const e = c.get(1n).applied.find((x) => x.type === 0);
    expect(e?.data.length).toBe(0);
    expect(e?.term).toBe(2);
  });

  it('committed entries survive leader changes (leader completeness)', () => {
    const c = new TestCluster(ids5, { checkQuorum: false });
    c.campaign(1n);
    c.get(1n).node.propose(enc('a'));
    c.stabilize();
    c.isolate(1n);
    c.campaign(4n);
    c.get(4n).node.propose(enc('b'));
    c.stabilize();
    c.heal();
    c.tick(3);
    for (const id of ids5) expect(c.appliedData(id)).toEqual(['a', 'b']);
  });
});

describe('pre-vote', () => {
  it('a partitioned node does not inflate its term and does not disrupt on return', () => {
    const c = new TestCluster(ids3);
    c.campaign(1n);
    c.isolate(3n);
    c.tick(60, [3n]);
    expect(c.get(3n).node.raft.term).toBe(2);
    expect(c.get(3n).node.raft.state).toBe(StateRole.PreCandidate);
    c.heal();
    c.tick(2);
    expect(c.get(1n).node.raft.state).toBe(StateRole.Leader);
    expect(c.get(1n).node.raft.term).toBe(2);
  });

  it('without pre-vote the returning node forces a new term', () => {
    const c = new TestCluster(ids3, { preVote: false, checkQuorum: false });
    c.campaign(1n);
    c.isolate(3n);
    c.tick(60, [3n]);
    expect(c.get(3n).node.raft.term).toBeGreaterThan(2);
  });
});

describe('check-quorum', () => {
  it('a leader that cannot hear from a quorum steps down within an election timeout', () => {
    const c = new TestCluster(ids3);
    c.campaign(1n);
    c.isolate(1n);
    c.tick(21, [1n]);
    expect(c.get(1n).node.raft.state).toBe(StateRole.Follower);
  });

  it('a peer that answers every heartbeat is heard recently at every tick, across check-quorum rounds; a silent one is not within two', () => {
    // Heartbeats every 3 ticks, rounds every 10: most rounds fall between two heartbeats, where
    // the round has just cleared recentActive and no answer has set it again yet.
    const c = new TestCluster(ids3, { heartbeatTick: 3 });
    c.campaign(1n);
    const heard = (id: bigint): boolean => c.get(1n).node.status().progress.get(id)!.heardRecently;
    let recentActiveCleared = 0;
    for (let t = 0; t < 40; t++) {
      c.tick(1, [1n]);
      expect(c.get(1n).node.isLeader).toBe(true);
      expect([heard(2n), heard(3n)], `tick ${t}`).toEqual([true, true]);
      if (!c.get(1n).node.status().progress.get(2n)!.recentActive) recentActiveCleared++;
    }
    expect(recentActiveCleared).toBeGreaterThan(0);
    c.isolate(3n);
    c.tick(20, [1n]);
    expect([heard(2n), heard(3n)]).toEqual([true, false]);
  });

  it('followers in lease ignore vote requests from a disruptive node', () => {
    const c = new TestCluster(ids3, { preVote: false });
    c.campaign(1n);
    const r2 = c.get(2n).node.raft;
    r2.step(makeMessage({ type: MessageType.MsgVote, from: 3n, to: 2n, term: 10, index: 100, logTerm: 10 }));
    expect(r2.term).toBe(2);
    expect(r2.readMessages().length).toBe(0);
  });
});

describe('leader transfer', () => {
  it('transfers to an up-to-date follower', () => {
    const c = new TestCluster(ids3);
    c.campaign(1n);
    c.get(1n).node.transferLeader(2n);
    c.stabilize();
    expect(c.get(2n).node.raft.state).toBe(StateRole.Leader);
    expect(c.get(1n).node.raft.lead).toBe(2n);
  });

  it('a transfer requested on a follower is forwarded to the leader', () => {
    const c = new TestCluster(ids3);
    c.campaign(1n);
    c.get(3n).node.transferLeader(2n);
    c.stabilize();
    expect(c.get(2n).node.raft.state).toBe(StateRole.Leader);
  });

  it('catches the transferee up first, then sends MsgTimeoutNow', () => {
    const c = new TestCluster(ids3);
    c.campaign(1n);
    c.isolate(3n);
    for (let i = 0; i < 5; i++) c.get(1n).node.propose(enc(`x${i}`));
    c.stabilize();
    c.heal();
    c.log = [];
    c.get(1n).node.transferLeader(3n);
    c.stabilize();
    expect(c.get(3n).node.raft.state).toBe(StateRole.Leader);
    const kinds = c.log.map((m) => m.type);
    expect(kinds.indexOf(MessageType.MsgApp)).toBeLessThan(kinds.indexOf(MessageType.MsgTimeoutNow));
  });

  it('drops proposals during a transfer and aborts after an election timeout', () => {
    const c = new TestCluster(ids3);
    c.campaign(1n);
    c.isolate(3n);
    c.get(1n).node.transferLeader(3n);
    c.stabilize();
    expect(() => c.get(1n).node.propose(enc('x'))).toThrow(expect.objectContaining({ reason: 'leadershipTransfer' }));
    c.tick(11, [1n]);
    expect(c.get(1n).node.raft.leadTransferee).toBe(NONE);
    c.get(1n).node.propose(enc('y'));
  });

  it('refuses to transfer to a learner', () => {
    const c = new TestCluster(ids3, { learners: [4n] });
    c.campaign(1n);
    c.get(1n).node.transferLeader(4n);
    c.stabilize();
    expect(c.get(1n).node.raft.leadTransferee).toBe(NONE);
    expect(c.get(1n).node.isLeader).toBe(true);
  });
});

describe('§6 cluster membership changes', () => {
  it('adds a voter that then receives the log and counts in the quorum', () => {
    const c = new TestCluster(ids3);
    c.campaign(1n);
    c.get(1n).node.propose(enc('before'));
    c.stabilize();
    c.add(4n, { peers: [] });
    c.get(1n).node.proposeConfChange({ type: ConfChangeType.AddNode, nodeId: 4n });
    c.stabilize();
    c.tick(2);
    expect(c.get(1n).confState.voters).toEqual([1n, 2n, 3n, 4n]);
    expect(c.get(4n).confState.voters).toEqual([1n, 2n, 3n, 4n]);
    expect(c.appliedData(4n)).toEqual(['before']);
    expect(c.get(1n).node.raft.prs.quorum()).toBe(3);
  });

  it('learners receive the log but never vote or count', () => {
    const c = new TestCluster(ids3, { learners: [4n] });
    c.campaign(1n);
    c.get(1n).node.propose(enc('x'));
    c.stabilize();
    expect(c.appliedData(4n)).toEqual(['x']);
    expect(c.get(1n).node.raft.prs.quorum()).toBe(2);
    // A learner never campaigns.
    c.isolate(4n);
    c.tick(50, [4n]);
    expect(c.get(4n).node.raft.state).toBe(StateRole.Follower);
    c.heal();
    // Without learner 4 and with 2,3 down, nothing commits: 4 does not count.
    c.isolate(2n);
    c.isolate(3n);
    const before = c.get(1n).node.raft.raftLog.committed;
    c.get(1n).node.propose(enc('y'));
    c.stabilize();
    expect(c.get(1n).node.raft.raftLog.committed).toBe(before);
  });

  it('promotes a learner to voter', () => {
    const c = new TestCluster(ids3, { learners: [4n] });
    c.campaign(1n);
    c.get(1n).node.proposeConfChange({ type: ConfChangeType.AddNode, nodeId: 4n });
    c.stabilize();
    expect(c.get(4n).confState).toEqual({ voters: [1n, 2n, 3n, 4n], learners: [] });
    expect(c.get(4n).node.raft.promotable()).toBe(true);
  });

  it('removes a node; the removed node stops and the rest keep committing', () => {
    const c = new TestCluster(ids3);
    c.campaign(1n);
    c.get(1n).node.proposeConfChange({ type: ConfChangeType.RemoveNode, nodeId: 3n });
    c.stabilize();
    expect(c.get(1n).confState.voters).toEqual([1n, 2n]);
    expect(c.get(3n).node.raft.removed).toBe(true);
    c.get(1n).node.propose(enc('after'));
    c.stabilize();
    expect(c.appliedData(2n)).toEqual(['after']);
  });

  it('allows only one pending configuration change at a time', () => {
    const c = new TestCluster(ids3);
    c.campaign(1n);
    c.isolate(2n);
    c.isolate(3n);
    c.get(1n).node.proposeConfChange({ type: ConfChangeType.AddLearnerNode, nodeId: 4n });
    c.get(1n).node.proposeConfChange({ type: ConfChangeType.AddLearnerNode, nodeId: 5n });
    c.stabilize();
    c.heal();
    c.tick(3);
    expect(c.get(1n).confState.learners).toEqual([4n]);
  });

  it('removing the leader lets the others elect a new one', () => {
    const c = new TestCluster(ids3);
    c.campaign(1n);
    c.get(1n).node.proposeConfChange({ type: ConfChangeType.RemoveNode, nodeId: 1n });
    c.stabilize();
    expect(c.get(1n).node.raft.removed).toBe(true);
    c.tick(50, [2n, 3n]);
    const lead = c.leader();
    expect(lead === undefined ? 0n : lead.id).not.toBe(0n);
    expect([2n, 3n]).toContain(lead?.id);
  });
});

describe('§7 log compaction', () => {
  it('a follower behind the compaction point receives a snapshot', () => {
    const c = new TestCluster(ids3);
    c.campaign(1n);
    c.isolate(3n);
    for (let i = 0; i < 10; i++) c.get(1n).node.propose(enc(`v${i}`));
    c.stabilize();
    const l = c.get(1n);
    const applied = l.node.raft.raftLog.applied;
    l.storage.createSnapshot(applied, l.confState, enc(`state-at-${applied}`));
    l.storage.compact(applied);
    c.heal();
    c.log = [];
    c.tick(2);
    expect(c.log.some((m) => m.type === MessageType.MsgSnap)).toBe(true);
    const f = c.get(3n);
    expect(f.storage.snapshot().metadata.index).toBe(applied);
    expect(new TextDecoder().decode(f.storage.snapshot().data)).toBe(`state-at-${applied}`);
    l.node.propose(enc('after'));
    c.stabilize();
    expect(c.appliedData(3n)).toEqual(['after']);
    expect(f.node.raft.raftLog.committed).toBe(l.node.raft.raftLog.committed);
  });

  it('MemoryStorage compaction: terms and entries below the point are gone', () => {
    const s = new MemoryStorage();
    s.append([1, 2, 3, 4, 5].map((i) => ({ term: 1, index: i, type: 0 as const, data: new Uint8Array(0) })));
    s.createSnapshot(3, { voters: [1n], learners: [] }, new Uint8Array(0));
    s.compact(3);
    expect(s.firstIndex()).toBe(4);
    expect(s.term(3)).toBe(1);
    expect(() => s.term(2)).toThrow();
    expect(() => s.entries(3, 5, 1000)).toThrow();
    expect(s.entries(4, 6, 1000).map((e) => e.index)).toEqual([4, 5]);
  });

  it('restarts from a snapshot plus log', () => {
    const c = new TestCluster([1n]);
    c.campaign(1n);
    for (let i = 0; i < 5; i++) c.get(1n).node.propose(enc(`v${i}`));
    c.stabilize();
    const tn = c.get(1n);
    tn.storage.createSnapshot(5, tn.confState, enc('s'));
    tn.storage.compact(5);
    const again = new RawNode({
      id: 1n,
      electionTick: 10,
      heartbeatTick: 1,
      storage: tn.storage,
      random: new SeededRandom(1),
      applied: tn.node.raft.raftLog.applied,
    });
    expect(again.raft.term).toBe(2);
    expect(again.raft.raftLog.committed).toBe(7);
    expect(again.raft.raftLog.lastIndex()).toBe(7);
    expect(again.raft.raftLog.firstIndex()).toBe(6);
  });
});

describe('network input', () => {
  it('malformed peer messages are refused with a clear error and change nothing', async () => {
    const { InvalidMessageError } = await import('./raw-node.js');
    const c = new TestCluster(ids3);
    c.campaign(1n);
    const n2 = c.get(2n).node;
    const before = JSON.stringify(n2.status(), (_k, v: unknown) => (typeof v === 'bigint' ? String(v) : v));
    const bad = [
      makeMessage({ type: MessageType.MsgHup, from: 1n, to: 2n, term: 2 }),
      makeMessage({ type: MessageType.MsgApp, from: 1n, to: 3n, term: 2 }),
      makeMessage({ type: MessageType.MsgApp, from: 1n, to: 2n, term: 2.5 }),
      makeMessage({
        type: MessageType.MsgApp,
        from: 1n,
        to: 2n,
        term: 2,
        index: 5,
        logTerm: 2,
        entries: [{ term: 2, index: 7, type: 0, data: new Uint8Array(0) }],
      }),
      makeMessage({
        type: MessageType.MsgApp,
        from: 1n,
        to: 2n,
        term: 2,
        index: 5,
        logTerm: 2,
        entries: [{ term: 9, index: 6, type: 0, data: new Uint8Array(0) }],
      }),
      makeMessage({ type: MessageType.MsgSnap, from: 1n, to: 2n, term: 2 }),
      makeMessage({ type: MessageType.MsgProp, from: 1n, to: 2n }),
      makeMessage({ type: 99 as MessageTypeT, from: 1n, to: 2n, term: 2 }),
      makeMessage({ type: MessageType.MsgHeartbeat, from: 1n, to: 2n }),
    ];
    for (const m of bad) expect(() => n2.step(m)).toThrow(InvalidMessageError);
    expect(JSON.stringify(n2.status(), (_k, v: unknown) => (typeof v === 'bigint' ? String(v) : v))).toBe(before);
  });
});

describe('§8 client interaction / ReadIndex', () => {
  it('the leader answers after a heartbeat round with its commit index', () => {
    const c = new TestCluster(ids3);
    c.campaign(1n);
    c.get(1n).node.propose(enc('x'));
    c.stabilize();
    const states: number[] = [];
    const node = c.get(1n).node;
    node.readIndex(enc('r1'));
    expect(node.raft.readStates.length).toBe(0); // needs the heartbeat round first
    c.log = [];
    // Drive manually to capture the readStates.
    for (let i = 0; i < 5; i++) {
      for (const tn of c.nodes.values()) {
        if (!tn.node.hasReady()) continue;
        const rd = tn.node.ready();
        tn.storage.append(rd.entries);
        if (tn.id === 1n) for (const rs of rd.readStates) states.push(rs.index);
        tn.node.advance();
        c.deliver(rd.messages);
      }
    }
    expect(states).toEqual([node.raft.raftLog.committed]);
  });

  it('a follower forwards to the leader and gets the read index back', () => {
    const c = new TestCluster(ids3);
    c.campaign(1n);
    const got: Array<{ index: number; ctx: string }> = [];
    c.get(2n).node.readIndex(enc('f1'));
    for (let i = 0; i < 6; i++) {
      for (const tn of c.nodes.values()) {
        if (!tn.node.hasReady()) continue;
        const rd = tn.node.ready();
        tn.storage.append(rd.entries);
        if (tn.id === 2n) for (const rs of rd.readStates) got.push({ index: rs.index, ctx: new TextDecoder().decode(rs.requestCtx) });
        tn.node.advance();
        c.deliver(rd.messages);
      }
    }
    expect(got).toEqual([{ index: c.get(1n).node.raft.raftLog.committed, ctx: 'f1' }]);
  });

  /** The heartbeats that carried a read context (a leadership round for a read). */
  const readRounds = (c: TestCluster): number =>
    c.log.filter((m) => m.type === MessageType.MsgHeartbeat && m.context !== undefined && m.context.length > 0).length;

  it("with three voters a follower's request, carrying its term, is answered without a heartbeat round", () => {
    const c = new TestCluster(ids3);
    c.campaign(1n);
    c.get(1n).node.propose(enc('x'));
    c.stabilize();
    c.log = [];
    c.get(2n).node.readIndex(enc('f1'));
    c.stabilize();
    const forwarded = c.log.find((m) => m.type === MessageType.MsgReadIndex);
    expect(forwarded?.term).toBe(c.get(2n).node.raft.term);
    expect(readRounds(c)).toBe(0);
    expect(c.get(2n).reads).toEqual([`${c.get(1n).node.raft.raftLog.committed}:f1`]);
  });

  it('a term-less forwarded request (an older member) and a five-voter cluster still need a heartbeat round', () => {
    const c3 = new TestCluster(ids3);
    c3.campaign(1n);
    c3.log = [];
    c3.deliver([makeMessage({ type: MessageType.MsgReadIndex, from: 2n, to: 1n, context: enc('old') })]);
    c3.stabilize();
    expect(readRounds(c3)).toBe(2);
    expect(c3.get(2n).reads).toEqual([`${c3.get(1n).node.raft.raftLog.committed}:old`]);

    const c5 = new TestCluster(ids5);
    c5.campaign(1n);
    c5.log = [];
    c5.get(2n).node.readIndex(enc('f5'));
    c5.stabilize();
    expect(readRounds(c5)).toBe(4);
    expect(c5.get(2n).reads).toEqual([`${c5.get(1n).node.raft.raftLog.committed}:f5`]);
  });

  it('a forwarded request from an older term is not answered', () => {
    const c = new TestCluster(ids3);
    c.campaign(1n);
    c.log = [];
    const term = c.get(1n).node.raft.term;
    expect(term).toBeGreaterThan(1); // so that the stale request still carries a term
    c.deliver([makeMessage({ type: MessageType.MsgReadIndex, from: 2n, to: 1n, term: term - 1, context: enc('stale') })]);
    c.stabilize();
    expect(c.log.filter((m) => m.type === MessageType.MsgReadIndexResp)).toEqual([]);
    expect(c.get(2n).reads).toEqual([]);
  });

  it('a partitioned leader cannot serve a read index', () => {
    const c = new TestCluster(ids3);
    c.campaign(1n);
    c.isolate(1n);
    c.get(1n).node.readIndex(enc('r'));
    c.stabilize();
    expect(c.get(1n).node.raft.readStates.length).toBe(0);
  });

  it('a new leader defers reads until an entry of its term commits', () => {
    const c = new TestCluster(ids3);
    c.filters.push((m) => m.type === MessageType.MsgAppResp);
    c.campaign(1n);
    const r1 = c.get(1n).node.raft;
    expect(r1.state).toBe(StateRole.Leader);
    c.get(1n).node.readIndex(enc('early'));
    c.stabilize();
    expect(c.log.filter((m) => m.type === MessageType.MsgHeartbeat && m.context !== undefined).length).toBe(0);
    c.heal();
    c.tick(1);
    expect(c.log.filter((m) => m.type === MessageType.MsgHeartbeat && m.context !== undefined).length).toBeGreaterThan(0);
  });

  it('proposals without a leader are refused', () => {
    const c = new TestCluster(ids3);
    expect(() => c.get(1n).node.propose(enc('x'))).toThrow(ProposalDroppedError);
    expect(() => c.get(1n).node.propose(enc('x'))).toThrow(expect.objectContaining({ reason: 'noLeader' }));
  });
});
