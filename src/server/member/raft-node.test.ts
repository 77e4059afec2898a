// The Raft driver on its own: RaftNodes over in-memory logs, wired by an in-memory network,
// with time moved by a manual scheduler. The harness (test/support/raft-node-cluster.ts)
// records a violation whenever an entry is applied before it is durable, applied twice or out
// of order, or an append or vote is acknowledged before it is written; every test ends by
// asserting there were none.

import { afterEach, describe, expect, it } from 'vitest';
import { ConfChangeType, MessageType, type Message } from '../../raft/types.js';
import { RaftNodeCluster, request, rejection, type TestMember } from '../../../test/support/raft-node-cluster.js';
import { encodeInternalRequest } from '../apply/internal-request.js';
import { IDLE_TURN_GAP_MS, MAX_READ_ROUNDS_IN_FLIGHT } from './raft-node.js';

let cluster: RaftNodeCluster;

afterEach(async () => {
  await cluster.stopAll();
  expect(cluster.violations).toEqual([]);
});

describe('RaftNode: Ready handling', () => {
  it('a lone voter elects itself at start and answers each proposal with the outcome of its own entry', async () => {
    cluster = new RaftNodeCluster([1n]);
    const member = cluster.start(1n);
    await cluster.until(member.raft.leaderKnown());
    expect(member.raft.isLeader).toBe(true);
    expect(member.leaderChanges).toEqual([{ lead: 1n, term: member.raft.term }]);
    const results = await cluster.until(Promise.all([1, 2, 3].map((n) => member.raft.propose(request(n)))));
    const indexes = results.map((r) => (r.outcome.ok ? r.outcome.revision : -1));
    // The recording applier answers with the entry's index: each caller got its own entry.
    expect(indexes).toEqual([indexes[0]!, indexes[0]! + 1, indexes[0]! + 2]);
    for (const [i, index] of indexes.entries()) {
      expect(member.applier.applied.get(index)).toBe(encodeInternalRequest(request(i + 1)).toString('hex'));
    }
    // A lone voter has nobody to talk to.
    expect(member.sent).toEqual([]);
  });

  it('proposals queued in one loop turn go to the log in one write', async () => {
    const member = await loneVoterSettled();
    const savesBefore = member.log.entrySaves;
    const lastBefore = member.raft.lastIndex;
    const results = Promise.all(Array.from({ length: 20 }, (_, n) => member.raft.propose(request(n))));
    await cluster.scheduler.settle();
    await results;
    expect(member.raft.lastIndex).toBe(lastBefore + 20);
    expect(member.log.entrySaves - savesBefore).toBe(1);
  });

  it('an idle member writes a lone proposal without waiting for a loop turn; what is proposed in the same run shares the write', async () => {
    const member = await loneVoterSettled();
    // No turn for the gap, no write in flight: idle.
    await cluster.scheduler.advance(IDLE_TURN_GAP_MS);
    const savesBefore = member.log.entrySaves;
    const lastBefore = member.raft.lastIndex;
    const results = Promise.all([1, 2, 3].map((n) => member.raft.propose(request(n))));
    // Only microtasks run here: the manual scheduler runs no loop turn before settle().
    for (let i = 0; i < 10; i++) await Promise.resolve();
    expect(member.raft.lastIndex).toBe(lastBefore + 3);
    expect(member.log.entrySaves - savesBefore).toBe(1);
    await cluster.scheduler.settle();
    await results;
  });

  it('a member that ran a turn within the idle gap waits for the loop turn, which takes every proposal made meanwhile', async () => {
    const member = await loneVoterSettled();
    await cluster.scheduler.advance(IDLE_TURN_GAP_MS);
    const first = member.raft.propose(request(0));
    for (let i = 0; i < 10; i++) await Promise.resolve();
    const savesBefore = member.log.entrySaves;
    const lastBefore = member.raft.lastIndex;
    // Two proposals from two separate callbacks (loop iterations), no time passing: busy.
    const second = member.raft.propose(request(1));
    await new Promise((resolve) => setImmediate(resolve));
    const third = member.raft.propose(request(2));
    for (let i = 0; i < 10; i++) await Promise.resolve();
    expect(member.log.entrySaves).toBe(savesBefore);
    await cluster.scheduler.settle();
    await Promise.all([first, second, third]);
    expect(member.raft.lastIndex).toBe(lastBefore + 2);
    expect(member.log.entrySaves - savesBefore).toBe(1);
  });
});

