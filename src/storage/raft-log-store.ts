// Durable Raft log for the core, kept in the backend's LevelDB under a one-byte key space
// chosen by the caller (the backend owns the db and its layout).
//
// Key layout inside the prefix P:
//   P 'h'                  hard state            term u64 | commit u64 | vote u64
//   P 'c'                  compaction point      index u64 | term u64 (the "dummy" entry)
//   P 's'                  latest snapshot       index | term | voters | learners | data
//   P 'e' <index u64 BE>   log entry             term u64 | type u8 | data
// Big-endian indexes keep LevelDB order equal to log order.
//
// The core reads Storage synchronously, so the store answers from memory: hard state,
// snapshot, compaction point and last index always, plus a cache of the log's tail (the part
// followers and the apply loop ask for in steady state). Older entries are read with
// db.getSync, which only lagging followers and restarts need.
//
// Writes land in the order they were called: the Raft driver keeps several Readies in flight,
// and a later batch may overwrite what an earlier one wrote (a conflicting suffix, the hard
// state). They go through the database's one ordered write queue (level-write-queue.ts): the
// backend's when the log lives in its database, the wal dir's (wal-dir.ts WalDb) otherwise;
// batches that queue up behind the write in progress go out together as one write (synced if
// any of them asks), which is also where the pipelined driver gets more entries per fsync.
// A save without a snapshot (a Ready's entries and hard state, the frequent write) is
// `journaled`: it is made durable by the sync journal of the database it lives in
// (sync-journal.ts) rather than by a synced LevelDB write; every other write of the log
// (snapshot install, snapshot record, compaction, discard) is `checkpointed`: written synced
// right after a checkpoint of the journal, so that no journal record replays over it.
//
// The cache keeps what someone will ask for: the driver says, through retainFrom(), the lowest
// index it or a follower still needs (not yet applied here; not yet acknowledged by some
// follower), and the cache keeps from there, plus a floor of the latest entries. Without that
// it held 8,192-16,384 entries, each of which lived past V8's scavenges and was promoted to the
// old space, on a lone member too (bench/RESULTS.md, "What lives past a scavenge per put"). It
// only decides what is read from memory rather than from the db, never what is there.
//
// Invariants: entries present are exactly (compactIndex, lastIndex]; the cache holds a suffix
// of them, [cacheStart, lastIndex]; in-memory state is updated when save()/compact() is
// called, before the write completes, because the core may read it at once (the driver
// reports a Ready persisted only after its save resolved, so nothing unsynced is ever
// acknowledged); entries above `landedIndex` may still be in flight and stay cached.

import type { ClassicLevel } from 'classic-level';
import { CompactedError, UnavailableError, limitEnd, type InitialState, type Storage } from '../raft/storage.js';
import { EntryType, NONE, type ConfState, type Entry, type HardState, type Snapshot } from '../raft/types.js';
import { assert, assertSafeInteger } from '../util/assert.js';
import { type JournalKind, LevelWriteQueue } from './level-write-queue.js';
import { SlabRoom } from './slab-room.js';
import { StorageError, isLevelError, levelErrorDetail, type StorageFailureSink } from './storage-error.js';

type Db = ClassicLevel<Buffer, Buffer>;
/** One op of a LevelDB batch (the shape the backend queues too). */
export type RaftLogOp = { type: 'put'; key: Buffer; value: Buffer } | { type: 'del'; key: Buffer };
type Op = RaftLogOp;

const TAG_HARD = 0x68; // 'h'
const TAG_COMPACT = 0x63; // 'c'
const TAG_SNAP = 0x73; // 's'
const TAG_ENTRY = 0x65; // 'e'
/** Term and type before an entry's data in its stored form. */
const ENTRY_HEADER_BYTES = 9;

export interface RaftLogStoreOptions {
  /** Most entries kept in memory at the tail of the log (to twice that between trims). Default 8192. */
  cacheEntries?: number;
  /**
   * Latest entries kept in memory even when retainFrom() says nobody needs them (to twice that
   * between trims). Default 256.
   */
  cacheFloorEntries?: number;
  /**
   * Bytes of entry data the cache may keep once written (default 64 MiB): with large values a
   * count alone would let the tail hold gigabytes. Older entries are read from the db.
   */
  cacheBytes?: number;
  /**
   * Told how long each LevelDB write of the store's own queue took and whether it was synced
   * (the WAL fsync metric); not with a `writer`, whose owner counts its writes.
   */
  onWrite?: (seconds: number, synced: boolean) => void;
  /** Told of a failed write or read (disk full, I/O error, damaged file) before it is thrown. */
  onFailure?: StorageFailureSink;
  /**
   * Writes through the queue of the database the log lives in when that is shared (the
   * backend's): it must land writes in call order and merge what queues behind the write in
   * progress, so the apply batch of one Ready (which the backend holds for a while) and the log
   * write of the next reach LevelDB as one write; the wal dir's (wal-dir.ts), with its journal.
   * Without it (tests) the store makes a queue of its own, without a journal.
   */
  writer?: RaftLogWriter;
}

