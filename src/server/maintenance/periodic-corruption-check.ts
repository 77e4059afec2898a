// --experimental-corrupt-check-time: every period the leader compares its HashKV with every
// member's at its revision; a member whose history differs gets the CORRUPT alarm through Raft
// (etcd 3.4's periodic check does the same), after which the cluster refuses requests until an
// operator acts. Followers skip their turns: only the leader's view decides.
//
// A round that outlasts the period is not overlapped by the next one (hashing a large store
// and asking slow peers can take longer than a short period).

import { AlarmAction, AlarmType } from '../apply/alarms.js';
import { compareHashesWithPeers, type HashedMember, type PeerHashFetch } from './corruption-check.js';

/** The member as the periodic check sees it: hashes, leadership, and the alarm proposal. */
export interface CheckedMember extends HashedMember {
  /** Absent or not leading: the round is skipped. */
  readonly raft?: { readonly isLeader: boolean } | undefined;
  alarm(action: number, memberId: bigint, alarm: number): Promise<unknown>;
}

export interface PeriodicCheckLog {
  warn(fields: object, message: string): void;
  error(fields: object, message: string): void;
}

export interface PeriodicCheckOptions {
  member: CheckedMember;
  selfId: bigint;
  fetch: PeerHashFetch;
  log: PeriodicCheckLog;
}

export class PeriodicCorruptCheck {
  private running = false;

  constructor(private readonly options: PeriodicCheckOptions) {}

  /** One timer turn: compares and raises CORRUPT for each differing member, if leading and idle. */
  async round(): Promise<void> {
    const { member, selfId, fetch, log } = this.options;
    if (this.running || member.raft === undefined || !member.raft.isLeader) return;
    this.running = true;
    try {
      const result = await compareHashesWithPeers(member, selfId, fetch);
      for (const mismatch of result.mismatched) {
        const fields = { member: mismatch.id.toString(16), revision: result.revision, localHash: mismatch.localHash, peerHash: mismatch.peerHash };
        log.error(fields, "member history differs from the leader's; raising CORRUPT");
        await member.alarm(AlarmAction.ACTIVATE, mismatch.id, AlarmType.CORRUPT);
      }
    } catch (error) {
      log.warn({ err: error }, 'corruption check failed');
    } finally {
      this.running = false;
    }
  }
}

/** Runs the check every `periodMs` on a timer that does not hold the process open; returns a stop function. */
export function startPeriodicCorruptCheck(check: PeriodicCorruptCheck, periodMs: number): () => void {
  const timer = setInterval(() => void check.round(), periodMs);
  timer.unref();
  return () => clearInterval(timer);
}
