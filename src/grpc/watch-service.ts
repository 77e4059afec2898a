// etcd's Watch service over gRPC: one bidi stream of WatchRequest -> WatchResponse per call,
// carrying many watchers (src/server/watch/watch-stream.ts does the watcher bookkeeping).
//
// Invariants:
// - Requests are handled in arrival order; responses are pulled from the WatchStream only
//   while the call is writable (write() true / 'drain') and while the bytes of written but not
//   yet sent responses stay under MAX_UNSENT_BYTES. A write's callback fires once grpc-js's
//   HTTP/2 write completed, i.e. the client's flow-control window let the frame out, so an
//   unread stream holds at most its stream budget plus about MAX_UNSENT_BYTES (one oversized
//   response at a time); everything else stays in the hub, which unsyncs the watchers.
// - A response is split (fragment=true on all but the last) only for watchers created with
//   `fragment`, only when its encoded size reaches --max-request-bytes + 512 KiB and it has
//   2+ events,
//   cutting at the same points etcd's sendFragments does. Without `fragment` it goes out
//   whole, as in etcd.
// - Responses are encoded from parts (watch-encoding.ts): each event once for all watchers;
//   while the stream is behind (the last flush stopped on backpressure), a watcher's queued
//   revisions go out as one response, so a lagging stream catches up in fewer writes.
// - Writes per flush, not per response: everything the stream has ready when a flush runs
//   (a revision's responses to all its watchers, fragments included, in pull order) is framed
//   into buffers of up to MAX_BATCH_BYTES, each written at once (batch-writer.ts; grpc-js alone
//   would take one write per message). The call's messages all go through that writer, never
//   call.write().
// - The streams one apply wakes flush together, in one microtask after it, each one's bytes
//   handed to its socket as soon as it is framed (writeQueuedOutput); a batch whose
//   responses encode exactly like a prefix of the last batch any stream framed (every encoding
//   input compared, events arrays by identity) reuses those bytes, so streams with the same
//   watchers encode a revision once (Batch, below).
// - Progress notifications (progress_notify watchers, every --experimental-watch-progress-
//   notify-interval plus etcd's jitter) carry the watcher's ID and the store's current
//   revision, and go only to synced watchers with nothing queued (watch-stream.ts).
// - Key/range_end follow etcd's watch conventions: empty key = "\0" (the smallest key);
//   range_end "\0" = every key >= key.

import * as grpc from '@grpc/grpc-js';
import type { KvServer } from '../server/member/kv-server.js';
import { DEFAULT_PROGRESS_NOTIFY_INTERVAL_MS, WatchStream, type StreamResponse } from '../server/watch/watch-stream.js';
import type { Handlers, ResponseHeaders } from './handler.js';
import { requestSize } from './handler.js';
import { envelopeSize, eventField, watchResponseParts, type WireHeader } from './watch-encoding.js';
import { checkRange } from './auth-check.js';
import { type BatchWriter, batchWriterOf } from './batch-writer.js';
import { frameMessages, MESSAGE_PREFIX_BYTES, type MessagePart } from './message-frames.js';
import { ETCD_ERRORS, isEtcdCodedError } from './errors.js';
import { writeQueuedOutput } from './h2/connection.js';
import { assert } from '../util/assert.js';

interface WireCreate {
  key?: Buffer | null;
  rangeEnd?: Buffer | null;
  startRevision?: string | number | null;
  progressNotify?: boolean;
  filters?: number[];
  prevKv?: boolean;
  watchId?: string | number | null;
  fragment?: boolean;
}

interface WireWatchRequest {
  requestUnion?: 'createRequest' | 'cancelRequest' | 'progressRequest';
  createRequest?: WireCreate | null;
  cancelRequest?: { watchId?: string | number | null } | null;
  progressRequest?: object | null;
}

/** etcd's watch server cuts fragments at --max-request-bytes plus its gRPC overhead
 * allowance (512 KiB, v3rpc grpcOverheadBytes). */