/** Three members with two writes in flight each, a leader elected and settled; the leader. */
async function threeMembersTwoWritesInFlight(): Promise<TestMember> {
  cluster = new RaftNodeCluster([1n, 2n, 3n], { maxWritesInFlight: 2 });
  for (const id of [1n, 2n, 3n]) cluster.start(id);
  const leader = await cluster.electLeader();
  await cluster.scheduler.settle();
  return leader;
}

/** Proposes one request per number through `member`, each settled before the next (a Ready each). */
async function proposeInTurns(member: TestMember, numbers: number[]): Promise<Array<Promise<unknown>>> {
  const results: Array<Promise<unknown>> = [];
  for (const n of numbers) {
    results.push(member.raft.propose(request(n)));
    await cluster.scheduler.settle();
  }
  return results;
}

/** A one-voter cluster started, its member leading and settled; the member. */
async function loneVoterSettled(overrides?: ConstructorParameters<typeof RaftNodeCluster>[1]): Promise<TestMember> {
  cluster = new RaftNodeCluster([1n], overrides);
  const member = cluster.start(1n);
  await cluster.until(member.raft.leaderKnown());
  await cluster.scheduler.settle();
  return member;
}

/** Three members started, a leader elected and one entry committed and settled everywhere. */
async function threeMembersOneEntryIn(): Promise<{ leader: TestMember; followers: TestMember[] }> {
  cluster = new RaftNodeCluster([1n, 2n, 3n]);
  for (const id of [1n, 2n, 3n]) cluster.start(id);
  const leader = await cluster.electLeader();
  await cluster.until(leader.raft.propose(request(0)));
  await cluster.scheduler.settle();
  return { leader, followers: cluster.followers() };
}

