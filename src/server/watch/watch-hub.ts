// The watchable store: every watcher of the member, fed from the Applier's event listener
// (live, "synced" watchers) or from stored history ("unsynced" watchers catching up).
//
// A watcher wants every event on [key, rangeEnd) with revision >= its start revision, each
// exactly once, in revision order, all events of one revision in one delivery. Its cursor
// `minRev` is the next revision it has not been given yet.
//
//            create (start <= current)        cursor passes current
//   unsynced ───────────────────────────────▶ synced (live events from onEvents)
//      ▲   │ cursor < compacted                  │ its queue or its stream's queue is full
//      │   ▼                                     │ (slow consumer): cursor := that revision
//      │  compacted (one final delivery)         │
//      └─────────────────────────────────────────┘
//
// Invariants:
// - A watcher is in exactly one of: synced, unsynced, done. Moving between groups only
//   happens inside synchronous code, and the Applier calls onEvents synchronously, so no
//   revision can slip between "caught up to current" and "joined the synced group".
// - Live work is O(matching watchers) per event: single keys and prefixes are looked up in
//   maps, "from key" watchers sit in an array sorted by start key, only other ranges are
//   scanned (rare in practice).
// - Memory is bounded: each watcher's queue and each owner's (stream's) queue have byte
//   limits; a live event that does not fit is not queued, the watcher goes back to unsynced
//   and later re-reads the revision from the recent-events window or from storage, at the
//   pace its consumer drains. Catch-up deliveries are capped in revisions and bytes.
// - Storage is read only at or below a revision known to be on disk: the Applier queues its
//   records before calling us, so an empty backend write queued afterwards is a barrier.
//   Newer revisions come from the recent-events window, which holds the last applied events:
//   up to its caps while a watcher is synced; otherwise a floor of them (minRecentRevisions)
//   and, while an unsynced watcher needs older ones, from that watcher's revision on. It never
//   decides what a watcher gets, only whether a catch-up reads it from memory or from storage.
// - prev_kv: the store reads a previous value back only when wantsPrevKv() says a synced
//   prev_kv watcher covers the key, so every live event such a watcher gets carries it.
//   Catch-ups (window or storage) look a missing prev_kv up at revision - 1, as etcd does at
//   send time; a compaction past that revision drops it, in etcd too.
// - A snapshot installed from the leader replaces the store without events: every synced
//   watcher goes back to unsynced and the window is dropped (onRestored), so no revision the
//   snapshot carried is skipped. Revisions reach onEvents one after another; a gap (anything
//   else that bypassed it) is healed the same way.

import type { MvccStore } from '../../mvcc/mvcc-store.js';
import { CompactedError } from '../../mvcc/errors.js';
import { decodeRecord } from '../../mvcc/record.js';
import { decodeRevisionKey, encodeRevisionKey } from '../../mvcc/revision.js';
import { hadPrevious, rangeRequest, type Event, type KeyValue } from '../../mvcc/types.js';
import type { Backend } from '../../storage/backend.js';
import { KeySpace } from '../../storage/backend.js';
import { AssertionError, assert } from '../../util/assert.js';
import type { EventListener } from '../apply/applier.js';

export interface WatchHubOptions {
  /** Byte budget of one watcher's undelivered queue. */
  maxWatcherPendingBytes?: number;
  /** Most distinct revisions in one catch-up delivery (etcd's watchBatchMaxRevs). */
  maxRevisionsPerDelivery?: number;
  /** The recent-events window that serves catch-ups without storage: bytes and revisions. */
  maxRecentBytes?: number;
  maxRecentRevisions?: number;
  /**
   * Revisions the window keeps while no watcher is synced and no unsynced one needs older ones
   * (a new watch from a revision just past). It keeps up to twice as many between trims.
   */
  minRecentRevisions?: number;
  /** Most watchers handled by one storage scan (etcd's maxWatchersPerSync). */
  maxWatchersPerScan?: number;
}

const DEFAULTS: Required<WatchHubOptions> = {
  maxWatcherPendingBytes: 4 * 1024 * 1024,
  maxRevisionsPerDelivery: 1000,
  // The window costs ~800 bytes of heap per revision of a small put (event, KeyValue, record
  // buffer, key text): 20,000 revisions held 15.5 MB of a member's ~55 MB live heap. 5,000
  // still span seconds of writes at thousands of puts/s; older catch-ups read storage, as
  // etcd's always do. The byte budget counts keys and values only, about half the real cost.
  // These are the caps while some watcher exists (a synced one's client may reconnect and
  // resume from a revision a moment back; an unsynced one reads the window as it catches up).
  // With no watcher synced, it keeps minRecentRevisions (to twice that) beyond what an unsynced
  // one still needs: on a member nobody watches, every revision held for thousands of puts lived
  // past V8's scavenges and was promoted to the old space for nothing, while a catch-up from
  // storage costs ~10 us of the main thread per event where the window costs <1 (bench/RESULTS.md,
  // "What lives past a scavenge per put").
  maxRecentBytes: 4 * 1024 * 1024,
  maxRecentRevisions: 5_000,
  minRecentRevisions: 256,
  maxWatchersPerScan: 512,
};

