import { describe, expect, it } from 'vitest';
import { handOffLeadership, handOffTarget, type HandOffClock, type LeadingRaft } from './leadership-handoff.js';

const voter = (match: number) => ({ match, isLearner: false });
const learner = (match: number) => ({ match, isLearner: true });

describe('leadership hand-off target', () => {
  it('picks the voter with the highest match index, never itself', () => {
    const progress = new Map([
      [1n, voter(100)],
      [2n, voter(90)],
      [3n, voter(95)],
    ]);
    expect(handOffTarget(1n, progress)).toBe(3n);
  });

  it('never picks a learner, however caught up', () => {
    const progress = new Map([
      [1n, voter(100)],
      [2n, learner(100)],
      [3n, voter(10)],
    ]);
    expect(handOffTarget(1n, progress)).toBe(3n);
  });

  it('has no target without another voter; ties go to the first voter seen', () => {
    expect(
      handOffTarget(
        1n,
        new Map([
          [1n, voter(5)],
          [2n, learner(5)],
        ]),
      ),
    ).toBeUndefined();
    expect(
      handOffTarget(
        1n,
        new Map([
          [1n, voter(5)],
          [4n, voter(5)],
          [2n, voter(5)],
        ]),
      ),
    ).toBe(4n);
  });
});

class FakeRaft implements LeadingRaft {
  isLeader = true;
  readonly memberId = 1n;
  transfers: bigint[] = [];
  constructor(
    private readonly progress: Map<bigint, { match: number; isLearner: boolean }>,
    private readonly stepsDownOnTransfer: boolean,
  ) {}
  status() {
    return { progress: this.progress };
  }
  transferLeadership(to: bigint): void {
    this.transfers.push(to);
    if (this.stepsDownOnTransfer) this.isLeader = false;
  }
}

function recordingLog() {
  const lines: string[] = [];
  return { lines, log: { info: (_fields: object, message: string) => lines.push(message), warn: (message: string) => lines.push(message) } };
}

/** A clock that moves only when slept on. */
function fakeClock(): HandOffClock & { sleeps: number } {
  let nowMs = 0;
  const clock = {
    sleeps: 0,
    nowMs: () => nowMs,
    sleep: async (ms: number) => {
      clock.sleeps++;
      nowMs += ms;
    },
  };
  return clock;
}

describe('leadership hand-off on shutdown', () => {
  it('transfers to the chosen voter and returns once leadership has moved', async () => {
    const raft = new FakeRaft(
      new Map([
        [1n, voter(9)],
        [2n, voter(9)],
      ]),
      true,
    );
    const { lines, log } = recordingLog();
    await handOffLeadership(raft, 1000, log, fakeClock());
    expect(raft.transfers).toEqual([2n]);
    expect(lines).toEqual(['handing leadership over before shutting down']);
  });

  it('gives up at the timeout and says so', async () => {
    const raft = new FakeRaft(
      new Map([
        [1n, voter(9)],
        [2n, voter(9)],
      ]),
      false,
    );
    const { lines, log } = recordingLog();
    const clock = fakeClock();
    await handOffLeadership(raft, 100, log, clock);
    expect(clock.nowMs()).toBeGreaterThanOrEqual(100);
    expect(lines).toEqual(['handing leadership over before shutting down', 'leadership hand-off did not complete in time; stopping anyway']);
  });

  it('does nothing on a follower, a member without Raft, or a leader without another voter', async () => {
    const { lines, log } = recordingLog();
    const follower = new FakeRaft(
      new Map([
        [1n, voter(9)],
        [2n, voter(9)],
      ]),
      true,
    );
    follower.isLeader = false;
    await handOffLeadership(follower, 100, log, fakeClock());
    await handOffLeadership(undefined, 100, log, fakeClock());
    const alone = new FakeRaft(new Map([[1n, voter(9)]]), true);
    await handOffLeadership(alone, 100, log, fakeClock());
    expect([follower.transfers, alone.transfers, lines]).toEqual([[], [], []]);
  });
});
