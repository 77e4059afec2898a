// RaftNode across leader changes: requests that arrive while no leader is known wait for one
// (failing only at their deadline), ReadIndex requests lost with a leader are asked again
// (periodically and when a new leader appears), and a proposal lost with an old-term leader
// fails at once with etcd's ambiguous timeout, never proposed twice. In-memory cluster, manual
// time (test/support/raft-node-cluster.ts), no sleeping.

import { afterEach, describe, expect, it } from 'vitest';
import { MessageType } from '../../raft/types.js';
import { RaftNodeCluster, request, rejection, timesApplied } from '../../../test/support/raft-node-cluster.js';

let cluster: RaftNodeCluster;

afterEach(async () => {
  await cluster.stopAll();
  expect(cluster.violations).toEqual([]);
});

describe('RaftNode: while no leader is known', () => {
  it('proposals and reads wait, then go to the leader once one is elected', async () => {
    cluster = new RaftNodeCluster([1n, 2n, 3n]);
    const first = cluster.start(1n);
    let proposed = false;
    let read = false;
    const proposal = first.raft.propose(request(7)).then((result) => {
      proposed = true;
      return result;
    });
    const barrier = first.raft.readBarrier().then(() => (read = true));
    await cluster.scheduler.advance(3000);
    expect([proposed, read]).toEqual([false, false]);

    cluster.start(2n);
    cluster.start(3n);
    const { outcome } = await cluster.until(proposal, 6000);
    await cluster.until(barrier, 1000);
    expect(outcome.ok).toBe(true);
    await cluster.scheduler.advance(500);
    for (const member of cluster.members.values()) expect(timesApplied(member.applier.applied, 7)).toBe(1);
  });

  it('a proposal that never found a leader times out and never reaches the log', async () => {
    cluster = new RaftNodeCluster([1n, 2n, 3n]);
    const first = cluster.start(1n);
    const refused = rejection(first.raft.propose(request(8)));
    await cluster.scheduler.advance(7000); // singleVoter()'s request timeout
    expect(await refused).toMatchObject({ etcdCode: 'Timeout' });
    cluster.start(2n);
    cluster.start(3n);
    await cluster.electLeader();
    await cluster.until(first.raft.propose(request(9)));
    expect(timesApplied(first.applier.applied, 8)).toBe(0);
    expect(timesApplied(first.applier.applied, 9)).toBe(1);
  });
});

describe('RaftNode: ReadIndex requests are asked again', () => {
  it('every 500 ms while unanswered', async () => {
    cluster = new RaftNodeCluster([1n, 2n, 3n]);
    for (const id of [1n, 2n, 3n]) cluster.start(id);
    await cluster.electLeader();
    const reader = cluster.followers()[0]!;
    await cluster.scheduler.settle();
    // The first request is lost on the way; later ones arrive.
    let dropped = 0;
    cluster.delay = (m) => m.type === MessageType.MsgReadIndex && m.from === reader.id && dropped++ === 0;
    const startMs = cluster.scheduler.nowMs;
    await cluster.until(reader.raft.readBarrier(), 2000);
    expect(dropped).toBeGreaterThanOrEqual(2);
    expect(cluster.scheduler.nowMs - startMs).toBeLessThanOrEqual(1000);
  });

  it('at once when a new leader is elected after the old one died with the request', async () => {
    // No periodic retry within the test: only the leader change can re-send it.
    cluster = new RaftNodeCluster([1n, 2n, 3n], { readIndexRetryMs: 60_000 });
    for (const id of [1n, 2n, 3n]) cluster.start(id);
    const oldLeader = await cluster.electLeader();
    const reader = cluster.followers()[0]!;
    await cluster.scheduler.settle();
    // The old leader is gone (nothing reaches it) before the read arrives.
    cluster.isolated.add(oldLeader.id);
    const barrier = reader.raft.readBarrier();
    const startMs = cluster.scheduler.nowMs;
    await cluster.until(barrier, 6000);
    // Answered by the new leader, within an election or two rather than at the deadline.
    const asked = reader.sent.filter((m) => m.type === MessageType.MsgReadIndex).map((m) => m.to);
    expect(asked[0]).toBe(oldLeader.id);
    expect(asked.at(-1)).toBe(reader.raft.leader);
    expect(cluster.scheduler.nowMs - startMs).toBeLessThan(5000);
    await cluster.crash(oldLeader.id);
  });
});

describe('RaftNode: a proposal lost with its leader', () => {
  it("fails once an entry of a newer term is applied, with etcd's leader-failure timeout, and is never applied", async () => {
    cluster = new RaftNodeCluster([1n, 2n, 3n]);
    for (const id of [1n, 2n, 3n]) cluster.start(id);
    const oldLeader = await cluster.electLeader();
    const proposer = cluster.followers()[0]!;
    await cluster.scheduler.settle();
    // The forwarded proposal dies with the old leader.
    cluster.isolated.add(oldLeader.id);
    const refused = rejection(proposer.raft.propose(request(5)));
    const startMs = cluster.scheduler.nowMs;
    const error = await cluster.until(refused, 6000);
    expect(error).toMatchObject({ etcdCode: 'TimeoutDueToLeaderFail' });
    expect(cluster.scheduler.nowMs - startMs).toBeLessThan(7000);
    expect(proposer.raft.leader).not.toBe(oldLeader.id);
    // A new proposal goes through at once; the lost one never shows up.
    await cluster.until(proposer.raft.propose(request(6)), 1000);
    await cluster.crash(oldLeader.id);
    await cluster.scheduler.advance(500);
    for (const member of cluster.members.values()) {
      expect(timesApplied(member.applier.applied, 5)).toBe(0);
      expect(timesApplied(member.applier.applied, 6)).toBe(1);
    }
  });
});