/** What the hub needs from the store and the backend (a narrow view of KvServer). */
export interface WatchSource {
  readonly mvcc: MvccStore;
  readonly backend: Backend;
}

/** One item of a watcher's queue, in delivery order. */
export interface Delivery {
  /** Header revision: the event revision (live), the store revision (catch-up, progress). */
  revision: number;
  events: readonly Event[];
  /** Set on the last delivery of a watcher whose start revision was compacted. */
  compactRevision: number;
  /** Owner-defined control item (e.g. "created"); the hub queues it like any delivery. */
  control?: string;
  bytes: number;
}

/** The consumer side of watchers (a watch stream): told when a watcher has something queued,
 * and owns a byte budget shared by all its watchers. */
export interface WatchOwner {
  readonly maxPendingBytes: number;
  pendingBytes: number;
  wake(watcher: Watcher): void;
}

export interface WatchSpec {
  key: Buffer;
  /** MVCC convention: empty = the key only; [0x00] = every key >= key. */
  rangeEnd: Buffer;
  /** First revision wanted (>= 1). */
  startRevision: number;
  noPut: boolean;
  noDelete: boolean;
  prevKv: boolean;
}

type WatcherState = 'synced' | 'unsynced' | 'done';
type RangeKind = 'key' | 'prefix' | 'from' | 'range';

export class Watcher {
  state: WatcherState = 'unsynced';
  minRev: number;
  /** In a storage scan right now: not to be scheduled again until it ends. */
  scanning = false;
  /** Ready for a catch-up step (queued in the hub's ready list). */
  ready = false;
  /** The owner's slot: the watcher is in the owner's list of watchers to pull from. */
  woken = false;
  readonly queue: Delivery[] = [];
  private head = 0;
  pendingBytes = 0;
  readonly keyText: string;
  readonly endText: string;
  readonly kind: RangeKind;
  /** Free slot for the owner (the stream's watch ID and flags). */
  tag: unknown;
  /** The last revision whose live events this watcher was visited for (see deliverLive). */
  liveRevision = 0;

  constructor(
    readonly owner: WatchOwner,
    readonly spec: WatchSpec,
  ) {
    this.minRev = spec.startRevision;
    this.keyText = spec.key.toString('latin1');
    this.endText = spec.rangeEnd.toString('latin1');
    if (spec.rangeEnd.length === 0) this.kind = 'key';
    else if (spec.rangeEnd.length === 1 && spec.rangeEnd[0] === 0) this.kind = 'from';
    else {
      const end = prefixEnd(spec.key);
      if (end.length === 1 && end[0] === 0) this.kind = 'from';
      else this.kind = end.equals(spec.rangeEnd) ? 'prefix' : 'range';
    }
  }

  contains(keyText: string): boolean {
    switch (this.kind) {
      case 'key':
        return keyText === this.keyText;
      case 'from':
        return keyText >= this.keyText;
      default:
        return keyText >= this.keyText && keyText < this.endText;
    }
  }

  /** Whether the event passes this watcher's filters. */
  passes(event: Event): boolean {
    return !(event.type === 'put' ? this.spec.noPut : this.spec.noDelete);
  }

  /** Events this watcher passes after its filters (the same array when it has none). */
  filter(events: readonly Event[]): readonly Event[] {
    if (!this.spec.noPut && !this.spec.noDelete) return events;
    const out: Event[] = [];
    for (const event of events) if (this.passes(event)) out.push(event);
    return out;
  }

  get queued(): number {
    return this.queue.length - this.head;
  }

  peek(): Delivery | undefined {
    return this.queue[this.head];
  }

  /** Removes the next delivery; the caller accounts its bytes. */
  shift(): Delivery | undefined {
    const item = this.queue[this.head];
    if (item === undefined) return undefined;
    this.queue[this.head] = undefined as unknown as Delivery;
    this.head++;
    if (this.head > 64 && this.head * 2 > this.queue.length) {
      this.queue.splice(0, this.head);
      this.head = 0;
    }
    return item;
  }

  clearQueue(keep: (item: Delivery) => boolean): Delivery[] {
    const kept: Delivery[] = [];
    for (let i = this.head; i < this.queue.length; i++) {
      const item = this.queue[i]!;
      if (keep(item)) kept.push(item);
    }
    const dropped = this.queue.length - this.head - kept.length;
    this.queue.length = 0;
    this.head = 0;
    this.queue.push(...kept);
    void dropped;
    return kept;
  }
}

/** The smallest key greater than every key that starts with `key`; [0x00] if none. */
export function prefixEnd(key: Buffer): Buffer {
  for (let i = key.length - 1; i >= 0; i--) {
    if (key[i]! < 0xff) {
      const end = Buffer.from(key.subarray(0, i + 1));
      end[i] = key[i]! + 1;
      return end;
    }
  }
  return Buffer.from([0]);
}

