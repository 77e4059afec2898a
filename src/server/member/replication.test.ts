// The writer of a Raft log kept in a wal dir: before the log's checkpointed writes (compaction
// above all), the backend's database, which holds the apply batches of the entries a
// compaction drops, is synced; the log's writes still reach the wal dir's queue in call order.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { Backend, KeySpace, spaceKey } from '../../storage/backend.js';
import type { RaftLogWriter } from '../../storage/raft-log-store.js';
import { WalDb } from '../../storage/wal-dir.js';
import { walDirLogWriter } from './replication.js';

const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

const op = (name: string) => [{ type: 'put' as const, key: spaceKey(KeySpace.raftLog, name), value: Buffer.from(name) }];

/** A wal dir queue that records what it was handed, in order. */
function recordingWal(): { wal: { raftLogWriter: RaftLogWriter }; handed: string[] } {
  const handed: string[] = [];
  return {
    handed,
    wal: {
      raftLogWriter: (ops) => {
        const first = ops[0];
        handed.push(first?.type === 'put' ? first.value.toString() : '?');
        return Promise.resolve();
      },
    },
  };
}

describe('the writer of a log kept in a wal dir', () => {
  it('hands journaled writes straight on, holds a checkpointed write until the state is synced, and keeps call order', async () => {
    const { wal, handed } = recordingWal();
    let synced!: () => void;
    let syncs = 0;
    const writer = walDirLogWriter(wal, () => {
      syncs++;
      return new Promise<void>((resolve) => (synced = resolve));
    });
    const landed = (): void => {};
    await writer(op('a'), true, 'journaled', landed);
    expect(handed).toEqual(['a']);
    expect(syncs).toBe(0);
    const compacted = writer(op('compact'), false, 'checkpointed', landed);
    const after = writer(op('b'), true, 'journaled', landed);
    await Promise.resolve();
    expect(syncs).toBe(1);
    expect(handed, 'nothing handed before the state is synced').toEqual(['a']);
    synced();
    await Promise.all([compacted, after]);
    expect(handed).toEqual(['a', 'compact', 'b']);
    // Nothing waits any more: a journaled write is handed at once again.
    void writer(op('c'), true, 'journaled', landed);
    expect(handed).toEqual(['a', 'compact', 'b', 'c']);
  });

  it('fails a checkpointed write whose sync failed, and the writes behind it, handing none of them', async () => {
    const { wal, handed } = recordingWal();
    const failure = new Error('storage write failed');
    const writer = walDirLogWriter(wal, () => Promise.reject(failure));
    const compacted = writer(op('compact'), false, 'checkpointed', () => {});
    const after = writer(op('b'), true, 'journaled', () => {});
    await expect(compacted).rejects.toBe(failure);
    await expect(after).rejects.toBe(failure);
    expect(handed).toEqual([]);
  });

  it("with a real backend and wal dir: the backend's apply batch is synced before the wal dir's compaction write", async () => {
    const [dataDir, walDir] = [mkdtempSync(join(tmpdir(), 'metastore-replication-')), mkdtempSync(join(tmpdir(), 'metastore-replication-wal-'))];
    dirs.push(dataDir, walDir);
    const events: string[] = [];
    const backend = await Backend.open(dataDir, { onWrite: (_s, synced) => events.push(`backend ${synced ? 'synced' : 'unsynced'}`) });
    const wal = await WalDb.open(walDir, { onWrite: (_s, synced) => events.push(`wal ${synced ? 'synced' : 'unsynced'}`) });
    try {
      const writer = walDirLogWriter(wal, () => backend.sync());
      // An apply batch: unsynced, it waits in the backend's queue for something to carry it.
      const applied = backend.write([{ type: 'put', key: spaceKey(KeySpace.mvcc, 'k'), value: Buffer.from('v') }], { sync: false });
      await writer(op('compact'), false, 'checkpointed', () => {});
      await applied;
      expect(events).toEqual(['backend synced', 'wal synced']);
    } finally {
      await wal.close();
      await backend.close();
    }
  });
});
