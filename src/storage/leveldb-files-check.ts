// Checks of a LevelDB directory made before it is opened, because opening it can destroy the
// evidence: without paranoid checks (which classic-level cannot turn on) LevelDB skips a
// damaged record of its write-ahead log, converts the rest into a table and deletes the log,
// so the writes in the skipped part are gone without an error. A missing CURRENT makes it
// create an empty database and delete the old files. So, before opening:
// - CURRENT must exist when any other database file does, and name a MANIFEST that exists;
// - every log-format file (the *.log write-ahead logs and the MANIFEST) must read as LevelDB's
//   reader would read it without complaint: checksums, record lengths, fragment order. A
//   record cut short at the very end of a file is a write that never finished (a crash, a
//   full disk): LevelDB ignores it silently and so do we.
//
// One exception: the newest *.log torn by a power loss after its last synced write. A power
// loss (not a process crash, which never tears the page cache) may leave the unsynced tail of
// the newest log with a damaged record before intact ones (pages written back out of order).
// When a witness (below) shows that every synced write is before the damage, the log is cut
// at the start of the damaged logical record (LevelDB then reads a clean prefix; a file ending
// there is what it reads without complaint) and the database opens; otherwise the member is
// refused as for any other damage. Why the kept prefix loses nothing acknowledged:
// - LevelDB syncs a write by fdatasync of the log it appends to, so every byte of that file up
//   to the end of a synced write is durable: a power loss can only damage what follows the
//   last synced write of the file.
// - What follows it is unsynced: the Raft log's journaled writes (in the sync journal, which
//   replays them at open over any prefix of LevelDB's writes) and apply batches (each carries
//   the applied index of the entries it applies, so a dropped one is applied again from the
//   Raft log, whose entries up to it were written before it).
// - The witness: while the database has a sync journal file, EVERY synced write carries the
//   marker key (Backend's SYNC_MARKER_KEY) with the journal's current epoch, and once it has
//   landed the journal starts the next epoch (level-write-queue.ts, Backend's open) before any
//   later write is issued. So if the journal's epoch is J, the last synced write that landed put
//   J-1 (or J, when the power went before the journal's reset was durable). The check parses
//   LevelDB's write batches from the logs' bytes (8-byte sequence, 4-byte count, then records
//   [type, varint-length key, varint-length value]) up to the damage and takes the marker's
//   last value: J-1 or J means that synced write, and so every synced write, is kept. Anything
//   else (lower: a synced write was in the dropped part, which only damage to synced data
//   explains; no marker in the logs at all: it is in the tables, which are not read before
//   opening) refuses the member, files untouched: nothing is changed before the decision.
// - Skipped resets (level-write-queue.ts: a checkpoint resets the journal only once LevelDB's
//   older log is gone) let several synced writes carry the same epoch J: the one whose reset
//   was skipped and every synced write until a reset lands. A power loss's tear is still cut
//   soundly: it follows the newest log's last synced write whatever the markers say (above),
//   and what the cut drops is unsynced. What weakens is the telling of a tear from other
//   damage: an accepted value proves the FIRST synced write that carried it kept, not the
//   last, so damage to synced bytes between two same-epoch synced writes of the newest log
//   would be cut, not refused (the later ones' non-journaled ops, and, if the journal was
//   reset after them, their journaled ones too, would be lost). The witness never vouched
//   for everything: accepting J-1 already could not tell a lost synced write carrying J (its
//   reset not reached) from none; skipped resets widen that from one synced write to those
//   since the first one that carried J-1. Such duplicates are rare:
//   only while a memtable compaction is pending after a synced write that found an older log,
//   and the queue issues no timed checkpoint then; refusing that case too would need a
//   durable per-synced-write witness (e.g. a journal record naming the marker), not built.
// - Older *.log files and the MANIFEST keep the strict check, and so does a database opened
//   without a witness: the --wal-dir database (its log has a sync journal too, but no witness is
//   built for it yet, so a torn tail there is refused), a data dir whose log is in a wal dir,
//   and one whose journal was never created.
// Known gap: just after LevelDB switched to a new log (a memtable filled), the newest log holds
// no marker until the next synced write (a checkpoint, at most 100 ms after the next journal
// record): a power loss that tears it then is refused, as before.
//
// Also checked: the write batches of the logs LevelDB will replay follow each other without a
// gap in its sequence numbers (each batch starts with its sequence number and op count; the
// first may not start past the MANIFEST's last sequence + 1). A gap is a hole LevelDB would
// skip silently: zeroes where a page of the unsynced tail was never written back (LevelDB
// skips the rest of that block and reads on), or an older log's unsynced tail cut cleanly
// while a synced write in the next log survived (LevelDB 1.20 does not sync a log when it
// moves to a new one; the old one is durable only once its memtable's table and the MANIFEST
// are). A gap counts as damage at the batch after it: in the newest log with the witness's
// consent it is cut there, else refused. The write queue no longer lets a checkpoint reset
// the journal while an older log is pending (level-write-queue.ts), so the Raft log writes
// of an old log's lost tail are still in the journal: the gap is then cut in the newest log
// when the witness agrees (the journal replays what the cut drops, apply batches are applied
// again), or refused as before when the logs hold no fitting marker; never opened silently.
// Table files (*.ldb, *.sst) are checked by LevelDB itself when read (the member reads every
// key space but the Raft log at start); Backend turns such a read failure into StorageError.

