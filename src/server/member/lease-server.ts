// The lease side of a member: what the gRPC Lease service calls (grant, revoke, keep-alive,
// time-to-live, list) and the leader's duties (expiring leases, checkpointing remaining TTLs),
// on top of the pure lessor (src/lease/lessor.ts) and the log.
//
// Invariants:
// - Every change to leases goes through the log (grant, revoke, checkpoint entries applied by
//   src/server/lease-apply.ts). This class decides what to propose, never changes the
//   replicated state itself: an expired lease is revoked by proposing a revoke.
// - The proposer makes every decision apply must not make: the lease ID (server-chosen when
//   the client sends 0: a positive 63-bit value, unique per member as etcd's generator makes
//   it) and the TTL after etcd's minimum (ceil(1.5 x election timeout)).
// - Leader-only duties (expiry, checkpoints, keep-alive answers) run only while
//   `leadership.isLeader()`; the lessor is promoted when this member starts leading and demoted
//   when it stops, checked on every tick and before answering a keep-alive.
// - The clock is monotonic milliseconds (`nowMs`), never the wall clock, except to seed the
//   ID generator.

import { LeaseError } from '../../lease/errors.js';
import { MAX_LEASE_TTL_SECONDS, minLeaseTtlSeconds, type Lessor, type LeaseTimeToLive } from '../../lease/lessor.js';
import { assert } from '../../util/assert.js';
import type { ApplyOutcome } from '../apply/outcome.js';
import { ServerError } from '../apply/errors.js';
import type { InternalRequest } from '../apply/internal-request.js';

/** What the server tells the lease layer about leadership (a lone voter leads from its first turn on). */
export interface Leadership {
  isLeader(): boolean;
}

export interface LeaseServerOptions {
  electionTimeoutMs: number;
  /** Seeds the top bits of server-chosen lease IDs, as etcd's ID generator does. */
  memberId: bigint;
  /** Monotonic milliseconds. */
  nowMs: () => number;
  /** Wall-clock milliseconds at start, for the ID generator (default Date.now()). */
  startWallMs?: number;
  /** Period of the expiry loop (default 100 ms; etcd checks every 500 ms). */
  tickMs?: number;
  /** Called with unexpected failures of background proposals. */
  onError?: (error: unknown) => void;
}

export interface Revisioned<T> {
  result: T;
  revision: number;
}

type Propose = (request: InternalRequest) => Promise<{ outcome: ApplyOutcome }>;

/** At most this many revokes proposed per tick (etcd: leaseRevokeRate / 2 per 500 ms). */
const REVOKES_PER_TICK = 100;
/** At most this many checkpoints in one log entry (etcd's maxLeaseCheckpointBatchSize). */
const CHECKPOINTS_PER_ENTRY = 1000;

/**
 * Lease IDs unique per member without coordination (the layout of etcd's idutil): the low
 * 16 bits of the member ID on top, then a counter that starts at the wall-clock milliseconds
 * of start-up shifted left by 8, so a restarted member does not reuse IDs. Masked to 63 bits
 * (IDs are positive int64s).
 */
export class LeaseIdGenerator {
  private readonly prefix: bigint;
  private suffix: bigint;

  constructor(memberId: bigint, startWallMs: number) {
    this.prefix = (memberId & 0xffffn) << 48n;
    this.suffix = BigInt(Math.floor(startWallMs)) << 8n;
  }

  next(): bigint {
    this.suffix++;
    const id = (this.prefix | (this.suffix & ((1n << 48n) - 1n))) & ((1n << 63n) - 1n);
    return id;
  }
}

export class LeaseServer {
  readonly minTtlSeconds: number;
  private readonly ids: LeaseIdGenerator;
  private readonly tickMs: number;
  private readonly sweepMs: number;
  private nextSweepMs = 0;
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;

  constructor(
    private readonly lessor: Lessor,
    private readonly deps: { propose: Propose; leadership: Leadership; currentRevision: () => number },
    private readonly options: LeaseServerOptions,
  ) {
    assert(options.electionTimeoutMs > 0, 'lease server: election timeout must be positive');
    this.minTtlSeconds = minLeaseTtlSeconds(options.electionTimeoutMs);
    this.ids = new LeaseIdGenerator(options.memberId, options.startWallMs ?? Date.now());
    this.tickMs = options.tickMs ?? 100;
    // The lessor re-checkpoints a renewed lease after half an election timeout; sweeping every
    // quarter keeps a new leader's view of it less than one election timeout stale, which the
    // election-timeout extension on promotion covers.
    this.sweepMs = Math.max(1, Math.floor(options.electionTimeoutMs / 4));
  }

