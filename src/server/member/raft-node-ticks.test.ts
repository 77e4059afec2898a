// RaftNode's Raft time on a real event loop's order: timers fire, then the sockets are read,
// then queued turns run. The ticks a timer found due must run after the messages read in the
// same loop iteration, or a member that woke late campaigns although its leader's heartbeat (or
// the other follower's pre-vote) was already there: with two followers of a dead leader, that
// is how both campaign at once and split the vote.

import { describe, expect, it } from 'vitest';
import { MessageType, makeMessage, type Message } from '../../raft/types.js';
import { SeededRandom } from '../../util/random.js';
import { RecordingApplier } from '../../../test/support/raft-node-cluster.js';
import { MemoryRaftLog } from '../../../test/support/memory-raft-log.js';
import type { RaftNode } from './raft-node.js';
import { TICKS_PER_HEARTBEAT, createRaftNode, singleVoter } from './replication.js';
import type { Scheduler, TimerHandle } from './scheduler.js';

/** One event-loop iteration at a time: the tick timer, then the I/O, then the queued turns. */
class LoopScheduler implements Scheduler {
  private nowMs = 0;
  private readonly intervals: Array<() => void> = [];
  private immediates: Array<() => void> = [];

  setTimeout(): TimerHandle {
    return {}; // request deadlines: none is due in these tests
  }
  /** The period of every interval timer set, in order. */
  readonly periods: number[] = [];
  setInterval(callback: () => void, ms: number): TimerHandle {
    this.intervals.push(callback);
    this.periods.push(ms);
    return {};
  }
  clear(): void {}
  setImmediate(callback: () => void): void {
    this.immediates.push(callback);
  }
  now(): number {
    return this.nowMs;
  }

  /** Advances the clock by `ms`, fires the tick timer (the first interval), runs `io`, settles. */
  async iterate(ms: number, io: () => void = () => {}): Promise<void> {
    this.nowMs += ms;
    if (ms > 0) this.intervals[0]?.();
    io();
    for (let turns = 0; turns < 1000; turns++) {
      await new Promise((resolve) => setImmediate(resolve));
      if (this.immediates.length === 0) return;
      const queued = this.immediates;
      this.immediates = [];
      for (const callback of queued) callback();
    }
    throw new Error('the node never idled');
  }
}

const noSnapshots = { dump: async () => ({ appliedIndex: 0, data: new Uint8Array(0) }), install: async () => 0 };

const heartbeat = (): Message => makeMessage({ type: MessageType.MsgHeartbeat, from: 1n, to: 2n, term: 2 });

/** Member 2 of {1, 2, 3}, following leader 1 after one heartbeat; the same seed each time. */
async function follower(): Promise<{ raft: RaftNode; scheduler: LoopScheduler; sent: Message[]; tickMs: number }> {
  const scheduler = new LoopScheduler();
  const sent: Message[] = [];
  const log = new MemoryRaftLog();
  const violations: string[] = [];
  const applier = new RecordingApplier(log, 0, violations, 'member 2');
  const options = {
    ...singleVoter({ memberId: 2n, scheduler, random: new SeededRandom(42) }),
    initialVoters: [1n, 2n, 3n],
    sender: { send: (m: Message[]) => sent.push(...m) },
  };
  const raft = createRaftNode(log, { applier, snapshots: noSnapshots }, options);
  raft.start();
  await scheduler.iterate(0, () => raft.receive([heartbeat()]));
  expect(raft.leader).toBe(1n);
  expect(violations).toEqual([]);
  return { raft, scheduler, sent, tickMs: options.tickMs };
}

const campaigned = (sent: Message[]): boolean => sent.some((m) => m.type === MessageType.MsgPreVote);

describe('RaftNode ticks', () => {
  it('run after the messages that arrived in the same loop iteration', async () => {
    // How many ticks without a heartbeat this member waits before campaigning.
    const first = await follower();
    let ticks = 0;
    while (!campaigned(first.sent) && ticks < 1000) {
      await first.scheduler.iterate(first.tickMs);
      ticks++;
    }
    await first.raft.stop();
    expect(ticks).toBeGreaterThanOrEqual(100);
    expect(ticks).toBeLessThan(125);

    // Again, but the leader's heartbeat is read in the iteration whose tick would time out.
    const second = await follower();
    for (let i = 0; i < ticks - 1; i++) await second.scheduler.iterate(second.tickMs);
    expect(campaigned(second.sent)).toBe(false);
    await second.scheduler.iterate(second.tickMs, () => second.raft.receive([heartbeat()]));
    expect(campaigned(second.sent)).toBe(false);
    expect(second.raft.leader).toBe(1n);
    await second.raft.stop();
  });

  it('wake a leader once a heartbeat interval, a follower every tick', async () => {
    const scheduler = new LoopScheduler();
    const log = new MemoryRaftLog();
    const violations: string[] = [];
    const options = singleVoter({ memberId: 1n, scheduler });
    const raft = createRaftNode(log, { applier: new RecordingApplier(log, 0, violations, 'member 1'), snapshots: noSnapshots }, options);
    raft.start();
    await scheduler.iterate(0);
    expect(raft.isLeader).toBe(true);
    // Started as a follower (every tick), then led: once a heartbeat. Its Raft time still
    // counts every tick, so proposals commit as before.
    expect(scheduler.periods.filter((ms) => ms < 500)).toEqual([options.tickMs, options.tickMs * TICKS_PER_HEARTBEAT]);
    await scheduler.iterate(options.tickMs * TICKS_PER_HEARTBEAT);
    expect(raft.isLeader).toBe(true);
    await raft.stop();
    expect(violations).toEqual([]);

    const other = await follower();
    expect(other.scheduler.periods.filter((ms) => ms < 500)).toEqual([other.tickMs]);
    await other.raft.stop();
  });
});
