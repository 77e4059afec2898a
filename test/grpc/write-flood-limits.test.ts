// A write flood against a member whose disk has stalled: every LevelDB write is held, so no
// proposal is answered. Puts of 1 MiB keep coming over gRPC; once the unanswered proposals
// hold max_pending_proposal_bytes, the rest are answered at once with etcd's
// "etcdserver: too many requests" (RESOURCE_EXHAUSTED) and the held bytes stay under the cap.
// When the disk moves again the accepted puts complete, and nothing refused was applied.
// Nothing is timed: the test waits for answers and counts.

import { afterEach, describe, expect, it } from 'vitest';
import { DEFAULTS } from '../../src/config/schema.js';
import { waitFor } from '../support/wait.js';
import { startInProcessMember, type InProcessMember } from './in-process.js';

const MIB = 1024 * 1024;
const CAP = 4 * MIB;
const PUTS = 20;

let member: InProcessMember;
afterEach(async () => {
  await member?.close();
});

/** Holds every LevelDB batch write of the member's database until release() is called. */
function holdDisk(member: InProcessMember): { release(): void } {
  const level = member.backend.level;
  let release!: () => void;
  const gate = new Promise<void>((resolve) => {
    release = resolve;
  });
  const batch = level.batch.bind(level) as () => ReturnType<typeof level.batch>;
  (level as unknown as { batch: () => unknown }).batch = () => {
    const chained = batch();
    const write = chained.write.bind(chained);
    (chained as unknown as { write: (options?: unknown) => Promise<void> }).write = async (options) => {
      await gate;
      return write(options as Parameters<typeof write>[0]);
    };
    return chained;
  };
  return { release };
}

describe('a write flood while the disk stalls', () => {
  it('refuses with "too many requests" past max_pending_proposal_bytes; the held bytes stay under it; accepted puts complete later', async () => {
    member = await startInProcessMember({ replication: { limits: { ...DEFAULTS.limits, maxPendingProposalBytes: CAP } } });
    const raft = member.kv.raft!;
    const disk = holdDisk(member);
    const value = Buffer.alloc(MIB, 1);
    const outcomes: Array<'ok' | 'refused' | 'other'> = [];
    const puts = Array.from({ length: PUTS }, (_, i) =>
      member.call('KV', 'put', { key: Buffer.from(`flood/${i}`), value }).then(
        () => outcomes.push('ok'),
        (error: { code?: number; details?: string }) =>
          outcomes.push(error.code === 8 && error.details === 'etcdserver: too many requests' ? 'refused' : 'other'),
      ),
    );
    // Every put is either refused (answered) or held unanswered inside the member.
    const held = await waitFor(() => Math.round(raft.unansweredProposalBytes / MIB), {
      what: 'every put refused or held',
      until: (heldPuts) => heldPuts > 0 && outcomes.length + heldPuts === PUTS,
    });
    expect(outcomes.every((o) => o === 'refused')).toBe(true);
    expect(outcomes.length).toBeGreaterThanOrEqual(PUTS - CAP / MIB);
    expect(raft.unansweredProposalBytes).toBeLessThanOrEqual(CAP);

    disk.release();
    await Promise.all(puts);
    expect(outcomes.filter((o) => o === 'ok')).toHaveLength(held);
    expect(outcomes.filter((o) => o === 'other')).toEqual([]);
    const stored = await member.call('KV', 'range', { key: Buffer.from('flood/'), rangeEnd: Buffer.from('flood0'), countOnly: true });
    expect(Number(stored.count)).toBe(held);
  });
});
