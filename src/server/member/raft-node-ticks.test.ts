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
import type { RawNode } from '../../raft/raw-node.js';
import { READ_INDEX_RETRY_MS, type RaftNode } from './raft-node.js';
import { TICKS_PER_HEARTBEAT, createRaftNode, singleVoter } from './replication.js';
import type { Scheduler, TimerHandle } from './scheduler.js';

/** One event-loop iteration at a time: the timers due, then the I/O, then the queued turns. */
class LoopScheduler implements Scheduler {
  private nowMs = 0;
  private readonly intervals = new Map<TimerHandle, { callback: () => void; ms: number; nextMs: number }>();
  private immediates: Array<() => void> = [];

  setTimeout(): TimerHandle {
    return {}; // request deadlines: none is due in these tests
  }
  /** The period of every interval timer set, in order. */
  readonly periods: number[] = [];
  /** How many times an interval timer shorter than READ_INDEX_RETRY_MS (the tick timer) fired. */
  tickWakeUps = 0;
  setInterval(callback: () => void, ms: number): TimerHandle {
    const handle = {};
    this.intervals.set(handle, { callback, ms, nextMs: this.nowMs + ms });
    this.periods.push(ms);
    return handle;
  }
  clear(timer: TimerHandle): void {
    this.intervals.delete(timer);
  }
  /** The periods of the interval timers running now. */
  running(): number[] {
    return [...this.intervals.values()].map((interval) => interval.ms);
  }
  setImmediate(callback: () => void): void {
    this.immediates.push(callback);
  }
  now(): number {
    return this.nowMs;
  }

  /** Advances the clock by `ms`, fires the interval timers due (as Node's), runs `io`, settles. */
  async iterate(ms: number, io: () => void = () => {}): Promise<void> {
    this.nowMs += ms;
    for (const interval of [...this.intervals.values()]) {
      if (interval.nextMs > this.nowMs) continue;
      interval.nextMs = this.nowMs + interval.ms;
      if (interval.ms < READ_INDEX_RETRY_MS) this.tickWakeUps++;
      interval.callback();
    }
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

/** The ticks left until the member's election timer runs out (read off its Raft core). */
const ticksUntilElection = (raft: RaftNode): number => (raft as unknown as { node: RawNode }).node.raft.ticksUntilElection();

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
    // The heartbeat restarted the election timer: back to one wake-up a heartbeat interval.
    expect(second.scheduler.running().filter((ms) => ms < READ_INDEX_RETRY_MS)).toEqual([second.tickMs * TICKS_PER_HEARTBEAT]);
    await second.raft.stop();
  });

  it('wake a follower once a heartbeat interval until its election timeout is within one; it campaigns on its tick', async () => {
    const { raft, scheduler, sent, tickMs } = await follower();
    const timeout = ticksUntilElection(raft);
    expect(timeout).toBeGreaterThanOrEqual(100);
    const wakeUpsBefore = scheduler.tickWakeUps;
    let ticks = 0;
    while (!campaigned(sent) && ticks < 1000) {
      await scheduler.iterate(tickMs);
      ticks++;
    }
    await raft.stop();
    // Not late: on the tick that reaches the timeout (not more than one tick after).
    expect(ticks).toBeGreaterThanOrEqual(timeout);
    expect(ticks).toBeLessThanOrEqual(timeout + 1);
    // Once a heartbeat interval, then every tick over the last interval (waking every tick
    // would be `timeout` wake-ups).
    expect(scheduler.tickWakeUps - wakeUpsBefore).toBeLessThanOrEqual(Math.ceil(timeout / TICKS_PER_HEARTBEAT) + TICKS_PER_HEARTBEAT + 1);
  });

  it("restart a slow follower's election timer from when a heartbeat came, not from its next wake-up", async () => {
    const { raft, scheduler, sent, tickMs } = await follower();
    const timeout = ticksUntilElection(raft);
    // The heartbeat comes 9.5 ticks after the last one, half a tick before the timer's wake-up.
    const stepMs = tickMs / 2;
    for (let i = 0; i < 18; i++) await scheduler.iterate(stepMs);
    await scheduler.iterate(stepMs, () => raft.receive([heartbeat()]));
    let sinceHeartbeatMs = 0;
    while (!campaigned(sent) && sinceHeartbeatMs < 1000 * tickMs) {
      await scheduler.iterate(stepMs);
      sinceHeartbeatMs += stepMs;
    }
    await raft.stop();
    // Within a tick of the timeout after the heartbeat (counting the batch of ticks of the
    // wake-up that followed it from the previous wake-up would campaign 9.5 ticks early).
    expect(sinceHeartbeatMs).toBeGreaterThanOrEqual((timeout - 1) * tickMs);
    expect(sinceHeartbeatMs).toBeLessThanOrEqual((timeout + 1) * tickMs);
  });

  it('wake a leader once a heartbeat interval, and a follower far from its election timeout', async () => {
    const scheduler = new LoopScheduler();
    const log = new MemoryRaftLog();
    const violations: string[] = [];
    const options = singleVoter({ memberId: 1n, scheduler });
    const raft = createRaftNode(log, { applier: new RecordingApplier(log, 0, violations, 'member 1'), snapshots: noSnapshots }, options);
    raft.start();
    await scheduler.iterate(0);
    expect(raft.isLeader).toBe(true);
    // Started as a follower far from its election timeout, then led: once a heartbeat. Its
    // Raft time still counts every tick, so proposals commit as before.
    expect(scheduler.periods.filter((ms) => ms < READ_INDEX_RETRY_MS)).toEqual([options.tickMs * TICKS_PER_HEARTBEAT]);
    await scheduler.iterate(options.tickMs * TICKS_PER_HEARTBEAT);
    expect(raft.isLeader).toBe(true);
    await raft.stop();
    expect(violations).toEqual([]);

    const other = await follower();
    expect(other.scheduler.periods.filter((ms) => ms < READ_INDEX_RETRY_MS)).toEqual([other.tickMs * TICKS_PER_HEARTBEAT]);
    await other.raft.stop();
  });
});
