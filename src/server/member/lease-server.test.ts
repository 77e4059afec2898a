// LeaseServer decisions with a fake clock, a fake log and switchable leadership: what it
// proposes for grants (IDs, TTL floor, ceiling), the leader loop (revokes for expired leases,
// checkpoints for renewed ones), and how it follows leadership.

import { describe, expect, it } from 'vitest';
import { LeaseError } from '../../lease/errors.js';
import { Lessor } from '../../lease/lessor.js';
import type { ApplyOutcome } from '../apply/outcome.js';
import { ServerError } from '../apply/errors.js';
import type { InternalRequest } from '../apply/internal-request.js';
import { LeaseIdGenerator, LeaseServer } from './lease-server.js';

function setup() {
  let now = 0;
  let leader = true;
  const proposed: InternalRequest[] = [];
  const lessor = new Lessor({ dirtyCheckpointMs: 500 });
  // The fake log applies grants and revokes to the lessor directly, as the applier would.
  const propose = async (request: InternalRequest): Promise<{ outcome: ApplyOutcome }> => {
    proposed.push(request);
    try {
      if (request.kind === 'leaseGrant') {
        lessor.grant(request.id, request.ttlSeconds, now);
        return { outcome: { ok: true, value: { kind: 'leaseGrant', id: request.id, ttlSeconds: request.ttlSeconds }, revision: 1 } };
      }
      if (request.kind === 'leaseRevoke') lessor.revoke(request.id);
      return { outcome: { ok: true, value: { kind: 'none' }, revision: 1 } };
    } catch (error) {
      return { outcome: { ok: false, error: error as LeaseError } };
    }
  };
  const server = new LeaseServer(
    lessor,
    { propose, leadership: { isLeader: () => leader }, currentRevision: () => 1 },
    { electionTimeoutMs: 1000, memberId: 0xabcdn, nowMs: () => now, startWallMs: 1 },
  );
  return {
    server,
    lessor,
    proposed,
    at: (ms: number) => (now = ms),
    setLeader: (value: boolean) => (leader = value),
  };
}

describe('LeaseServer', () => {
  it('server-chosen IDs are positive, carry the member prefix and are unique', () => {
    const ids = new LeaseIdGenerator(0x1234_abcdn, 1_700_000_000_000);
    const a = ids.next();
    const b = ids.next();
    expect(a).not.toBe(b);
    // The sign bit is masked off, so 15 bits of the member ID survive (as in etcd).
    expect(a >> 48n).toBe(0xabcdn & 0x7fffn);
    expect(a > 0n && a < 1n << 63n).toBe(true);
  });

  it('grant: ID and the TTL after the 2 s minimum go into the entry; too large never reaches the log', async () => {
    const t = setup();
    const granted = await t.server.grant(0n, 1);
    expect(granted.result.ttlSeconds).toBe(2);
    expect(t.proposed[0]).toEqual({ kind: 'leaseGrant', id: granted.result.id, ttlSeconds: 2 });
    expect(granted.result.id >> 48n).toBe(0xabcdn & 0x7fffn);
    await expect(t.server.grant(5n, 9_000_000_001)).rejects.toMatchObject({ etcdCode: 'LeaseTTLTooLarge' });
    expect(t.proposed).toHaveLength(1);
    await t.server.grant(5n, 10);
    await expect(t.server.grant(5n, 10)).rejects.toBeInstanceOf(LeaseError);
  });

  it('the leader loop proposes a revoke for each expired lease, once per retry interval', async () => {
    const t = setup();
    t.server.tick();
    const { result } = await t.server.grant(0n, 5);
    t.at(4999);
    t.server.tick();
    expect(t.proposed.filter((r) => r.kind === 'leaseRevoke')).toEqual([]);
    t.at(5000);
    t.server.tick();
    t.server.tick();
    expect(t.proposed.filter((r) => r.kind === 'leaseRevoke')).toEqual([{ kind: 'leaseRevoke', id: result.id }]);
    await Promise.resolve();
    expect(t.lessor.has(result.id)).toBe(false);
  });

  it('keep-alive renews on the leader (0 for unknown) and a renewed lease gets checkpointed', async () => {
    const t = setup();
    t.server.tick();
    const { result } = await t.server.grant(0n, 10);
    t.at(3000);
    expect(t.server.keepAlive(result.id).result).toBe(10);
    expect(t.server.keepAlive(77n).result).toBe(0);
    t.at(3600);
    t.server.tick();
    expect(t.proposed.at(-1)).toEqual({ kind: 'leaseCheckpoint', checkpoints: [{ id: result.id, remainingMs: 9400 }] });
  });

  it('follows leadership: a follower proposes nothing and refuses keep-alives; a new leader extends', async () => {
    const t = setup();
    t.server.tick();
    const { result } = await t.server.grant(0n, 2);
    t.setLeader(false);
    t.at(10_000);
    t.server.tick();
    expect(t.proposed.filter((r) => r.kind === 'leaseRevoke')).toEqual([]);
    expect(() => t.server.keepAlive(result.id)).toThrow(ServerError);
    // Leader again long after the deadline: expires at once (deadline from the grant, not reset).
    t.setLeader(true);
    t.server.tick();
    expect(t.proposed.filter((r) => r.kind === 'leaseRevoke')).toEqual([{ kind: 'leaseRevoke', id: result.id }]);
  });
});