import { closeSync, existsSync, fsyncSync, ftruncateSync, openSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ClassicLevel } from 'classic-level';
import type { Logger } from 'pino';
import { crc32c } from '../util/crc32c.js';
import { StorageError, levelErrorDetail, type StorageFailureSink } from './storage-error.js';

const BLOCK_BYTES = 32768;
const HEADER_BYTES = 7;
const MASK_DELTA = 0xa282ead8;

const RecordType = { zero: 0, full: 1, first: 2, middle: 3, last: 4 } as const;

/**
 * What lets the newest *.log's damaged tail be cut off (see the header): the key every synced
 * write of the database puts, and whether a value of it, the last one the logs hold before the
 * damage, shows that the last synced write is kept.
 */
export interface TornTailWitness {
  markerKey: Buffer;
  keeps(value: Buffer): boolean;
  /** What the journal says the last synced write put, for a refusal's message. */
  expected: string;
}

/** What the check found: nothing wrong, damage (refused), or a torn tail to cut off. */
export type LevelDbFilesVerdict =
  | { kind: 'ok' }
  | { kind: 'damaged'; detail: string }
  | { kind: 'torn-tail'; file: string; offset: number; droppedBytes: number; problem: string };

/** What is wrong with the directory's files (naming the file), or undefined if nothing found. */
export function checkLevelDbFiles(dir: string): string | undefined {
  const verdict = inspectLevelDbFiles(dir, undefined);
  return verdict.kind === 'damaged' ? verdict.detail : undefined;
}

/**
 * The strict check, except that with a witness a damaged newest *.log whose every synced write
 * is before the damage is a torn tail (nothing is changed here: the caller cuts it).
 */