const GRPC_OVERHEAD_BYTES = 512 * 1024;
/** Bytes (estimated) handed to grpc-js but not yet sent on the HTTP/2 stream, per stream. */
const MAX_UNSENT_BYTES = 1024 * 1024;
/**
 * Bytes framed into one write at most (a single larger response goes alone). A write's bytes
 * all leave before 'drain' lets the next flush write more, so events that arrive meanwhile wait
 * for the whole write: 1 MiB writes held a lagging stream's events for up to a second at a few
 * MB/s per stream (bench/RESULTS.md); one revision for 100 watchers is ~15 KiB.
 */
const MAX_BATCH_BYTES = 64 * 1024;
const FILTER_NOPUT = 0;
const FILTER_NODELETE = 1;
function int(value: string | number | null | undefined): number {
  if (value === null || value === undefined) return 0;
  const n = Number(value);
  return Number.isSafeInteger(n) ? n : n > 0 ? Number.MAX_SAFE_INTEGER : Number.MIN_SAFE_INTEGER;
}

export interface WatchServiceOptions {
  maxRequestBytes: number;
  /** The client port's receive limit: larger watch requests end the stream with grpc-go's
   * RESOURCE_EXHAUSTED text. Default etcd's: maxRequestBytes + 512 KiB. */
  receiveLimit?: number;
  /** Byte budget of one stream's queued responses. */
  maxStreamPendingBytes?: number;
  /** etcd --experimental-watch-progress-notify-interval; 0 or absent = etcd's 10 minutes. */
  progressNotifyIntervalMs?: number;
}

/** etcd raises shorter progress intervals to this (v3rpc minWatchProgressInterval). */
const MIN_PROGRESS_NOTIFY_INTERVAL_MS = 100;

/**
 * One stream's progress period as etcd computes it: the configured interval (0 = the default,
 * at least 100 ms) plus a random jitter of up to a tenth of it, so that streams created
 * together (a client restarting) do not all get their notifications at the same moment.
 */
export function progressPeriodMs(intervalMs: number | undefined, random: () => number = Math.random): number {
  const base = intervalMs === undefined || intervalMs === 0 ? DEFAULT_PROGRESS_NOTIFY_INTERVAL_MS : Math.max(intervalMs, MIN_PROGRESS_NOTIFY_INTERVAL_MS);
  return base + Math.floor(random() * (base / 10));
}

export function watchHandlers(kv: KvServer, headers: ResponseHeaders, options: WatchServiceOptions): Handlers {
  const Watch = (call: WatchCallStream): void => new WatchCall(kv, call, headers, options).start();
  return { Watch: Watch as unknown as grpc.UntypedHandleCall };
}

type WatchCallStream = grpc.ServerDuplexStream<WireWatchRequest, object>;

/** One Watch call: its requests go to a WatchStream, whose responses go out as the call can take them. */
class WatchCall {
  private readonly stream: WatchStream;
  private readonly receiveLimit: number;
  private readonly writer: BatchWriter;
  private writable = true;
  private scheduled = false;
  private ended = false;
  private unsentBytes = 0;
  /** The fields of the last events array encoded (see fieldsOf). */
  private lastFields: { events: StreamResponse['events']; prevKv: boolean; fields: readonly Buffer[] } | undefined;
  /** The last flush stopped on backpressure with responses possibly left (see WatchStream.pull). */
  private behind = false;

  constructor(
    private readonly kv: KvServer,
    private readonly call: WatchCallStream,
    private readonly headers: ResponseHeaders,
    private readonly options: WatchServiceOptions,
  ) {
    this.stream = new WatchStream(kv.watchHub, {
      maxPendingBytes: options.maxStreamPendingBytes,
      progressNotifyIntervalMs: progressPeriodMs(options.progressNotifyIntervalMs),
    });
    this.receiveLimit = options.receiveLimit ?? options.maxRequestBytes + GRPC_OVERHEAD_BYTES;
    this.writer = batchWriterOf(call);
  }