describe('RaftNode: persist, then send, then apply', () => {
  it('a follower acknowledges an append only after writing it, and applies it only then', async () => {
    const { leader, followers } = await threeMembersOneEntryIn();
    const [slow, fast] = followers;

    slow!.log.hold();
    const acksBefore = slow!.sent.filter((m) => m.type === MessageType.MsgAppResp).length;
    const { outcome } = await cluster.until(leader.raft.propose(request(1)));
    const index = outcome.ok ? outcome.revision : -1;
    await cluster.scheduler.advance(500);
    // Committed by the leader and the other follower; the slow one holds it unwritten: no ack,
    // not applied.
    expect(fast!.applier.appliedIndex).toBeGreaterThanOrEqual(index);
    expect(slow!.log.lastIndex()).toBeGreaterThanOrEqual(index);
    expect(slow!.log.durableIndex).toBeLessThan(index);
    const acksWhileHeld = slow!.sent.filter((m) => m.type === MessageType.MsgAppResp).slice(acksBefore);
    expect(acksWhileHeld.filter((m) => !m.reject && m.index >= index)).toEqual([]);
    expect(slow!.applier.appliedIndex).toBeLessThan(index);

    slow!.log.release();
    await cluster.scheduler.advance(500);
    expect(slow!.sent.some((m) => m.type === MessageType.MsgAppResp && !m.reject && m.index >= index)).toBe(true);
    expect(slow!.applier.applied.get(index)).toBe(leader.applier.applied.get(index));
  });

  it('the leader sends its appends while writing them, but applies and answers only after its own write', async () => {
    cluster = new RaftNodeCluster([1n, 2n, 3n]);
    for (const id of [1n, 2n, 3n]) cluster.start(id);
    const leader = await cluster.electLeader();
    await cluster.scheduler.settle();

    leader.log.hold();
    let answered = false;
    const result = leader.raft.propose(request(7)).then((r) => {
      answered = true;
      return r;
    });
    await cluster.scheduler.advance(300);
    const index = leader.raft.lastIndex;
    // Both followers have it durably and acknowledged it: a quorum, so it is committed...
    for (const follower of cluster.followers()) expect(follower.log.durableIndex).toBeGreaterThanOrEqual(index);
    expect(leader.raft.commitIndex).toBeGreaterThanOrEqual(index);
    // ...yet the leader, whose own write is still in flight, neither applies nor answers.
    expect(leader.applier.appliedIndex).toBeLessThan(index);
    expect(answered).toBe(false);

    leader.log.release();
    await cluster.scheduler.settle();
    const { outcome } = await cluster.until(result);
    expect(outcome).toMatchObject({ ok: true, revision: index });
    expect(leader.applier.appliedIndex).toBeGreaterThanOrEqual(index);
  });

  it("the leader's own write of an entry starts only after its followers had their turn with the append (a sync in-line does not hold its messages back)", async () => {
    cluster = new RaftNodeCluster([1n, 2n, 3n]);
    for (const id of [1n, 2n, 3n]) cluster.start(id);
    const leader = await cluster.electLeader();
    await cluster.scheduler.settle();
    const followers = cluster.followers();
    const target = leader.raft.lastIndex + 1;
    // What the followers had written (started to) when the leader's write of the entry began.
    let followersAtLeaderWrite: number[] | undefined;
    const save = leader.log.save.bind(leader.log);
    leader.log.save = (hardState, entries, snapshot, options) => {
      if (followersAtLeaderWrite === undefined && entries.some((e) => e.index === target)) followersAtLeaderWrite = followers.map((f) => f.log.lastIndex());
      return save(hardState, entries, snapshot, options);
    };
    const { outcome } = await cluster.until(leader.raft.propose(request(9)));
    expect(outcome).toMatchObject({ ok: true, revision: target });
    expect(followersAtLeaderWrite).toEqual([target, target]);
  });

  it('a follower forwards a proposal to the leader while the write of the same Ready is in flight; its ack still waits for the write', async () => {
    cluster = new RaftNodeCluster([1n, 2n, 3n]);
    for (const id of [1n, 2n, 3n]) cluster.start(id);
    const leader = await cluster.electLeader();
    const [follower] = cluster.followers();
    await cluster.scheduler.settle();
    // An append for the follower waits on the network, so that it arrives in the same loop turn
    // as a proposal made at the follower: one Ready carries the entry to write and the proposal.
    cluster.delay = (m) => m.to === follower!.id && m.type === MessageType.MsgApp;
    const first = cluster.until(leader.raft.propose(request(1)));
    await cluster.scheduler.advance(50);
    follower!.log.hold();
    cluster.delay = undefined;
    cluster.deliverDelayed();
    const forwarded = follower!.raft.propose(request(2));
    await cluster.scheduler.advance(50);
    const appended = follower!.log.lastIndex();
    expect(follower!.log.durableIndex).toBeLessThan(appended);
    // The proposal went out with the write still held...
    expect(follower!.sent.some((m) => m.type === MessageType.MsgProp)).toBe(true);
    expect(leader.raft.lastIndex).toBeGreaterThan(appended);
    // ...the acknowledgement of the held entry did not (the harness records one sent early).
    expect(follower!.sent.filter((m) => m.type === MessageType.MsgAppResp && !m.reject && m.index >= appended)).toEqual([]);
    follower!.log.release();
    await first;
    const { outcome } = await cluster.until(forwarded);
    expect(outcome.ok && outcome.revision).toBe(leader.raft.lastIndex);
  });
});

describe('RaftNode: a follower forwards proposals during its write', () => {
  it('a proposal made while the follower writes an earlier Ready leaves before that write lands; nothing else does', async () => {
    cluster = new RaftNodeCluster([1n, 2n, 3n]);
    for (const id of [1n, 2n, 3n]) cluster.start(id);
    const leader = await cluster.electLeader();
    const [follower] = cluster.followers();
    await cluster.until(leader.raft.propose(request(0)));
    await cluster.scheduler.settle();
    // The follower takes the next append into a Ready whose write is held: a write in flight.
    follower!.log.hold();
    const first = cluster.until(leader.raft.propose(request(1)));
    await cluster.scheduler.advance(20);
    const appended = follower!.log.lastIndex();
    expect(follower!.log.durableIndex).toBeLessThan(appended);
    const sentBefore = follower!.sent.length;
    const forwarded = follower!.raft.propose(request(2));
    await cluster.scheduler.advance(20);
    const durableDuringWrite = follower!.log.durableIndex;
    const sentDuringWrite = follower!.sent.slice(sentBefore);
    const leaderLastDuringWrite = leader.raft.lastIndex;
    follower!.log.release();
    // With its write still held, the proposal went to the leader, which appended it...
    expect(durableDuringWrite).toBeLessThan(appended);
    expect(sentDuringWrite.map((m) => [m.type, m.to])).toEqual([[MessageType.MsgProp, leader.id]]);
    expect(leaderLastDuringWrite).toBeGreaterThan(appended);
    // ...and nothing else left: the ack of the held entry waited for the write (the harness
    // also records any message that promises durable state sent early).
    await first;
    const { outcome } = await cluster.until(forwarded);
    expect(outcome.ok && outcome.revision).toBeGreaterThan(appended);
    expect(follower!.sent.some((m) => m.type === MessageType.MsgAppResp && !m.reject && m.index >= appended)).toBe(true);
  });
});

