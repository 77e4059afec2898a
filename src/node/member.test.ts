import { describe, expect, it } from 'vitest';
import { DEFAULTS, type Config } from '../config/schema.js';
import { compactionSchedule } from './compactor.js';
import { raftTiming } from './member.js';

function withRaft(raft: Partial<Config['raft']>, limits: Partial<Config['limits']> = {}) {
  return { raft: { ...DEFAULTS.raft, ...raft }, limits: { ...DEFAULTS.limits, ...limits } };
}

describe('member wiring from the configuration', () => {
  it('Raft ticks ten times per heartbeat; the election timeout is counted in those ticks', () => {
    expect(raftTiming(withRaft({ heartbeatIntervalMs: 100, electionTimeoutMs: 1000 }))).toMatchObject({ tickMs: 10, electionTicks: 100, heartbeatTicks: 10 });
    expect(raftTiming(withRaft({ heartbeatIntervalMs: 100, electionTimeoutMs: 1049 })).electionTicks).toBe(105);
    expect(raftTiming(withRaft({ heartbeatIntervalMs: 150, electionTimeoutMs: 1000 }))).toMatchObject({ tickMs: 15, electionTicks: 67, heartbeatTicks: 10 });
    // The core needs the election timeout above the heartbeat, whatever the caller asked for.
    expect(raftTiming(withRaft({ heartbeatIntervalMs: 100, electionTimeoutMs: 100 })).electionTicks).toBe(11);
  });

  it('a proposal waits for the request timeout, but no longer than a couple of elections past 5 s', () => {
    expect(raftTiming(withRaft({ electionTimeoutMs: 1000 }, { requestTimeoutMs: 30_000 })).requestTimeoutMs).toBe(7000);
    expect(raftTiming(withRaft({ electionTimeoutMs: 1000 }, { requestTimeoutMs: 3000 })).requestTimeoutMs).toBe(3000);
  });

  it('auto-compaction: a retention of 0 turns it off; otherwise the mode picks the schedule', () => {
    const compaction = DEFAULTS.compaction;
    expect(compactionSchedule({ ...compaction, mode: 'periodic', retentionMs: 0 })).toBeUndefined();
    expect(compactionSchedule({ ...compaction, mode: 'revision', retentionRevisions: 0 })).toBeUndefined();
    expect(compactionSchedule({ ...compaction, mode: 'periodic', retentionMs: 3_600_000 })).toEqual({ mode: 'periodic', retentionMs: 3_600_000 });
    expect(compactionSchedule({ ...compaction, mode: 'revision', retentionRevisions: 100, retentionMs: 5 })).toEqual({
      mode: 'revision',
      retentionRevisions: 100,
    });
  });
});
