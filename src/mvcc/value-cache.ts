// A byte-bounded LRU cache of live values (decoded KeyValues), keyed by their key's index entry.
//
// Why: values stay on disk (the store's memory must not grow with the bytes stored), but a
// read from LevelDB costs a few microseconds even from its block cache, and hot keys are read
// over and over: point reads concentrate on few keys, and a put whose event goes to a prev_kv
// watcher (or that asks for prev_kv) reads the key's previous value back. Values written by the store are cached as they are
// written (the value just put is the likeliest to be read next); the cache holds only the live
// value of each key, so the store drops a key's entry when the key is deleted. Entries are
// decoded KeyValues (immutable, see types.ts), so a hit allocates nothing; each is charged the
// bytes of the buffer its value views (the whole record) plus a fixed overhead.
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

export class ValueCache<K> {
  private readonly entries = new Map<K, KeyValue>();
  private bytes = 0;
  /** A live iterator over `entries` that only ever passes entries it evicted, so its next
   * entry is always the oldest. Restarting from the front each time would cost O(deleted):
   * V8 keeps deleted Map slots until the table is rebuilt (measured: 15% of a list's CPU). */
  private oldest: Iterator<[K, KeyValue]> | undefined = undefined;

  constructor(private readonly capacityBytes: number) {}

  /** The cached value for `owner`, marked as most recently used. */
  get(owner: K): KeyValue | undefined {
    const kv = this.entries.get(owner);
    if (kv !== undefined) {
      // Map iteration order is insertion order: re-inserting makes it the newest.
      this.entries.delete(owner);
      this.entries.set(owner, kv);
    }
    return kv;
  }

  set(owner: K, kv: KeyValue): void {
    this.delete(owner);
    const bytes = charge(kv);
    if (bytes > this.capacityBytes) return;
    this.entries.set(owner, kv);
    this.bytes += bytes;
    while (this.bytes > this.capacityBytes) this.evictOldest();
  }

  delete(owner: K): void {
    const kv = this.entries.get(owner);
    if (kv === undefined) return;
    this.entries.delete(owner);
    this.bytes -= charge(kv);
  }

  clear(): void {
    this.entries.clear();
    this.bytes = 0;
    this.oldest = undefined;
  }

  private evictOldest(): void {
    this.oldest ??= this.entries.entries();
    let next = this.oldest.next();
    if (next.done === true) {
      // Caught up with every entry that existed: start over (the map is not empty here).
      this.oldest = this.entries.entries();
      next = this.oldest.next();
    }
    const [owner, kv] = next.value as [K, KeyValue];
    this.entries.delete(owner);
    this.bytes -= charge(kv);
  }

  get size(): number {
    return this.entries.size;
  }

  get usedBytes(): number {
    return this.bytes;
  }
}
