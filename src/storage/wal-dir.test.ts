// The Raft log kept in a wal dir's own database: its frequent writes go through the sync
// journal in the wal dir (not the data dir), a restart after a power loss that took the wal
// dir's unsynced LevelDB writes replays them from that journal, and a failed journal write is
// the member's storage failure.

import { closeSync, copyFileSync, cpSync, existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { EntryType, type Entry } from '../raft/types.js';
import { RaftLogStore } from './raft-log-store.js';
import { KeySpace } from './backend.js';
import type { StorageError } from './storage-error.js';
import { JOURNAL_FILE, SyncJournal } from './sync-journal.js';
import { WalDb, walDirHasLog } from './wal-dir.js';

const dirs: string[] = [];
function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'metastore-wal-dir-'));
  dirs.push(dir);
  return dir;
}
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

const ent = (index: number, term: number, data = `e${index}`): Entry => ({ index, term, type: EntryType.Normal, data: Buffer.from(data) });
const texts = (store: RaftLogStore): string[] =>
  store.entries(store.firstIndex(), store.lastIndex() + 1, Number.POSITIVE_INFINITY).map((e) => `${Buffer.from(e.data).toString()}@${e.term}`);

/** How many ops the journal at `path` would replay (opened as a restart would, then closed). */
function replayed(path: string): number {
  const { journal, replay } = SyncJournal.open(path);
  journal.close();
  return replay.length;
}

/** The wal dir's database and the log in it, as a member opens them; `writes`: each LevelDB write's sync flag. */
async function openLog(walDir: string, options: { onFailure?: (error: StorageError) => void } = {}) {
  const writes: boolean[] = [];
  const journalSyncs: number[] = [];
  const wal = await WalDb.open(walDir, {
    ...options,
    // The timed checkpoint would add writes at random points (sync-journal.test.ts tests it).
    journalCheckpointMs: 60_000,
    onWrite: (_seconds, synced) => writes.push(synced),
    onJournalSync: (seconds) => journalSyncs.push(seconds),
  });
  const store = await RaftLogStore.open(wal.level, KeySpace.raftLog, { writer: wal.raftLogWriter, onFailure: options.onFailure });
  return { wal, store, writes, journalSyncs };
}