describe('RaftNode: a commit learned during a write', () => {
  it('is applied for entries durable here without waiting for the write in flight', async () => {
    const { leader, followers } = await threeMembersOneEntryIn();
    const [slow, fast] = followers;
    // Everything to the slow follower is caught here and handed over by hand; the fast
    // follower's acks wait, so the leader sends two appends before it can commit either.
    const toSlow: Message[] = [];
    cluster.delay = (m) => {
      if (m.to === slow!.id) toSlow.push(m);
      return m.to === slow!.id || m.from === fast!.id;
    };
    const first = leader.raft.lastIndex + 1;
    const proposals = [leader.raft.propose(request(1))];
    await cluster.scheduler.advance(20);
    proposals.push(leader.raft.propose(request(2)));
    await cluster.scheduler.advance(20);
    const appendOf = (index: number) => toSlow.find((m) => m.type === MessageType.MsgApp && m.entries.some((e) => e.index === index))!;
    const [append1, append2] = [appendOf(first), appendOf(first + 1)];
    expect([append1.commit, append2.commit]).toEqual([first - 1, first - 1]);
    // The slow follower writes the first entry and acknowledges it: the leader commits it.
    const caught = toSlow.length;
    slow!.raft.receive([append1]);
    await cluster.scheduler.advance(20);
    expect(slow!.log.durableIndex).toBe(first);
    const commits = toSlow.slice(caught).filter((m) => m.commit >= first);
    expect(commits.length).toBeGreaterThan(0);
    // The second entry's write is held; the commit of the first arrives meanwhile.
    slow!.log.hold();
    slow!.raft.receive([append2]);
    await cluster.scheduler.advance(5);
    slow!.raft.receive(commits);
    await cluster.scheduler.advance(5);
    const durableMeanwhile = slow!.log.durableIndex;
    const appliedMeanwhile = slow!.applier.appliedIndex;
    const lastMeanwhile = slow!.log.lastIndex();
    slow!.log.release();
    cluster.delay = undefined;
    cluster.deliverDelayed();
    await cluster.until(Promise.all(proposals));
    expect([durableMeanwhile, lastMeanwhile]).toEqual([first, first + 1]);
    expect(appliedMeanwhile).toBe(first);
    // The harness records an entry applied before it is durable: none was.
  });
});

describe('RaftNode: restart from the log', () => {
  it('brings back the configuration and applied index, re-applies only what the state machine lost', async () => {
    cluster = new RaftNodeCluster([1n]);
    const first = cluster.start(1n);
    await cluster.until(first.raft.leaderKnown());
    // A learner that never answers: the lone voter still commits alone.
    const confState = await cluster.until(first.raft.changeMembership(ConfChangeType.AddLearnerNode, 2n, Buffer.from('{}')));
    expect(confState).toEqual({ voters: [1n], learners: [2n] });
    for (let n = 0; n < 5; n++) await cluster.until(first.raft.propose(request(n)));
    const lastIndex = first.raft.lastIndex;
    const before = new Map(first.applier.applied);
    const { log, applied } = await cluster.crash(1n);
    expect(applied).toBe(lastIndex);

    // The last two applies were never written (a crash before the unsynced apply batch).
    const restarted = cluster.start(1n, { log, applied: applied - 2 });
    await cluster.until(restarted.raft.leaderKnown());
    await cluster.scheduler.settle();
    expect(restarted.raft.voters).toEqual([1n]);
    expect(restarted.raft.learners).toEqual([2n]);
    // Exactly the two lost entries again, with the same data; then the new leader's no-op.
    expect(restarted.applier.order.slice(0, 2)).toEqual([applied - 1, applied]);
    expect(restarted.applier.applied.get(applied)).toBe(before.get(applied));
    expect(Math.min(...restarted.applier.order)).toBe(applied - 1);
    const { outcome } = await cluster.until(restarted.raft.propose(request(99)));
    expect(outcome.ok && outcome.revision).toBeGreaterThan(lastIndex);
  });
});

