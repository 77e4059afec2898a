// --experimental-corrupt-check-time: every period the leader compares its HashKV with every
// member's at its revision; a member whose history differs gets the CORRUPT alarm through Raft
// (etcd 3.4's periodic check does the same), after which the cluster refuses requests until an
// operator acts. Followers skip their turns: only the leader's view decides.
//
// A round that outlasts the period is not overlapped by the next one (hashing a large store
// and asking slow peers can take longer than a short period).
//
// Logging: which peers were compared and which skipped (and why) is logged at info on the
// first round and whenever that changes, so an operator sees that the check really covers
// every member without a line per period; a skipped peer is also warned about every round, as
// etcd does.

import { AlarmAction, AlarmType } from '../apply/alarms.js';
import { compareHashesWithPeers, type HashComparison, type HashedMember, type PeerHashFetch } from './corruption-check.js';

/** The member as the periodic check sees it: hashes, leadership, and the alarm proposal. */
export interface CheckedMember extends HashedMember {
  /** Absent or not leading: the round is skipped. */
  readonly raft?: { readonly isLeader: boolean } | undefined;
  alarm(action: number, memberId: bigint, alarm: number): Promise<unknown>;
}

export interface PeriodicCheckLog {
  info(fields: object, message: string): void;
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
  /** The compared and skipped peers of the last round logged at info. */
  private lastCoverage = '';

  constructor(private readonly options: PeriodicCheckOptions) {}

  /** One timer turn: compares and raises CORRUPT for each differing member, if leading and idle. */
  async round(): Promise<void> {
    const { member, selfId, fetch, log } = this.options;
    if (this.running || member.raft === undefined || !member.raft.isLeader) return;
    this.running = true;
    try {
      const result = await compareHashesWithPeers(member, selfId, fetch);
      this.logCoverage(result);
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

  private logCoverage(result: HashComparison): void {
    const { log } = this.options;
    const compared = result.compared.map((id) => id.toString(16)).sort();
    const skipped = result.skipped.map((s) => ({ id: s.id.toString(16), reason: s.reason })).sort((a, b) => a.id.localeCompare(b.id));
    for (const peer of skipped)
      log.warn({ member: peer.id, revision: result.revision, reason: peer.reason }, 'corruption check cannot compare with a peer; skipped');
    const coverage = JSON.stringify([compared, skipped.map((s) => s.id)]);
    if (coverage === this.lastCoverage) return;
    this.lastCoverage = coverage;
    log.info({ revision: result.revision, compared, skipped }, 'corruption check compared hashes with peers');
  }
}

/** Runs the check every `periodMs` on a timer that does not hold the process open; returns a stop function. */
export function startPeriodicCorruptCheck(check: PeriodicCorruptCheck, periodMs: number): () => void {
  const timer = setInterval(() => void check.round(), periodMs);
  timer.unref();
  return () => clearInterval(timer);
}