/** Lands one batch of the log's ops after every earlier one (see RaftLogStoreOptions.writer). */
export type RaftLogWriter = (ops: Op[], sync: boolean, journal: JournalKind, landed: () => void) => Promise<void>;

function writeU64(buf: Buffer, off: number, v: number): void {
  assertSafeInteger(v, 'u64 field');
  buf.writeUInt32BE(Math.floor(v / 0x100000000), off);
  buf.writeUInt32BE(v >>> 0, off + 4);
}

function readU64(buf: Buffer, off: number): number {
  return buf.readUInt32BE(off) * 0x100000000 + buf.readUInt32BE(off + 4);
}

export class RaftLogStore implements Storage {
  private readonly db: Db;
  private readonly prefix: number;
  private readonly cacheMax: number;
  private readonly cacheBytesMax: number;
  private readonly cacheFloor: number;
  /** The lowest index the driver still expects to read (retainFrom); 0 until it says. */
  private wantedFrom = 0;
  /** Data bytes of the cached entries. */
  private cacheBytes = 0;
  private readonly onFailure: StorageFailureSink | undefined;
  /** The first failed write: nothing is written after it (storage-error.ts). */
  private failure: StorageError | undefined;
  /** Entries up to here are in the db (the cache may drop them and read them back). */
  private landedIndex = 0;
  /** Writes to the database's ordered queue (see RaftLogStoreOptions.writer). */
  private readonly writer: RaftLogWriter;
  /** Writes handed to the writer and not landed, oldest first: the last entry index
   * each carries, and the lowest entry index a later save staged (replacing part of it). */
  private readonly handedOver: Array<{ landing: number; stagedAfter: number }> = [];
  private hardState: HardState = { term: 0, vote: NONE, commit: 0 };
  private snap: Snapshot = { metadata: { index: 0, term: 0, confState: { voters: [], learners: [] } }, data: new Uint8Array(0) };
  private compactIndex = 0;
  private compactTerm = 0;
  private last = 0;
  /** cache[i] is the entry at cacheStart + i; always a suffix ending at `last`. */
  private cache: Entry[] = [];
  private cacheStart = 1;
  private readonly entryRoom = new SlabRoom();

  private constructor(db: Db, prefix: number, opts: RaftLogStoreOptions) {
    assert(Number.isInteger(prefix) && prefix >= 0 && prefix <= 255, `bad key-space prefix ${prefix}`);
    this.db = db;
    this.prefix = prefix;
    this.cacheMax = opts.cacheEntries ?? 8192;
    this.cacheBytesMax = opts.cacheBytes ?? 64 * 1024 * 1024;
    this.cacheFloor = opts.cacheFloorEntries ?? 256;
    assert(Number.isSafeInteger(this.cacheFloor) && this.cacheFloor >= 1, `bad cacheFloorEntries ${this.cacheFloor}`);
    this.onFailure = opts.onFailure;
    assert(opts.writer === undefined || opts.onWrite === undefined, 'a shared writer counts its own writes: no onWrite with it');
    this.writer = opts.writer ?? this.ownWriter(db, opts.onWrite);
  }

  /**
   * The queue of a database the log has to itself; every log write is waited for (prompt).
   * `onWrite` hears of each LevelDB write (merged saves count once).
   */
  private ownWriter(db: Db, onWrite: RaftLogStoreOptions['onWrite']): RaftLogWriter {
    const queue = new LevelWriteQueue(db, { failed: (cause) => this.failed('write', cause), onWrite });
    return (ops, sync, journal, landed) => queue.write(ops, { sync, prompt: true, journal, landed });
  }

  private failed(kind: 'write' | 'damaged', cause: unknown): StorageError {
    const error = new StorageError(kind, this.db.location, levelErrorDetail(cause));
    if (kind === 'write') this.failure ??= error;
    this.onFailure?.(error);
    return error;
  }