describe('RaftNode: proposals that cannot be placed', () => {
  it("membership changes fail at once with etcd's NoLeader while no leader is known", async () => {
    cluster = new RaftNodeCluster([1n, 2n, 3n]);
    const member = cluster.start(1n);
    expect(await cluster.until(rejection(member.raft.changeMembership(ConfChangeType.AddNode, 4n, Buffer.alloc(0))))).toMatchObject({ etcdCode: 'NoLeader' });
  });

  it('fail with LeaderChanged while the leader hands over', async () => {
    cluster = new RaftNodeCluster([1n, 2n, 3n]);
    for (const id of [1n, 2n, 3n]) cluster.start(id);
    const leader = await cluster.electLeader();
    const target = cluster.followers()[0]!;
    // The transferee never hears of it, so the transfer stays in progress.
    cluster.isolated.add(target.id);
    leader.raft.transferLeadership(target.id);
    await cluster.scheduler.settle();
    expect(await cluster.until(rejection(leader.raft.propose(request(1))))).toMatchObject({ etcdCode: 'LeaderChanged' });
  });

  it("time out with etcd's Timeout when they cannot commit", async () => {
    cluster = new RaftNodeCluster([1n, 2n, 3n]);
    for (const id of [1n, 2n, 3n]) cluster.start(id);
    const leader = await cluster.electLeader();
    cluster.isolated.add(leader.id);
    const refused = rejection(leader.raft.propose(request(1)));
    const read = rejection(leader.raft.readBarrier());
    await cluster.scheduler.advance(7000); // singleVoter()'s request timeout
    expect(await refused).toMatchObject({ etcdCode: 'Timeout' });
    expect(await read).toMatchObject({ etcdCode: 'Timeout' });
  });

  it('each times out at its own deadline (one timer for all of them)', async () => {
    const leader = await timesOutInTurn((node) => node.raft.propose(request(1)));
    expect(leader.raft.unansweredProposalBytes).toBe(0);
  });
});

describe('RaftNode: ReadIndex barrier', () => {
  it('each read times out at its own deadline (one timer for all of them)', async () => {
    await timesOutInTurn((node) => node.raft.readBarrier());
  });

  it('resolves only once this member has applied up to the read index', async () => {
    cluster = new RaftNodeCluster([1n, 2n, 3n]);
    for (const id of [1n, 2n, 3n]) cluster.start(id);
    const leader = await cluster.electLeader();
    const reader = cluster.followers()[0]!;
    await cluster.scheduler.settle();

    // Appends to the reader are late; heartbeats and read index traffic are not.
    cluster.delay = (m) => m.to === reader.id && m.type === MessageType.MsgApp;
    const { outcome } = await cluster.until(leader.raft.propose(request(1)));
    const index = outcome.ok ? outcome.revision : -1;
    let appliedWhenResolved = -1;
    const barrier = reader.raft.readBarrier().then(() => (appliedWhenResolved = reader.applier.appliedIndex));
    await cluster.scheduler.advance(500);
    // The leader has answered the read index (heartbeats went round) but the entry has not
    // reached the reader: the barrier waits.
    expect(reader.applier.appliedIndex).toBeLessThan(index);
    expect(appliedWhenResolved).toBe(-1);

    cluster.delay = undefined;
    cluster.deliverDelayed();
    await cluster.scheduler.advance(500);
    await cluster.until(barrier);
    expect(appliedWhenResolved).toBeGreaterThanOrEqual(index);
  });
});

