// A LevelDB log torn by a power loss after its last synced write is cut and the member opens;
// damage the witness cannot place after every synced write is refused, files untouched. The
// power loss is simulated as in sync-journal.test.ts: a copy of the data dir taken while the
// backend is open (LevelDB's log as the page cache held it, no final checkpoint) with a
// record of the newest log damaged, as pages written back out of order would leave it.

import { cpSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { EntryType, type Entry } from '../raft/types.js';
import { Backend, KeySpace, SYNC_MARKER_KEY, spaceKey } from './backend.js';
import { checkLevelDbFiles, lastValueOf, manifestFacts, readLog } from './leveldb-files-check.js';
import { crc32c } from '../util/crc32c.js';
import { RaftLogStore } from './raft-log-store.js';
import { StorageError } from './storage-error.js';
import { JOURNAL_FILE, type SyncJournal } from './sync-journal.js';

const dirs: string[] = [];
function dataDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'metastore-torn-log-'));
  dirs.push(dir);
  return dir;
}
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

const ent = (index: number, term: number): Entry => ({ index, term, type: EntryType.Normal, data: Buffer.from(`e${index}-${'x'.repeat(200)}`) });
const texts = (store: RaftLogStore): string[] =>
  store.entries(store.firstIndex(), store.lastIndex() + 1, Number.POSITIVE_INFINITY).map((e) => `${Buffer.from(e.data).toString().split('-')[0]}@${e.term}`);
const stateKey = (name: string) => spaceKey(KeySpace.mvcc, name);
const synced = (name: string) => spaceKey(KeySpace.members, name);

async function openLog(dir: string, logger?: Pick<Logger, 'warn'>) {
  // No timed checkpoint: the synced writes are the ones the test makes.
  const backend = await Backend.open(dir, { journalCheckpointMs: 60_000, logger });
  const store = await RaftLogStore.open(backend.level, KeySpace.raftLog, { writer: backend.raftLogWriter });
  // A journaled save resolves before its LevelDB write lands: an empty write waits for that.
  const landed = (): Promise<void> => backend.write([], { sync: false, prompt: true });
  return { backend, store, landed };
}

/** The newest *.log of a LevelDB directory. */
function newestLog(db: string): string {
  const logs = readdirSync(db)
    .filter((f) => /^\d+\.log$/.test(f))
    .sort((a, b) => Number.parseInt(a, 10) - Number.parseInt(b, 10));
  return join(db, logs[logs.length - 1] as string);
}

/** Every file of the directory and its bytes, to show a refusal changed nothing. */
function snapshotOf(db: string): Map<string, string> {
  return new Map(readdirSync(db).map((f) => [f, readFileSync(join(db, f)).toString('base64')]));
}

/** Flips four bytes inside the write batch of `record` (past its 7-byte header and 12-byte batch header). */
function damage(path: string, record: { offset: number; data: Buffer } | undefined): void {
  if (record === undefined || record.data.length < 20) throw new Error('no record to damage there');
  const at = record.offset + 7 + 12;
  const bytes = readFileSync(path);
  for (let i = 0; i < 4; i++) bytes[at + i] = (bytes[at + i] as number) ^ 0xff;
  writeFileSync(path, bytes);
}

/**
 * A member's writes, then a power loss: entries 1-4 and state a1-a4 written before a first
 * synced write S1, b1-b4 (entries 5-8) between S1 and a second synced write S2, c1-c6
 * (entries 9-14) after S2, none of them synced in LevelDB (the entries are in the journal).
 * Returns the copied data dir ("after the power loss") and the records of its newest log.
 */
