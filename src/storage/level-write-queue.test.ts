// The write queue's journal checkpoints around LevelDB's log rotation: a checkpoint resets the
// journal only once LevelDB's older log is gone, and what needs the reset waits for it. First
// with a probe the test sets, then with real LevelDB rotating its log under a stream of writes.

import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ClassicLevel } from 'classic-level';
import { afterEach, describe, expect, it } from 'vitest';
import { type BatchOp, LevelWriteQueue, type LevelWriteQueueOptions, levelDbOlderLogPending } from './level-write-queue.js';
import { StorageError } from './storage-error.js';
import { SyncJournal } from './sync-journal.js';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

const put = (key: string, value: string | Buffer): BatchOp => ({ type: 'put', key: Buffer.from(key), value: Buffer.from(value) });
const MARKER_KEY = Buffer.from('marker');

/** A database, a journal beside it and a queue over both; the journal's resets are counted. */
async function setUp(options: Partial<LevelWriteQueueOptions> & { writeBufferSize?: number }) {
  const dir = mkdtempSync(join(tmpdir(), 'metastore-queue-'));
  const db = new ClassicLevel<Buffer, Buffer>(join(dir, 'db'), {
    keyEncoding: 'buffer',
    valueEncoding: 'buffer',
    writeBufferSize: options.writeBufferSize ?? 4 * 1024 * 1024,
  });
  await db.open();
  const { journal } = SyncJournal.open(join(dir, 'raft.journal'), { sizeBytes: 16 * 1024 * 1024 });
  cleanups.push(async () => {
    journal.close();
    await db.close();
    rmSync(dir, { recursive: true, force: true });
  });
  const resets: number[] = [];
  const resetListeners: (() => void)[] = [];
  const reset = journal.reset.bind(journal);
  journal.reset = () => {
    resets.push(journal.currentEpoch);
    reset();
    for (const listener of resetListeners.splice(0)) listener();
  };
  const queue = new LevelWriteQueue(db, {
    failed: (cause) => new StorageError('write', dir, String(cause)),
    journal,
    syncMarkerOp: () => {
      const value = Buffer.alloc(4);
      value.writeUInt32BE(journal.currentEpoch);
      return { type: 'put', key: MARKER_KEY, value };
    },
    ...options,
  });
  const nextReset = () => new Promise<void>((resolve) => resetListeners.push(resolve));
  return { dir: join(dir, 'db'), db, journal, queue, resets, nextReset };
}

/** A probe the test sets; `asked(n)` resolves once it has been asked n more times. */
function probe() {
  let pending = false;
  let waiters: { count: number; resolve: () => void }[] = [];
  return {
    set: (value: boolean) => {
      pending = value;
    },
    olderLogPending: () => {
      for (const waiter of waiters) waiter.count--;
      for (const waiter of waiters.filter((w) => w.count <= 0)) waiter.resolve();
      waiters = waiters.filter((w) => w.count > 0);
      return pending;
    },
    asked: (count: number) => new Promise<void>((resolve) => waiters.push({ count, resolve })),
  };
}

