// Admission at the edge, before a large request's body is read: the call layer assembles a
// whole message before a handler sees it, so a flood of large writes (500 clients sending 1 MiB each)
// would hold every partly received body at once, and each of them, sharing the bandwidth with
// all the others, would arrive too late to be answered before its deadline. So the client port
// receives at most `maxReceivingBytes / maxRequestBytes` LARGE requests at a time: a request
// counts as large once more than LARGE_REQUEST_BYTES of it have arrived and its body is not
// complete, and is then charged as if it had the largest allowed size. While that many are being
// received, a new request is answered at once, from its headers, with etcd's "etcdserver: too
// many requests" (RESOURCE_EXHAUSTED), and the stream is reset so the client stops sending its
// body. Small requests arrive in one piece and never take a place, however many are in flight
// (etcd serves thousands of concurrent small requests; a count of all requests refused the
// pipelined reads of an ordinary client); what is admitted goes on to RaftNode's write-path
// limits.
//
// Streams whose request side stays open (Watch, LeaseKeepAlive) are not counted: they would
// hold a place for their whole life.
//
// The refusal (a Trailers-Only RESOURCE_EXHAUSTED, then RST_STREAM NO_ERROR) is written by the
// call layer, h2/grpc-calls.ts, which asks the gate about every new stream before anything else.

/** Methods whose client side stays open for the life of the call. */
const LONG_LIVED_REQUEST_STREAMS = new Set(['/etcdserverpb.Watch/Watch', '/etcdserverpb.Lease/LeaseKeepAlive']);

export const TOO_MANY_REQUESTS = 'etcdserver: too many requests';

/** Bytes of a request's body after which, still incomplete, it takes a receiving place. */
export const LARGE_REQUEST_BYTES = 64 * 1024;

export interface ReceiveLimit {
  /** Bytes of requests being received at once (0 = no limit). */
  maxReceivingBytes: number;
  /** The largest request accepted (--max-request-bytes): what each receiving request is charged. */
  maxRequestBytes: number;
  /** Told about each request refused here. */
  onRefused?: (path: string) => void;
}

/** How many requests may be received at once under `limit` (at least one). */
export function receivingSlots(limit: ReceiveLimit): number {
  if (limit.maxReceivingBytes <= 0) return Number.POSITIVE_INFINITY;
  return Math.max(1, Math.floor(limit.maxReceivingBytes / limit.maxRequestBytes));
}

/**
 * The gate of one client port (h2/grpc-calls.ts asks it per new stream): the stream's count
 * (its reader reports with countReceived and releaseReceived), undefined when it is not
 * counted, or null when it must be refused (TOO_MANY_REQUESTS). Undefined as a whole when
 * there is no limit.
 */
export function receivingGate(limit: ReceiveLimit): AdmissionGate | undefined {
  const slots = receivingSlots(limit);
  if (slots === Number.POSITIVE_INFINITY) return undefined;
  const gate: ReceivingGate = { receiving: 0 };
  const admit = (path: string): ReceivedBytes | undefined | null => {
    if (LONG_LIVED_REQUEST_STREAMS.has(path)) return undefined;
    if (gate.receiving >= slots) {
      limit.onRefused?.(path);
      return null;
    }
    return { gate, arrived: 0, counted: false, done: false };
  };
  return Object.assign(admit, { receiving: () => gate.receiving });
}

/** receivingGate's per-stream decision, and how many requests hold a receiving place now. */
export type AdmissionGate = ((path: string) => ReceivedBytes | undefined | null) & { receiving(): number };

/** `bytes` more of the request arrived. */
export function countReceived(state: ReceivedBytes, bytes: number): void {
  if (state.done) return;
  state.arrived += bytes;
  if (state.counted || state.arrived <= LARGE_REQUEST_BYTES) return;
  state.counted = true;
  state.gate.receiving++;
}

/** The request ended (or its stream closed): its place, if it took one, is free again. */
export function releaseReceived(state: ReceivedBytes): void {
  if (state.done) return;
  state.done = true;
  if (state.counted) state.gate.receiving--;
}

/** How many requests of one server hold a receiving place now. */
interface ReceivingGate {
  receiving: number;
}

/** Bytes of a request received so far, and whether it holds a receiving place. */
export interface ReceivedBytes {
  readonly gate: ReceivingGate;
  arrived: number;
  counted: boolean;
  done: boolean;
}
