// One client watch stream (etcd's serverWatchStream without the transport): many watchers
// under stream-scoped IDs, one outgoing sequence of responses pulled by the transport when it
// can send.
//
// Invariants:
// - Per watcher, responses go out in queue order: "created" first, then deliveries in
//   revision order, and a cancel or compaction response last.
// - Fairness: the stream takes one delivery at a time from its watchers in round-robin order,
//   so one busy watcher cannot hold back the others; control answers without a watcher
//   (failed creates, progress) go first.
// - Nothing is pulled while the transport is not writable, so an unread stream only holds its
//   byte budget; past it, its watchers fall back to catching up from history (see WatchHub).
// - A progress answer (watch ID -1) claims every event up to its header revision was sent,
//   so it is only sent when every watcher of the stream is synced with an empty queue.
// - Coalescing (only when the transport says the stream is behind): a watcher's consecutive
//   event deliveries go out as one response, events in revision order, whole revisions only,
//   up to MAX_COALESCED_BYTES; answers without events (created, canceled, compacted, progress)
//   are never merged. A stream that keeps up sends one response per revision, as etcd does.

import type { Event } from '../../mvcc/types.js';
import { assert } from '../../util/assert.js';
import type { Delivery, WatchHub, WatchOwner, Watcher } from './watch-hub.js';

/** etcd's clientv3.InvalidWatchID: the ID of answers tied to no watcher. */
export const INVALID_WATCH_ID = -1;
export const ERR_DUPLICATE_WATCH_ID = 'mvcc: duplicate watch ID provided on the WatchStream';
export const ERR_EMPTY_WATCHER_RANGE = 'mvcc: watcher range is empty';

export interface CreateWatch {
  /** 0 = let the server pick (etcd's AutoWatchID). */
  watchId: number;
  key: Buffer;
  /** Wire convention already mapped to MVCC: empty = one key, [0x00] = all keys >= key. */
  rangeEnd: Buffer;
  /** 0 = current revision + 1. */
  startRevision: number;
  progressNotify: boolean;
  noPut: boolean;
  noDelete: boolean;
  prevKv: boolean;
  fragment: boolean;
  /** Set when the caller may not watch this range (auth): created, then canceled with it. */
  refusal?: string;
}

/** One outgoing response, transport-neutral. */
export interface StreamResponse {
  watchId: number;
  /** Header revision. */
  revision: number;
  events: readonly Event[];
  created: boolean;
  canceled: boolean;
  cancelReason: string;
  compactRevision: number;
  /** The watcher asked for prev_kv (else the transport leaves it out). */
  prevKv: boolean;
  /** The watcher asked for fragmentation of oversized responses. */
  fragment: boolean;
}

interface WatcherTag {
  watchId: number;
  progressNotify: boolean;
  fragment: boolean;
  /** An event was sent since the last progress tick (etcd elides the next notification). */
  sentSinceTick: boolean;
}

const CREATED = 'created';
const CANCELED = 'canceled';
/** Estimated bytes of deliveries merged into one response: well under etcd's fragment size. */
const MAX_COALESCED_BYTES = 256 * 1024;
/** Deliveries merged into one response at most (etcd's watchBatchMaxRevs). */
const MAX_COALESCED_DELIVERIES = 1000;

function hasEvents(item: Delivery): boolean {
  return item.control === undefined && item.compactRevision === 0 && item.events.length > 0;
}

export interface WatchStreamOptions {
  /** Byte budget of everything queued for this stream. */
  maxPendingBytes?: number;
  /**
   * Period of progress notifications to synced, idle watchers created with progress_notify
   * (etcd --experimental-watch-progress-notify-interval; the transport adds etcd's jitter).
   * Default: etcd's 10 minutes.
   */
  progressNotifyIntervalMs?: number;
}

/** etcd's default progress notification period. */
export const DEFAULT_PROGRESS_NOTIFY_INTERVAL_MS = 10 * 60 * 1000;