/** Approximate memory of an event as queued (its buffers are shared, not copied). */
export function eventBytes(event: Event): number {
  let bytes = 64 + event.kv.key.length + event.kv.value.length;
  if (event.prevKv) bytes += 48 + event.prevKv.key.length + event.prevKv.value.length;
  return bytes;
}

function deliveryBytes(events: readonly Event[]): number {
  let bytes = 64;
  for (const event of events) bytes += eventBytes(event);
  return bytes;
}

/** The synced watchers, indexed so an event finds its watchers without visiting others. */
class WatcherIndex {
  private readonly byKey = new Map<string, Set<Watcher>>();
  private readonly byPrefix = new Map<string, Set<Watcher>>();
  /** Prefix lengths present in byPrefix, with their counts. */
  private readonly prefixLengths = new Map<number, number>();
  /** "From key" watchers sorted by start key. */
  private readonly from: Watcher[] = [];
  private readonly ranges = new Set<Watcher>();
  size = 0;

  add(w: Watcher): void {
    this.size++;
    switch (w.kind) {
      case 'key':
        addTo(this.byKey, w.keyText, w);
        break;
      case 'prefix':
        addTo(this.byPrefix, w.keyText, w);
        this.prefixLengths.set(w.keyText.length, (this.prefixLengths.get(w.keyText.length) ?? 0) + 1);
        break;
      case 'from': {
        const at = upperBound(this.from, w.keyText);
        this.from.splice(at, 0, w);
        break;
      }
      case 'range':
        this.ranges.add(w);
    }
  }

  delete(w: Watcher): void {
    this.size--;
    switch (w.kind) {
      case 'key':
        removeFrom(this.byKey, w.keyText, w);
        break;
      case 'prefix': {
        removeFrom(this.byPrefix, w.keyText, w);
        const count = (this.prefixLengths.get(w.keyText.length) ?? 0) - 1;
        if (count === 0) this.prefixLengths.delete(w.keyText.length);
        else this.prefixLengths.set(w.keyText.length, count);
        break;
      }
      case 'from': {
        const at = this.from.indexOf(w);
        assert(at >= 0, 'watch: from-key watcher missing from its index');
        this.from.splice(at, 1);
        break;
      }
      case 'range':
        this.ranges.delete(w);
    }
  }

  /** Every watcher in the index (a copy: the caller may move them out). */
  all(): Watcher[] {
    const out: Watcher[] = [];
    for (const set of this.byKey.values()) out.push(...set);
    for (const set of this.byPrefix.values()) out.push(...set);
    out.push(...this.from, ...this.ranges);
    return out;
  }

  /** Whether some watcher's range contains the key (visit without the visiting). */
  covers(keyText: string): boolean {
    if (this.size === 0) return false;
    if (this.byKey.has(keyText)) return true;
    for (const length of this.prefixLengths.keys()) {
      if (length <= keyText.length && this.byPrefix.has(length === keyText.length ? keyText : keyText.slice(0, length))) return true;
    }
    if (upperBound(this.from, keyText) > 0) return true;
    for (const w of this.ranges) if (w.contains(keyText)) return true;
    return false;
  }

  /** Calls fn for every watcher whose range contains the key. */
  visit(keyText: string, fn: (w: Watcher) => void): void {
    const single = this.byKey.get(keyText);
    if (single !== undefined) for (const w of single) fn(w);
    for (const length of this.prefixLengths.keys()) {
      if (length > keyText.length) continue;
      const set = this.byPrefix.get(length === keyText.length ? keyText : keyText.slice(0, length));
      if (set !== undefined) for (const w of set) fn(w);
    }
    const end = upperBound(this.from, keyText);
    for (let i = 0; i < end; i++) fn(this.from[i]!);
    for (const w of this.ranges) if (w.contains(keyText)) fn(w);
  }
}

function addTo(map: Map<string, Set<Watcher>>, key: string, w: Watcher): void {
  let set = map.get(key);
  if (set === undefined) {
    set = new Set();
    map.set(key, set);
  }
  set.add(w);
}

function removeFrom(map: Map<string, Set<Watcher>>, key: string, w: Watcher): void {
  const set = map.get(key);
  assert(set?.delete(w) === true, 'watch: watcher missing from its key index');
  if (set.size === 0) map.delete(key);
}