  start(): void {
    this.stream.onReadable = () => {
      if (this.scheduled || !this.writable || this.ended || this.unsentBytes >= MAX_UNSENT_BYTES) return;
      this.scheduled = true;
      scheduleFlush(this);
    };
    this.writer.onDrain(() => {
      this.writable = true;
      this.flush();
    });
    this.call.on('data', (request: WireWatchRequest) => this.onRequest(request));
    // A client that half-closes still gets its watches' events: etcd 3.4's watch stream ends
    // only when the client cancels it (its receive loop returns on EOF, the send loop goes on).
    // etcd's JSON gateway relies on it: it half-closes as soon as the request body ends.
    this.call.on('error', this.finish);
    this.call.on('close', this.finish);
    this.call.on('cancelled', this.finish);
  }

  private readonly finish = (): void => {
    if (this.ended) return;
    this.ended = true;
    this.stream.close();
  };

  /**
   * Everything ready (up to the unsent budget) goes out framed together, in writes of up to
   * MAX_BATCH_BYTES each while the transport takes them.
   */
  readonly flush = (): void => {
    this.scheduled = false;
    if (!this.writable || this.ended) return;
    let caughtUp = false;
    while (this.writable && this.unsentBytes < MAX_UNSENT_BYTES && !caughtUp) {
      const batch = new Batch(this.fragmentLimit, this.toWire);
      while (batch.bytes < MAX_BATCH_BYTES && this.unsentBytes + batch.bytes < MAX_UNSENT_BYTES) {
        const response = this.stream.pull(this.behind);
        if (response === undefined) {
          caughtUp = true;
          break;
        }
        batch.add(response, this.headers.at(response.revision));
      }
      if (batch.isEmpty) break;
      const bytes = batch.bytes;
      this.unsentBytes += bytes;
      if (!this.writer.write(batch.framed(), this.sent(bytes))) this.writable = false;
    }
    // Stopped by the budget or by the transport's backpressure: what piles up meanwhile goes
    // out merged.
    this.behind = !caughtUp || !this.writable;
  };

  /**
   * The write callback of a batch: its bytes have left for the client. A flush is scheduled
   * only if the stream has something waiting (held back by the unsent budget, or queued
   * meanwhile): these callbacks run between the HTTP/2 sessions' sends of a revision, so an
   * empty flush per stream there delayed every later session's events.
   */
  private sent(bytes: number): () => void {
    return () => {
      this.unsentBytes -= bytes;
      if (this.stream.hasPending) this.stream.onReadable();
      // What an empty flush would have concluded: the stream keeps up again.
      else if (this.writable && this.unsentBytes < MAX_UNSENT_BYTES) this.behind = false;
    };
  }

  /** The size at which a fragment watcher's response is split (etcd's sendFragments limit). */
  private get fragmentLimit(): number {
    return this.options.maxRequestBytes + GRPC_OVERHEAD_BYTES;
  }

  /** The response's encoded message(s), each as its parts: one, or etcd's fragments for a watcher that asked. */
  private readonly toWire = (r: StreamResponse, header: WireHeader): MessagePart[][] => {
    const fields = this.fieldsOf(r);
    if (!r.fragment || fields.length < 2) return [watchResponseParts(r, header, fields)];
    return fragments(r, header, fields, this.fragmentLimit);
  };

  /**
   * The encoded event fields of a response. The hub hands the watchers of one revision the same
   * events array (never changed once queued), so consecutive responses of a flush usually share
   * it: their fields are looked up once, not once per watcher.
   */
  private fieldsOf(r: StreamResponse): readonly Buffer[] {
    const last = this.lastFields;
    if (last !== undefined && last.events === r.events && last.prevKv === r.prevKv) return last.fields;
    const fields = r.events.map((e) => eventField(e, r.prevKv));
    this.lastFields = { events: r.events, prevKv: r.prevKv, fields };
    return fields;
  }

