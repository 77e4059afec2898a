// A redo journal that makes the Raft log's writes durable without syncing LevelDB. The log
// stays in LevelDB (every read path is unchanged); its frequent writes (a Ready's entries and
// hard state) go to LevelDB unsynced and, in the same order, to this journal, which is
// fdatasync'd before the write counts as done. Every record is written in-line on the main
// thread (a copy into the page cache); its fdatasync is in-line too for a small record (a lone
// put's), on libuv's pool for a large one (level-write-queue.ts). A synced LevelDB write of a growing log file costs a
// pool-thread hand-off and a metadata-journaling fsync; an append to a preallocated file
// costs one write and one fdatasync that has no size change to record (bench/RESULTS.md,
// "a sync journal for the Raft log's writes").
//
// File: a preallocated, zero-filled file (default 64 MiB) of back-to-back records
//   [magic u32 | epoch u32 | length u32 | crc32 u32 of (epoch, length, payload)] [payload]
// (crc32: zlib's IEEE CRC-32, native since Node 20.15, hence package.json's engines; it is the
// same on every Node version, so a journal written by one replays under another)
// An epoch-start record (its own magic, no payload) at offset 0 begins each epoch; the epoch's
// records follow it. The payload is the encoded LevelDB ops, in order:
//   put: 0x01 | key length u32 | key | value length u32 | value        del: 0x02 | key length u32 | key
//
// Invariant (the reason this is safe): every write to the Raft log's key space since the last
// checkpoint is in the journal, in order, or else is a checkpointed synced LevelDB write. A
// checkpoint is a synced LevelDB write that has landed (LevelDB then holds everything written
// before it durably), followed by `reset()`, which starts a new epoch and so disowns every
// record of the old one. LevelDB loses at most a suffix of its unsynced writes on power loss
// (it hands each write to the kernel before it lands, so kill -9 loses nothing); replaying the
// journal's blind put/del ops in order over any prefix state gives the state after all of them.
//
// Replay (at open) reads from offset 0: the epoch-start record's epoch, then that epoch's
// records while their CRC holds, stopping at the first that does not (a torn tail, the zeroes
// of a fresh file, or a stale record of an older, longer epoch behind a shorter new one).
// A damaged epoch-start record is refused as a damaged file: a 16-byte write at the start of
// a sector is not torn by a power loss, so only damage explains it.
//
// The file is created in full (zero-filled, synced, renamed into place, directory synced) by
// prepare(), which a member calls at start where its Raft log lives (or else the first append
// does), so a database that never holds a log (a backend used with a wal dir, a tool's) never
// carries one.