/** Index of the first watcher whose start key is > key. */
function upperBound(sorted: readonly Watcher[], key: string): number {
  let lo = 0;
  let hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (sorted[mid]!.keyText <= key) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** One watcher's share of a storage scan. */
interface ScanState {
  w: Watcher;
  events: Event[];
  revisions: number;
  bytes: number;
  /** When full: the first revision not taken. */
  lastRev: number;
  full: boolean;
}

/**
 * The events of one storage scan, gathered revision by revision and dealt out to the watchers
 * that want them, each up to its catch-up caps (revisions and bytes per delivery).
 */
class ScanBatch {
  readonly states: ScanState[];
  /** Watchers still taking revisions. */
  private open: number;
  private pendingRev = 0;
  private pendingEvents: Event[] = [];
  private pendingKeys: string[] = [];

  constructor(
    group: readonly Watcher[],
    private readonly limits: { maxRevisionsPerDelivery: number; maxWatcherPendingBytes: number },
  ) {
    this.states = group.map((w) => ({ w, events: [] as Event[], revisions: 0, bytes: 64, lastRev: 0, full: false }));
    this.open = this.states.length;
  }

  /** Moves on to revision `rev` (dealing out the previous one); false once no watcher takes more. */
  atRevision(rev: number): boolean {
    if (rev === this.pendingRev) return true;
    this.flush();
    if (this.open === 0) return false;
    this.pendingRev = rev;
    return true;
  }

  push(event: Event): void {
    this.pendingEvents.push(event);
    this.pendingKeys.push(event.kv.key.toString('latin1'));
  }

  /** Deals the gathered revision out to every watcher that wants it and has room for it. */
  flush(): void {
    if (this.pendingEvents.length === 0) return;
    for (const s of this.states) {
      if (s.full || s.w.state !== 'unsynced' || this.pendingRev < s.w.minRev) continue;
      const matched: Event[] = [];
      for (let j = 0; j < this.pendingEvents.length; j++) if (s.w.contains(this.pendingKeys[j]!)) matched.push(this.pendingEvents[j]!);
      if (matched.length === 0) continue;
      const out = s.w.filter(matched);
      const more = deliveryBytes(out) - 64;
      if (s.revisions > 0 && (s.revisions >= this.limits.maxRevisionsPerDelivery || s.bytes + more > this.limits.maxWatcherPendingBytes)) {
        s.full = true;
        s.lastRev = this.pendingRev; // first revision not taken
        this.open--;
        continue;
      }
      s.revisions++;
      s.bytes += more;
      for (const event of out) s.events.push(event);
    }
    this.pendingEvents = [];
    this.pendingKeys = [];
  }
}

/** The size of the last live delivery made for a revision, reused while watchers share its events array. */
interface SizedDelivery {
  events: readonly Event[] | undefined;
  bytes: number;
  /** The live delivery of those events, shared by the watchers that get them. */
  delivery?: Delivery;
}

interface RecentRevision {
  revision: number;
  /** Events whose prevKv the write did not read get it here once a catch-up looks it up. */
  events: Event[];
  keyTexts: string[];
  bytes: number;
}

export class WatchHub implements EventListener {
  readonly options: Required<WatchHubOptions>;
  private readonly synced = new WatcherIndex();
  /** The synced watchers that want prev_kv (also in `synced`): the store reads a previous
   * value back only for keys one of them covers. */
  private readonly syncedPrevKv = new WatcherIndex();
  private readonly unsynced = new Set<Watcher>();
  private readyList: Watcher[] = [];
  /** Ready watchers waiting for the storage scan in flight to end. */
  private deferred: Watcher[] = [];
  /** Unsynced watchers held back only because their owner's budget is used up. */
  private readonly stalled = new Map<WatchOwner, Set<Watcher>>();
  private syncScheduled = false;
  private scanInFlight = false;
  /** Revisions at or below this are known to be on disk. */
  private durableRevision = 0;
  /** The last revision onEvents brought (or the store's revision when the hub was made). */
  private lastNotified: number;
  private readonly recent: RecentRevision[] = [];
  private recentHead = 0;
  private recentBytes = 0;
  private closed = false;

  constructor(
    private readonly source: WatchSource,
    options: WatchHubOptions = {},
  ) {
    this.options = { ...DEFAULTS, ...options };
    this.lastNotified = source.mvcc.currentRevision;
  }

  get currentRevision(): number {
    return this.source.mvcc.currentRevision;
  }

  get compactedRevision(): number {
    return this.source.mvcc.compactedRevision;
  }

  /** Changes the tunables (tests use small budgets). */
  configure(options: WatchHubOptions): void {
    Object.assign(this.options, options);
  }

  get counts(): { synced: number; unsynced: number } {
    return { synced: this.synced.size, unsynced: this.unsynced.size };
  }

  /** Creates a watcher. Deliveries start after whatever the owner queues first via `enqueue`. */
  watch(owner: WatchOwner, spec: WatchSpec, first?: Omit<Delivery, 'bytes'>): Watcher {
    assert(Number.isSafeInteger(spec.startRevision) && spec.startRevision >= 1, `watch: bad start revision ${spec.startRevision}`);
    const w = new Watcher(owner, spec);
    if (first !== undefined) this.enqueue(w, { ...first, bytes: 64 });
    if (spec.startRevision > this.currentRevision) {
      this.joinSynced(w);
    } else {
      this.unsynced.add(w);
      this.markReady(w);
    }
    return w;
  }

  /** Detaches a watcher for good; its queue stays with the owner to drain or drop. */
  cancel(w: Watcher): void {
    if (w.state === 'synced') this.leaveSynced(w);
    else if (w.state === 'unsynced') this.unsynced.delete(w);
    w.state = 'done';
    const stalled = this.stalled.get(w.owner);
    if (stalled?.delete(w) && stalled.size === 0) this.stalled.delete(w.owner);
  }

  isSynced(w: Watcher): boolean {
    return w.state === 'synced';
  }

  /** Puts a delivery at the end of the watcher's queue and wakes its owner. */
  enqueue(w: Watcher, item: Delivery): void {
    w.queue.push(item);
    w.pendingBytes += item.bytes;
    w.owner.pendingBytes += item.bytes;
    w.owner.wake(w);
  }

  /** Takes the watcher's next delivery; called by the owner when it can send. */
  take(w: Watcher): Delivery | undefined {
    const item = w.shift();
    if (item === undefined) return undefined;
    w.pendingBytes -= item.bytes;
    w.owner.pendingBytes -= item.bytes;
    this.considerReady(w);
    const stalled = this.stalled.get(w.owner);
    if (stalled !== undefined && w.owner.pendingBytes * 2 <= w.owner.maxPendingBytes) {
      this.stalled.delete(w.owner);
      for (const other of stalled) this.considerReady(other);
    }
    return item;
  }

  /** Drops queued deliveries the owner no longer wants (e.g. after cancel). */
  drop(w: Watcher, keep: (item: Delivery) => boolean): void {
    const kept = w.clearQueue(keep);
    const keptBytes = kept.reduce((sum, item) => sum + item.bytes, 0);
    w.owner.pendingBytes -= w.pendingBytes - keptBytes;
    w.pendingBytes = keptBytes;
  }

  close(): void {
    this.closed = true;
  }

  // ---- live path --------------------------------------------------------------------------

  /**
   * Asked by the Applier while it applies a write to this key: true when a synced watcher with
   * prev_kv covers it, i.e. the live event must carry prevKv. The store then reads the previous
   * value right away, before any later entry of the batch (a compaction) could remove it.
   * Unsynced watchers do not count: they catch up later and look prev_kv up when they do, at
   * send time as etcd does (dropped once that revision is compacted, in etcd too).
   */
  wantsPrevKv(keyText: string): boolean {
    return this.syncedPrevKv.covers(keyText);
  }

  private joinSynced(w: Watcher): void {
    w.state = 'synced';
    this.synced.add(w);
    if (w.spec.prevKv) this.syncedPrevKv.add(w);
  }

  private leaveSynced(w: Watcher): void {
    this.synced.delete(w);
    if (w.spec.prevKv) this.syncedPrevKv.delete(w);
  }

  /**
   * The store's state was replaced by a leader's snapshot: revisions (previousRevision,
   * current] were never applied here one by one, so no event of theirs reached onEvents. As
   * etcd's watchable store does on a restore, every synced watcher catches them up from storage.
   */
  onRestored(previousRevision: number): void {
    // The snapshot was written with a synced write before the store was rebuilt from it.
    this.durableRevision = this.currentRevision;
    this.resync(previousRevision);
    this.lastNotified = this.currentRevision;
  }

  /**
   * Revisions after `seen` reached the store without passing through onEvents: every synced
   * watcher goes back to unsynced from the revision after `seen` (it re-reads the rest from
   * storage), and the recent-events window, which has a hole there, is dropped.
   */
  private resync(seen: number): void {
    this.recent.length = 0;
    this.recentHead = 0;
    this.recentBytes = 0;
    for (const w of this.synced.all()) {
      this.leaveSynced(w);
      w.state = 'unsynced';
      w.minRev = Math.max(w.minRev, seen + 1);
      this.unsynced.add(w);
      this.considerReady(w);
    }
  }

  onEvents(events: readonly Event[], revision: number): void {
    let start = 0;
    while (start < events.length) {
      const rev = events[start]!.kv.modRevision;
      let end = start + 1;
      while (end < events.length && events[end]!.kv.modRevision === rev) end++;
      this.notifyRevision(rev, events.slice(start, end));
      start = end;
    }
    assert(events.length === 0 || events[events.length - 1]!.kv.modRevision <= revision, 'watch: events beyond the store revision');
  }

  private notifyRevision(rev: number, events: Event[]): void {
    // Every revision is one write with at least one event, so revisions arrive here one after
    // another. A gap means some reached the store another way (a snapshot install announces
    // itself through onRestored; any other way is a bug): rather than let watchers skip them,
    // they re-read them from storage, the source of truth the window only caches.
    if (rev !== this.lastNotified + 1) this.resync(this.lastNotified);
    this.lastNotified = rev;
    const keyTexts = events.map((e) => e.kv.key.toString('latin1'));
    this.remember(rev, events, keyTexts);
    if (this.synced.size === 0) return;
    // The watchers are collected before any is given its delivery: a slow consumer leaves the
    // index, which must not change under visit().
    const sized: SizedDelivery = { events: undefined, bytes: 0, delivery: undefined };
    if (events.length === 1) {
      // Most revisions are one event: every watcher gets the same array (never changed once
      // queued; not the window's, which a prev_kv look-up may change), so the transport encodes
      // the fields once for all of them (watch-service.ts). A plain list, no grouping: this is
      // on the path of every event (bench/RESULTS.md, "The watch-latency row").
      const visited: Watcher[] = [];
      this.synced.visit(keyTexts[0]!, (w) => {
        if (rev >= w.minRev) visited.push(w);
      });
      const single: readonly Event[] = [events[0]!];
      for (const w of visited) this.deliverLive(w, rev, single, sized);
      return;
    }
    // Group by watcher first: a watcher gets all of its events of this revision at once.
    const batches = new Map<Watcher, Event[]>();
    for (let i = 0; i < events.length; i++) {
      const event = events[i]!;
      this.synced.visit(keyTexts[i]!, (w) => {
        if (rev < w.minRev) return;
        const batch = batches.get(w);
        if (batch === undefined) batches.set(w, [event]);
        else batch.push(event);
      });
    }
    for (const [w, batch] of batches) this.deliverLive(w, rev, batch, sized);
  }

  /** Queues a synced watcher's live events of revision `rev`, or unsyncs it if they do not fit. */
  private deliverLive(w: Watcher, rev: number, batch: readonly Event[], sized: SizedDelivery): void {
    // Exactly once: a watcher is in the index once, so it is never visited twice for a revision.
    assert(w.liveRevision !== rev, 'watch: a watcher visited twice for one revision');
    w.liveRevision = rev;
    const out = w.filter(batch);
    if (out.length === 0) return;
    if (w.spec.prevKv) for (const e of out) assert(e.prevKv !== undefined || !hadPrevious(e), 'watch: live event without the prev_kv a synced watcher needs');
    if (sized.events !== out) {
      sized.events = out;
      sized.bytes = deliveryBytes(out);
      sized.delivery = undefined;
    }
    const bytes = sized.bytes;
    if (!this.fits(w, bytes)) {
      // A slow consumer: stop buffering for it; it re-reads this revision later.
      this.leaveSynced(w);
      w.state = 'unsynced';
      w.minRev = rev;
      this.unsynced.add(w);
      this.considerReady(w);
      return;
    }
    // One delivery object for every watcher given the same events (never changed once queued:
    // a merge copies it): one allocation per revision, not one per watcher.
    sized.delivery ??= { revision: rev, events: out, compactRevision: 0, bytes };
    this.enqueue(w, sized.delivery);
  }

  private fits(w: Watcher, bytes: number): boolean {
    return (
      (w.pendingBytes + bytes <= this.options.maxWatcherPendingBytes && w.owner.pendingBytes + bytes <= w.owner.maxPendingBytes) ||
      (w.queued === 0 && w.owner.pendingBytes === 0)
    );
  }

  /** Room to take another catch-up delivery: the queue is at most half full. */
  private hasRoom(w: Watcher): boolean {
    return w.pendingBytes * 2 <= this.options.maxWatcherPendingBytes && w.owner.pendingBytes * 2 <= w.owner.maxPendingBytes;
  }

  private remember(revision: number, events: Event[], keyTexts: string[]): void {
    const bytes = deliveryBytes(events);
    this.recent.push({ revision, events, keyTexts, bytes });
    this.recentBytes += bytes;
    while (
      this.recent.length - this.recentHead > 1 &&
      (this.recentBytes > this.options.maxRecentBytes || this.recent.length - this.recentHead > this.options.maxRecentRevisions)
    ) {
      this.dropOldestRecent();
    }
    // With no watcher synced, beyond the floor the window keeps only what an unsynced watcher
    // will read from it. Checked once per floor's worth of revisions (the unsynced set is
    // walked), so it holds floor to twice the floor when nobody watches.
    const floor = this.options.minRecentRevisions;
    if (this.synced.size === 0 && this.recent.length - this.recentHead >= 2 * floor) {
      const keepFrom = Math.min(this.oldestUnsyncedRevision(), revision + 1 - floor);
      while (this.recent.length - this.recentHead > 1 && this.recent[this.recentHead]!.revision < keepFrom) this.dropOldestRecent();
    }
    if (this.recentHead > 1024 && this.recentHead * 2 > this.recent.length) {
      this.recent.splice(0, this.recentHead);
      this.recentHead = 0;
    }
  }

  private dropOldestRecent(): void {
    this.recentBytes -= this.recent[this.recentHead]!.bytes;
    this.recent[this.recentHead] = undefined as unknown as RecentRevision;
    this.recentHead++;
  }

  /** The lowest revision an unsynced watcher still has to be given (Infinity if none). A watcher
   * behind the window's start reads storage first, then the window from where the scan ended:
   * the window then grows to its caps, as it did before it followed need. */
  private oldestUnsyncedRevision(): number {
    let oldest = Number.POSITIVE_INFINITY;
    for (const w of this.unsynced) if (w.minRev < oldest) oldest = w.minRev;
    return oldest;
  }

  /** Revisions the window holds now (for tests and metrics). */
  get recentRevisions(): number {
    return this.recent.length - this.recentHead;
  }

  /** The events of a window entry `w` takes, with prev_kv as it wants; undefined if none. */
  private windowEventsFor(w: Watcher, entry: RecentRevision): Event[] | undefined {
    const matched: Event[] = [];
    // etcd looks prev_kv up at send time: once revision-1 is compacted it sends none.
    const compacted = w.spec.prevKv && entry.revision - 1 < this.compactedRevision;
    for (let j = 0; j < entry.events.length; j++) {
      let event = entry.events[j]!;
      if (!w.contains(entry.keyTexts[j]!) || !w.passes(event)) continue;
      if (compacted) event = { type: event.type, kv: event.kv };
      else if (w.spec.prevKv && event.prevKv === undefined && hadPrevious(event)) event = this.lookUpPrevKv(entry, j);
      matched.push(event);
    }
    return matched.length === 0 ? undefined : matched;
  }

  /** Fills in the prevKv the write did not read (no synced prev_kv watcher covered the key then),
   * and keeps it in the window for the next watcher that needs it. */
  private lookUpPrevKv(entry: RecentRevision, j: number): Event {
    const event = entry.events[j]!;
    const prevKv = this.valueAt(event.kv.key, entry.revision - 1);
    if (prevKv === undefined) return event;
    const filled: Event = { type: event.type, kv: event.kv, prevKv };
    const grown = eventBytes(filled) - eventBytes(event);
    entry.events[j] = filled;
    entry.bytes += grown;
    this.recentBytes += grown;
    return filled;
  }

  /** Oldest revision the window can serve completely: every revision >= it is in the window. */
  private get recentFloor(): number {
    const first = this.recent[this.recentHead];
    // With an empty window, only revisions above the current one are "covered".
    return first === undefined ? this.currentRevision + 1 : first.revision;
  }

  /** Index in the window of the first entry with revision >= rev. */
  private recentIndex(rev: number): number {
    let lo = this.recentHead;
    let hi = this.recent.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.recent[mid]!.revision < rev) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  // ---- catch-up ---------------------------------------------------------------------------

  /** Schedules a catch-up step if the watcher and its owner have room for one; otherwise
   * the next take() from the watcher (or from its owner's other watchers) reconsiders it. */
  private considerReady(w: Watcher): void {
    if (w.state !== 'unsynced' || w.scanning || w.ready) return;
    if (this.hasRoom(w)) {
      this.markReady(w);
    } else if (w.pendingBytes * 2 <= this.options.maxWatcherPendingBytes) {
      let set = this.stalled.get(w.owner);
      if (set === undefined) {
        set = new Set();
        this.stalled.set(w.owner, set);
      }
      set.add(w);
    }
  }

  private markReady(w: Watcher): void {
    if (w.ready || w.state !== 'unsynced') return;
    w.ready = true;
    this.readyList.push(w);
    this.scheduleSync();
  }

  private scheduleSync(): void {
    if (this.syncScheduled || this.closed) return;
    this.syncScheduled = true;
    setImmediate(() => {
      this.syncScheduled = false;
      this.syncPass();
    });
  }

  /** Moves ready unsynced watchers forward: from the window synchronously, else via a scan. */
  private syncPass(): void {
    const list = this.readyList;
    this.readyList = [];
    const needStorage: Watcher[] = [];
    for (const w of list) {
      w.ready = false;
      if (w.state !== 'unsynced' || w.scanning) continue;
      if (this.finishIfCompacted(w)) continue;
      if (!this.hasRoom(w)) {
        this.considerReady(w);
      } else if (w.minRev >= this.recentFloor || w.minRev > this.currentRevision) {
        this.stepFromWindow(w, [], 0);
      } else if (needStorage.length < this.options.maxWatchersPerScan && !this.scanInFlight) {
        needStorage.push(w);
      } else {
        // Wait for the scan in flight; it hands these back when it ends.
        w.ready = true;
        this.deferred.push(w);
      }
    }
    if (needStorage.length > 0) void this.scan(needStorage);
  }

  private finishIfCompacted(w: Watcher): boolean {
    const compacted = this.compactedRevision;
    if (compacted <= 0 || w.minRev >= compacted) return false;
    // etcd answers a compacted watcher with the compaction point and a zero header revision.
    this.unsynced.delete(w);
    w.state = 'done';
    this.enqueue(w, { revision: 0, events: [], compactRevision: compacted, bytes: 64 });
    return true;
  }

  /**
   * Continues a catch-up delivery from the window (events already collected from storage in
   * `collected`, spanning `revisions` distinct revisions), queues it, and joins the watcher to
   * the synced group if it reached the current revision. Synchronous: nothing can be applied
   * between reading the window's end and joining.
   */
  private stepFromWindow(w: Watcher, collected: Event[], revisions: number): void {
    const current = this.currentRevision;
    let bytes = deliveryBytes(collected);
    let complete = true;
    if (w.minRev <= current) {
      if (w.minRev < this.recentFloor) {
        complete = false;
      } else {
        for (let i = this.recentIndex(w.minRev); i < this.recent.length; i++) {
          const entry = this.recent[i]!;
          const out = this.windowEventsFor(w, entry);
          if (out === undefined) continue;
          const more = deliveryBytes(out) - 64;
          if (revisions > 0 && (revisions >= this.options.maxRevisionsPerDelivery || bytes + more > this.options.maxWatcherPendingBytes)) {
            w.minRev = entry.revision;
            complete = false;
            break;
          }
          revisions++;
          for (const event of out) collected.push(event);
          bytes += more;
        }
        if (complete) w.minRev = current + 1;
      }
    }
    if (collected.length > 0) this.enqueue(w, { revision: current, events: collected, compactRevision: 0, bytes });
    if (complete) {
      this.unsynced.delete(w);
      this.joinSynced(w);
    } else {
      this.considerReady(w);
    }
  }

  /** Reads stored history for a group of watchers, then finishes each from the window. */
  private async scan(group: Watcher[]): Promise<void> {
    this.scanInFlight = true;
    for (const w of group) w.scanning = true;
    try {
      await this.storageBarrier();
      const to = Math.min(this.durableRevision, this.recentFloor - 1);
      let from = Infinity;
      for (const w of group) from = Math.min(from, w.minRev);
      const batch = new ScanBatch(group, this.options);
      if (from <= to && !(await this.readHistory(batch, from, to))) return;
      this.handOutScanned(batch.states, from, to);
    } catch (error) {
      // Shutting down closes the backend under a scan; anything else is a bug, and a failed
      // assertion is one even then.
      if (!this.closed || error instanceof AssertionError) throw error;
    } finally {
      for (const w of group) w.scanning = false;
      this.scanInFlight = false;
      for (const w of this.deferred) this.readyList.push(w);
      this.deferred = [];
      if (this.readyList.length > 0) this.scheduleSync();
    }
  }

  /** Storage is read only up to a revision known to be on disk: queue a barrier write if needed. */
  private async storageBarrier(): Promise<void> {
    const barrier = this.currentRevision;
    if (barrier > this.durableRevision && !this.closed) {
      await this.source.backend.write([], { sync: false });
      this.durableRevision = Math.max(this.durableRevision, barrier);
    }
  }

  /** Deals stored revisions [from, to] out to the batch's watchers; false if the hub closed meanwhile. */
  private async readHistory(batch: ScanBatch, from: number, to: number): Promise<boolean> {
    const wantPrevKv = batch.states.some((s) => s.w.spec.prevKv);
    const gte = encodeRevisionKey({ main: from, sub: 0 });
    const lt = encodeRevisionKey({ main: to + 1, sub: 0 });
    for await (const [key, record] of this.source.backend.scan(KeySpace.mvcc, { gte, lt })) {
      if (this.closed) return false;
      const rev = decodeRevisionKey(key).main;
      if (!batch.atRevision(rev)) break;
      batch.push(this.eventFromRecord(rev, record, wantPrevKv));
    }
    batch.flush();
    return true;
  }

  /** Synchronous from here: hand out what was read, then continue from the window. */
  private handOutScanned(states: readonly ScanState[], from: number, to: number): void {
    for (const s of states) {
      const w = s.w;
      w.scanning = false;
      if (w.state !== 'unsynced') continue;
      if (this.finishIfCompacted(w)) continue;
      if (s.full) {
        w.minRev = s.lastRev;
        this.enqueue(w, { revision: this.currentRevision, events: s.events, compactRevision: 0, bytes: s.bytes });
        this.considerReady(w);
        continue;
      }
      if (from <= to) w.minRev = Math.max(w.minRev, to + 1);
      this.stepFromWindow(w, s.events, s.revisions);
    }
  }

  private eventFromRecord(rev: number, record: Buffer, wantPrevKv: boolean): Event {
    const decoded = decodeRecord(record);
    const kv: KeyValue = decoded.tombstone
      ? { key: decoded.key, createRevision: 0, modRevision: rev, version: 0, value: Buffer.alloc(0), lease: 0n }
      : {
          key: decoded.key,
          createRevision: decoded.createRevision,
          modRevision: rev,
          version: decoded.version,
          value: decoded.value,
          lease: decoded.lease,
        };
    const type = decoded.tombstone ? 'delete' : 'put';
    if (!wantPrevKv || (type === 'put' && kv.createRevision === rev)) return { type, kv };
    const prevKv = this.valueAt(kv.key, rev - 1);
    return prevKv === undefined ? { type, kv } : { type, kv, prevKv };
  }

  /** The key's value at a past revision, or undefined if it had none or that is compacted. */
  private valueAt(key: Buffer, revision: number): KeyValue | undefined {
    if (revision < 1 || revision < this.compactedRevision) return undefined;
    try {
      const result = this.source.mvcc.range(rangeRequest(key, undefined, { limit: 1, revision }));
      return result.kvs[0];
    } catch (error) {
      // Compacted meanwhile: etcd sends the event without prev_kv in that case too.
      if (error instanceof CompactedError) return undefined;
      throw error;
    }
  }
}