describe("the Raft log in a wal dir, through the wal dir's sync journal", () => {
  it('journals a save in the wal dir (fdatasync, LevelDB unsynced), checkpoints before the other writes, and leaves it empty at close', async () => {
    const [dataDir, walDir] = [tempDir(), join(tempDir(), 'wal')];
    const { wal, store, writes, journalSyncs } = await openLog(walDir);
    await store.save({ term: 1, vote: 0n, commit: 1 }, [ent(1, 1), ent(2, 1)], undefined, { sync: true });
    expect(journalSyncs).toHaveLength(1);
    expect(replayed(join(walDir, JOURNAL_FILE)), 'two entries and the hard state').toBe(3);
    expect(existsSync(join(dataDir, JOURNAL_FILE)), 'nothing in the data dir').toBe(false);
    // Recording a snapshot: a checkpoint (synced), then the write, synced.
    await store.createSnapshot(2, { voters: [1n], learners: [] }, new Uint8Array(0), { sync: false });
    expect(writes).toEqual([false, true, true]);
    expect(replayed(join(walDir, JOURNAL_FILE))).toBe(0);
    await store.save({ term: 1, vote: 0n, commit: 2 }, [ent(3, 1)], undefined, { sync: true });
    expect(replayed(join(walDir, JOURNAL_FILE))).toBe(2);
    await wal.close();
    expect(replayed(join(walDir, JOURNAL_FILE)), 'closing checkpoints').toBe(0);
    const again = await openLog(walDir);
    expect(texts(again.store)).toEqual(['e1@1', 'e2@1', 'e3@1']);
    expect(again.store.initialState().hardState).toEqual({ term: 1, vote: 0n, commit: 2 });
    await again.wal.close();
  });

  it("after a power loss that took the wal dir's unsynced LevelDB writes, the restart replays them from its journal", async () => {
    const walDir = join(tempDir(), 'wal');
    const first = await openLog(walDir);
    await first.store.save({ term: 1, vote: 0n, commit: 1 }, [ent(1, 1), ent(2, 1)], undefined, { sync: true });
    await first.wal.close();
    // The disk as LevelDB last synced it: the wal dir as the close left it.
    const lost = join(tempDir(), 'wal-lost');
    cpSync(walDir, lost, { recursive: true });
    const second = await openLog(walDir);
    await second.store.save({ term: 2, vote: 2n, commit: 2 }, [ent(2, 2, 'x2'), ent(3, 2)], undefined, { sync: true });
    // Five entries and the hard state: a record past INLINE_JOURNAL_OPS (level-write-queue.ts).
    await second.store.save(
      { term: 2, vote: 2n, commit: 3 },
      [4, 5, 6, 7, 8].map((i) => ent(i, 2)),
      undefined,
      { sync: true },
    );
    // ... and the journal as its fdatasyncs left it.
    copyFileSync(join(walDir, JOURNAL_FILE), join(lost, JOURNAL_FILE));
    await second.wal.close();
    const restarted = await openLog(lost);
    const expected = ['e1@1', 'x2@2', 'e3@2', 'e4@2', 'e5@2', 'e6@2', 'e7@2', 'e8@2'];
    expect(texts(restarted.store)).toEqual(expected);
    expect(restarted.store.initialState().hardState).toEqual({ term: 2, vote: 2n, commit: 3 });
    // Replayed into LevelDB synced and checkpointed: a second restart finds the same log.
    expect(replayed(join(lost, JOURNAL_FILE))).toBe(0);
    await restarted.wal.close();
    const again = await openLog(lost);
    expect(texts(again.store)).toEqual(expected);
    await again.wal.close();
  });

  it('ignores (and removes) a journal beside a wal dir that holds no database yet', async () => {
    const walDir = join(tempDir(), 'wal');
    const first = await openLog(walDir);
    await first.store.save({ term: 1, vote: 0n, commit: 1 }, [ent(1, 1)], undefined, { sync: true });
    const stale = join(tempDir(), 'stale.journal');
    copyFileSync(join(walDir, JOURNAL_FILE), stale);
    await first.wal.close();
    const fresh = tempDir();
    copyFileSync(stale, join(fresh, JOURNAL_FILE));
    writeFileSync(join(fresh, '0.wal'), 'an etcd WAL file LevelDB leaves alone');
    const { wal, store } = await openLog(fresh);
    expect(store.lastIndex()).toBe(0);
    expect(existsSync(join(fresh, JOURNAL_FILE))).toBe(false);
    expect(walDirHasLog(fresh)).toBe(true);
    await wal.close();
  });

  it.each([
    ['in-line', 1],
    ['off the main thread', 5],
  ])('a failed journal write (%s) is a storage failure of the wal dir before any waiter resolves', async (_how, entries) => {
    const walDir = join(tempDir(), 'wal');
    const failures: StorageError[] = [];
    const { wal, store, writes } = await openLog(walDir, { onFailure: (error) => failures.push(error) });
    await store.save({ term: 1, vote: 0n, commit: 0 }, [ent(1, 1)], undefined, { sync: true });
    // The device gives out under the journal: its file descriptor fails every write (EBADF).
    const journal = (wal as unknown as { journal: { fd: number | undefined } }).journal;
    closeSync(journal.fd as number);
    const saved = store.save(
      { term: 1, vote: 0n, commit: 1 },
      Array.from({ length: entries }, (_, i) => ent(2 + i, 1)),
      undefined,
      { sync: true },
    );
    await expect(saved).rejects.toThrow(/storage write failed/);
    expect(failures.map((f) => [f.kind, f.dir])).toEqual([['write', walDir]]);
    expect(failures[0]?.message).toContain(join(walDir, JOURNAL_FILE));
    expect(writes, 'the first save only: nothing reached LevelDB after the failure').toHaveLength(1);
    await expect(store.save({ term: 1, vote: 0n, commit: 1 }, [ent(2, 1)], undefined, { sync: true })).rejects.toThrow(/storage write failed/);
    // The descriptor is closed already; the database closes without another write.
    journal.fd = undefined;
    await wal.close();
  });
});
