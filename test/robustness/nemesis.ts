// The nemesis: fault cycles injected into a FaultCluster for a given time. Each cycle picks its
// victim (the leader, or a follower), injects the fault, holds it, repairs it and lets the
// cluster recover, logging what it did. Faults that take the leader away also measure the
// leader-change window on a surviving follower (leader-window.ts).

import type { FaultCluster } from './fault-cluster.js';
import { nowMs } from './history.js';
import { measureWindow, type WindowMeasurement } from './leader-window.js';
import { holdFor } from '../support/wait.js';

export type Scenario = 'kill-leader' | 'kill-follower' | 'pause-leader' | 'partition' | 'disk-full';

export interface NemesisLog {
  readonly events: string[];
  readonly windows: WindowMeasurement[];
  /** Disk-full only: how the filled member reacted (exited, or kept running). */
  readonly diskFull: Array<'exited' | 'kept running'>;
}

const HOLD_MS = 4000;
const RECOVER_MS = 3000;

function follower(cluster: FaultCluster, leader: number): number {
  return (leader + 1 + Math.floor(Math.random() * 2)) % cluster.members.length;
}

/** One cycle of `scenario`; `cycle` varies the partition shapes and disk-full victims. */
async function cycle(cluster: FaultCluster, scenario: Scenario, n: number, log: NemesisLog): Promise<void> {
  const leader = await cluster.leader();
  const leaderId = await cluster.memberId(leader);
  const other = follower(cluster, leader);
  const note = (what: string): void => {
    log.events.push(`${(nowMs() / 1000).toFixed(1)} ${what}`);
  };
  const windows: Array<Promise<WindowMeasurement>> = [];
  if (scenario === 'kill-leader' || scenario === 'kill-follower') {
    const victim = scenario === 'kill-leader' ? leader : other;
    const faultMs = nowMs();
    await cluster.kill9(victim);
    note(`kill -9 m${victim + 1} (${victim === leader ? 'leader' : 'follower'})`);
    if (victim === leader) windows.push(measureWindow(cluster, 'kill -9 of the leader', other, faultMs, leaderId));
    await holdFor(HOLD_MS, 'the fault lasts this long');
    await cluster.launch(cluster.members[victim]!);
    note(`restarted m${victim + 1}`);
  } else if (scenario === 'pause-leader') {
    cluster.pause(leader);
    note(`SIGSTOP m${leader + 1} (leader)`);
    await holdFor(HOLD_MS, 'the fault lasts this long');
    cluster.resume(leader);
    note(`SIGCONT m${leader + 1}`);
  } else if (scenario === 'partition') {
    const shape = n % 3;
    const faultMs = nowMs();
    if (shape === 0) cluster.isolate(leader);
    else if (shape === 1) cluster.isolate(other);
    else cluster.cutLink(leader, other);
    note(
      shape === 0 ? `isolated m${leader + 1} (leader)` : shape === 1 ? `isolated m${other + 1} (follower)` : `cut link m${leader + 1} (leader) - m${other + 1}`,
    );
    if (shape === 0) windows.push(measureWindow(cluster, 'isolation of the leader', other, faultMs, leaderId));
    await holdFor(HOLD_MS, 'the fault lasts this long');
    cluster.heal();
    note('healed');
  } else {
    await diskFull(cluster, n % 2 === 0 ? leader : other, note, log);
  }
  log.windows.push(...(await Promise.all(windows)));
  await holdFor(RECOVER_MS, 'the cluster runs unharmed between faults');
}

/** Fills the victim's disk; it must either exit (fail-stop) or keep going; then frees it. */
async function diskFull(cluster: FaultCluster, victim: number, note: (what: string) => void, log: NemesisLog): Promise<void> {
  cluster.fillDisk(victim);
  note(`filled the disk of m${victim + 1}`);
  const exited = cluster.members[victim]!.process!.exited;
  const outcome = await Promise.race([
    exited.then(() => 'exited' as const),
    holdFor(HOLD_MS, 'a full disk that does not stop the member lasts this long').then(() => 'kept running' as const),
  ]);
  log.diskFull.push(outcome);
  cluster.freeDisk(victim);
  note(`freed the disk of m${victim + 1}; it ${outcome}`);
  if (outcome === 'exited') {
    await cluster.launch(cluster.members[victim]!);
    note(`restarted m${victim + 1}`);
  }
  // A member that raised etcd's NOSPACE alarm before stopping keeps the cluster read-only
  // until an operator disarms it, as etcd does; the operator here is the nemesis.
  const disarmed = await cluster.disarmAlarms();
  if (disarmed > 0) note(`disarmed ${disarmed} alarm(s)`);
}

/** Runs fault cycles of `scenario` for about `seconds`, then leaves every member up and linked. */
export async function runNemesis(cluster: FaultCluster, scenario: Scenario, seconds: number): Promise<NemesisLog> {
  const log: NemesisLog = { events: [], windows: [], diskFull: [] };
  const end = nowMs() + seconds * 1000;
  try {
    for (let n = 0; nowMs() < end; n++) await cycle(cluster, scenario, n, log);
  } finally {
    cluster.heal();
    for (const m of cluster.members) if (m.paused) cluster.resume(m.index);
    for (const m of cluster.members) if (!cluster.isRunning(m.index)) await cluster.launch(m);
  }
  return log;
}