async function powerLoss() {
  const dir = dataDir();
  const { backend, store, landed } = await openLog(dir);
  let index = 0;
  const phase = async (prefix: string, count: number) => {
    for (let i = 1; i <= count; i++) {
      index++;
      await store.save({ term: 1, vote: 0n, commit: index }, [ent(index, 1)], undefined, { sync: true });
      await landed();
      // An apply batch: its own LevelDB write, unsynced.
      await backend.write([{ type: 'put', key: stateKey(`${prefix}${i}`), value: Buffer.alloc(300, i) }], { sync: false, prompt: true });
    }
  };
  await phase('a', 4);
  await backend.write([{ type: 'put', key: synced('S1'), value: Buffer.from('s1') }], { sync: true });
  await phase('b', 4);
  await backend.write([{ type: 'put', key: synced('S2'), value: Buffer.from('s2') }], { sync: true });
  await phase('c', 6);
  // The disk after the power loss: LevelDB's log with its unsynced tail, the journal as synced.
  const lost = dataDir();
  cpSync(dir, lost, { recursive: true });
  await backend.close();
  const db = join(lost, 'db');
  const log = newestLog(db);
  const { records, damage: found } = readLog(readFileSync(log));
  expect(found).toBeUndefined();
  /** The index of the log record holding the op on `key`. */
  const recordOf = (key: Buffer): number => records.findIndex((r) => lastValueOf([r.data], key) !== undefined);
  return { lost, db, log, records, recordOf };
}

function captureWarnings(): { logger: Pick<Logger, 'warn'>; warnings: Array<{ fields: Record<string, unknown>; message: string }> } {
  const warnings: Array<{ fields: Record<string, unknown>; message: string }> = [];
  const logger = { warn: (fields: Record<string, unknown>, message: string) => warnings.push({ fields, message }) } as unknown as Pick<Logger, 'warn'>;
  return { logger, warnings };
}

async function refusal(dataDirPath: string): Promise<StorageError> {
  const thrown = await Backend.open(dataDirPath).then(
    async (backend) => {
      await backend.close();
      return undefined;
    },
    (error: unknown) => error,
  );
  expect(thrown).toBeInstanceOf(StorageError);
  expect((thrown as StorageError).kind).toBe('damaged');
  return thrown as StorageError;
}

