// Observations that start before the metrics exist. The backend, the Raft log store and the
// Raft driver report disk writes, leader changes and peer round trips from their first moment,
// but the metrics are created only once the member is up (their gauges read it). Until the
// metrics are attached these observations are dropped; from then on they reach them.

import type { Metrics } from '../metrics/metrics.js';

export type ProbeTargets = Pick<Metrics, 'walFsync' | 'backendCommit' | 'leaderChanges' | 'peerRoundTrip'>;

export class MetricProbes {
  private target: ProbeTargets | undefined;

  /**
   * Every LevelDB batch is a backend commit, and a synced one also makes the Raft log durable
   * (a checkpoint of the sync journal, or a write of a wal dir's log), which etcd counts as a
   * WAL fsync.
   */
  readonly backendWrite = (seconds: number, synced: boolean): void => {
    if (this.target === undefined) return;
    this.target.backendCommit.observe(seconds);
    if (synced) this.target.walFsync.observe(seconds);
  };

  /** The sync journal's fdatasync'd append: how a Ready's entries become durable (WAL fsync). */
  readonly journalSync = (seconds: number): void => this.target?.walFsync.observe(seconds);

  readonly leaderChanged = (): void => this.target?.leaderChanges.inc();

  readonly peerRoundTrip = (peer: bigint, seconds: number): void => this.target?.peerRoundTrip(peer.toString(16), seconds);

  /** `leaderKnown`: a leader elected while the member was starting was seen before the metrics existed; count it. */
  attach(target: ProbeTargets, leaderKnown: boolean): void {
    this.target = target;
    if (leaderKnown) target.leaderChanges.inc();
  }
}