export class WatchStream implements WatchOwner {
  readonly maxPendingBytes: number;
  pendingBytes = 0;
  private readonly watchers = new Map<number, Watcher>();
  /**
   * Watchers with something queued, in round-robin order, from readyHead on (a watcher's
   * `woken` says it is in here). Taken from the head by index, not shift(): a revision puts every
   * watcher of the stream in here and pull takes them one by one.
   */
  private ready: Array<Watcher | undefined> = [];
  private readyHead = 0;
  /** Watchers removed from the stream whose final answers are still queued. */
  private readonly control: StreamResponse[] = [];
  private nextId = 0;
  private progressWanted = false;
  private closed = false;
  private readonly progressTimer: ReturnType<typeof setInterval>;
  /** Called when something became available to pull (coalesce on the caller's side). */
  onReadable: () => void = () => {};

  constructor(
    private readonly hub: WatchHub,
    options: WatchStreamOptions = {},
  ) {
    this.maxPendingBytes = options.maxPendingBytes ?? 16 * 1024 * 1024;
    const interval = options.progressNotifyIntervalMs ?? DEFAULT_PROGRESS_NOTIFY_INTERVAL_MS;
    assert(interval > 0, `watch: bad progress notify interval ${interval}`);
    this.progressTimer = setInterval(() => this.progressTick(), interval);
    this.progressTimer.unref();
  }

  get size(): number {
    return this.watchers.size;
  }

  /** Creates a watcher; the answer (created, or created+canceled on a bad request) is queued. */
  create(request: CreateWatch): void {
    if (this.closed) return;
    const current = this.hub.currentRevision;
    const fail = (reason: string): void => {
      this.pushControl({ ...this.blank(current), watchId: INVALID_WATCH_ID, created: true, canceled: true, cancelReason: reason });
    };
    if (request.refusal !== undefined) {
      fail(request.refusal);
      return;
    }
    if (request.rangeEnd.length > 0 && !(request.rangeEnd.length === 1 && request.rangeEnd[0] === 0) && Buffer.compare(request.key, request.rangeEnd) >= 0) {
      fail(ERR_EMPTY_WATCHER_RANGE);
      return;
    }
    let id = request.watchId;
    if (id === 0) {
      while (this.watchers.has(this.nextId)) this.nextId++;
      id = this.nextId++;
    } else if (this.watchers.has(id)) {
      fail(ERR_DUPLICATE_WATCH_ID);
      return;
    }
    const tag: WatcherTag = { watchId: id, progressNotify: request.progressNotify, fragment: request.fragment, sentSinceTick: false };
    const startRevision = request.startRevision > 0 ? request.startRevision : current + 1;
    const watcher = this.hub.watch(
      this,
      { key: request.key, rangeEnd: request.rangeEnd, startRevision, noPut: request.noPut, noDelete: request.noDelete, prevKv: request.prevKv },
      { revision: current, events: [], compactRevision: 0, control: CREATED },
    );
    watcher.tag = tag;
    this.watchers.set(id, watcher);
  }

  /** Cancels a watcher; unknown IDs get no answer, as in etcd. */
  cancel(watchId: number): void {
    const watcher = this.watchers.get(watchId);
    if (watcher === undefined) return;
    this.watchers.delete(watchId);
    this.hub.cancel(watcher);
    // Keep an unsent "created" so the client sees the watcher exist before it ends.
    this.hub.drop(watcher, (item) => item.control === CREATED);
    this.hub.enqueue(watcher, { revision: this.hub.currentRevision, events: [], compactRevision: 0, control: CANCELED, bytes: 64 });
  }

  /** A client progress request: answered once everything is sent, if all watchers are synced. */
  requestProgress(): void {
    if (this.closed) return;
    for (const w of this.watchers.values()) if (!this.hub.isSynced(w)) return;
    this.progressWanted = true;
    this.onReadable();
  }

  wake(watcher: Watcher): void {
    if (!watcher.woken) {
      watcher.woken = true;
      this.ready.push(watcher);
    }
    this.onReadable();
  }

  /**
   * Whether pull() may have something: false means it has nothing for sure (the transport need
   * not ask until onReadable). True may still pull nothing (a woken watcher whose queue was
   * dropped since).
   */
  get hasPending(): boolean {
    return !this.closed && (this.control.length > 0 || this.ready.length > this.readyHead || this.progressWanted);
  }