  private onRequest(request: WireWatchRequest): void {
    if (this.ended) return;
    if (requestSize(request) > this.receiveLimit) {
      this.finish();
      this.call.emit('error', {
        code: grpc.status.RESOURCE_EXHAUSTED,
        details: `grpc: received message larger than max (${requestSize(request)} vs. ${this.receiveLimit})`,
      });
      return;
    }
    switch (request.requestUnion) {
      case 'createRequest':
        if (request.createRequest) this.create(request.createRequest);
        break;
      case 'cancelRequest':
        if (request.cancelRequest) this.stream.cancel(int(request.cancelRequest.watchId));
        break;
      case 'progressRequest':
        if (request.progressRequest) this.stream.requestProgress();
        break;
      default:
        // etcd ignores requests it does not understand rather than ending the stream.
        break;
    }
  }

  private create(c: WireCreate): void {
    const filters = c.filters ?? [];
    this.stream.create({
      refusal: this.refusal(c),
      watchId: int(c.watchId),
      key: c.key && c.key.length > 0 ? c.key : Buffer.from([0]),
      rangeEnd: c.rangeEnd ?? Buffer.alloc(0),
      startRevision: Math.max(0, int(c.startRevision)),
      progressNotify: c.progressNotify ?? false,
      noPut: filters.includes(FILTER_NOPUT),
      noDelete: filters.includes(FILTER_NODELETE),
      prevKv: c.prevKv ?? false,
      fragment: c.fragment ?? false,
    });
  }

  /** Why the caller may not watch this range (etcd's error text), or undefined when it may. */
  private refusal(c: WireCreate): string | undefined {
    // etcd checks the range as sent (key may be empty) with the stream's credentials.
    try {
      checkRange(this.kv.auth, this.call, c.key ?? Buffer.alloc(0), c.rangeEnd ?? Buffer.alloc(0), 'read');
      return undefined;
    } catch (error) {
      if (!isEtcdCodedError(error)) throw error;
      return ETCD_ERRORS[error.etcdCode].message;
    }
  }
}

/**
 * The streams woken since the last flush round, flushed together in one microtask. A
 * microtask, not setImmediate: the hub wakes the streams from inside the apply, so they flush
 * as soon as that apply batch (all of its revisions, coalesced) is done, ahead of the puts' own
 * answers, and HTTP/2 sends in this loop turn (setImmediate cost a loop turn more: its writes
 * left one turn later still, HTTP/2 sending from native immediates). One promise reaction for
 * all of them rather than queueMicrotask per stream: Node's queueMicrotask wraps each callback
 * in an AsyncResource, and every stream of a revision waits for all of them (bench/RESULTS.md).
 */
let woken: WatchCall[] = [];

const settled = Promise.resolve();

function scheduleFlush(call: WatchCall): void {
  woken.push(call);
  if (woken.length === 1) void settled.then(flushWoken);
}

function flushWoken(): void {
  const calls = woken;
  woken = [];
  for (const call of calls) {
    call.flush();
    // Its bytes go to the socket now: the revision's events then leave stream by stream while
    // the next streams are framed, not after every stream, the puts' answers and the rest of
    // this turn's continuations (bench/RESULTS.md, "Watch latency at 100 watchers: a fresh map").
    writeQueuedOutput();
  }
}

/** A response of a framed batch: what it was encoded from, and where its bytes end in the batch. */
interface FramedResponse {
  readonly response: StreamResponse;
  readonly header: WireHeader;
  readonly end: number;
}

/**
 * The last batch any stream framed. The streams a revision wakes often have the same watchers
 * (the same IDs and options: clients watching the same prefix the same way) and so send the
 * same bytes: a batch whose responses are those of a prefix of this one sends that prefix of its
 * buffer instead of encoding and copying them again; every stream but the first of a revision
 * then only pulls its responses (bench/RESULTS.md, "The watch-latency row"). Held until the next
 * batch is framed: one batch of at most MAX_BATCH_BYTES (plus one oversized response).
 */
let lastBatch: { readonly framed: Buffer; readonly responses: readonly FramedResponse[]; readonly fragmentLimit: number } | undefined;

/**
 * Whether `r` under `header` encodes to the same bytes as `prior`: every input of the encoding
 * (toWire, fragments, watchResponseParts) is compared. `events` by identity: the hub never
 * changes an events array once queued, and watchers of a revision share one.
 */
