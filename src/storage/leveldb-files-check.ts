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
// Known cost: after a power loss (not a process crash, which never tears the page cache) the
// unsynced tail of a log may hold a damaged record before intact ones; LevelDB would drop it
// (the Raft log replays unsynced apply batches), this check refuses the member instead, since
// the file alone cannot tell a torn unsynced record from damaged synced data.
// Table files (*.ldb, *.sst) are checked by LevelDB itself when read (the member reads every
// key space but the Raft log at start); Backend turns such a read failure into StorageError.

import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ClassicLevel } from 'classic-level';
import { crc32c } from '../util/crc32c.js';
import { StorageError, levelErrorDetail, type StorageFailureSink } from './storage-error.js';

const BLOCK_BYTES = 32768;
const HEADER_BYTES = 7;
const MASK_DELTA = 0xa282ead8;

const RecordType = { zero: 0, full: 1, first: 2, middle: 3, last: 4 } as const;

/** What is wrong with the directory's files (naming the file), or undefined if nothing found. */
export function checkLevelDbFiles(dir: string): string | undefined {
  const files = readdirSync(dir);
  const isDbFile = (name: string) => /^MANIFEST-\d+$/.test(name) || /^\d+\.(ldb|sst|log)$/.test(name);
  if (!files.includes('CURRENT')) {
    const present = files.filter(isDbFile);
    return present.length === 0 ? undefined : `${join(dir, 'CURRENT')} is missing (the database holds ${present.length} other files)`;
  }
  const current = readFileSync(join(dir, 'CURRENT'), 'latin1');
  const manifest = /^(MANIFEST-\d+)\n$/.exec(current)?.[1];
  if (manifest === undefined) return `${join(dir, 'CURRENT')} is damaged: it does not name a MANIFEST file`;
  if (!existsSync(join(dir, manifest))) return `${join(dir, manifest)}, named by CURRENT, is missing`;
  for (const name of [manifest, ...files.filter((f) => /^\d+\.log$/.test(f)).sort()]) {
    const problem = logFileProblem(readFileSync(join(dir, name)));
    if (problem !== undefined) return `${join(dir, name)} is damaged: ${problem}`;
  }
  return undefined;
}

/** LevelDB's stored checksum is masked (so a checksum of data holding checksums differs). */
function unmask(masked: number): number {
  const rotated = (masked - MASK_DELTA) >>> 0;
  return ((rotated >>> 17) | (rotated << 15)) >>> 0;
}

/** The first problem LevelDB's log reader would report for `data`, as its message says it. */
export function logFileProblem(data: Buffer): string | undefined {
  let inFragment = false;
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
      if (HEADER_BYTES + length > block.length - offset) {
        if (atEnd) return undefined; // a write cut short at the end of the file
        return `bad record length at offset ${at}`;
      }
      if (type === RecordType.zero && length === 0) break; // preallocated space: rest of block skipped
      const stored = unmask(block.readUInt32LE(offset));
      if (crc32c(block.subarray(offset + 6, offset + HEADER_BYTES + length)) !== stored) return `checksum mismatch at offset ${at}`;
      const problem = fragmentProblem(type, inFragment);
      if (problem !== undefined) return `${problem} at offset ${at}`;
      inFragment = type === RecordType.first || type === RecordType.middle;
      offset += HEADER_BYTES + length;
    }
  }
  return undefined;
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
 * Opens a LevelDB database after checkLevelDbFiles; a damaged MANIFEST or CURRENT also fails
 * LevelDB's own open, and whatever its info log says it skipped while opening (the second
 * line of defence behind the log check) is refused too. Failures are StorageError `damaged`.
 */
export async function openCheckedLevelDb(db: ClassicLevel<Buffer, Buffer>, dir: string, sink: StorageFailureSink | undefined): Promise<void> {
  const damage = existsSync(dir) ? checkLevelDbFiles(dir) : undefined;
  if (damage !== undefined) throw reportDamage(new StorageError('damaged', dir, damage), sink);
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