import { closeSync, existsSync, fdatasync, fdatasyncSync, fsyncSync, openSync, readSync, renameSync, statfsSync, unlinkSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';
import { crc32 } from 'node:zlib';
import { assert } from '../util/assert.js';

/** One op of a LevelDB batch: what the write queue writes and what a journal record holds. */
export type BatchOp = { type: 'put'; key: Buffer; value: Buffer } | { type: 'del'; key: Buffer };

export const JOURNAL_FILE = 'raft.journal';
/** The default size of the journal file: how much log may be written between two checkpoints. */
export const DEFAULT_JOURNAL_BYTES = 64 * 1024 * 1024;

/** The smallest journal a small disk gets (see create()). */
const MIN_JOURNAL_BYTES = 1024 * 1024;
const HEADER_BYTES = 16;
const MAGIC_START = 0x4d534a53; // 'MSJS'
const MAGIC_RECORD = 0x4d534a52; // 'MSJR'
const OP_PUT = 0x01;
const OP_DEL = 0x02;

/** A journal file that cannot be read as one (damaged): the caller's storage failure. */
export class JournalDamagedError extends Error {
  override name = 'JournalDamagedError';
}

export class SyncJournal {
  private fd: number | undefined;
  /** Where the next record goes (just past the epoch-start record after a reset). */
  private position = HEADER_BYTES;
  private readonly header = Buffer.alloc(HEADER_BYTES);

  private constructor(
    readonly path: string,
    /** The file's size: records never pass it. */
    private sizeBytes: number,
    private epoch: number,
    fd: number | undefined,
  ) {
    this.fd = fd;
  }

  /**
   * Opens the journal at `path` and returns the ops to replay (the current epoch's valid
   * records, in order; empty for a missing file). The caller writes them to LevelDB synced,
   * then calls `reset()`. A half-created file (`.tmp`) from a crash is removed.
   */
  static open(path: string, options: { sizeBytes?: number } = {}): { journal: SyncJournal; replay: BatchOp[] } {
    const sizeBytes = options.sizeBytes ?? DEFAULT_JOURNAL_BYTES;
    assert(sizeBytes >= 4 * HEADER_BYTES && Number.isSafeInteger(sizeBytes), `bad journal size ${sizeBytes}`);
    if (existsSync(`${path}.tmp`)) unlinkSync(`${path}.tmp`);
    if (!existsSync(path)) return { journal: new SyncJournal(path, sizeBytes, 1, undefined), replay: [] };
    const fd = openSync(path, 'r+');
    try {
      const { epoch, replay, fileBytes } = readJournal(fd, path);
      return { journal: new SyncJournal(path, fileBytes, epoch, fd), replay };
    } catch (error) {
      closeSync(fd);
      throw error;
    }
  }

  /** Bytes the record of `ops` takes. */
  static recordBytes(ops: readonly BatchOp[]): number {
    let bytes = HEADER_BYTES;
    for (const op of ops) bytes += op.type === 'put' ? 9 + op.key.length + op.value.length : 5 + op.key.length;
    return bytes;
  }

  /** Whether a record of `bytes` fits in the room left before the next checkpoint. */
  fits(bytes: number): boolean {
    return this.position + bytes <= this.sizeBytes;
  }

  /** Creates the file if it is not there yet (its size is then known: see create()). */
  prepare(): void {
    if (this.fd === undefined) this.create();
  }

  /** No record since the last reset (or ever): a checkpoint would change nothing. */
  get empty(): boolean {
    return this.position === HEADER_BYTES;
  }

  get currentEpoch(): number {
    return this.epoch;
  }

  /**
   * Writes one record of `ops` at the write position, and fdatasyncs the file when `sync`
   * (then it and every record before it are durable). The record must fit (see fits()).
   * Throws the file system's error (ENOSPC, EIO): the caller's storage failure.
   */
  append(ops: readonly BatchOp[], sync: boolean): void {
    const { fd, record, at } = this.take(ops);
    writeAll(fd, record, at);
    if (sync) fdatasyncSync(fd);
  }

  /**
   * append() with its fdatasync on libuv's pool: the record is written here, in-line (a copy
   * into the page cache, which throws the file system's error at once, as append() does), and
   * only the fdatasync, when `sync`, goes to the pool while the main thread goes on: one pool
   * job per record. Resolves once the record is durable (at once when not `sync`). No other
   * append, reset or close may come before it settles (the write queue issues one write at a time).
   */
  appendAsync(ops: readonly BatchOp[], sync: boolean): Promise<void> {
    const { fd, record, at } = this.take(ops);
    writeAll(fd, record, at);
    if (!sync) return Promise.resolve();
    return new Promise((resolve, reject) => fdatasync(fd, (error) => (error ? reject(error) : resolve())));
  }

  /** Encodes the record of `ops` and reserves its place; the file is created if need be. */
  private take(ops: readonly BatchOp[]): { fd: number; record: Buffer; at: number } {
    const bytes = SyncJournal.recordBytes(ops);
    assert(this.fits(bytes), `journal record of ${bytes} bytes does not fit at ${this.position} of ${this.sizeBytes}`);
    const fd = this.fd ?? this.create();
    const record = Buffer.allocUnsafe(bytes);
    let off = HEADER_BYTES;
    for (const op of ops) {
      record[off] = op.type === 'put' ? OP_PUT : OP_DEL;
      record.writeUInt32BE(op.key.length, off + 1);
      off += 5 + op.key.copy(record, off + 5);
      if (op.type === 'put') {
        record.writeUInt32BE(op.value.length, off);
        off += 4 + op.value.copy(record, off + 4);
      }
    }
    fillHeader(record, MAGIC_RECORD, this.epoch, bytes - HEADER_BYTES);
    const at = this.position;
    this.position += bytes;
    return { fd, record, at };
  }

  /**
   * Begins a new epoch: an epoch-start record at offset 0, fdatasync'd. Only after a synced
   * LevelDB write has landed (a checkpoint): the old epoch's records are disowned by it.
   */
  reset(): void {
    if (this.fd === undefined) return;
    this.epoch = (this.epoch + 1) >>> 0 || 1;
    fillHeader(this.header, MAGIC_START, this.epoch, 0);
    writeAll(this.fd, this.header, 0);
    fdatasyncSync(this.fd);
    this.position = HEADER_BYTES;
  }

  close(): void {
    if (this.fd === undefined) return;
    closeSync(this.fd);
    this.fd = undefined;
  }

  /**
   * Creates the file in full: zero-filled, its first epoch started, synced, renamed in place.
   * It takes at most a quarter of the free space (never less than MIN_JOURNAL_BYTES): a small
   * disk gets a smaller journal, and so more checkpoints, rather than a member that cannot start.
   */
  private create(): number {
    const { bavail, bsize } = statfsSync(dirname(this.path));
    this.sizeBytes = Math.max(Math.min(this.sizeBytes, Math.floor((bavail * bsize) / 4)), Math.min(this.sizeBytes, MIN_JOURNAL_BYTES));
    const tmp = `${this.path}.tmp`;
    const fd = openSync(tmp, 'w+', 0o600);
    try {
      const zeroes = Buffer.alloc(Math.min(this.sizeBytes, 1024 * 1024));
      for (let at = 0; at < this.sizeBytes; at += zeroes.length) writeAll(fd, zeroes.subarray(0, Math.min(zeroes.length, this.sizeBytes - at)), at);
      fillHeader(this.header, MAGIC_START, this.epoch, 0);
      writeAll(fd, this.header, 0);
      fsyncSync(fd);
      renameSync(tmp, this.path);
      syncDir(dirname(this.path));
    } catch (error) {
      closeSync(fd);
      throw error;
    }
    this.fd = fd;
    return fd;
  }
}

function fillHeader(buf: Buffer, magic: number, epoch: number, length: number): void {
  buf.writeUInt32BE(magic, 0);
  buf.writeUInt32BE(epoch, 4);
  buf.writeUInt32BE(length, 8);
  buf.writeUInt32BE(recordCrc(buf, length), 12);
}

/** crc32 of the header's epoch and length, then the payload that follows the header. */
function recordCrc(buf: Buffer, length: number): number {
  return crc32(buf.subarray(HEADER_BYTES, HEADER_BYTES + length), crc32(buf.subarray(4, 12)));
}

function writeAll(fd: number, buf: Buffer, position: number): void {
  let done = 0;
  while (done < buf.length) done += writeSync(fd, buf, done, buf.length - done, position + done);
}

function syncDir(dir: string): void {
  const fd = openSync(dir, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** The current epoch, its valid records' ops in order, and the file's size. */
function readJournal(fd: number, path: string): { epoch: number; replay: BatchOp[]; fileBytes: number } {
  const chunks: Buffer[] = [];
  for (;;) {
    const chunk = Buffer.allocUnsafe(1024 * 1024);
    const read = readSync(fd, chunk, 0, chunk.length, null);
    if (read === 0) break;
    chunks.push(chunk.subarray(0, read));
  }
  const file = Buffer.concat(chunks);
  const start = recordAt(file, 0);
  if (start === undefined || start.magic !== MAGIC_START || start.length !== 0) {
    throw new JournalDamagedError(`${path}: the journal's epoch-start record is damaged`);
  }
  const replay: BatchOp[] = [];
  let at = HEADER_BYTES;
  for (;;) {
    const record = recordAt(file, at);
    if (record === undefined || record.magic !== MAGIC_RECORD || record.epoch !== start.epoch) break;
    decodeOps(file.subarray(at + HEADER_BYTES, at + HEADER_BYTES + record.length), replay, path);
    at += HEADER_BYTES + record.length;
  }
  return { epoch: start.epoch, replay, fileBytes: file.length };
}

/** The record at `at` when its header and CRC hold (undefined otherwise). */
function recordAt(file: Buffer, at: number): { magic: number; epoch: number; length: number } | undefined {
  if (at + HEADER_BYTES > file.length) return undefined;
  const magic = file.readUInt32BE(at);
  if (magic !== MAGIC_START && magic !== MAGIC_RECORD) return undefined;
  const epoch = file.readUInt32BE(at + 4);
  const length = file.readUInt32BE(at + 8);
  if (at + HEADER_BYTES + length > file.length) return undefined;
  const crc = crc32(file.subarray(at + HEADER_BYTES, at + HEADER_BYTES + length), crc32(file.subarray(at + 4, at + 12)));
  if (crc !== file.readUInt32BE(at + 12)) return undefined;
  return { magic, epoch, length };
}

/** Appends the ops of one valid record (copies: the file buffer is not kept). */
function decodeOps(payload: Buffer, out: BatchOp[], path: string): void {
  let off = 0;
  const take = (): Buffer => {
    const length = payload.readUInt32BE(off);
    const bytes = Buffer.from(payload.subarray(off + 4, off + 4 + length));
    off += 4 + length;
    return bytes;
  };
  while (off < payload.length) {
    const type = payload[off++];
    if (type === OP_PUT) out.push({ type: 'put', key: take(), value: take() });
    else if (type === OP_DEL) out.push({ type: 'del', key: take() });
    // A record whose CRC holds but whose ops do not parse was written by another program.
    else throw new JournalDamagedError(`${path}: a journal record holds an unknown op ${String(type)}`);
  }
}