  /**
   * Hands one batch to the writer, which lands it after every earlier one; resolves once it is
   * in the db (synced when `sync`). A failure is the member's end (see storage-error.ts): every
   * batch queued with or after the failed one fails too.
   */
  private async write(ops: Op[], sync: boolean, journal: JournalKind): Promise<void> {
    if (this.failure !== undefined) throw this.failure;
    const write = { landing: this.last, stagedAfter: Number.POSITIVE_INFINITY };
    this.handedOver.push(write);
    try {
      // Resolves once durable; a journaled write may resolve before LevelDB holds it, which
      // `landed` then says (in call order, like the writes themselves).
      await this.writer(ops, sync, journal, () => this.landed(write));
    } catch (error) {
      // The writer's owner has told the failure sink already when it is a StorageError.
      if (!(error instanceof StorageError)) throw this.failed('write', error);
      this.failure ??= error;
      throw error;
    }
  }

  /** A write is in the db: entries up to what it carried may leave the cache. */
  private landed(write: { landing: number; stagedAfter: number }): void {
    assert(this.handedOver[0] === write, 'raft log writes landed out of call order');
    this.handedOver.shift();
    // Entries staged meanwhile at or below `landing` replaced landed ones: not landed.
    this.landedIndex = Math.min(write.landing, write.stagedAfter - 1);
    // Landed: entries that left the cache can be read back from the db now.
    this.trimCache();
  }

  /** Loads the persisted state from an open db. */
  static async open(db: Db, prefix: number, opts: RaftLogStoreOptions = {}): Promise<RaftLogStore> {
    const s = new RaftLogStore(db, prefix, opts);
    try {
      await s.load();
    } catch (error) {
      if (isLevelError(error)) throw s.failed('damaged', error);
      throw error;
    }
    const damage = s.inconsistency();
    if (damage !== undefined) throw s.failed('damaged', new Error(damage));
    return s;
  }

  private key(tag: number): Buffer {
    return Buffer.from([this.prefix, tag]);
  }

  private entryKey(index: number): Buffer {
    const k = Buffer.allocUnsafe(10);
    k[0] = this.prefix;
    k[1] = TAG_ENTRY;
    writeU64(k, 2, index);
    return k;
  }

  private async load(): Promise<void> {
    const hs = await this.db.get(this.key(TAG_HARD));
    if (hs !== undefined) this.hardState = decodeHardState(hs);
    const c = await this.db.get(this.key(TAG_COMPACT));
    if (c !== undefined) {
      this.compactIndex = readU64(c, 0);
      this.compactTerm = readU64(c, 8);
    }
    const sn = await this.db.get(this.key(TAG_SNAP));
    if (sn !== undefined) this.snap = decodeSnapshot(sn);
    // Walk the tail backwards to find the last index and fill the cache.
    this.last = this.compactIndex;
    const tail: Entry[] = [];
    for await (const [k, v] of this.db.iterator({
      gt: this.entryKey(this.compactIndex),
      lt: this.entryKey(Number.MAX_SAFE_INTEGER),
      reverse: true,
      limit: this.cacheMax,
    })) {
      const index = readU64(k, 2);
      if (tail.length === 0) this.last = index;
      tail.push(decodeEntry(index, v));
    }
    tail.reverse();
    this.landedIndex = this.last;
    this.setCache(tail, tail.length > 0 ? (tail[0] as Entry).index : this.last + 1);
    this.trimCache();
  }

  /**
   * What the loaded log says that cannot be, which only a damaged or partly lost database
   * explains (LevelDB can lose records without an error): a gap in the tail, or a commit
   * index past the last entry (entries and hard state are written in one batch).
   */
  private inconsistency(): string | undefined {
    for (let i = 0; i < this.cache.length; i++) {
      if ((this.cache[i] as Entry).index !== this.cacheStart + i) return `raft log has a gap before entry ${this.cacheStart + i}`;
    }
    if (this.hardState.commit > this.last) {
      return `raft log hard state says entry ${this.hardState.commit} is committed but the log ends at ${this.last}`;
    }
    return undefined;
  }

  // ---- Storage (synchronous reads for the core) -----------------------------------------

