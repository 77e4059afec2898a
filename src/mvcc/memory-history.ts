// An in-memory HistoryReader + WriteSink: what the LevelDB backend does for MvccStore, kept in
// a Map. Used by tests, the benchmark and simulations. It applies what a caller must do:
// persist every record the store emits, delete what compact() reports obsolete, and replay the
// surviving records in revision order to restore.

import { assert } from '../util/assert.js';
import type { HistoryReader, WriteSink } from './mvcc-store.js';
import { decodeRevisionKey, encodeRevisionKey } from './revision.js';
import type { Event, Revision } from './types.js';

export class MemoryHistory implements HistoryReader, WriteSink {
  /** Records by revision key (latin1 of the 16-byte key, so string order = revision order). */
  private readonly records = new Map<string, Buffer>();
  /** Events in emission order; tests may clear it. */
  events: Event[] = [];
  /** When false, events are not kept (benchmarks). */
  keepEvents = true;

  readRecord(rev: Revision): Buffer | undefined {
    return this.records.get(encodeRevisionKey(rev).toString('latin1'));
  }

  record(rev: Revision, record: Buffer): void {
    const key = encodeRevisionKey(rev).toString('latin1');
    assert(!this.records.has(key), `revision ${rev.main}.${rev.sub} written twice`);
    this.records.set(key, record);
  }

  event(e: Event): void {
    if (this.keepEvents) this.events.push(e);
  }

  deleteRevisions(revs: readonly Revision[]): void {
    for (const rev of revs) assert(this.records.delete(encodeRevisionKey(rev).toString('latin1')), 'obsolete revision was not stored');
  }

  get size(): number {
    return this.records.size;
  }

  /** Every stored record in ascending revision order, as a restore would scan them. */
  sorted(): { rev: Revision; record: Buffer }[] {
    return [...this.records.keys()].sort().map((key) => ({ rev: decodeRevisionKey(Buffer.from(key, 'latin1')), record: this.records.get(key)! }));
  }
}
