// The leader-change window: after a fault that takes the leader away (kill -9, isolation), how
// long a client pinned to a surviving follower waits until a linearizable read and a write
// succeed again. From the fault on, the prober sends a get and a put to that member every
// PROBE_EVERY_MS (each with a 10 s deadline, like etcdctl's command timeout); the window is the
// time from the fault to the completion of the first successful get and put sent after it.
// The prober also asks the member for its status, to tell apart the time the cluster needs to
// elect a new leader (Raft's randomized election timeout: [1, 1.25) x the configured one in
// MetaStore, [1, 2) x in etcd) from the time the member then takes to serve again (its retries).

import type { FaultCluster } from './fault-cluster.js';
import { nowMs } from './history.js';
import { call } from './workload.js';

const PROBE_EVERY_MS = 50;
const PROBE_DEADLINE_MS = 10_000;
const STATUS_DEADLINE_MS = 1000;

export interface WindowMeasurement {
  readonly fault: string;
  readonly member: number;
  /** ms from the fault to the first successful read and write (Infinity: none within the bound). */
  readonly readMs: number;
  readonly writeMs: number;
  readonly windowMs: number;
  /** ms from the fault until the member first reported a leader other than the old one. */
  readonly newLeaderMs: number;
  /**
   * Terms the election took: the new leader's term minus the member's term at the fault (1: one
   * round; more: a split vote or a retried candidate). NaN if a status probe did not tell.
   */
  readonly terms: number;
}

/**
 * Probes member `member` from `faultMs` (a nowMs() time taken just before the fault) until
 * both a read and a write sent after it succeeded, or `giveUpMs` passed.
 */
export async function measureWindow(
  cluster: FaultCluster,
  fault: string,
  member: number,
  faultMs: number,
  oldLeaderId: string,
  giveUpMs = 20_000,
): Promise<WindowMeasurement> {
  const stubs = cluster.members[member]!.clients;
  let readMs = Number.POSITIVE_INFINITY;
  let writeMs = Number.POSITIVE_INFINITY;
  let newLeaderMs = Number.POSITIVE_INFINITY;
  let termAtFault = Number.NaN;
  let newLeaderTerm = Number.NaN;
  const inFlight: Promise<void>[] = [];
  const statusProbes: Promise<void>[] = [];
  for (let n = 0; (readMs === Number.POSITIVE_INFINITY || writeMs === Number.POSITIVE_INFINITY) && nowMs() - faultMs < giveUpMs; n++) {
    inFlight.push(
      call(stubs.kv, 'Range', { key: Buffer.from('probe/read') }, PROBE_DEADLINE_MS).then(({ error }) => {
        if (error === null) readMs = Math.min(readMs, nowMs() - faultMs);
      }),
      call(stubs.kv, 'Put', { key: Buffer.from('probe/write'), value: Buffer.from(String(n)) }, PROBE_DEADLINE_MS).then(({ error }) => {
        if (error === null) writeMs = Math.min(writeMs, nowMs() - faultMs);
      }),
    );
    const first = n === 0;
    statusProbes.push(
      call(stubs.maintenance, 'Status', {}, STATUS_DEADLINE_MS).then(({ error, response }) => {
        const leader = error === null ? String(response.leader) : '0';
        if (first && leader === oldLeaderId) termAtFault = Number(response.raftTerm);
        if (leader !== '0' && leader !== oldLeaderId && nowMs() - faultMs < newLeaderMs) {
          newLeaderMs = nowMs() - faultMs;
          newLeaderTerm = Number(response.raftTerm);
        }
      }),
    );
    await new Promise((resolve) => setTimeout(resolve, PROBE_EVERY_MS));
  }
  // Outstanding probes only settle their own deadlines; they do not change the result.
  void Promise.all(inFlight);
  // Status probes are short: wait for them, so a member that learnt the leader just before
  // serving again is counted.
  await Promise.all(statusProbes);
  // A request retried by the member can succeed right after the election, before any status
  // probe sent after it: one more probe then finds the leader the member already knows.
  if (!Number.isFinite(newLeaderMs)) {
    const { error, response } = await call(stubs.maintenance, 'Status', {}, STATUS_DEADLINE_MS);
    const leader = error === null ? String(response.leader) : '0';
    if (leader !== '0' && leader !== oldLeaderId) {
      newLeaderMs = nowMs() - faultMs;
      newLeaderTerm = Number(response.raftTerm);
    }
  }
  return { fault, member, readMs, writeMs, windowMs: Math.max(readMs, writeMs), newLeaderMs, terms: newLeaderTerm - termAtFault };
}

export function describeWindow(m: WindowMeasurement): string {
  const ms = (x: number): string => (Number.isFinite(x) ? `${(x / 1000).toFixed(2)} s` : 'never');
  const terms = Number.isNaN(m.terms) ? '' : ` (${m.terms} term${m.terms === 1 ? '' : 's'} later)`;
  return `${m.fault}: follower m${m.member + 1} knew a new leader after ${ms(m.newLeaderMs)}${terms}, read again after ${ms(m.readMs)}, wrote after ${ms(m.writeMs)}`;
}