  initialState(): InitialState {
    const cs = this.snap.metadata.confState;
    // A Ready that carries only a new commit index is not written (RaftNode.writesNothing), so the
    // stored commit may lag; a snapshot is only ever of committed entries, so it is a floor.
    const hardState = { ...this.hardState, commit: Math.max(this.hardState.commit, this.snap.metadata.index) };
    return { hardState, confState: { voters: cs.voters.slice(), learners: cs.learners.slice() } };
  }

  firstIndex(): number {
    return this.compactIndex + 1;
  }

  lastIndex(): number {
    return this.last;
  }

  snapshot(): Snapshot {
    return this.snap;
  }

  term(i: number): number {
    if (i === this.compactIndex) return this.compactTerm;
    if (i < this.compactIndex) throw new CompactedError();
    if (i > this.last) throw new UnavailableError();
    return this.entryAt(i).term;
  }

  entries(lo: number, hi: number, maxSizeBytes: number): Entry[] {
    if (lo <= this.compactIndex) throw new CompactedError();
    if (hi > this.last + 1) throw new UnavailableError();
    if (lo >= this.cacheStart) {
      const start = lo - this.cacheStart;
      return this.cache.slice(start, limitEnd(this.cache, start, hi - this.cacheStart, maxSizeBytes));
    }
    const out: Entry[] = [];
    let size = 0;
    for (let i = lo; i < hi; i++) {
      const e = this.entryAt(i);
      size += e.data.length + 24;
      if (out.length > 0 && size > maxSizeBytes) break;
      out.push(e);
    }
    return out;
  }

  private entryAt(i: number): Entry {
    if (i >= this.cacheStart) return this.cache[i - this.cacheStart] as Entry;
    let v: Buffer | undefined;
    try {
      v = this.db.getSync(this.entryKey(i));
    } catch (error) {
      throw this.failed('damaged', error);
    }
    assert(v !== undefined, `raft log entry ${i} missing from the db`);
    return decodeEntry(i, v);
  }

  // ---- writes ------------------------------------------------------------------------

  /**
   * Persists one Ready: the snapshot (replacing the whole log), the entries (replacing any
   * conflicting suffix) and the hard state, in ONE atomic batch, fsynced when `sync`.
   */
  async save(hardState: HardState | undefined, entries: Entry[], snapshot: Snapshot | undefined, opts: { sync: boolean }): Promise<void> {
    const ops: Op[] = [];
    if (snapshot !== undefined) this.stageSnapshotInstall(snapshot, ops);
    if (entries.length > 0) this.stageEntries(entries, ops);
    if (hardState !== undefined) {
      this.hardState = { ...hardState };
      ops.push({ type: 'put', key: this.key(TAG_HARD), value: encodeHardState(hardState) });
    }
    if (ops.length === 0) return;
    await this.write(ops, opts.sync, snapshot === undefined ? 'journaled' : 'checkpointed');
  }

  private stageSnapshotInstall(s: Snapshot, ops: Op[]): void {
    const idx = s.metadata.index;
    assert(idx > this.snap.metadata.index || this.snap.metadata.index === 0, `snapshot ${idx} is older than ${this.snap.metadata.index}`);
    for (let i = this.compactIndex + 1; i <= this.last; i++) ops.push({ type: 'del', key: this.entryKey(i) });
    this.snap = s;
    this.compactIndex = idx;
    this.compactTerm = s.metadata.term;
    this.last = idx;
    this.setCache([], idx + 1);
    ops.push({ type: 'put', key: this.key(TAG_SNAP), value: encodeSnapshot(s) });
    ops.push({ type: 'put', key: this.key(TAG_COMPACT), value: encodeCompact(idx, s.metadata.term) });
  }

