import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { BatchOp } from './level-write-queue.js';
import { JournalDamagedError, SyncJournal } from './sync-journal.js';

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
    expect(journal.couldFit(bytes)).toBe(true);
    expect(journal.couldFit(256)).toBe(false);
    journal.reset();
    expect(journal.fits(bytes)).toBe(true);
    journal.close();
  });
});
