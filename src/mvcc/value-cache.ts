// A byte-bounded LRU cache of the records holding live values, keyed by their key's index entry.
//
// Why: values stay on disk (the store's memory must not grow with the bytes stored), but a
// read from LevelDB costs a few microseconds even from its block cache, and hot keys are read
// over and over: every put reads the key's previous value back for the watch event's prevKv,
// and point reads concentrate on few keys. Records written by the store are cached as they are
// written (the value just put is the likeliest to be read next); the cache holds only the live
// record of each key, so the store drops a key's entry when the key is deleted.
//
// Invariants: `bytes` is the sum of the charged sizes of the entries and never exceeds the
// capacity after a call returns; a cached record is never modified (the store shares it with
// its sink and readers); with capacity 0 nothing is ever cached.

/** Bookkeeping charged per entry beyond the record's bytes: the Map entry and the Buffer and
 * ArrayBuffer objects (a rough figure; the cache bound is about the values). */
const ENTRY_OVERHEAD_BYTES = 160;

export class ValueCache<K> {
  private readonly entries = new Map<K, Buffer>();
  private bytes = 0;

  constructor(private readonly capacityBytes: number) {}

  /** The cached record for `owner`, marked as most recently used. */
  get(owner: K): Buffer | undefined {
    const record = this.entries.get(owner);
    if (record !== undefined) {
      // Map iteration order is insertion order: re-inserting makes it the newest.
      this.entries.delete(owner);
      this.entries.set(owner, record);
    }
    return record;
  }

  set(owner: K, record: Buffer): void {
    this.delete(owner);
    const charge = record.length + ENTRY_OVERHEAD_BYTES;
    if (charge > this.capacityBytes) return;
    this.entries.set(owner, record);
    this.bytes += charge;
    if (this.bytes <= this.capacityBytes) return;
    for (const [oldest, evicted] of this.entries) {
      this.entries.delete(oldest);
      this.bytes -= evicted.length + ENTRY_OVERHEAD_BYTES;
      if (this.bytes <= this.capacityBytes) return;
    }
  }

  delete(owner: K): void {
    const record = this.entries.get(owner);
    if (record === undefined) return;
    this.entries.delete(owner);
    this.bytes -= record.length + ENTRY_OVERHEAD_BYTES;
  }

  clear(): void {
    this.entries.clear();
    this.bytes = 0;
  }

  get size(): number {
    return this.entries.size;
  }

  get usedBytes(): number {
    return this.bytes;
  }
}