describe('RaftNode: ReadIndex rounds in flight', () => {
  it(`at most ${MAX_READ_ROUNDS_IN_FLIGHT} out at once; reads arriving meanwhile share the next one, asked as soon as one is answered`, async () => {
    cluster = new RaftNodeCluster([1n, 2n, 3n]);
    for (const id of [1n, 2n, 3n]) cluster.start(id);
    await cluster.electLeader();
    const reader = cluster.followers()[0]!;
    await cluster.scheduler.settle();
    const asked = () => reader.sent.filter((m) => m.type === MessageType.MsgReadIndex).length;
    const before = asked();

    // The leader's answers to the reader wait; reads arrive one per loop turn: each of the
    // first MAX goes out in its own request, the two after them wait.
    cluster.delay = (m) => m.to === reader.id && m.type === MessageType.MsgReadIndexResp;
    const resolved: number[] = [];
    const reads: Array<Promise<unknown>> = [];
    const count = MAX_READ_ROUNDS_IN_FLIGHT + 2;
    for (let n = 1; n <= count; n++) {
      reads.push(reader.raft.readBarrier().then(() => resolved.push(n)));
      await cluster.scheduler.advance(10);
    }
    await cluster.scheduler.advance(50);
    expect(asked() - before).toBe(MAX_READ_ROUNDS_IN_FLIGHT);
    expect(resolved).toEqual([]);

    // The first answer releases the first read and sends one request for the last two.
    cluster.delay = undefined;
    cluster.deliverDelayed();
    await cluster.until(Promise.all(reads));
    expect(resolved).toEqual(Array.from({ length: count }, (_, i) => i + 1));
    expect(asked() - before).toBe(MAX_READ_ROUNDS_IN_FLIGHT + 1);
  });
});

describe('RaftNode: linearizable reads without a barrier', () => {
  it('a lone voter reads locally only once it has applied every write it acknowledged; a cluster never does', async () => {
    cluster = new RaftNodeCluster([1n]);
    const first = cluster.start(1n);
    await cluster.until(first.raft.leaderKnown());
    for (let n = 0; n < 5; n++) await cluster.until(first.raft.propose(request(n)));
    await cluster.scheduler.settle();
    expect(first.raft.readsLocally).toBe(true);
    const acknowledged = first.raft.lastIndex;
    const { log, applied } = await cluster.crash(1n);
    expect(first.raft.readsLocally).toBe(false); // stopped

    // Restarted with the last three applies lost: until they are applied again, a read must wait.
    const restarted = cluster.start(1n, { log, applied: applied - 3 });
    const seen = [{ local: restarted.raft.readsLocally, applied: restarted.applier.appliedIndex }];
    await cluster.scheduler.advanceUntil(
      () => {
        seen.push({ local: restarted.raft.readsLocally, applied: restarted.applier.appliedIndex });
        return restarted.raft.readsLocally;
      },
      { stepMs: 1, limitMs: 10_000 },
    );
    expect(seen[0]).toEqual({ local: false, applied: applied - 3 });
    expect(seen.filter((s) => s.local && s.applied < acknowledged)).toEqual([]);
    expect(restarted.raft.isLeader).toBe(true);
  });

  it('members of a 3-voter cluster, leader included, always go through ReadIndex', async () => {
    cluster = new RaftNodeCluster([1n, 2n, 3n]);
    for (const id of [1n, 2n, 3n]) cluster.start(id);
    const leader = await cluster.electLeader();
    await cluster.until(leader.raft.propose(request(1)));
    await cluster.scheduler.settle();
    expect([leader, ...cluster.followers()].map((m) => m.raft.readsLocally)).toEqual([false, false, false]);
  });
});

