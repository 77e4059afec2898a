// The journal file on its own (records, epochs, torn and stale tails), then the Raft log
// written through the backend's journal: what goes where, the checkpoints, and a restart after
// LevelDB lost the log's unsynced writes (a power loss simulated by an older copy of the data
// dir with the newer journal beside it).

import { closeSync, copyFileSync, cpSync, existsSync, mkdtempSync, openSync, readFileSync, rmSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { EntryType, type Entry } from '../raft/types.js';
import { Backend, KeySpace, spaceKey } from './backend.js';
import type { BatchOp } from './level-write-queue.js';
import { RaftLogStore } from './raft-log-store.js';
import type { StorageError } from './storage-error.js';
import { JOURNAL_FILE, JournalDamagedError, SyncJournal } from './sync-journal.js';

const dirs: string[] = [];
function journalPath(): string {
  const dir = mkdtempSync(join(tmpdir(), 'metastore-journal-'));
  dirs.push(dir);
  return join(dir, 'raft.journal');
}
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

const put = (key: string, value: string): BatchOp => ({ type: 'put', key: Buffer.from(key), value: Buffer.from(value) });
const del = (key: string): BatchOp => ({ type: 'del', key: Buffer.from(key) });
/** Ops as text, to compare what replays with what was appended. */
const text = (ops: BatchOp[]): string[] => ops.map((op) => (op.type === 'put' ? `put ${op.key}=${op.value}` : `del ${op.key}`));

/** Opens `path` (as a restart would) and returns what it replays; closes it again. */
function replayOf(path: string): string[] {
  const { journal, replay } = SyncJournal.open(path);
  journal.close();
  return text(replay);
}

describe('SyncJournal', () => {
  it('is created in full on the first append, and replays its records in order after a crash', () => {
    const path = journalPath();
    const { journal, replay } = SyncJournal.open(path, { sizeBytes: 64 * 1024 });
    expect(replay).toEqual([]);
    expect(existsSync(path)).toBe(false);
    journal.append([put('a', '1'), put('b', '2')], true);
    // Preallocated: an fdatasync never has a size change to record.
    expect(statSync(path).size).toBe(64 * 1024);
    journal.append([del('a')], false);
    journal.append([put('c', ''), put('b', '3')], true);
    journal.close();
    expect(replayOf(path)).toEqual(['put a=1', 'put b=2', 'del a', 'put c=', 'put b=3']);
  });

  it('replays nothing of an epoch already checkpointed (reset), then only the new epoch', () => {
    const path = journalPath();
    const { journal } = SyncJournal.open(path, { sizeBytes: 64 * 1024 });
    journal.append([put('old', '1')], true);
    journal.append([put('old', '2')], true);
    journal.reset();
    expect(journal.empty).toBe(true);
    journal.close();
    expect(replayOf(path)).toEqual([]);
    const again = SyncJournal.open(path).journal;
    again.append([put('new', '1')], true);
    again.close();
    expect(replayOf(path)).toEqual(['put new=1']);
  });

  it('stops at a stale record of an older epoch lying exactly where the new epoch ends', () => {
    const path = journalPath();
    const { journal } = SyncJournal.open(path, { sizeBytes: 64 * 1024 });
    // Epoch 1: A then B; epoch 2: A' of A's size, so the next record position is B's, whose
    // header and CRC are intact but whose epoch is the old one.
    journal.append([put('k', 'A')], true);
    journal.append([put('k', 'B'), put('x', 'stale')], true);
    journal.reset();
    journal.append([put('k', 'C')], true);
    journal.close();
    expect(replayOf(path)).toEqual(['put k=C']);
  });

  it('stops at a torn record (power loss in the middle of an append) and at zeroed bytes', () => {
    const path = journalPath();
    const { journal } = SyncJournal.open(path, { sizeBytes: 64 * 1024 });
    journal.append([put('a', '1')], true);
    journal.append([put('b', '2')], true);
    journal.append([put('c', 'a value long enough to be torn in its middle')], true);
    journal.close();
    const whole = readFileSync(path);
    const recordBytes = SyncJournal.recordBytes([put('a', '1')]);
    const third = 16 + 2 * recordBytes;
    // A torn tail: the third record's last bytes never reached the disk (still zero).
    const torn = Buffer.from(whole);
    torn.fill(0, third + 30, third + SyncJournal.recordBytes([put('c', 'a value long enough to be torn in its middle')]));
    writeFileSync(path, torn);
    expect(replayOf(path)).toEqual(['put a=1', 'put b=2']);
    // The second record lost (zeroed): replay stops there, even though the third is intact.
    const holed = Buffer.from(whole);
    holed.fill(0, 16 + recordBytes, third);
    writeFileSync(path, holed);
    expect(replayOf(path)).toEqual(['put a=1']);
    // One flipped payload bit fails the CRC.
    const flipped = Buffer.from(whole);
    flipped[16 + recordBytes + 20] = (flipped[16 + recordBytes + 20] as number) ^ 0x01;
    writeFileSync(path, flipped);
    expect(replayOf(path)).toEqual(['put a=1']);
    // A file cut short in the middle of a record.
    writeFileSync(path, whole);
    truncateSync(path, third + 10);
    expect(replayOf(path)).toEqual(['put a=1', 'put b=2']);
  });

  it('refuses a file whose epoch-start record is damaged, and removes a half-created file', () => {
    const path = journalPath();
    const { journal } = SyncJournal.open(path, { sizeBytes: 4096 });
    journal.append([put('a', '1')], true);
    journal.close();
    const damaged = readFileSync(path);
    damaged[5] = (damaged[5] as number) ^ 0xff;
    writeFileSync(path, damaged);
    expect(() => SyncJournal.open(path)).toThrow(JournalDamagedError);
    rmSync(path);
    writeFileSync(`${path}.tmp`, Buffer.alloc(100));
    expect(replayOf(path)).toEqual([]);
    expect(existsSync(`${path}.tmp`)).toBe(false);
  });

  it('says when a record does not fit before the end of the file', () => {
    const path = journalPath();
    const { journal } = SyncJournal.open(path, { sizeBytes: 256 });
    const op = put('k', 'x'.repeat(40));
    const bytes = SyncJournal.recordBytes([op]);
    let appended = 0;
    while (journal.fits(bytes)) {
      journal.append([op], false);
      appended++;
    }
    expect(appended).toBe(Math.floor((256 - 16) / bytes));
    journal.reset();
    expect(journal.fits(bytes)).toBe(true);
    // A record as large as the file never fits, even in an empty journal.
    expect(journal.fits(256)).toBe(false);
    journal.close();
  });
});

const ent = (index: number, term: number, data = `e${index}`): Entry => ({ index, term, type: EntryType.Normal, data: Buffer.from(data) });
const texts = (store: RaftLogStore): string[] =>
  store.entries(store.firstIndex(), store.lastIndex() + 1, Number.POSITIVE_INFINITY).map((e) => `${Buffer.from(e.data).toString()}@${e.term}`);

function dataDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'metastore-journal-backend-'));
  dirs.push(dir);
  return dir;
}