  /**
   * The next response to send, or undefined when nothing is ready. `behind`: the transport
   * could not send everything at once, so a watcher's queued revisions go out merged.
   */
  pull(behind = false): StreamResponse | undefined {
    if (this.closed) return undefined;
    const control = this.control.shift();
    if (control !== undefined) return control;
    while (this.readyHead < this.ready.length) {
      const ready = this.ready;
      const w = ready[this.readyHead]!;
      ready[this.readyHead] = undefined;
      this.readyHead++;
      if (this.readyHead === ready.length) {
        ready.length = 0;
        this.readyHead = 0;
      } else if (this.readyHead > 1024 && this.readyHead * 2 > ready.length) {
        this.ready = ready.slice(this.readyHead);
        this.readyHead = 0;
      }
      const item = behind ? this.takeMerged(w) : this.hub.take(w);
      if (item === undefined) {
        w.woken = false;
        continue;
      }
      if (w.queued > 0) this.ready.push(w);
      else w.woken = false;
      return this.toResponse(w, item);
    }
    if (this.progressWanted) {
      this.progressWanted = false;
      for (const w of this.watchers.values()) if (!this.hub.isSynced(w) || w.queued > 0) return undefined;
      return { ...this.blank(this.hub.currentRevision), watchId: INVALID_WATCH_ID };
    }
    return undefined;
  }

  /** The watcher's next delivery merged with the event deliveries queued right after it. */
  private takeMerged(w: Watcher): Delivery | undefined {
    const first = this.hub.take(w);
    let next = w.peek();
    if (first === undefined || !hasEvents(first) || next === undefined || !hasEvents(next)) return first;
    const merged: Delivery = { ...first, events: [...first.events] };
    const events = merged.events as Event[];
    for (let count = 1; next !== undefined && hasEvents(next); next = w.peek(), count++) {
      if (count >= MAX_COALESCED_DELIVERIES || merged.bytes + next.bytes > MAX_COALESCED_BYTES) break;
      this.hub.take(w);
      for (const event of next.events) events.push(event);
      merged.bytes += next.bytes;
      merged.revision = Math.max(merged.revision, next.revision);
    }
    return merged;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.progressTimer);
    for (const w of this.watchers.values()) {
      this.hub.cancel(w);
      this.hub.drop(w, () => false);
    }
    this.watchers.clear();
    for (let i = this.readyHead; i < this.ready.length; i++) this.ready[i]!.woken = false;
    this.ready.length = 0;
    this.readyHead = 0;
  }

  private toResponse(w: Watcher, item: Delivery): StreamResponse {
    const tag = w.tag as WatcherTag;
    const response = this.blank(item.revision);
    response.watchId = tag.watchId;
    response.prevKv = w.spec.prevKv;
    response.fragment = tag.fragment;
    if (item.control === CREATED) {
      response.created = true;
    } else if (item.control === CANCELED) {
      response.canceled = true;
    } else if (item.compactRevision > 0) {
      response.compactRevision = item.compactRevision;
      response.canceled = true;
    } else {
      response.events = item.events;
      if (item.events.length > 0) tag.sentSinceTick = true;
    }
    return response;
  }

  private blank(revision: number): StreamResponse {
    return {
      watchId: 0,
      revision,
      events: [],
      created: false,
      canceled: false,
      cancelReason: '',
      compactRevision: 0,
      prevKv: false,
      fragment: false,
    };
  }

  private pushControl(response: StreamResponse): void {
    this.control.push(response);
    this.onReadable();
  }

  /** etcd's progress ticker: an empty response to each synced, idle watcher that asked. */
  private progressTick(): void {
    for (const w of this.watchers.values()) {
      const tag = w.tag as WatcherTag;
      if (!tag.progressNotify) continue;
      const sent = tag.sentSinceTick;
      tag.sentSinceTick = false;
      if (sent || !this.hub.isSynced(w) || w.queued > 0) continue;
      this.hub.enqueue(w, { revision: this.hub.currentRevision, events: [], compactRevision: 0, bytes: 64 });
    }
  }
}