  private stageEntries(entries: Entry[], ops: Op[]): void {
    let ents = entries;
    const first = (ents[0] as Entry).index;
    if (first <= this.compactIndex) {
      // The leading part is already covered by compaction.
      ents = ents.slice(this.compactIndex + 1 - first);
      if (ents.length === 0) return;
    }
    const from = (ents[0] as Entry).index;
    assert(from <= this.last + 1, `raft log store: gap before entry ${from} (last ${this.last})`);
    const newLast = (ents[ents.length - 1] as Entry).index;
    for (let i = newLast + 1; i <= this.last; i++) ops.push({ type: 'del', key: this.entryKey(i) });
    for (const write of this.handedOver) write.stagedAfter = Math.min(write.stagedAfter, from);
    // What replaces landed entries is not landed until its own write is: until then the cache
    // must keep it (getSync would read the replaced entry).
    this.landedIndex = Math.min(this.landedIndex, from - 1);
    // Cache: cut at the overwrite point, then append; trim the front in amortized chunks.
    if (from < this.cacheStart) this.setCache([], from);
    else if (from - this.cacheStart < this.cache.length) this.setCache(this.cache.slice(0, from - this.cacheStart), this.cacheStart);
    for (const e of ents) {
      // The stored form is built once, in slab room of its own (never reused, so it is what the
      // queued LevelDB write stores), and the cached entry's data is a view of it, which must not
      // pin the (larger) buffer the caller's data is a view of (slab-room.ts). One copy, not two.
      const stored = encodeEntry(e, this.entryRoom.take(ENTRY_HEADER_BYTES + e.data.length));
      ops.push({ type: 'put', key: this.entryKey(e.index), value: stored });
      this.cache.push({ term: e.term, index: e.index, type: e.type, data: stored.subarray(ENTRY_HEADER_BYTES) });
      this.cacheBytes += e.data.length;
    }
    this.last = newLast;
    this.trimCache();
  }

  /**
   * The driver's word on what it will still read: entries below `index` are applied here and,
   * on a leader, acknowledged by every follower. They may leave the cache (past the floor of
   * the latest ones); a follower that turns out to need one after all gets it from the db.
   */
  retainFrom(index: number): void {
    assertSafeInteger(index, 'retainFrom index');
    this.wantedFrom = index;
    this.trimCache();
  }

  /** Records a snapshot of application state at applied index `index` (log kept). */
  async createSnapshot(index: number, confState: ConfState, data: Uint8Array, opts: { sync: boolean } = { sync: true }): Promise<Snapshot> {
    assert(index > this.snap.metadata.index, `snapshot ${index} is not newer than ${this.snap.metadata.index}`);
    assert(index <= this.last, `snapshot ${index} beyond last index ${this.last}`);
    const s: Snapshot = {
      metadata: { index, term: this.term(index), confState: { voters: confState.voters.slice(), learners: confState.learners.slice() } },
      data,
    };
    this.snap = s;
    await this.write([{ type: 'put', key: this.key(TAG_SNAP), value: encodeSnapshot(s) }], opts.sync, 'checkpointed');
    return s;
  }

  /** Drops entries up to and including `index`, which the latest snapshot must cover. */
  async compact(index: number, opts: { sync: boolean } = { sync: false }): Promise<void> {
    if (index <= this.compactIndex) throw new CompactedError();
    assert(index <= this.last, `compact ${index} beyond last index ${this.last}`);
    assert(index <= this.snap.metadata.index, `compact ${index} beyond snapshot ${this.snap.metadata.index}`);
    const term = this.term(index);
    const ops: Op[] = [];
    for (let i = this.compactIndex + 1; i <= index; i++) ops.push({ type: 'del', key: this.entryKey(i) });
    ops.push({ type: 'put', key: this.key(TAG_COMPACT), value: encodeCompact(index, term) });
    this.compactIndex = index;
    this.compactTerm = term;
    if (index >= this.cacheStart) this.setCache(this.cache.slice(index + 1 - this.cacheStart), index + 1);
    // Checkpointed: the checkpoint before it also makes the apply batches that cover the
    // dropped entries durable (they go to LevelDB unsynced, like the log's journaled writes).
    await this.write(ops, opts.sync, 'checkpointed');
  }

  /**
   * Drops the entries after `index` (which must not be compacted away): --force-new-cluster
   * discards what was never committed before it writes its own entries.
   */
  async discardAfter(index: number): Promise<void> {
    assert(index >= this.compactIndex, `discard after ${index}, below the compaction point ${this.compactIndex}`);
    if (index >= this.last) return;
    const ops: Op[] = [];
    for (let i = index + 1; i <= this.last; i++) ops.push({ type: 'del', key: this.entryKey(i) });
    this.last = index;
    if (this.cacheStart > index) this.setCache([], index + 1);
    else this.setCache(this.cache.slice(0, index + 1 - this.cacheStart), this.cacheStart);
    await this.write(ops, true, 'checkpointed');
  }

  private setCache(entries: Entry[], start: number): void {
    this.cache = entries;
    this.cacheStart = start;
    this.cacheBytes = 0;
    for (const e of entries) this.cacheBytes += e.data.length;
  }