export function inspectLevelDbFiles(dir: string, witness: TornTailWitness | undefined): LevelDbFilesVerdict {
  const files = readdirSync(dir);
  const isDbFile = (name: string) => /^MANIFEST-\d+$/.test(name) || /^\d+\.(ldb|sst|log)$/.test(name);
  const damaged = (detail: string): LevelDbFilesVerdict => ({ kind: 'damaged', detail });
  if (!files.includes('CURRENT')) {
    const present = files.filter(isDbFile);
    return present.length === 0 ? { kind: 'ok' } : damaged(`${join(dir, 'CURRENT')} is missing (the database holds ${present.length} other files)`);
  }
  const current = readFileSync(join(dir, 'CURRENT'), 'latin1');
  const manifest = /^(MANIFEST-\d+)\n$/.exec(current)?.[1];
  if (manifest === undefined) return damaged(`${join(dir, 'CURRENT')} is damaged: it does not name a MANIFEST file`);
  if (!existsSync(join(dir, manifest))) return damaged(`${join(dir, manifest)}, named by CURRENT, is missing`);
  const manifestLog = readLog(readFileSync(join(dir, manifest)));
  const manifestProblem = manifestLog.damage;
  if (manifestProblem !== undefined) return damaged(`${join(dir, manifest)} is damaged: ${manifestProblem.problem}`);
  // LevelDB replays its logs in file-number order: the last one is the one it was writing.
  const logs = files.filter((f) => /^\d+\.log$/.test(f)).sort((a, b) => Number.parseInt(a, 10) - Number.parseInt(b, 10));
  const records: Buffer[] = [];
  const facts = manifestFacts(manifestLog.records);
  const firstReplayed = facts?.logNumber ?? 0;
  // The sequence number the next write batch LevelDB replays must have: a log cannot start
  // past the MANIFEST's last sequence + 1 (no table holds what follows it), and each batch
  // must follow the one before it exactly, across the logs too.
  let expected: { seq: bigint; exact: boolean; after: string } | undefined =
    facts?.lastSequence === undefined ? undefined : { seq: facts.lastSequence + 1n, exact: false, after: `${manifest}'s last sequence` };
  for (const [i, name] of logs.entries()) {
    const path = join(dir, name);
    const data = readFileSync(path);
    const read = readLog(data);
    const cuttable = witness !== undefined && i === logs.length - 1;
    let problem =
      read.damage === undefined ? undefined : { what: read.damage.problem, detail: `${path} is damaged: ${read.damage.problem}`, cut: read.damage.cut };
    if (problem !== undefined && !cuttable) return damaged(problem.detail);
    // A log below the MANIFEST's log number is in tables already (LevelDB skips it; a crash
    // kept it from being deleted): only the logs LevelDB replays must follow each other.
    const replayed = Number.parseInt(name, 10) >= firstReplayed;
    for (const record of read.records) {
      if (problem !== undefined && record.offset >= problem.cut) break;
      if (replayed && record.data.length >= 12) {
        const seq = record.data.readBigUInt64LE(0);
        if (expected !== undefined && (expected.exact ? seq !== expected.seq : seq > expected.seq)) {
          const what =
            `lost writes before offset ${record.offset}: its write batch there has sequence ${seq}, ` +
            `${expected.exact ? '' : 'at most '}${expected.seq} follows ${expected.after} (a hole LevelDB would skip silently)`;
          problem = { what, detail: `${path} ${what}`, cut: record.offset };
          if (!cuttable) return damaged(problem.detail);
          break;
        }
        expected = { seq: seq + BigInt(record.data.readUInt32LE(8)), exact: true, after: `${path} offset ${record.offset}` };
      }
      records.push(record.data);
    }
    if (problem === undefined || witness === undefined) continue;
    let marker: Buffer | undefined;
    try {
      marker = lastValueOf(records, witness.markerKey);
    } catch (error) {
      return damaged(`${path} is damaged: ${(error as Error).message}`);
    }
    if (marker === undefined || !witness.keeps(marker)) {
      const found = marker === undefined ? 'holds no sync marker' : `ends with sync marker ${marker.toString('hex')}`;
      return damaged(`${problem.detail} (not a power loss's torn tail: what the logs keep before it ${found}, the sync journal expects ${witness.expected})`);
    }
    return { kind: 'torn-tail', file: path, offset: problem.cut, droppedBytes: data.length - problem.cut, problem: problem.what };
  }
  return { kind: 'ok' };
}

/**
 * The log number the MANIFEST's version edits set last (LevelDB replays the logs from it on)
 * and the last sequence number they record, or undefined when an edit does not parse as one
 * (then every log is checked, from any sequence on). An edit is a
 * list of varint32 tags with their fields: 1 comparator (length-prefixed), 2 log number,
 * 3 next file number, 4 last sequence, 9 previous log number (varint64 each), 5 compaction
 * pointer (level, length-prefixed key), 6 deleted file (level, number), 7 new file (level,
 * number, size, two length-prefixed keys).
 */
export function manifestFacts(edits: readonly LogRecord[]): { logNumber?: number; lastSequence?: bigint } | undefined {
  let logNumber: number | undefined;
  let lastSequence: bigint | undefined;
  for (const { data } of edits) {
    let at = 0;
    const varint = (): number => {
      const [value, next] = readVarint(data, at);
      at = next;
      return value;
    };
    const skipSlice = (): void => {
      const length = varint();
      at += length;
      if (at > data.length) throw new RangeError('bad slice');
    };
    try {
      while (at < data.length) {
        const tag = varint();
        if (tag === 2) logNumber = varint();
        else if (tag === 4) lastSequence = BigInt(varint());
        else if (tag === 3 || tag === 9) varint();
        else if (tag === 1) skipSlice();
        else if (tag === 5) {
          varint();
          skipSlice();
        } else if (tag === 6) {
          varint();
          varint();
        } else if (tag === 7) {
          varint();
          varint();
          varint();
          skipSlice();
          skipSlice();
        } else return undefined;
      }
    } catch {
      return undefined;
    }
  }
  return { logNumber, lastSequence };
}

