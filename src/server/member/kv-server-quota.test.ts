import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { Backend } from '../../storage/backend.js';
import { ServerError } from '../apply/errors.js';
import { KvServer } from './kv-server.js';

const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

const QUOTA = 1024 * 1024;
const VALUE_BYTES = 64 * 1024;

async function openServer(): Promise<KvServer> {
  const dir = mkdtempSync(join(tmpdir(), 'metastore-quota-'));
  dirs.push(dir);
  // The default 16 MiB memtable: every write of this test stays in it, out of LevelDB's tables.
  const kv = await KvServer.open(await Backend.open(dir));
  await kv.start();
  kv.setQuota(QUOTA, 1n);
  return kv;
}

/** Puts incompressible values under fresh keys; returns the value bytes admitted. */
async function putUntilRefused(kv: KvServer, first: number, count: number): Promise<{ admitted: number; refused: boolean }> {
  let admitted = 0;
  for (let i = first; i < first + count; i++) {
    const put = { key: Buffer.from(`k${i}`), value: randomBytes(VALUE_BYTES), lease: 0n, prevKv: false, ignoreValue: false, ignoreLease: false };
    try {
      await kv.put(put);
      admitted += VALUE_BYTES;
    } catch (error) {
      if (!(error instanceof ServerError) || error.etcdCode !== 'NoSpace') throw error;
      return { admitted, refused: true };
    }
  }
  return { admitted, refused: false };
}

describe('quota (--quota-backend-bytes)', () => {
  it('counts what the memtable holds across a size sample: a quota smaller than one memtable is not overrun', async () => {
    const kv = await openServer();
    try {
      // Half the quota, then the once-a-second sample: LevelDB's tables show none of it yet.
      const before = await putUntilRefused(kv, 0, QUOTA / VALUE_BYTES / 2);
      expect(before.refused).toBe(false);
      expect(await kv.backend.stateSizeBytes()).toBeLessThan(VALUE_BYTES);
      await kv.sampleStateSize();
      // Another full quota's worth: the write that would pass the quota must be refused.
      const after = await putUntilRefused(kv, 1000, QUOTA / VALUE_BYTES);
      expect(after.refused).toBe(true);
      // Sixteen values are the quota in value bytes alone, so with their keys and revisions the
      // sixteenth passes it. Refused on the exact measurement (memtable flushed), not on the
      // estimate alone: the fifteenth, which leaves less than one more value of room, was admitted.
      // (The member's last apply batch is still queued at each check: it must count.)
      expect(before.admitted + after.admitted).toBe(QUOTA - VALUE_BYTES);
    } finally {
      await kv.close();
    }
  });

  it('a sample does not push a member far under the quota into a flush per write', async () => {
    const kv = await openServer();
    try {
      await putUntilRefused(kv, 0, 2);
      await kv.sampleStateSize();
      // Writes well under the quota stay admitted without measuring (the flush would show as a
      // level-0 table: stateSizeBytes counts only tables).
      const more = await putUntilRefused(kv, 100, 2);
      expect(more).toEqual({ admitted: 2 * VALUE_BYTES, refused: false });
      expect(await kv.backend.stateSizeBytes()).toBeLessThan(VALUE_BYTES);
    } finally {
      await kv.close();
    }
  });
});
