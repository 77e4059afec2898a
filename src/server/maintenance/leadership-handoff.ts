// A leader that stops hands leadership to its most caught-up voter first, so the cluster does
// not sit through an election timeout without a leader (etcd does the same on shutdown).
// Learners cannot lead, so they are never chosen; without another voter there is nobody to
// hand over to and the member just stops.

/** The Raft driver as the hand-off sees it. */
export interface LeadingRaft {
  readonly isLeader: boolean;
  readonly memberId: bigint;
  status(): { progress: ReadonlyMap<bigint, { match: number; isLearner: boolean }> };
  transferLeadership(to: bigint): void;
}

export interface HandOffLog {
  info(fields: object, message: string): void;
  warn(message: string): void;
}

export interface HandOffClock {
  nowMs(): number;
  sleep(ms: number): Promise<void>;
}

const REAL_CLOCK: HandOffClock = {
  nowMs: () => Date.now(),
  sleep: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
};

/** How often the hand-off looks whether leadership has moved. */
const POLL_MS = 10;

/** The voter (not this member, not a learner) with the highest match index; ties go to the first seen. */
export function handOffTarget(selfId: bigint, progress: ReadonlyMap<bigint, { match: number; isLearner: boolean }>): bigint | undefined {
  let target: bigint | undefined;
  let best = -1;
  for (const [id, peer] of progress) {
    if (id === selfId || peer.isLearner) continue;
    if (peer.match > best) {
      best = peer.match;
      target = id;
    }
  }
  return target;
}

/** Transfers leadership and waits up to `timeoutMs` for it to move; a no-op unless leading. */
export async function handOffLeadership(raft: LeadingRaft | undefined, timeoutMs: number, log: HandOffLog, clock: HandOffClock = REAL_CLOCK): Promise<void> {
  if (raft === undefined || !raft.isLeader) return;
  const target = handOffTarget(raft.memberId, raft.status().progress);
  if (target === undefined) return;
  log.info({ to: target.toString(16) }, 'handing leadership over before shutting down');
  raft.transferLeadership(target);
  const deadline = clock.nowMs() + timeoutMs;
  while (raft.isLeader && clock.nowMs() < deadline) await clock.sleep(POLL_MS);
  if (raft.isLeader) log.warn('leadership hand-off did not complete in time; stopping anyway');
}