/** LevelDB's varint (7 bits a byte, low first) at `at` in `data`: its value and the offset after it. */
function readVarint(data: Buffer, at: number): [value: number, next: number] {
  let value = 0;
  for (let scale = 1; ; scale *= 128) {
    const byte = data[at++];
    if (byte === undefined || scale > 2 ** 49) throw new RangeError('bad varint');
    value += (byte & 0x7f) * scale;
    if (byte < 0x80) return [value, at];
  }
}

/** LevelDB's stored checksum is masked (so a checksum of data holding checksums differs). */
function unmask(masked: number): number {
  const rotated = (masked - MASK_DELTA) >>> 0;
  return ((rotated >>> 17) | (rotated << 15)) >>> 0;
}

/** The first problem LevelDB's log reader would report for `data`, as its message says it. */
export function logFileProblem(data: Buffer): string | undefined {
  return readLog(data).damage?.problem;
}

/** One logical record of a log file (its fragments joined) and where its first fragment starts. */
export interface LogRecord {
  offset: number;
  data: Buffer;
}

/**
 * The logical records of a log file as LevelDB's reader reads them, up to the first problem it
 * would report: the problem (as its message says it), the physical record's offset, and `cut`,
 * where the logical record holding it starts (a fragmented record's first fragment).
 */
export function readLog(data: Buffer): { records: LogRecord[]; damage?: { problem: string; at: number; cut: number } } {
  const records: LogRecord[] = [];
  let fragments: Buffer[] = [];
  let fragmentStart = -1;
  for (let blockStart = 0; blockStart < data.length; blockStart += BLOCK_BYTES) {
    const block = data.subarray(blockStart, blockStart + BLOCK_BYTES);
    // LevelDB knows it is at the end of the file once a read returns less than a block.
    const atEnd = block.length < BLOCK_BYTES;
    let offset = 0;
    // Fewer than HEADER_BYTES left in a block is padding.
    while (block.length - offset >= HEADER_BYTES) {
      const length = block.readUInt16LE(offset + 4);
      const type = block[offset + 6] as number;
      const at = blockStart + offset;
      const damage = (problem: string) => ({ records, damage: { problem: `${problem} at offset ${at}`, at, cut: fragmentStart >= 0 ? fragmentStart : at } });
      if (HEADER_BYTES + length > block.length - offset) {
        if (atEnd) return { records }; // a write cut short at the end of the file
        return damage('bad record length');
      }
      if (type === RecordType.zero && length === 0) break; // preallocated space: rest of block skipped
      const stored = unmask(block.readUInt32LE(offset));
      if (crc32c(block.subarray(offset + 6, offset + HEADER_BYTES + length)) !== stored) return damage('checksum mismatch');
      const problem = fragmentProblem(type, fragmentStart >= 0);
      if (problem !== undefined) return damage(problem);
      const payload = block.subarray(offset + HEADER_BYTES, offset + HEADER_BYTES + length);
      if (type === RecordType.full) {
        records.push({ offset: at, data: payload });
      } else if (type === RecordType.first) {
        fragments = [payload];
        fragmentStart = at;
      } else {
        fragments.push(payload);
        if (type === RecordType.last) {
          records.push({ offset: fragmentStart, data: Buffer.concat(fragments) });
          fragments = [];
          fragmentStart = -1;
        }
      }
      offset += HEADER_BYTES + length;
    }
  }
  return { records };
}

/**
 * The value the last put of `key` in these write batches (LevelDB's WriteBatch: 8-byte
 * sequence, 4-byte count, then per op a type byte, 1 = put or 0 = delete, a varint-length key
 * and, for a put, a varint-length value) gives it; undefined when none puts it or the last
 * op on it deletes it. A batch that does not parse is damage LevelDB would report too.
 */
