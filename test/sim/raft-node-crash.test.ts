// Three RaftNodes (the production driver, not the core alone) over in-memory logs and an
// in-memory network, driven by a manual scheduler, through a leader crash: the survivors elect
// a new leader and keep committing, the crashed member restarts from its log and catches up,
// and every member applies the same entries in the same order, each acknowledged proposal
// exactly once. The same run twice gives the same history: time is the scheduler's alone.

import { afterEach, describe, expect, it } from 'vitest';
import { encodeInternalRequest } from '../../src/server/apply/internal-request.js';
import { RaftNodeCluster, request } from '../support/raft-node-cluster.js';

const clusters: RaftNodeCluster[] = [];

afterEach(async () => {
  for (const cluster of clusters.splice(0)) {
    await cluster.stopAll();
    expect(cluster.violations).toEqual([]);
  }
});

interface History {
  leaders: Array<{ id: bigint; term: number }>;
  /** Entry data by index, as every member applied it (they must agree). */
  log: string[];
}

async function leaderCrash(): Promise<History> {
  const cluster = new RaftNodeCluster([1n, 2n, 3n]);
  clusters.push(cluster);
  for (const id of [1n, 2n, 3n]) cluster.start(id);
  const first = await cluster.electLeader();
  const acknowledged: number[] = [];
  for (let n = 0; n < 10; n++) {
    await cluster.until(first.raft.propose(request(n)));
    acknowledged.push(n);
  }
  // One more in flight when the leader dies: it may or may not survive, but never twice.
  const inFlight = first.raft.propose(request(10)).catch((error: unknown) => error);
  const crashed = await cluster.crash(first.id);
  expect(await inFlight).toMatchObject({ etcdCode: 'Stopped' });

  const second = await cluster.electLeader();
  expect(second.id).not.toBe(first.id);
  expect(second.raft.term).toBeGreaterThan(first.leaderChanges.at(-1)!.term);
  for (let n = 11; n < 21; n++) {
    await cluster.until(second.raft.propose(request(n)));
    acknowledged.push(n);
  }

  const restarted = cluster.start(first.id, crashed);
  await cluster.scheduler.advanceUntil(() => restarted.applier.appliedIndex === second.applier.appliedIndex && restarted.raft.leader === second.id, {
    stepMs: 100,
    limitMs: 30_000,
  });

  // What each member applied, the restarted one's before and after its crash together.
  const appliedBy = [...cluster.members.values()].map((m) => (m === restarted ? new Map([...first.applier.applied, ...m.applier.applied]) : m.applier.applied));
  const log: string[] = [];
  for (let index = 1; index <= second.applier.appliedIndex; index++) {
    const data = appliedBy.map((applied) => applied.get(index));
    expect(data[0], `index ${index}`).toBeDefined();
    expect(data, `index ${index}`).toEqual([data[0], data[0], data[0]]);
    log.push(data[0]!);
  }
  for (const n of acknowledged) {
    const hex = encodeInternalRequest(request(n)).toString('hex');
    expect(
      log.filter((d) => d === hex),
      `proposal ${n}`,
    ).toHaveLength(1);
  }
  const maybe = encodeInternalRequest(request(10)).toString('hex');
  expect(log.filter((d) => d === maybe).length).toBeLessThanOrEqual(1);
  return {
    leaders: [first, second].map((m) => ({ id: m.id, term: m.leaderChanges.at(-1)!.term })),
    log,
  };
}

describe('RaftNode cluster under a deterministic scheduler', () => {
  it('survives a leader crash: a new leader commits, the old one restarts from its log and catches up', async () => {
    const history = await leaderCrash();
    expect(history.log.length).toBeGreaterThanOrEqual(20);
  });

  it('replays exactly: the same run twice gives the same leaders, terms and log', async () => {
    expect(await leaderCrash()).toEqual(await leaderCrash());
  });
});