  /** Starts the leader loop (expiry, checkpoints); harmless on followers. */
  start(): void {
    if (this.timer !== undefined || this.stopped) return;
    const loop = (): void => {
      this.tick();
      if (!this.stopped) {
        this.timer = setTimeout(loop, this.tickMs);
        this.timer.unref();
      }
    };
    this.timer = setTimeout(loop, 0);
    this.timer.unref();
  }

  stop(): void {
    this.stopped = true;
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
  }

  // ---- client requests ------------------------------------------------------------------------

  /** etcd LeaseGrant: ID 0 = server-chosen; TTL raised to the minimum; too large = error. */
  async grant(id: bigint, ttlSeconds: number): Promise<Revisioned<{ id: bigint; ttlSeconds: number }>> {
    // etcd checks this while applying; checking first gives the same answer without an entry.
    if (ttlSeconds > MAX_LEASE_TTL_SECONDS) throw new LeaseError('LeaseTTLTooLarge');
    const ttl = Math.max(Math.trunc(ttlSeconds), this.minTtlSeconds);
    let leaseId = id;
    while (leaseId === 0n || (id === 0n && this.lessor.has(leaseId))) leaseId = this.ids.next();
    const { outcome } = await this.deps.propose({ kind: 'leaseGrant', id: leaseId, ttlSeconds: ttl });
    if (!outcome.ok) throw outcome.error;
    assert(outcome.value.kind === 'leaseGrant');
    return { result: { id: outcome.value.id, ttlSeconds: outcome.value.ttlSeconds }, revision: outcome.revision };
  }

  /** etcd LeaseRevoke: deletes the lease's keys in one revision; unknown = LeaseNotFound. */
  async revoke(id: bigint): Promise<Revisioned<null>> {
    const { outcome } = await this.deps.propose({ kind: 'leaseRevoke', id });
    if (!outcome.ok) throw outcome.error;
    return { result: null, revision: outcome.revision };
  }

  /** One keep-alive: the granted TTL, or 0 for an unknown (or already expired) lease. The
   * revision is read before renewing, as etcd fills the header first. */
  keepAlive(id: bigint): Revisioned<number> {
    const revision = this.deps.currentRevision();
    if (!this.syncLeadership(this.options.nowMs())) {
      // Followers forward keep-alives to the leader in etcd; not wired yet.
      throw new ServerError('NotLeader');
    }
    const ttl = this.lessor.renew(id, this.options.nowMs());
    return { result: ttl ?? 0, revision };
  }

  /** etcd LeaseTimeToLive; undefined for an unknown lease (the edge answers TTL -1). */
  timeToLive(id: bigint, withKeys: boolean): Revisioned<LeaseTimeToLive | undefined> {
    const now = this.options.nowMs();
    this.syncLeadership(now);
    return { result: this.lessor.timeToLive(id, now, withKeys), revision: this.deps.currentRevision() };
  }

  /** etcd LeaseLeases: every lease ID, soonest expiry first. */
  list(): Revisioned<bigint[]> {
    this.syncLeadership(this.options.nowMs());
    return { result: this.lessor.list(), revision: this.deps.currentRevision() };
  }

  // ---- leader loop ------------------------------------------------------------------------------

  /** One turn of the leader loop: follow leadership, propose revokes for expired leases and
   * the checkpoints that are due. Public for tests. */
  tick(): void {
    const now = this.options.nowMs();
    if (!this.syncLeadership(now)) return;
    for (const id of this.lessor.expired(now, REVOKES_PER_TICK)) this.proposeInBackground({ kind: 'leaseRevoke', id });
    if (now >= this.nextSweepMs) {
      this.nextSweepMs = now + this.sweepMs;
      const checkpoints = this.lessor.dueCheckpoints(now, CHECKPOINTS_PER_ENTRY);
      if (checkpoints.length > 0) this.proposeInBackground({ kind: 'leaseCheckpoint', checkpoints });
    }
  }

  private syncLeadership(now: number): boolean {
    const leader = this.deps.leadership.isLeader();
    if (leader && !this.lessor.isPrimary) this.lessor.promote(now, this.options.electionTimeoutMs);
    else if (!leader && this.lessor.isPrimary) this.lessor.demote();
    return leader;
  }

  private proposeInBackground(request: InternalRequest): void {
    this.deps.propose(request).then(
      ({ outcome }) => {
        // A revoke may race a client's revoke: "not found" is the expected loser's answer.
        if (!outcome.ok && !(outcome.error instanceof LeaseError)) this.options.onError?.(outcome.error);
      },
      (error: unknown) => {
        // Stopping, or leadership lost: the next leader (or the retry) takes over.
        if (error instanceof ServerError) return;
        this.options.onError?.(error);
      },
    );
  }
}