describe('LevelWriteQueue: the journal reset waits for LevelDB older log', () => {
  it('a checkpoint keeps the journal while an older log is pending; a checkpointed write waits, then goes once it is gone', async () => {
    const older = probe();
    const { db, journal, queue, resets } = await setUp({ olderLogPending: older.olderLogPending, checkpointIntervalMs: 60_000 });
    await queue.write([put('entry1', 'a')], { sync: true, journal: 'journaled' });
    expect(journal.empty).toBe(false);

    older.set(true);
    let compactionDone = false;
    // A checkpoint (synced, carrying the marker) goes first, then the checkpointed write.
    const compaction = queue.write([put('compacted', 'yes')], { sync: true, journal: 'checkpointed' }).then(() => {
      compactionDone = true;
    });
    // The checkpoint lands (asks the probe), then the checkpointed write polls it twice more.
    await older.asked(3);
    expect(resets).toEqual([]);
    expect(journal.empty).toBe(false);
    expect(compactionDone).toBe(false);
    expect(db.getSync(Buffer.from('compacted'))).toBeUndefined();
    // The journal still replays the entry: a power loss now loses nothing.
    expect(db.getSync(MARKER_KEY)?.readUInt32BE(0)).toBe(journal.currentEpoch);

    older.set(false);
    await compaction;
    // The checkpoint's reset (once the older log went), then the checkpointed write's own.
    expect(resets.length).toBe(2);
    expect(journal.empty).toBe(true);
    expect(db.getSync(Buffer.from('compacted'))?.toString()).toBe('yes');
    // The checkpointed write came after the first reset: it carries the epoch that reset began.
    expect(db.getSync(MARKER_KEY)?.readUInt32BE(0)).toBe(resets[1]);
  });

  it('a timed checkpoint is not taken while an older log is pending, and is retried', async () => {
    const older = probe();
    const { journal, queue, resets, nextReset } = await setUp({ olderLogPending: older.olderLogPending, checkpointIntervalMs: 5 });
    older.set(true);
    await queue.write([put('entry1', 'a')], { sync: true, journal: 'journaled' });
    // Two timer rounds asked and found the older log: nothing reset, the record kept.
    await older.asked(2);
    expect(resets).toEqual([]);
    expect(journal.empty).toBe(false);
    const reset = nextReset();
    older.set(false);
    await reset;
    expect(journal.empty).toBe(true);
  });

  it('drain waits for the older log before its final checkpoint, leaving the journal empty', async () => {
    const older = probe();
    const { journal, queue, resets } = await setUp({ olderLogPending: older.olderLogPending, checkpointIntervalMs: 60_000 });
    await queue.write([put('entry1', 'a')], { sync: true, journal: 'journaled' });
    older.set(true);
    let drained = false;
    const drain = queue.drain().then(() => {
      drained = true;
    });
    await older.asked(3);
    expect(drained).toBe(false);
    expect(resets).toEqual([]);
    older.set(false);
    await drain;
    expect(journal.empty).toBe(true);
  });

  it('with real LevelDB rotating its log under journaled writes, every journal reset finds one log in the directory', async () => {
    const { dir, db, journal, queue, resets } = await setUp({ writeBufferSize: 64 * 1024, checkpointIntervalMs: 1 });
    const logsAtReset: number[] = [];
    const logNumbers = new Set<string>();
    const countLogs = () => {
      const logs = readdirSync(dir).filter((name) => /^\d+\.log$/.test(name));
      for (const log of logs) logNumbers.add(log);
      return logs.length;
    };
    const reset = journal.reset.bind(journal);
    journal.reset = () => {
      logsAtReset.push(countLogs());
      reset();
    };
    const value = Buffer.alloc(1024, 'v');
    const writes: Promise<void>[] = [];
    for (let i = 0; i < 4000; i++) {
      const kind = i % 500 === 499 ? 'checkpointed' : 'journaled';
      writes.push(queue.write([put(`k${String(i).padStart(5, '0')}`, value)], { sync: i % 2 === 0, journal: kind }));
      // A few writes in flight at a time, as a busy member has.
      if (writes.length >= 8) await Promise.all(writes.splice(0));
    }
    await Promise.all(writes);
    await queue.drain();
    // 4 MiB through a 64 KiB memtable: LevelDB moved to a new log many times.
    expect(logNumbers.size).toBeGreaterThan(10);
    expect(resets.length).toBeGreaterThan(10);
    expect(logsAtReset.length).toBe(resets.length);
    expect(logsAtReset.filter((count) => count !== 1)).toEqual([]);
    expect(db.getSync(Buffer.from('k03999'))?.length).toBe(1024);
    expect(levelDbOlderLogPending(dir)).toBe(countLogs() > 1);
  });
});

describe('LevelWriteQueue: the LevelDB hand-off of an in-line journal record', () => {
  /** A queue whose database records each LevelDB batch it is handed in `events`. */
  async function withBatchesRecorded() {
    const { db, queue } = await setUp({ checkpointIntervalMs: 60_000 });
    const events: string[] = [];
    const batch = db.batch.bind(db);
    db.batch = ((...args: Parameters<typeof batch>) => {
      events.push('leveldb batch');
      return batch(...args);
    }) as typeof db.batch;
    return { db, queue, events };
  }

  it("a journaled write's waiters and their continuations run before its LevelDB write is handed over; it lands after", async () => {
    const { db, queue, events } = await withBatchesRecorded();
    let landed!: () => void;
    const landedAll = new Promise<void>((resolve) => {
      landed = resolve;
    });
    const written = queue.write([put('a', '1')], {
      sync: true,
      prompt: true,
      journal: 'journaled',
      landed: () => {
        events.push('landed');
        landed();
      },
    });
    // Continuations several promise hops deep (the Raft driver's, then the apply's) and a tick.
    void written
      .then(() => events.push('resolved'))
      .then(() => events.push('continuation'))
      .then(() => process.nextTick(() => events.push('tick')));
    await landedAll;
    expect(events).toEqual(['resolved', 'continuation', 'tick', 'leveldb batch', 'landed']);
    expect(db.getSync(Buffer.from('a'))?.toString()).toBe('1');
    // The next write goes only once this one has landed, in order.
    await queue.write([put('a', '2')], { sync: true, prompt: true, journal: 'journaled' });
    await queue.drain();
    expect(db.getSync(Buffer.from('a'))?.toString()).toBe('2');
  });

  it('an unsynced journal record (no event waits on it) is handed to LevelDB at once', async () => {
    const { db, queue, events } = await withBatchesRecorded();
    const written = queue.write([put('b', '1')], { sync: false, prompt: true, journal: 'journaled' });
    void written.then(() => events.push('resolved'));
    await written;
    expect(events).toEqual(['leveldb batch', 'resolved']);
    await queue.drain();
    expect(db.getSync(Buffer.from('b'))?.toString()).toBe('1');
  });
});
