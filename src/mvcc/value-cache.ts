// A byte-bounded cache of live values (decoded KeyValues), keyed by their key's index entry,
// evicting by CLOCK (second chance): an approximation of least-recently-used.
//
// Why: values stay on disk (the store's memory must not grow with the bytes stored), but a
// read from LevelDB costs a few microseconds even from its block cache, and hot keys are read
// over and over: point reads concentrate on few keys, and a put whose event goes to a prev_kv
// watcher (or that asks for prev_kv) reads the key's previous value back. A key enters the cache
// when its value is read (set), and a put to a key already cached replaces its value there
// (refresh); a put to a key not cached does not enter it. Caching every write made each put of a
// new key (a bulk load, a fill of a million keys) push out an older entry: a Map insert and
// delete per put, and every put's KeyValue, Buffer views and record kept alive past two
// scavenges, so promoted to old space for nothing (bench/RESULTS.md, session 13, S13-H3). The
// cache holds only the live value of each key, so the store drops a key's entry when the key is
// deleted. Entries are decoded KeyValues (immutable, see types.ts), so a hit allocates
// nothing; each is charged the bytes of the buffer its value views (the whole record) plus a
// fixed overhead.
//
// Why CLOCK and not an exact LRU: an exact LRU on a Map moves a hit entry to the end by deleting
// and re-inserting it. V8 leaves a deleted Map entry in its hash bucket's chain until the table
// is rebuilt, so one hot key hit over and over grows its own chain by one per hit, and every
// lookup of it walks that chain: measured 27 us per hit with 30,000 entries cached (13% of a
// member's CPU under 100 clients reading one key). Here a hit only sets a flag, and a write to a
// cached key replaces its value in place; the Map changes only when a key enters or leaves.
//
// Invariants: `bytes` is the sum of the charged sizes of the entries and never exceeds the
// capacity after a call returns; with capacity 0 nothing is ever cached.

import type { KeyValue } from './types.js';

/** Bookkeeping charged per entry beyond the record's bytes: the Map entry, the KeyValue and
 * its Buffer and ArrayBuffer objects (a rough figure; the cache bound is about the values). */
const ENTRY_OVERHEAD_BYTES = 200;

function charge(kv: KeyValue): number {
  return kv.value.buffer.byteLength + ENTRY_OVERHEAD_BYTES;
}

interface Slot {
  kv: KeyValue;
  /** Used since the clock hand last passed: the hand spares it once. */
  referenced: boolean;
}

export class ValueCache<K> {
  private readonly slots = new Map<K, Slot>();
  private bytes = 0;
  /** The clock hand: a live iterator over `slots` (it also sees slots added after it). Kept
   * across evictions so each sweep resumes where the last stopped instead of passing the
   * deleted slots at the front again. */
  private hand: Iterator<[K, Slot]> | undefined = undefined;

  constructor(private readonly capacityBytes: number) {}

  /** The cached value for `owner`, marked as recently used. */
  get(owner: K): KeyValue | undefined {
    const slot = this.slots.get(owner);
    if (slot === undefined) return undefined;
    slot.referenced = true;
    return slot.kv;
  }

  /** Caches `kv` as the value of `owner` (a value just read), replacing one cached before. */
  set(owner: K, kv: KeyValue): void {
    const slot = this.slots.get(owner);
    if (slot !== undefined) {
      this.replace(owner, slot, kv);
      return;
    }
    const bytes = charge(kv);
    if (bytes > this.capacityBytes) return;
    const added: Slot = { kv, referenced: false };
    this.slots.set(owner, added);
    this.bytes += bytes;
    while (this.bytes > this.capacityBytes) this.evictOne(added);
  }

  /** Replaces the value of `owner` if it is cached (a write to a cached key); a key that is
   * not cached stays out. */
  refresh(owner: K, kv: KeyValue): void {
    const slot = this.slots.get(owner);
    if (slot !== undefined) this.replace(owner, slot, kv);
  }

  private replace(owner: K, slot: Slot, kv: KeyValue): void {
    const bytes = charge(kv);
    if (bytes > this.capacityBytes) {
      this.delete(owner);
      return;
    }
    this.bytes += bytes - charge(slot.kv);
    slot.kv = kv;
    slot.referenced = true;
    while (this.bytes > this.capacityBytes) this.evictOne(slot);
  }

  delete(owner: K): void {
    const slot = this.slots.get(owner);
    if (slot === undefined) return;
    this.slots.delete(owner);
    this.bytes -= charge(slot.kv);
  }

  clear(): void {
    this.slots.clear();
    this.bytes = 0;
    this.hand = undefined;
  }

  /** Advances the hand to the first slot not used since it last passed, and evicts that one;
   * never `spared`, the value just written (the likeliest to be read next). */
  private evictOne(spared: Slot): void {
    for (;;) {
      this.hand ??= this.slots.entries();
      const next = this.hand.next();
      if (next.done === true) {
        // A full turn: start over from the oldest (the map is not empty here).
        this.hand = undefined;
        continue;
      }
      const [owner, slot] = next.value;
      if (slot === spared) continue;
      if (slot.referenced) {
        slot.referenced = false;
        continue;
      }
      this.slots.delete(owner);
      this.bytes -= charge(slot.kv);
      return;
    }
  }

  get size(): number {
    return this.slots.size;
  }

  get usedBytes(): number {
    return this.bytes;
  }
}
