// --force-new-cluster's log rewrite: uncommitted entries go, every other member of the
// configuration at the commit index (snapshot's, then conf changes) is removed by committed
// conf changes, and the result survives a reopen; a second forced start removes nobody.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ClassicLevel } from 'classic-level';
import { afterEach, describe, expect, it } from 'vitest';
import { ConfChangeType, EntryType, decodeConfChange, encodeConfChange, type Entry } from '../../raft/types.js';
import { StorageFormatError } from '../../storage/backend.js';
import { RaftLogStore } from '../../storage/raft-log-store.js';
import { restartAsStandalone } from './force-new-cluster.js';

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0)) await cleanup();
});

async function openLog(): Promise<{ log: RaftLogStore; reopen: () => Promise<RaftLogStore> }> {
  const dir = mkdtempSync(join(tmpdir(), 'force-new-cluster-'));
  let db = new ClassicLevel<Buffer, Buffer>(dir, { keyEncoding: 'buffer', valueEncoding: 'buffer' });
  await db.open();
  cleanups.push(async () => {
    await db.close();
    rmSync(dir, { recursive: true, force: true });
  });
  return {
    log: await RaftLogStore.open(db, 0x03),
    reopen: async () => {
      await db.close();
      db = new ClassicLevel<Buffer, Buffer>(dir, { keyEncoding: 'buffer', valueEncoding: 'buffer' });
      await db.open();
      return RaftLogStore.open(db, 0x03);
    },
  };
}

const change = (index: number, type: ConfChangeType, nodeId: bigint): Entry => ({
  index,
  term: 1,
  type: EntryType.ConfChange,
  data: encodeConfChange({ type, nodeId }),
});
const normal = (index: number, term: number): Entry => ({ index, term, type: EntryType.Normal, data: new Uint8Array([index]) });
const changesIn = (entries: Entry[]) => entries.map((e) => ({ index: e.index, term: e.term, ...decodeConfChange(e.data) }));

describe('restartAsStandalone', () => {
  it('discards uncommitted entries and removes every other member with committed conf changes', async () => {
    const { log, reopen } = await openLog();
    // Bootstrap of 1,2,3; member 4 added then removed; two writes committed, two not.
    const entries = [
      change(1, ConfChangeType.AddNode, 1n),
      change(2, ConfChangeType.AddNode, 2n),
      change(3, ConfChangeType.AddNode, 3n),
      change(4, ConfChangeType.AddLearnerNode, 4n),
      normal(5, 2),
      change(6, ConfChangeType.RemoveNode, 4n),
      normal(7, 2),
      normal(8, 3),
      normal(9, 3),
    ];
    await log.save({ term: 3, vote: 2n, commit: 7 }, entries, undefined, { sync: true });

    const restart = await restartAsStandalone(log, 2n);
    expect(restart).toEqual({ removed: [1n, 3n], discarded: 2, commit: 9 });
    const reopened = await reopen();
    expect(reopened.initialState().hardState).toEqual({ term: 3, vote: 2n, commit: 9 });
    expect(reopened.lastIndex()).toBe(9);
    expect(changesIn(reopened.entries(8, 10, Infinity))).toEqual([
      { index: 8, term: 3, type: ConfChangeType.RemoveNode, nodeId: 1n },
      { index: 9, term: 3, type: ConfChangeType.RemoveNode, nodeId: 3n },
    ]);
    expect(text(reopened.entries(7, 8, Infinity))).toEqual([7]);

    // Started with the flag again: nobody is left to remove, nothing is appended.
    expect(await restartAsStandalone(reopened, 2n)).toEqual({ removed: [], discarded: 0, commit: 9 });
  });

  it('keeps what the state machine applied past the stored commit index (a commit-only hard state is not always written)', async () => {
    const { log } = await openLog();
    const entries = [change(1, ConfChangeType.AddNode, 1n), change(2, ConfChangeType.AddNode, 2n), normal(3, 1), normal(4, 1), normal(5, 1)];
    await log.save({ term: 1, vote: 1n, commit: 3 }, entries, undefined, { sync: true });
    // Applied up to 4: entry 4 was committed, though no stored hard state says so.
    expect(await restartAsStandalone(log, 2n, 4)).toEqual({ removed: [1n], discarded: 1, commit: 5 });
    expect(text(log.entries(4, 5, Infinity))).toEqual([4]);
  });

  it('reads the configuration from the snapshot when the log was restored or compacted', async () => {
    const { log } = await openLog();
    const snapshot = { metadata: { index: 3, term: 1, confState: { voters: [5n, 6n, 7n], learners: [8n] } }, data: new Uint8Array(0) };
    await log.save({ term: 1, vote: 0n, commit: 3 }, [], snapshot, { sync: true });
    expect(await restartAsStandalone(log, 6n)).toEqual({ removed: [5n, 7n, 8n], discarded: 0, commit: 6 });
  });

  it('refuses a member that is not in its own configuration', async () => {
    const { log } = await openLog();
    await log.save({ term: 1, vote: 0n, commit: 2 }, [change(1, ConfChangeType.AddNode, 1n), change(2, ConfChangeType.AddNode, 2n)], undefined, { sync: true });
    await expect(restartAsStandalone(log, 9n)).rejects.toThrow(StorageFormatError);
  });
});

function text(entries: Entry[]): number[] {
  return entries.map((e) => e.data[0]!);
}