describe('a LevelDB log torn by a power loss', () => {
  it('every synced write carries the sync marker, the journal epoch it ends, and the journal starts the next', async () => {
    const dir = dataDir();
    const { backend, store } = await openLog(dir);
    // Before the journal file exists a synced write carries no marker (nothing could witness it).
    await backend.write([{ type: 'put', key: synced('x'), value: Buffer.from('x') }], { sync: true });
    expect(backend.level.getSync(SYNC_MARKER_KEY)).toBeUndefined();
    await store.save({ term: 1, vote: 0n, commit: 1 }, [ent(1, 1)], undefined, { sync: true });
    for (let i = 0; i < 3; i++) {
      const epoch = (backend as unknown as { journal: SyncJournal }).journal.currentEpoch;
      await backend.write([{ type: 'put', key: synced('y'), value: Buffer.from([i]) }], { sync: true });
      expect(backend.level.getSync(SYNC_MARKER_KEY)?.readUInt32BE(0)).toBe(epoch);
      expect((backend as unknown as { journal: SyncJournal }).journal.currentEpoch).toBe(epoch + 1);
    }
    await backend.close();
  });

  it('damage after the last synced write: the log is cut there, one warning, the journal replays every entry, nothing before it is lost', async () => {
    const { lost, db, log, records, recordOf } = await powerLoss();
    const s2 = recordOf(synced('S2'));
    const c2 = recordOf(stateKey('c2'));
    const c3 = recordOf(stateKey('c3'));
    expect(s2).toBeGreaterThan(0);
    expect(c2).toBeGreaterThan(s2);
    expect(c3).toBeGreaterThan(c2);
    const cut = (records[c3] as { offset: number }).offset;
    // The record after c2's apply batch (entry 6's log write, or c3's batch), with intact records after it.
    const target = records[c2 + 1] as { offset: number; data: Buffer };
    expect(c2 + 1).toBeLessThan(records.length - 1);
    damage(log, records[c2 + 1]);
    const size = statSync(log).size;
    expect(checkLevelDbFiles(db)).toMatch(/checksum mismatch/);

    const { logger, warnings } = captureWarnings();
    const { backend, store } = await openLog(lost, logger);
    expect(warnings).toHaveLength(1);
    expect(warnings[0]?.fields).toMatchObject({ file: log, offset: target.offset, droppedBytes: size - target.offset });
    expect(warnings[0]?.message).toContain(log);
    expect(target.offset).toBeLessThanOrEqual(cut);
    // Every entry: those in the kept prefix and those the journal replayed.
    expect(texts(store)).toEqual(Array.from({ length: 14 }, (_, i) => `e${i + 1}@1`));
    // The state written before the damage is all there, the synced writes included.
    for (const key of ['a1', 'a4', 'b1', 'b4', 'c1', 'c2']) expect(backend.get(KeySpace.mvcc, key)?.length, key).toBe(300);
    expect(backend.get(KeySpace.members, 'S1')?.toString()).toBe('s1');
    expect(backend.get(KeySpace.members, 'S2')?.toString()).toBe('s2');
    // Cut, not skipped: the apply batches after the damage are gone (the member applies them again from its log).
    for (const key of ['c4', 'c5', 'c6']) expect(backend.get(KeySpace.mvcc, key), key).toBeUndefined();
    await backend.close();
    // A second start finds nothing to cut.
    const again = captureWarnings();
    const second = await openLog(lost, again.logger);
    expect(again.warnings).toEqual([]);
    expect(texts(second.store)).toHaveLength(14);
    await second.backend.close();
  });

  it('damage before the last synced write is refused (a synced write would be dropped), files untouched', async () => {
    const { lost, db, log, records, recordOf } = await powerLoss();
    const b2 = recordOf(stateKey('b2'));
    expect(b2).toBeLessThan(recordOf(synced('S2')));
    damage(log, records[b2]);
    const before = snapshotOf(db);
    const error = await refusal(lost);
    expect(error.detail).toContain(`${log} is damaged: checksum mismatch`);
    expect(error.detail).toMatch(/not a power loss's torn tail: what the logs keep before it ends with sync marker [0-9a-f]{8}/);
    expect(snapshotOf(db)).toEqual(before);
  });

  it('damage before any synced write of the log is refused: the logs keep no marker to witness with', async () => {
    const { lost, db, log, records, recordOf } = await powerLoss();
    const a2 = recordOf(stateKey('a2'));
    expect(a2).toBeLessThan(recordOf(synced('S1')));
    damage(log, records[a2]);
    const before = snapshotOf(db);
    const error = await refusal(lost);
    expect(error.detail).toMatch(/holds no sync marker/);
    expect(snapshotOf(db)).toEqual(before);
  });

  it('damage in an older log (LevelDB had moved on to a newer one) keeps the strict check', async () => {
    const { lost, db, log, records, recordOf } = await powerLoss();
    // The same torn tail as the accepted case, but in a log that is no longer the newest.
    damage(log, records[recordOf(stateKey('c2')) + 1]);
    const numbers = readdirSync(db)
      .map((f) => /^(?:MANIFEST-)?(\d+)(?:\.\w+)?$/.exec(f)?.[1])
      .filter((n) => n !== undefined)
      .map(Number);
    writeFileSync(join(db, `${String(Math.max(...numbers) + 1).padStart(6, '0')}.log`), '');
    const before = snapshotOf(db);
    const error = await refusal(lost);
    expect(error.detail).toBe(`${log} is damaged: checksum mismatch at offset ${(records[recordOf(stateKey('c2')) + 1] as { offset: number }).offset}`);
    expect(snapshotOf(db)).toEqual(before);
  });

  it('without the journal file there is no witness: the damaged log is refused as before', async () => {
    const { lost, db, log, records, recordOf } = await powerLoss();
    damage(log, records[recordOf(stateKey('c2')) + 1]);
    rmSync(join(lost, JOURNAL_FILE));
    const before = snapshotOf(db);
    const error = await refusal(lost);
    expect(error.detail).toMatch(/^\S+\.log is damaged: checksum mismatch at offset \d+$/);
    expect(snapshotOf(db)).toEqual(before);
  });
});

/**
 * The newest log split in two at a record boundary, as LevelDB leaves its logs when it moves to
 * a new one (a memtable filled): the records before `at` stay, the rest go to a new log with the
 * next file number. Both replay in order; the log is smaller than one 32 KiB block, so the
 * moved records need no re-blocking.
 */
function splitLog(db: string, log: string, at: number): string {
  const bytes = readFileSync(log);
  expect(bytes.length).toBeLessThan(32768);
  const numbers = readdirSync(db)
    .map((f) => /^(?:MANIFEST-)?(\d+)(?:\.\w+)?$/.exec(f)?.[1])
    .filter((n) => n !== undefined)
    .map(Number);
  const newer = join(db, `${String(Math.max(...numbers) + 1).padStart(6, '0')}.log`);
  writeFileSync(newer, bytes.subarray(at));
  writeFileSync(log, bytes.subarray(0, at));
  return newer;
}

describe('writes lost between two logs', () => {
  it('two logs that follow each other open as one; an older log cut short under a newer one is refused, files untouched', async () => {
    const { lost, db, log, records, recordOf } = await powerLoss();
    const intact = dataDir();
    cpSync(lost, intact, { recursive: true });
    const split = (records[recordOf(stateKey('c1'))] as { offset: number }).offset;
    splitLog(join(intact, 'db'), join(intact, 'db', log.slice(db.length + 1)), split);
    expect(checkLevelDbFiles(join(intact, 'db'))).toBeUndefined();
    const { backend, store } = await openLog(intact);
    expect(texts(store)).toHaveLength(14);
    for (const key of ['a1', 'b4', 'c1', 'c6']) expect(backend.get(KeySpace.mvcc, key)?.length, key).toBe(300);
    await backend.close();

    // A log below the MANIFEST's log number is in tables already and LevelDB skips it (a crash
    // kept it from being deleted): its sequence numbers are not compared.
    const stale = dataDir();
    cpSync(lost, stale, { recursive: true });
    writeFileSync(join(stale, 'db', '000001.log'), readFileSync(join(stale, 'db', log.slice(db.length + 1))).subarray(0, split));
    expect(checkLevelDbFiles(join(stale, 'db'))).toBeUndefined();

    // The older log's unsynced tail lost cleanly (the file cut short: nothing LevelDB reports),
    // while the newer log, with S2 and what follows, survived.
    const newer = splitLog(db, log, split);
    truncateSync(log, (records[recordOf(stateKey('b3'))] as { offset: number }).offset);
    // The MANIFEST names the log LevelDB replays from: the older one, so both are checked.
    const manifest = readdirSync(db).find((f) => f.startsWith('MANIFEST-')) as string;
    expect(manifestFacts(readLog(readFileSync(join(db, manifest))).records)?.logNumber).toBe(Number.parseInt(log.slice(db.length + 1), 10));
    const before = snapshotOf(db);
    const error = await refusal(lost);
    // The hole shows at the newer log's first batch; S2, the last synced write, was after it.
    expect(error.detail).toMatch(new RegExp(`^${newer} lost writes before offset 0: its write batch there has sequence \\d+, \\d+ follows ${log} offset \\d+`));
    expect(error.detail).toMatch(/not a power loss's torn tail/);
    expect(snapshotOf(db)).toEqual(before);
  });
});

/** The log without the bytes of records [from, to): a hole, as LevelDB skips one silently. */
function spliceOut(log: string, records: readonly { offset: number }[], from: number, to: number): void {
  const bytes = readFileSync(log);
  expect(bytes.length).toBeLessThan(32768);
  const start = (records[from] as { offset: number }).offset;
  const end = (records[to] as { offset: number }).offset;
  writeFileSync(log, Buffer.concat([bytes.subarray(0, start), bytes.subarray(end)]));
}

describe('a hole inside the newest log (records whose checksums hold, but writes missing before them)', () => {
  it('after the last synced write: cut where the hole is, the journal replays every entry', async () => {
    const { lost, db, log, records, recordOf } = await powerLoss();
    const c2 = recordOf(stateKey('c2'));
    const c4 = recordOf(stateKey('c4'));
    spliceOut(log, records, c2 + 1, c4);
    const hole = (records[c2 + 1] as { offset: number }).offset;
    expect(checkLevelDbFiles(db)).toMatch(new RegExp(`lost writes before offset ${hole}:`));
    const { logger, warnings } = captureWarnings();
    const { backend, store } = await openLog(lost, logger);
    expect(warnings.map((w) => w.fields.offset)).toEqual([hole]);
    expect(texts(store)).toEqual(Array.from({ length: 14 }, (_, i) => `e${i + 1}@1`));
    expect(backend.get(KeySpace.mvcc, 'c2')?.length).toBe(300);
    expect(backend.get(KeySpace.members, 'S2')?.toString()).toBe('s2');
    // Not the records after the hole: c4 was after it (applied again by the member from its log).
    expect(backend.get(KeySpace.mvcc, 'c4')).toBeUndefined();
    await backend.close();
  });

  it('before the last synced write: refused, files untouched', async () => {
    const { lost, db, log, records, recordOf } = await powerLoss();
    const b2 = recordOf(stateKey('b2'));
    spliceOut(log, records, b2, b2 + 1);
    const before = snapshotOf(db);
    const error = await refusal(lost);
    expect(error.detail).toMatch(/lost writes before offset \d+: .*not a power loss's torn tail/);
    expect(snapshotOf(db)).toEqual(before);
  });
});

/** A log-format physical record as LevelDB's writer lays it out: masked crc32c, length, type, payload. */
function physical(type: number, payload: Buffer): Buffer {
  const header = Buffer.alloc(7);
  const crc = crc32c(Buffer.concat([Buffer.from([type]), payload]));
  header.writeUInt32LE((((crc >>> 15) | (crc << 17)) + 0xa282ead8) >>> 0, 0);
  header.writeUInt16LE(payload.length, 4);
  header[6] = type;
  return Buffer.concat([header, payload]);
}

describe('readLog', () => {
  const full = physical(1, Buffer.from('a'.repeat(30)));
  const first = physical(2, Buffer.from('b'.repeat(30)));
  const middle = physical(3, Buffer.from('c'.repeat(30)));
  const last = physical(4, Buffer.from('d'.repeat(30)));
  const after = physical(1, Buffer.from('e'.repeat(30)));

  it('joins a fragmented record and gives each logical record the offset of its first fragment', () => {
    const { records, damage: found } = readLog(Buffer.concat([full, first, middle, last, after]));
    expect(found).toBeUndefined();
    expect(records.map((r) => [r.offset, r.data.toString()])).toEqual([
      [0, 'a'.repeat(30)],
      [37, `${'b'.repeat(30)}${'c'.repeat(30)}${'d'.repeat(30)}`],
      [148, 'e'.repeat(30)],
    ]);
  });

  it('damage inside a fragmented record is cut where the record starts, not at the damaged fragment', () => {
    const log = Buffer.concat([full, first, middle, last, after]);
    log[74 + 10] = (log[74 + 10] as number) ^ 0xff;
    const { records, damage: found } = readLog(log);
    expect(found).toEqual({ problem: 'checksum mismatch at offset 74', at: 74, cut: 37 });
    expect(records.map((r) => r.offset)).toEqual([0]);
  });

  it('a fragment without its start is damage at that fragment', () => {
    const { damage: found } = readLog(Buffer.concat([full, middle, last, after]));
    expect(found).toEqual({ problem: 'missing start of fragmented record at offset 37', at: 37, cut: 37 });
  });
});