  /**
   * Drops the oldest cached entries nobody is expected to read (below retainFrom's index and
   * the floor of latest entries, a floor's worth at a time so the cut is amortized) and those
   * past the count cap (amortized the same way), but only landed ones: a dropped entry is read
   * back with getSync, which does not see writes still in flight. Then the byte cap.
   */
  private trimCache(): void {
    let drop = this.cache.length > 2 * this.cacheMax ? this.cache.length - this.cacheMax : 0;
    const unwanted = Math.min(this.wantedFrom, this.last + 1 - this.cacheFloor) - this.cacheStart;
    if (unwanted >= this.cacheFloor) drop = Math.max(drop, unwanted);
    drop = Math.min(drop, this.landedIndex + 1 - this.cacheStart);
    if (drop > 0) this.setCache(this.cache.slice(drop), this.cacheStart + drop);
    this.trimCacheBytes();
  }

  /**
   * Drops the oldest cached entries while the cache holds more than cacheBytes of data, but
   * only landed ones (up to landedIndex): a dropped entry is read back with getSync, which does
   * not see writes still in flight.
   */
  private trimCacheBytes(): void {
    if (this.cacheBytes <= this.cacheBytesMax) return;
    const droppable = Math.min(this.cache.length - 1, this.landedIndex + 1 - this.cacheStart);
    let drop = 0;
    while (drop < droppable && this.cacheBytes > this.cacheBytesMax) this.cacheBytes -= (this.cache[drop++] as Entry).data.length;
    this.cache = this.cache.slice(drop);
    this.cacheStart += drop;
  }

  /** Data bytes of the cached entries (for tests). */
  get cachedBytes(): number {
    return this.cacheBytes;
  }

  /** Entries cached in memory (for metrics and tests). */
  get cachedEntries(): number {
    return this.cache.length;
  }
}

function encodeHardState(hs: HardState): Buffer {
  const b = Buffer.allocUnsafe(24);
  writeU64(b, 0, hs.term);
  writeU64(b, 8, hs.commit);
  b.writeBigUInt64BE(BigInt.asUintN(64, hs.vote), 16);
  return b;
}

function decodeHardState(b: Buffer): HardState {
  return { term: readU64(b, 0), commit: readU64(b, 8), vote: b.readBigUInt64BE(16) };
}

function encodeCompact(index: number, term: number): Buffer {
  const b = Buffer.allocUnsafe(16);
  writeU64(b, 0, index);
  writeU64(b, 8, term);
  return b;
}

/** Writes an entry's stored form into `b`, exactly ENTRY_HEADER_BYTES + its data long. */
function encodeEntry(e: Entry, b: Buffer): Buffer {
  writeU64(b, 0, e.term);
  b[8] = e.type;
  b.set(e.data, ENTRY_HEADER_BYTES);
  return b;
}

function decodeEntry(index: number, b: Buffer): Entry {
  const type = b[8];
  assert(type === EntryType.Normal || type === EntryType.ConfChange, `bad entry type ${String(type)} at ${index}`);
  // Copy out of the LevelDB buffer so entries never alias shared memory.
  return { term: readU64(b, 0), index, type, data: new Uint8Array(b.subarray(ENTRY_HEADER_BYTES)) };
}

function encodeSnapshot(s: Snapshot): Buffer {
  const cs = s.metadata.confState;
  const b = Buffer.allocUnsafe(16 + 8 + 8 * (cs.voters.length + cs.learners.length) + s.data.length);
  writeU64(b, 0, s.metadata.index);
  writeU64(b, 8, s.metadata.term);
  b.writeUInt32BE(cs.voters.length, 16);
  b.writeUInt32BE(cs.learners.length, 20);
  let off = 24;
  for (const id of [...cs.voters, ...cs.learners]) {
    b.writeBigUInt64BE(BigInt.asUintN(64, id), off);
    off += 8;
  }
  b.set(s.data, off);
  return b;
}

function decodeSnapshot(b: Buffer): Snapshot {
  const nv = b.readUInt32BE(16);
  const nl = b.readUInt32BE(20);
  let off = 24;
  const voters: bigint[] = [];
  const learners: bigint[] = [];
  for (let i = 0; i < nv; i++, off += 8) voters.push(b.readBigUInt64BE(off));
  for (let i = 0; i < nl; i++, off += 8) learners.push(b.readBigUInt64BE(off));
  return { metadata: { index: readU64(b, 0), term: readU64(b, 8), confState: { voters, learners } }, data: new Uint8Array(b.subarray(off)) };
}
