// Historical reads right after writes: the records of the latest batch may still be on their
// way to LevelDB (they ride on the next synced write), and reads must see them anyway.

import { afterAll, beforeAll, expect, it } from 'vitest';
import { rangeRequest } from '../../src/mvcc/types.js';
import { startInProcessMember, type InProcessMember } from './in-process.js';

let member: InProcessMember;
beforeAll(async () => {
  member = await startInProcessMember();
});
afterAll(async () => {
  await member?.close();
});

it('reads every revision of a key overwritten many times in one batch', async () => {
  const key = Buffer.from('hot');
  // Straight to the server (no network hop), so the reads below run before any timer fires.
  const revisions = await Promise.all(
    Array.from({ length: 50 }, (_, i) =>
      member.kv.put({ key, value: Buffer.from(`v${i}`), lease: 0n, prevKv: false, ignoreValue: false, ignoreLease: false }).then((r) => r.revision),
    ),
  );
  // Read synchronously, before any timer can flush the last batch's records to LevelDB.
  const rangeAt = (revision: number) => member.kv.range(rangeRequest(key, undefined, { revision }));
  for (const revision of revisions) expect(rangeAt(revision).result.kvs[0]?.modRevision).toBe(revision);
  // And the same over gRPC.
  for (const revision of revisions.slice(-5)) {
    const response = await member.call('KV', 'Range', { key, revision });
    expect(Number(response.kvs[0].modRevision)).toBe(revision);
  }
});