describe('RaftNode: pipelined Readies', () => {
  const DEPTH = 4;

  it("a Ready with only a commit is neither written nor waited for: the next batch's write starts at once", async () => {
    const member = await loneVoterSettled();
    const base = member.raft.lastIndex;
    const savesBefore = member.log.saves;
    member.log.hold();
    const first = member.raft.propose(request(1));
    await cluster.scheduler.settle();
    // The entry lands; the commit it makes (the lone voter's own copy is now durable) comes in a
    // Ready of its own, which must not wait behind a write (later saves are held from here on).
    member.log.release();
    member.log.hold();
    await cluster.until(first);
    expect(member.applier.appliedIndex).toBe(base + 1);
    const second = member.raft.propose(request(2));
    await cluster.scheduler.settle();
    expect(member.log.lastIndex()).toBe(base + 2);
    member.log.release();
    await cluster.until(second);
    expect(member.applier.appliedIndex).toBe(base + 2);
    // Two writes, each with its entry (the second carries the first's commit); no commit-only one.
    expect(member.log.saves - savesBefore).toBe(2);
  });

  it('the next Ready goes to the log while the previous write is in flight, at most maxWritesInFlight deep; answers follow in order', async () => {
    const member = await loneVoterSettled({ maxWritesInFlight: DEPTH });
    const base = member.raft.lastIndex;
    member.log.hold();
    const answered: number[] = [];
    const results: Array<Promise<unknown>> = [];
    for (let n = 0; n < DEPTH + 2; n++) {
      results.push(member.raft.propose(request(n)).then((r) => answered.push(r.outcome.ok ? r.outcome.revision : -1)));
      await cluster.scheduler.settle();
    }
    // One Ready per proposal: the first DEPTH went to the log unwritten, the
    // rest wait in the core; nothing is durable, applied or answered.
    expect(member.raft.lastIndex).toBe(base + DEPTH + 2);
    expect(member.log.lastIndex()).toBe(base + DEPTH);
    expect(member.log.durableIndex).toBe(base);
    expect(member.applier.appliedIndex).toBe(base);
    expect(answered).toEqual([]);

    member.log.release();
    await cluster.until(Promise.all(results));
    expect(answered).toEqual(Array.from({ length: DEPTH + 2 }, (_, n) => base + 1 + n));
    expect(member.log.durableIndex).toBe(base + DEPTH + 2);
  });

  it('with two writes in flight the leader commits only what its own log holds durably, whatever the followers acked', async () => {
    const leader = await threeMembersTwoWritesInFlight();
    const base = leader.raft.lastIndex;
    expect(leader.raft.commitIndex).toBe(base);
    // Follower A writes at once; B's writes stay in flight (it never acks), as do the leader's.
    const [a, b] = cluster.followers() as [TestMember, TestMember];
    b.log.hold();
    leader.log.hold();
    const results = await proposeInTurns(leader, [1, 2]);
    // A acknowledged both entries; counting its unstable copy the leader would have 2 of 3 and
    // tell A to commit (and A would apply and answer) while a leader crash could still lose
    // them. It commits nothing yet, and nothing it sent says otherwise.
    expect(leader.raft.commitIndex).toBe(base);
    expect(Math.max(...leader.sent.map((m) => m.commit))).toBe(base);
    expect(a.applier.appliedIndex).toBe(base);
    // Both entries went out in two Readies, both writes of the leader are in flight.
    expect(leader.log.lastIndex()).toBe(base + 2);
    expect(leader.log.durableIndex).toBe(base);
    expect(a.log.durableIndex).toBe(base + 2);
    expect(b.log.durableIndex).toBe(base);

    leader.log.release();
    await cluster.until(Promise.all(results));
    expect(leader.raft.commitIndex).toBe(base + 2);
    expect(leader.applier.appliedIndex).toBe(base + 2);
    b.log.release();
  });

  it('with two writes in flight a follower writes the next appends during its write and acknowledges each once it lands', async () => {
    const leader = await threeMembersTwoWritesInFlight();
    const base = leader.raft.lastIndex;
    const [a, b] = cluster.followers() as [TestMember, TestMember];
    a.log.hold();
    b.log.hold();
    const results = await proposeInTurns(leader, [1, 2]);
    const acks = (m: TestMember) => m.sent.filter((x) => x.type === MessageType.MsgAppResp && !x.reject && x.index > base);
    // Both followers took the second append while the first write was in flight; no ack yet.
    expect(a.log.lastIndex()).toBe(base + 2);
    expect(acks(a)).toEqual([]);
    a.log.release();
    await cluster.until(Promise.all(results));
    // In order, one per write (a later empty append carrying the commit is acknowledged too).
    expect(
      acks(a)
        .map((m) => m.index)
        .slice(0, 2),
    ).toEqual([base + 1, base + 2]);
    expect(leader.applier.appliedIndex).toBe(base + 2);
    b.log.release();
  });

  it("a follower applies a commit while its next batch's write is still in flight", async () => {
    cluster = new RaftNodeCluster([1n, 2n, 3n]);
    for (const id of [1n, 2n, 3n]) cluster.start(id);
    const leader = await cluster.electLeader();
    const [follower] = cluster.followers();
    await cluster.scheduler.settle();
    // The follower gets the next entry but not the news that it committed (heartbeats and
    // commit-only appends are held back): it writes the entry and does not apply it.
    const carriesOnlyCommit = (m: Message) => m.type === MessageType.MsgHeartbeat || (m.type === MessageType.MsgApp && m.entries.length === 0);
    cluster.delay = (m) => m.to === follower!.id && carriesOnlyCommit(m);
    const { outcome } = await cluster.until(leader.raft.propose(request(1)));
    const first = outcome.ok ? outcome.revision : -1;
    await cluster.scheduler.advance(300);
    expect(follower!.log.durableIndex).toBeGreaterThanOrEqual(first);
    expect(follower!.applier.appliedIndex).toBeLessThan(first);
    // The commit arrives with the next entry, whose write is held: the commit is applied anyway.
    follower!.log.hold();
    cluster.delay = undefined;
    const second = cluster.until(leader.raft.propose(request(2)));
    await cluster.scheduler.advance(300);
    expect(follower!.log.lastIndex()).toBeGreaterThan(first);
    expect(follower!.log.durableIndex).toBe(first);
    expect(follower!.applier.appliedIndex).toBe(first);
    follower!.log.release();
    cluster.deliverDelayed();
    await second;
  });
});