function encodesAs(prior: FramedResponse, r: StreamResponse, header: WireHeader): boolean {
  const p = prior.response;
  const h = prior.header;
  return (
    p.events === r.events &&
    p.watchId === r.watchId &&
    p.revision === r.revision &&
    p.prevKv === r.prevKv &&
    p.fragment === r.fragment &&
    p.created === r.created &&
    p.canceled === r.canceled &&
    p.compactRevision === r.compactRevision &&
    p.cancelReason === r.cancelReason &&
    h.revision === header.revision &&
    h.raftTerm === header.raftTerm &&
    h.clusterId === header.clusterId &&
    h.memberId === header.memberId
  );
}

/**
 * One write's worth of responses of a stream. While they match the last batch framed (same
 * fragment limit, same responses in the same order), nothing is encoded; at the first that
 * does not, the ones before it are encoded after all and the batch is framed on its own.
 */
class Batch {
  bytes = 0;
  private readonly responses: FramedResponse[] = [];
  /** The messages' parts; undefined while the batch is a prefix of `shared`. */
  private messages: MessagePart[][] | undefined;
  private readonly shared: typeof lastBatch;

  constructor(
    private readonly fragmentLimit: number,
    private readonly encode: (r: StreamResponse, header: WireHeader) => MessagePart[][],
  ) {
    this.shared = lastBatch?.fragmentLimit === fragmentLimit ? lastBatch : undefined;
    if (this.shared === undefined) this.messages = [];
  }

  get isEmpty(): boolean {
    return this.responses.length === 0;
  }

  add(response: StreamResponse, header: WireHeader): void {
    if (this.messages === undefined) {
      const prior = this.shared!.responses[this.responses.length];
      if (prior !== undefined && encodesAs(prior, response, header)) {
        this.responses.push(prior);
        this.bytes = prior.end;
        return;
      }
      const matched = this.responses.splice(0);
      this.messages = [];
      this.bytes = 0;
      for (const m of matched) this.encodeOne(m.response, m.header);
    }
    this.encodeOne(response, header);
  }

  /** The framed messages: a prefix of the shared batch's buffer, or a new one (then shared). */
  framed(): Buffer {
    if (this.messages === undefined) {
      const all = this.shared!.framed;
      return this.bytes === all.length ? all : all.subarray(0, this.bytes);
    }
    const framed = frameMessages(this.messages);
    assert(framed.length === this.bytes, `watch: batch framed in ${framed.length} bytes, counted ${this.bytes}`);
    lastBatch = { framed, responses: this.responses, fragmentLimit: this.fragmentLimit };
    return framed;
  }

  private encodeOne(response: StreamResponse, header: WireHeader): void {
    for (const parts of this.encode(response, header)) {
      this.messages!.push(parts);
      for (const part of parts) this.bytes += part.length;
      this.bytes += MESSAGE_PREFIX_BYTES;
    }
    this.responses.push({ response, header, end: this.bytes });
  }
}

/**
 * Splits a response the way etcd's sendFragments does: events are added while the fragment
 * stays under the limit (a fragment always takes at least one event), every fragment but the
 * last has fragment=true. Sizes are exact encoded sizes (`fields` are encoded event fields).
 */
function fragments(r: StreamResponse, header: WireHeader, fields: readonly Buffer[], maxBytes: number): MessagePart[][] {
  const base = envelopeSize(r, header, false);
  const total = fields.reduce((sum, field) => sum + field.length, base);
  if (total < maxBytes) return [watchResponseParts(r, header, fields)];
  // fragment=true itself costs two bytes in every fragment but the last.
  const fragmentBase = base + 2;
  const out: MessagePart[][] = [];
  let index = 0;
  while (index < fields.length) {
    let size = fragmentBase;
    const part: Buffer[] = [];
    while (index < fields.length) {
      const next = fields[index]!.length;
      if (part.length >= 1 && size + next >= maxBytes) break;
      part.push(fields[index]!);
      size += next;
      index++;
    }
    out.push(watchResponseParts(r, header, part, index < fields.length));
  }
  return out;
}
