import { describe, expect, it } from 'vitest';
import { MetricProbes, type ProbeTargets } from './metric-probes.js';

function targets() {
  const seen = { fsync: [] as number[], commit: [] as number[], leaderChanges: 0, roundTrips: [] as Array<[string, number]> };
  const target: ProbeTargets = {
    walFsync: { observe: (s) => void seen.fsync.push(s) },
    backendCommit: { observe: (s) => void seen.commit.push(s) },
    leaderChanges: { inc: () => void seen.leaderChanges++ },
    peerRoundTrip: (peer, s) => void seen.roundTrips.push([peer, s]),
  };
  return { seen, target };
}

describe('metric probes', () => {
  it('drops what happens before the metrics exist', () => {
    const probes = new MetricProbes();
    const { seen, target } = targets();
    probes.backendWrite(0.1, true);
    probes.leaderChanged();
    probes.peerRoundTrip(10n, 0.2);
    probes.attach(target, false);
    expect(seen).toEqual({ fsync: [], commit: [], leaderChanges: 0, roundTrips: [] });
  });

  it('counts a leader already known at attach time once', () => {
    const probes = new MetricProbes();
    const { seen, target } = targets();
    probes.attach(target, true);
    expect(seen.leaderChanges).toBe(1);
  });

  it('every write is a backend commit, a synced one also a WAL fsync; peers are labelled in hex', () => {
    const probes = new MetricProbes();
    const { seen, target } = targets();
    probes.attach(target, false);
    probes.backendWrite(0.5, false);
    probes.backendWrite(0.25, true);
    probes.leaderChanged();
    probes.peerRoundTrip(255n, 0.125);
    expect(seen).toEqual({ fsync: [0.25], commit: [0.5, 0.25], leaderChanges: 1, roundTrips: [['ff', 0.125]] });
  });

  it("the sync journal's fdatasync is a WAL fsync, not a backend commit", () => {
    const probes = new MetricProbes();
    const { seen, target } = targets();
    probes.journalSync(0.001);
    probes.attach(target, false);
    probes.journalSync(0.002);
    expect(seen.fsync).toEqual([0.002]);
    expect(seen.commit).toEqual([]);
  });
});
