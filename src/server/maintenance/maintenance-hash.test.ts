// Hash and HashKV on real single-member KvServers: equal on members holding the same records,
// different after any divergent write, bounded by the requested revision, and erroring like a
// Range at compacted and future revisions.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { CompactedError, FutureRevisionError } from '../../mvcc/errors.js';
import { Backend } from '../../storage/backend.js';
import { KvServer } from '../member/kv-server.js';
import { Crc32c, hashKv, hashState } from './maintenance-hash.js';

const opened: Array<{ kv: KvServer; dir: string }> = [];

async function member(): Promise<KvServer> {
  const dir = mkdtempSync(join(tmpdir(), 'metastore-hash-'));
  const kv = await KvServer.open(await Backend.open(dir));
  opened.push({ kv, dir });
  await kv.start();
  return kv;
}

afterEach(async () => {
  for (const { kv, dir } of opened.splice(0)) {
    await kv.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

const put = (kv: KvServer, key: string, value: string) =>
  kv.put({ key: Buffer.from(key), value: Buffer.from(value), lease: 0n, prevKv: false, ignoreValue: false, ignoreLease: false });

async function writeSame(kv: KvServer): Promise<void> {
  await put(kv, 'a', '1');
  await put(kv, 'b', '2');
  await put(kv, 'a', '3');
  await kv.deleteRange({ key: Buffer.from('b'), rangeEnd: Buffer.alloc(0), prevKv: false });
  await put(kv, 'c', '4');
}

describe('CRC-32C', () => {
  it('matches the standard check value', () => {
    expect(new Crc32c().update(Buffer.from('123456789')).digest()).toBe(0xe3069283);
  });
});

describe('HashKV', () => {
  it('is equal on members with the same history and differs after a divergent write', async () => {
    const [one, two] = [await member(), await member()];
    await writeSame(one);
    await writeSame(two);
    const [h1, h2] = [await hashKv(one, 0), await hashKv(two, 0)];
    expect(h1.hash).toBe(h2.hash);
    expect(h1.hashRevision).toBe(6);
    expect(h1.compactRevision).toBe(-1);

    await put(one, 'c', '5');
    await put(two, 'c', '6'); // same key and revision, other value
    const [d1, d2] = [await hashKv(one, 0), await hashKv(two, 0)];
    expect(d1.hashRevision).toBe(d2.hashRevision);
    expect(d1.hash).not.toBe(d2.hash);
    // The shared prefix still agrees.
    expect((await hashKv(one, 6)).hash).toBe(h1.hash);
    expect((await hashKv(two, 6)).hash).toBe(h1.hash);
  });

  it('changes when only a revision differs', async () => {
    const [one, two] = [await member(), await member()];
    await put(one, 'x', '1');
    await put(one, 'y', '2');
    await put(two, 'y', '2');
    await put(two, 'x', '1');
    expect((await hashKv(one, 0)).hash).not.toBe((await hashKv(two, 0)).hash);
  });

  it('errors at compacted and future revisions like a Range, and reports the compaction', async () => {
    const kv = await member();
    await writeSame(kv);
    await expect(hashKv(kv, 7)).rejects.toBeInstanceOf(FutureRevisionError);
    await kv.compact(4, true);
    await expect(hashKv(kv, 4)).rejects.toBeInstanceOf(CompactedError);
    await expect(hashKv(kv, 3)).rejects.toBeInstanceOf(CompactedError);
    const after = await hashKv(kv, 5);
    expect(after.compactRevision).toBe(4);
    expect(after.hashRevision).toBe(5);
  });

  it('is equal on members that compacted at the same revision', async () => {
    const [one, two] = [await member(), await member()];
    await writeSame(one);
    await writeSame(two);
    await one.compact(5, false);
    await two.compact(5, true);
    expect((await hashKv(one, 0)).hash).toBe((await hashKv(two, 0)).hash);
  });
});

describe('Hash', () => {
  it('covers the whole state: equal for equal states, different after any write', async () => {
    const [one, two] = [await member(), await member()];
    await writeSame(one);
    await writeSame(two);
    const [h1, h2] = [await hashState(one), await hashState(two)];
    expect(h1.hash).toBe(h2.hash);
    expect(h1.currentRevision).toBe(6);
    await one.compact(3, true);
    expect((await hashState(one)).hash).not.toBe(h1.hash);
  });
});