/** A backend and the Raft log kept in it, as a member opens them; `writes`: each LevelDB write's sync flag. */
async function openLog(dir: string, options: { journalBytes?: number; journalCheckpointMs?: number; onFailure?: (error: StorageError) => void } = {}) {
  const writes: boolean[] = [];
  const journalSyncs: number[] = [];
  const backend = await Backend.open(dir, {
    ...options,
    // The timed checkpoint has a test of its own; here it would add writes at random points.
    journalCheckpointMs: options.journalCheckpointMs ?? 60_000,
    onWrite: (_seconds, synced) => writes.push(synced),
    onJournalSync: (seconds) => journalSyncs.push(seconds),
  });
  const store = await RaftLogStore.open(backend.level, KeySpace.raftLog, { writer: backend.raftLogWriter });
  // A journaled save resolves before its LevelDB write lands: an empty write waits for that.
  const landed = (): Promise<void> => backend.write([], { sync: false, prompt: true });
  return { backend, store, writes, journalSyncs, landed };
}

describe("the Raft log through the backend's sync journal", () => {
  it("a save goes to the journal (fdatasync) and to LevelDB unsynced; the log's other writes are synced after a checkpoint", async () => {
    const dir = dataDir();
    const { backend, store, writes, journalSyncs, landed } = await openLog(dir);
    // A data dir of the previous version has no journal: none until the first journaled write.
    expect(existsSync(join(dir, JOURNAL_FILE))).toBe(false);
    await store.save({ term: 1, vote: 0n, commit: 1 }, [ent(1, 1), ent(2, 1)], undefined, { sync: true });
    await landed();
    expect(writes).toEqual([false]);
    expect(journalSyncs).toHaveLength(1);
    expect(replayOf(join(dir, JOURNAL_FILE))).toHaveLength(3);
    // An unsynced save (the commit index alone) is journaled without an fdatasync.
    await store.save({ term: 1, vote: 0n, commit: 2 }, [], undefined, { sync: false });
    expect(journalSyncs).toHaveLength(1);
    expect(replayOf(join(dir, JOURNAL_FILE))).toHaveLength(4);
    // Recording a snapshot: a checkpoint (synced, carrying a marker), then the write, synced.
    await store.createSnapshot(2, { voters: [1n], learners: [] }, new Uint8Array(0), { sync: false });
    expect(writes).toEqual([false, false, true, true]);
    expect(replayOf(join(dir, JOURNAL_FILE))).toEqual([]);
    // With nothing journaled since, no checkpoint is needed: the write alone, synced.
    await store.compact(1);
    expect(writes).toEqual([false, false, true, true, true]);
    await store.save({ term: 2, vote: 0n, commit: 2 }, [ent(3, 2)], undefined, { sync: true });
    expect(replayOf(join(dir, JOURNAL_FILE))).toHaveLength(2);
    // Closing checkpoints: the journal is left empty.
    await backend.close();
    expect(replayOf(join(dir, JOURNAL_FILE))).toEqual([]);
    const again = await openLog(dir);
    expect(texts(again.store)).toEqual(['e2@1', 'e3@2']);
    expect(again.store.initialState().hardState).toEqual({ term: 2, vote: 0n, commit: 2 });
    await again.backend.close();
  });

  it("after a power loss that took LevelDB's unsynced writes, the restart replays the log's from the journal", async () => {
    const dir = dataDir();
    const first = await openLog(dir);
    await first.store.save({ term: 1, vote: 0n, commit: 1 }, [ent(1, 1), ent(2, 1)], undefined, { sync: true });
    await first.backend.close();
    // The disk as LevelDB last synced it: the data dir as the close left it.
    const lost = dataDir();
    cpSync(dir, lost, { recursive: true });
    const second = await openLog(dir);
    await second.store.save({ term: 2, vote: 2n, commit: 2 }, [ent(2, 2, 'x2'), ent(3, 2), ent(4, 2)], undefined, { sync: true });
    await second.store.save({ term: 2, vote: 2n, commit: 3 }, [], undefined, { sync: false });
    // Five entries and the hard state: a record written off the main thread (INLINE_JOURNAL_OPS).
    await second.store.save(
      { term: 2, vote: 2n, commit: 4 },
      [5, 6, 7, 8, 9].map((i) => ent(i, 2)),
      undefined,
      { sync: true },
    );
    // ... and the journal as the fdatasyncs left it (LevelDB's writes since never reached the disk).
    copyFileSync(join(dir, JOURNAL_FILE), join(lost, JOURNAL_FILE));
    await second.backend.close();
    const restarted = await openLog(lost);
    expect(texts(restarted.store)).toEqual(['e1@1', 'x2@2', 'e3@2', 'e4@2', 'e5@2', 'e6@2', 'e7@2', 'e8@2', 'e9@2']);
    expect(restarted.store.initialState().hardState).toEqual({ term: 2, vote: 2n, commit: 4 });
    // Replayed into LevelDB synced and checkpointed: a second restart finds the same log.
    expect(replayOf(join(lost, JOURNAL_FILE))).toEqual([]);
    await restarted.backend.close();
    const again = await openLog(lost);
    expect(texts(again.store)).toEqual(['e1@1', 'x2@2', 'e3@2', 'e4@2', 'e5@2', 'e6@2', 'e7@2', 'e8@2', 'e9@2']);
    await again.backend.close();
  });

  it('checkpoints when a record does not fit; a record larger than the journal is written synced', async () => {
    const dir = dataDir();
    const { backend, store, writes, landed } = await openLog(dir, { journalBytes: 4096 });
    const value = 'v'.repeat(500);
    for (let i = 1; i <= 20; i++) await store.save({ term: 1, vote: 0n, commit: i - 1 }, [ent(i, 1, `${i}${value}`)], undefined, { sync: true });
    // About seven records fit in 4 KiB: the 8th, 15th... wait for a checkpoint (a synced write).
    expect(writes.filter((synced) => synced).length).toBeGreaterThanOrEqual(2);
    expect(replayOf(join(dir, JOURNAL_FILE)).length).toBeLessThanOrEqual(8 * 2);
    await landed();
    writes.length = 0;
    await store.save({ term: 1, vote: 0n, commit: 20 }, [ent(21, 1, 'w'.repeat(5000))], undefined, { sync: true });
    expect(writes).toEqual([true, true]);
    expect(replayOf(join(dir, JOURNAL_FILE))).toEqual([]);
    await backend.close();
    const again = await openLog(dir, { journalBytes: 4096 });
    expect(again.store.lastIndex()).toBe(21);
    expect(texts(again.store).map((t) => t.length)).toEqual([...Array.from({ length: 20 }, (_, i) => `${i + 1}`.length + 502), 5002]);
    await again.backend.close();
  });

  it('a checkpoint follows the first record since the last one within the interval', async () => {
    const dir = dataDir();
    let checkpointed!: () => void;
    const synced = new Promise<void>((resolve) => (checkpointed = resolve));
    const backend = await Backend.open(dir, { journalCheckpointMs: 20, onWrite: (_seconds, sync) => sync && checkpointed() });
    const store = await RaftLogStore.open(backend.level, KeySpace.raftLog, { writer: backend.raftLogWriter });
    await store.save({ term: 1, vote: 0n, commit: 0 }, [ent(1, 1)], undefined, { sync: true });
    expect(replayOf(join(dir, JOURNAL_FILE))).toHaveLength(2);
    await synced;
    expect(replayOf(join(dir, JOURNAL_FILE))).toEqual([]);
    await backend.close();
  });

  it.each([
    ['in-line', 1],
    ['off the main thread', 5],
  ])('a failed journal write (%s) is a storage failure before any waiter resolves, and nothing is written after it', async (_how, entries) => {
    const dir = dataDir();
    const failures: StorageError[] = [];
    const { backend, store, writes, landed } = await openLog(dir, { onFailure: (error) => failures.push(error) });
    await store.save({ term: 1, vote: 0n, commit: 0 }, [ent(1, 1)], undefined, { sync: true });
    await landed();
    // The device gives out under the journal: its file descriptor fails every write (EBADF).
    const journal = (backend as unknown as { journal: { fd: number } }).journal;
    closeSync(journal.fd);
    const apply = backend.write([{ type: 'put', key: spaceKey(KeySpace.mvcc, 'k'), value: Buffer.from('v') }], { sync: false });
    const saved = store.save(
      { term: 1, vote: 0n, commit: 1 },
      Array.from({ length: entries }, (_, i) => ent(2 + i, 1)),
      undefined,
      { sync: true },
    );
    await expect(saved).rejects.toThrow(/storage write failed/);
    await expect(apply).rejects.toThrow(/storage write failed/);
    expect(failures.map((f) => f.kind)).toEqual(['write']);
    expect(failures[0]?.message).toContain(JOURNAL_FILE);
    expect(writes).toEqual([false]);
    await expect(store.save({ term: 1, vote: 0n, commit: 1 }, [ent(2, 1)], undefined, { sync: true })).rejects.toThrow(/storage write failed/);
    // The descriptor is closed already; the backend closes without another write.
    (journal as { fd: number | undefined }).fd = undefined;
    await backend.close();
  });

  it.each([
    ['in-line', 1],
    ['on the pool', 5],
  ])('a failed fdatasync (%s) after a write that succeeded is a storage failure before any waiter resolves', async (_how, entries) => {
    const dir = dataDir();
    const failures: StorageError[] = [];
    const { backend, store, writes, landed } = await openLog(dir, { onFailure: (error) => failures.push(error) });
    await store.save({ term: 1, vote: 0n, commit: 0 }, [ent(1, 1)], undefined, { sync: true });
    await landed();
    // A descriptor that takes writes but refuses to sync them: /dev/null (EINVAL), standing for
    // a device whose write-back fails (EIO) once the record sits in the page cache.
    const journal = (backend as unknown as { journal: { fd: number | undefined } }).journal;
    closeSync(journal.fd as number);
    journal.fd = openSync('/dev/null', 'w');
    let resolved = false;
    const saved = store.save(
      { term: 1, vote: 0n, commit: 1 },
      Array.from({ length: entries }, (_, i) => ent(2 + i, 1)),
      undefined,
      { sync: true },
    );
    saved.then(() => (resolved = true)).catch(() => {});
    await expect(saved).rejects.toThrow(/storage write failed/);
    expect(resolved).toBe(false);
    expect(failures.map((f) => f.kind)).toEqual(['write']);
    expect(failures[0]?.message).toContain(JOURNAL_FILE);
    expect(failures[0]?.message).toContain('EINVAL');
    await expect(store.save({ term: 1, vote: 0n, commit: 1 }, [ent(2, 1)], undefined, { sync: true })).rejects.toThrow(/storage write failed/);
    expect(writes, 'no LevelDB write landed after the failed one').toEqual([false]);
    closeSync(journal.fd);
    journal.fd = undefined;
    await backend.close();
  });
});