/**
 * Two requests 2 s apart to an isolated leader with a 3 s request timeout: each fails with
 * etcd's Timeout at its own deadline, not the first's (one timer serves them all). Returns
 * the leader.
 */
async function timesOutInTurn(start: (leader: Awaited<ReturnType<RaftNodeCluster['electLeader']>>) => Promise<unknown>) {
  cluster = new RaftNodeCluster([1n, 2n, 3n], { requestTimeoutMs: 3000 });
  for (const id of [1n, 2n, 3n]) cluster.start(id);
  const leader = await cluster.electLeader();
  cluster.isolated.add(leader.id);
  const outcomes: string[] = [];
  const watch = (name: string, pending: Promise<unknown>) =>
    pending.then(
      () => outcomes.push(`${name} answered`),
      (error: { etcdCode?: string }) => outcomes.push(`${name} ${error.etcdCode}`),
    );
  const first = watch('first', start(leader));
  await cluster.scheduler.advance(2000);
  const second = watch('second', start(leader));
  await cluster.scheduler.advance(1100);
  await first;
  expect(outcomes).toEqual(['first Timeout']);
  await cluster.scheduler.advance(1500);
  expect(outcomes).toEqual(['first Timeout']);
  await cluster.scheduler.advance(500);
  await second;
  expect(outcomes).toEqual(['first Timeout', 'second Timeout']);
  return leader;
}

describe('RaftNode: what the log keeps in memory', () => {
  it('is told to keep what is not applied and, on a leader, what a lagging follower has not acknowledged; the follower then catches up', async () => {
    cluster = new RaftNodeCluster([1n, 2n, 3n]);
    for (const id of [1n, 2n, 3n]) cluster.start(id);
    const leader = await cluster.electLeader();
    await cluster.until(leader.raft.propose(request(1)));
    await cluster.scheduler.settle();
    const [lagging, other] = cluster.followers() as [typeof leader, typeof leader];
    const laggingApplied = lagging.applier.appliedIndex;
    cluster.isolated.add(lagging.id);
    for (let n = 2; n <= 40; n++) await cluster.until(leader.raft.propose(request(n)));
    await cluster.scheduler.settle();
    // The leader keeps every entry the cut-off follower has not acknowledged; the other
    // follower, which leads nobody, only what it has not applied.
    expect(leader.applier.appliedIndex).toBeGreaterThan(laggingApplied + 38);
    expect(leader.log.retainedFrom).toBeGreaterThan(0);
    expect(leader.log.retainedFrom).toBeLessThanOrEqual(laggingApplied + 1);
    expect(other.log.retainedFrom).toBe(other.applier.appliedIndex + 1);
    cluster.isolated.clear();
    await cluster.scheduler.advance(500);
    expect(lagging.applier.appliedIndex).toBe(leader.applier.appliedIndex);
    expect(lagging.applier.applied).toEqual(leader.applier.applied);
    // Acknowledged by everyone: the leader may let go of all of it.
    await cluster.until(leader.raft.propose(request(41)));
    await cluster.scheduler.settle();
    expect(leader.log.retainedFrom).toBeGreaterThan(laggingApplied + 39);
  });
});