export function lastValueOf(batches: readonly Buffer[], key: Buffer): Buffer | undefined {
  let value: Buffer | undefined;
  for (const batch of batches) {
    let at = 12;
    const slice = (): Buffer => {
      let length: number;
      try {
        [length, at] = readVarint(batch, at);
      } catch {
        throw new Error('a LevelDB write batch does not parse');
      }
      if (at + length > batch.length) throw new Error('a LevelDB write batch does not parse');
      at += length;
      return batch.subarray(at - length, at);
    };
    while (at < batch.length) {
      const type = batch[at++];
      const k = slice();
      if (type === 1) {
        const v = slice();
        if (k.equals(key)) value = v;
      } else if (type === 0) {
        if (k.equals(key)) value = undefined;
      } else {
        throw new Error('a LevelDB write batch does not parse');
      }
    }
  }
  return value;
}

function fragmentProblem(type: number, inFragment: boolean): string | undefined {
  switch (type) {
    case RecordType.full:
    case RecordType.first:
      return inFragment ? 'partial record without end' : undefined;
    case RecordType.middle:
    case RecordType.last:
      return inFragment ? undefined : 'missing start of fragmented record';
    default:
      return `unknown record type ${type}`;
  }
}

/**
 * What LevelDB's info log (`LOG`, started afresh by each open) says it skipped while opening:
 * its "(ignoring error) ... dropping N bytes; Corruption: ..." lines.
 */
export function damageReportedByLevelDb(dir: string): string | undefined {
  const path = join(dir, 'LOG');
  if (!existsSync(path)) return undefined;
  const line = readFileSync(path, 'utf8')
    .split('\n')
    .find((l) => l.includes('(ignoring error)'));
  if (line === undefined) return undefined;
  return `LevelDB skipped damaged data while opening: ${line.slice(line.indexOf('(ignoring error)') + '(ignoring error) '.length)}`;
}

function reportDamage(error: StorageError, sink: StorageFailureSink | undefined): StorageError {
  sink?.(error);
  return error;
}

/**
 * Opens a LevelDB database after inspectLevelDbFiles (a torn tail the witness vouches for is
 * cut off first, with one warning); a damaged MANIFEST or CURRENT also fails LevelDB's own
 * open, and whatever its info log says it skipped while opening (the second line of defence
 * behind the log check) is refused too. Failures are StorageError `damaged`.
 */
export async function openCheckedLevelDb(
  db: ClassicLevel<Buffer, Buffer>,
  dir: string,
  sink: StorageFailureSink | undefined,
  options: { witness?: TornTailWitness; logger?: Pick<Logger, 'warn'> } = {},
): Promise<void> {
  const verdict = existsSync(dir) ? inspectLevelDbFiles(dir, options.witness) : ({ kind: 'ok' } as const);
  if (verdict.kind === 'damaged') throw reportDamage(new StorageError('damaged', dir, verdict.detail), sink);
  if (verdict.kind === 'torn-tail') {
    cutLog(verdict.file, verdict.offset);
    options.logger?.warn(
      { file: verdict.file, offset: verdict.offset, droppedBytes: verdict.droppedBytes, problem: verdict.problem },
      `LevelDB log ${verdict.file} was torn after its last synced write (a power loss): cut at offset ${verdict.offset}, ` +
        `${verdict.droppedBytes} unsynced bytes dropped (the sync journal and the Raft log restore what they held)`,
    );
  }
  try {
    await db.open();
  } catch (error) {
    const code = (error as { cause?: { code?: unknown } }).cause?.code;
    if (code !== 'LEVEL_CORRUPTION') throw error;
    throw reportDamage(new StorageError('damaged', dir, levelErrorDetail(error)), sink);
  }
  const dropped = damageReportedByLevelDb(dir);
  if (dropped !== undefined) {
    await db.close();
    throw reportDamage(new StorageError('damaged', dir, dropped), sink);
  }
}

/** Cuts the log file at `offset` and makes the cut durable before LevelDB reads the file. */
function cutLog(path: string, offset: number): void {
  const fd = openSync(path, 'r+');
  try {
    ftruncateSync(fd, offset);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}
