// The leader-change window: after a fault that takes the leader away (kill -9, isolation), how
// long a client pinned to a surviving follower waits until a linearizable read and a write
// succeed again. From the fault on, the prober sends a get and a put to that member every
// PROBE_EVERY_MS (each with a 10 s deadline, like etcdctl's command timeout); the window is the
// time from the fault to the completion of the first successful get and put sent after it.

import type { FaultCluster } from './fault-cluster.js';
import { nowMs } from './history.js';
import { call } from './workload.js';

const PROBE_EVERY_MS = 50;
const PROBE_DEADLINE_MS = 10_000;

export interface WindowMeasurement {
  readonly fault: string;
  readonly member: number;
  /** ms from the fault to the first successful read and write (Infinity: none within the bound). */
  readonly readMs: number;
  readonly writeMs: number;
  readonly windowMs: number;
}

/**
 * Probes member `member` from `faultMs` (a nowMs() time taken just before the fault) until
 * both a read and a write sent after it succeeded, or `giveUpMs` passed.
 */
export async function measureWindow(cluster: FaultCluster, fault: string, member: number, faultMs: number, giveUpMs = 20_000): Promise<WindowMeasurement> {
  const stubs = cluster.members[member]!.clients;
  let readMs = Number.POSITIVE_INFINITY;
  let writeMs = Number.POSITIVE_INFINITY;
  const inFlight: Promise<void>[] = [];
  for (let n = 0; (readMs === Number.POSITIVE_INFINITY || writeMs === Number.POSITIVE_INFINITY) && nowMs() - faultMs < giveUpMs; n++) {
    inFlight.push(
      call(stubs.kv, 'Range', { key: Buffer.from('probe/read') }, PROBE_DEADLINE_MS).then(({ error }) => {
        if (error === null) readMs = Math.min(readMs, nowMs() - faultMs);
      }),
      call(stubs.kv, 'Put', { key: Buffer.from('probe/write'), value: Buffer.from(String(n)) }, PROBE_DEADLINE_MS).then(({ error }) => {
        if (error === null) writeMs = Math.min(writeMs, nowMs() - faultMs);
      }),
    );
    await new Promise((resolve) => setTimeout(resolve, PROBE_EVERY_MS));
  }
  // Outstanding probes only settle their own deadlines; they do not change the result.
  void Promise.all(inFlight);
  return { fault, member, readMs, writeMs, windowMs: Math.max(readMs, writeMs) };
}

export function describeWindow(m: WindowMeasurement): string {
  const ms = (x: number): string => (Number.isFinite(x) ? `${(x / 1000).toFixed(2)} s` : 'never');
  return `${m.fault}: follower m${m.member + 1} read again after ${ms(m.readMs)}, wrote after ${ms(m.writeMs)}`;
}
