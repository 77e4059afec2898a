// RaftNode's write-path limits, each refusing with etcd's "too many requests"
// (RequestTooManyRequests) and never applying what it refused: the gap between committed and
// applied entries (etcd's maxGapBetweenApplyAndCommitIndex), the bytes of a member's
// unanswered proposals, and the leader's uncommitted log bytes. In-memory cluster with held
// logs and manual time (test/support/raft-node-cluster.ts).

import { afterEach, describe, expect, it } from 'vitest';
import { DEFAULTS } from '../../config/schema.js';
import { RaftNodeCluster, request, rejection, timesApplied } from '../../../test/support/raft-node-cluster.js';
import { encodeInternalRequest } from '../apply/internal-request.js';
import type { ProposalResult } from './raft-node.js';

let cluster: RaftNodeCluster;

afterEach(async () => {
  await cluster.stopAll();
  expect(cluster.violations).toEqual([]);
});

/** Proposal data on the wire: 16 header bytes + the encoded request. */
const PROPOSAL_BYTES = 16 + encodeInternalRequest(request(1)).length;

function limits(overrides: Partial<typeof DEFAULTS.limits>) {
  return { limits: { ...DEFAULTS.limits, ...overrides } };
}

describe('RaftNode: write-path limits', () => {
  it('refuses proposals while committed entries are more than maxCommitApplyGap ahead of applied ones', async () => {
    cluster = new RaftNodeCluster([1n, 2n, 3n], limits({ maxCommitApplyGap: 5 }));
    for (const id of [1n, 2n, 3n]) cluster.start(id);
    const leader = await cluster.electLeader();
    await cluster.scheduler.settle();
    // The leader's disk stalls: followers commit ten entries it cannot apply yet.
    leader.log.hold();
    const accepted: Array<Promise<ProposalResult>> = [];
    for (let n = 1; n <= 10; n++) accepted.push(leader.raft.propose(request(n)));
    await cluster.scheduler.advance(300);
    expect(leader.raft.commitIndex - leader.applier.appliedIndex).toBeGreaterThan(5);

    expect(await rejection(leader.raft.propose(request(99)))).toMatchObject({ etcdCode: 'RequestTooManyRequests' });
    leader.log.release();
    await cluster.until(Promise.all(accepted));
    // Caught up: proposals are welcome again; the refused one was never proposed.
    await cluster.until(leader.raft.propose(request(11)));
    await cluster.scheduler.advance(300);
    for (const member of cluster.members.values()) {
      expect(timesApplied(member.applier.applied, 99)).toBe(0);
      expect(timesApplied(member.applier.applied, 11)).toBe(1);
    }
  });

  it('refuses proposals while the unanswered ones hold maxPendingProposalBytes', async () => {
    cluster = new RaftNodeCluster([1n], limits({ maxPendingProposalBytes: 3 * PROPOSAL_BYTES }));
    const member = cluster.start(1n);
    await cluster.until(member.raft.leaderKnown());
    await cluster.scheduler.settle();
    member.log.hold();
    const accepted = [1, 2, 3].map((n) => member.raft.propose(request(n)));
    expect(await rejection(member.raft.propose(request(4)))).toMatchObject({ etcdCode: 'RequestTooManyRequests' });
    member.log.release();
    await cluster.until(Promise.all(accepted));
    // Answered proposals no longer count.
    await cluster.until(member.raft.propose(request(5)));
    expect(timesApplied(member.applier.applied, 4)).toBe(0);
    expect([1, 2, 3, 5].map((n) => timesApplied(member.applier.applied, n))).toEqual([1, 1, 1, 1]);
  });

  it('the leader refuses proposals past maxUncommittedEntriesBytes, and takes them again once entries commit', async () => {
    // Room for two proposals' entries (the core counts 24 bytes of overhead per entry).
    cluster = new RaftNodeCluster([1n, 2n, 3n], limits({ maxUncommittedEntriesBytes: 2 * (PROPOSAL_BYTES + 24) }));
    for (const id of [1n, 2n, 3n]) cluster.start(id);
    const leader = await cluster.electLeader();
    await cluster.until(leader.raft.propose(request(1)));
    await cluster.scheduler.settle();
    // Nothing commits while both followers are cut off.
    for (const follower of cluster.followers()) cluster.isolated.add(follower.id);
    const first = leader.raft.propose(request(2));
    await cluster.scheduler.settle();
    const second = leader.raft.propose(request(3));
    await cluster.scheduler.settle();
    expect(await cluster.until(rejection(leader.raft.propose(request(4))))).toMatchObject({ etcdCode: 'RequestTooManyRequests' });

    cluster.isolated.clear();
    await cluster.until(Promise.all([first, second]));
    // Committed entries free their bytes: more than the limit's worth now goes through.
    for (let n = 5; n <= 8; n++) await cluster.until(leader.raft.propose(request(n)));
    await cluster.scheduler.advance(300);
    for (const member of cluster.members.values()) {
      expect(timesApplied(member.applier.applied, 4)).toBe(0);
      expect([2, 3, 5, 6, 7, 8].map((n) => timesApplied(member.applier.applied, n))).toEqual([1, 1, 1, 1, 1, 1]);
    }
  });
});
