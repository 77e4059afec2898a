// Plumbing shared by every service handler: turning a (possibly async) function into a grpc-js
// unary handler, mapping thrown errors to etcd's statuses, the ResponseHeader, and the size of
// the request as it arrived on the wire.

import * as grpc from '@grpc/grpc-js';
import { MvccError, type MvccErrorCode } from '../mvcc/errors.js';
import { ForwardedError } from './leader-forward.js';
import { type EtcdErrorCode, etcdStatus, isEtcdCodedError, rawStatus } from './errors.js';
import { encodeWithHeader, hasHeaderField } from './header-encoding.js';
import { decodePutRequest } from './put-request-decoding.js';
import { decodeRangeRequest } from './range-request-decoding.js';

export type Handlers = Record<string, grpc.UntypedHandleCall>;

/** Called with every finished call: method name, gRPC status code, seconds taken. */
export type CallObserver = (method: string, code: grpc.status, seconds: number) => void;

/** Receives errors that are bugs (not etcd errors), for logging. */
export type InternalErrorSink = (method: string, error: unknown) => void;

/** Admission control before any work: a refusal text, or undefined to admit (rate-limit.ts). */
export type Admission = () => string | undefined;

/** Receives every unary call that took at least the slow-request threshold. */
export type SlowRequestSink = (method: string, request: unknown, tookMs: number, code: grpc.status) => void;

export interface RequestLimits {
  /** A unary call still unanswered after this long fails with etcd's "request timed out"; 0 = never. */
  timeoutMs: number;
  /** Calls taking at least this long go to `onSlow`; 0 = none. */
  slowMs: number;
  onSlow?: SlowRequestSink;
}

const hooks: {
  observe?: CallObserver;
  internalError?: InternalErrorSink;
  admit?: Admission;
  timeoutMs: number;
  slowMs: number;
  onSlow?: SlowRequestSink;
} = { timeoutMs: 0, slowMs: 0 };

export function setCallHooks(observe: CallObserver | undefined, internalError: InternalErrorSink | undefined): void {
  hooks.observe = observe;
  hooks.internalError = internalError;
}

/** Installs (or, with undefined, removes) the admission check every unary call passes first. */
export function setAdmission(admit: Admission | undefined): void {
  hooks.admit = admit;
}

/**
 * Installs (or, with undefined, removes) the request timeout and slow-request logging. The
 * timeout answers the client; the work itself is not cancelled (a proposal may still commit,
 * as with etcd's own timeout).
 */
export function setRequestLimits(limits: RequestLimits | undefined): void {
  hooks.timeoutMs = limits?.timeoutMs ?? 0;
  hooks.slowMs = limits?.onSlow ? limits.slowMs : 0;
  hooks.onSlow = limits?.onSlow;
}

const MVCC_TO_ETCD: Record<MvccErrorCode, EtcdErrorCode> = {
  compacted: 'Compacted',
  'future-revision': 'FutureRev',
  'key-not-found': 'KeyNotFound',
  'lease-not-found': 'LeaseNotFound',
};

export function toStatus(method: string, error: unknown): Partial<grpc.ServiceError> {
  if (error instanceof MvccError) return etcdStatus(MVCC_TO_ETCD[error.code]);
  if (isEtcdCodedError(error)) return etcdStatus(error.etcdCode);
  if (error instanceof StatusError || error instanceof ForwardedError) return rawStatus(error.code, error.details);
  hooks.internalError?.(method, error);
  return rawStatus(grpc.status.INTERNAL, `etcdserver: internal error in ${method}`);
}

/** A status that is not one of etcd's rpctypes errors (e.g. grpc's own message-size text). */
export class StatusError extends Error {
  constructor(
    readonly code: grpc.status,
    readonly details: string,
  ) {
    super(details);
  }
}

export interface UnaryOptions {
  /**
   * The call waits for something other clients do (Lock, Campaign): it has no request timeout
   * and ends only when done or when the client cancels or its deadline passes, as in etcd
   * (whose v3lock and v3election wait on the client's context alone).
   */
  readonly waits?: boolean;
}

export function unary<Request>(
  method: string,
  body: (request: Request, call: grpc.ServerUnaryCall<Request, unknown>) => unknown,
  options: UnaryOptions = {},
): grpc.handleUnaryCall<Request, unknown> {
  return (call, callback) => {
    const timed = hooks.observe !== undefined || hooks.slowMs > 0;
    const run = new UnaryRun(method, call.request, callback as grpc.sendUnaryData<unknown>, timed ? performance.now() : -1);
    const refused = hooks.admit?.();
    if (refused !== undefined) {
      run.finish(rawStatus(grpc.status.RESOURCE_EXHAUSTED, refused));
      return;
    }
    const tooLarge = oversize(call.request);
    if (tooLarge !== undefined) {
      run.finish(rawStatus(grpc.status.RESOURCE_EXHAUSTED, tooLarge));
      return;
    }
    let result: unknown;
    try {
      result = body(call.request, call);
    } catch (error) {
      run.finish(toStatus(method, error));
      return;
    }
    if (!(result instanceof Promise)) {
      run.finish(null, result);
      return;
    }
    if (hooks.timeoutMs > 0 && options.waits !== true) requestDeadlines.add(run);
    result.then(
      (response) => run.finish(null, response),
      (error: unknown) => run.finish(toStatus(method, error)),
    );
  };
}

/**
 * One unary call from its start to its answer, as one object rather than a closure per step
 * (the answer, the timeout, the timer): the wrapper's per-call allocation (bench/RESULTS.md,
 * session 9, S9-H3). Also its place in the request-timeout list.
 */
class UnaryRun {
  answered = false;
  /** performance.now() at which the request timeout answers it, while in `requestDeadlines`. */
  deadline = 0;
  older: UnaryRun | undefined;
  newer: UnaryRun | undefined;

  constructor(
    private readonly method: string,
    private readonly request: unknown,
    private readonly callback: grpc.sendUnaryData<unknown>,
    /** performance.now() at the start when timed (metrics or slow-request logging), else -1. */
    private readonly started: number,
  ) {}

  /** The call's one answer: later ones (the work finishing after its timeout) are dropped. */
  finish(error: Partial<grpc.ServiceError> | null, response?: unknown): void {
    if (this.answered) return;
    this.answered = true;
    requestDeadlines.remove(this);
    if (this.started >= 0) {
      const tookMs = performance.now() - this.started;
      const code = error?.code ?? grpc.status.OK;
      hooks.observe?.(this.method, code, tookMs / 1000);
      if (hooks.slowMs > 0 && tookMs >= hooks.slowMs) hooks.onSlow?.(this.method, this.request, tookMs, code);
    }
    this.callback(error, response);
  }

  /** The clock reading the deadline is counted from (the start's, when it was read). */
  get startedOrNow(): number {
    return this.started >= 0 ? this.started : performance.now();
  }
}

/**
 * The calls waiting for an answer under the request timeout, with one timer for all of them,
 * armed for the earliest deadline (a Timeout and two closures per call before). A call answered
 * in time leaves the list at once (doubly linked), so the list holds only calls in flight, and
 * the timer's rare firing walks all of them (the timeout may have been configured anew between
 * two calls, so arrival order need not be deadline order).
 */
class DeadlineList {
  private oldest: UnaryRun | undefined;
  private newest: UnaryRun | undefined;
  private timer: NodeJS.Timeout | undefined;
  private timerDue = 0;
  private readonly expire = (): void => this.expireDue();

  add(run: UnaryRun): void {
    run.deadline = run.startedOrNow + hooks.timeoutMs;
    run.older = this.newest;
    if (this.newest === undefined) this.oldest = run;
    else this.newest.newer = run;
    this.newest = run;
    if (this.timer !== undefined && run.deadline >= this.timerDue) return;
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.arm(run.deadline);
  }

  remove(run: UnaryRun): void {
    if (run.deadline === 0) return;
    run.deadline = 0;
    if (run.older === undefined) this.oldest = run.newer;
    else run.older.newer = run.newer;
    if (run.newer === undefined) this.newest = run.older;
    else run.newer.older = run.older;
    run.older = undefined;
    run.newer = undefined;
  }

  private arm(due: number): void {
    this.timerDue = due;
    // The calls' own sockets keep the process alive; this timer alone need not.
    this.timer = setTimeout(this.expire, Math.max(1, due - performance.now())).unref();
  }

  private expireDue(): void {
    this.timer = undefined;
    const now = performance.now();
    let next = Number.POSITIVE_INFINITY;
    const due: UnaryRun[] = [];
    for (let run = this.oldest; run !== undefined; run = run.newer) {
      if (run.deadline <= now) due.push(run);
      else next = Math.min(next, run.deadline);
    }
    // Answered after the walk: an answer's callback may end other calls (and so unlink them).
    for (const run of due) run.finish(etcdStatus('Timeout'));
    // A timer may fire a little early by this clock: then it is armed again for the rest.
    if (next !== Number.POSITIVE_INFINITY) this.arm(next);
  }
}

const requestDeadlines = new DeadlineList();

export function unimplemented(service: string, method: string): grpc.UntypedHandleCall {
  const details = `MetaStore does not implement ${service}.${method} yet`;
  return ((call: grpc.ServerUnaryCall<unknown, unknown> | grpc.ServerWritableStream<unknown, unknown>, callback?: grpc.sendUnaryData<unknown>) => {
    const error = { code: grpc.status.UNIMPLEMENTED, details };
    if (typeof callback === 'function') callback(error);
    else (call as grpc.ServerWritableStream<unknown, unknown>).emit('error', error);
  }) as grpc.UntypedHandleCall;
}

// ---------------------------------------------------------------- request size

const WIRE_SIZE = Symbol('wireSize');
const OVERSIZE = Symbol('oversize');

function oversize(request: unknown): string | undefined {
  return typeof request === 'object' && request !== null ? (request as { [OVERSIZE]?: string })[OVERSIZE] : undefined;
}

/** The encoded size of a request as received, recorded by the deserializer wrapper. */
export function requestSize(request: object): number {
  return (request as { [WIRE_SIZE]?: number })[WIRE_SIZE] ?? 0;
}

/** Requests decoded by hand, by method path; a decoder leaves what it does not handle to proto-loader. */
const HAND_DECODERS: Record<string, (bytes: Buffer) => object | undefined> = {
  '/etcdserverpb.KV/Range': decodeRangeRequest,
  '/etcdserverpb.KV/Put': decodePutRequest,
};

/**
 * Wraps a service definition so each decoded request remembers its size on the wire, and
 * refuses requests over `maxMessageBytes` with the text Go's grpc uses, as etcd does for
 * messages over --max-request-bytes + 512. Responses may be given already encoded (a Buffer).
 */
export function withRequestSizes(definition: grpc.ServiceDefinition, maxMessageBytes: number): grpc.ServiceDefinition {
  const wrapped: Record<string, grpc.MethodDefinition<object, unknown>> = {};
  for (const [name, method] of Object.entries(definition)) {
    const generic = method.requestDeserialize as (bytes: Buffer) => object;
    const fast = HAND_DECODERS[method.path];
    const decode = fast === undefined ? generic : (bytes: Buffer) => fast(bytes) ?? generic(bytes);
    const serialize = method.responseSerialize as (value: unknown) => Buffer;
    const encode = hasHeaderField(method) ? (value: unknown) => encodeWithHeader(value, serialize) as Buffer : serialize;
    wrapped[name] = {
      ...method,
      // A handler may hand over a response it encoded itself (the watch fan-out encodes each
      // event once for all its watchers): bytes go out as they are.
      responseSerialize: (value: unknown) => (Buffer.isBuffer(value) ? value : encode(value)),
      requestDeserialize: (bytes: Buffer) => {
        // An oversized message is not decoded at all: the handler answers with the error.
        const request = bytes.length > maxMessageBytes ? {} : decode(bytes);
        Object.defineProperty(request, WIRE_SIZE, { value: bytes.length, enumerable: false });
        if (bytes.length > maxMessageBytes) {
          const details = `grpc: received message larger than max (${bytes.length} vs. ${maxMessageBytes})`;
          Object.defineProperty(request, OVERSIZE, { value: details, enumerable: false });
        }
        return request;
      },
    };
  }
  return wrapped as grpc.ServiceDefinition;
}

// ---------------------------------------------------------------- headers

export interface ResponseHeaders {
  at(revision: number): { clusterId: string; memberId: string; revision: number; raftTerm: number };
}

export function responseHeaders(identity: { clusterId: bigint; memberId: bigint }, term: () => number): ResponseHeaders {
  // The identity object may change once (a joining member learns its cluster ID): cache the
  // decimal strings per value rather than once.
  let clusterIdValue = identity.clusterId;
  let clusterId = clusterIdValue.toString();
  const memberId = identity.memberId.toString();
  return {
    at(revision) {
      if (identity.clusterId !== clusterIdValue) {
        clusterIdValue = identity.clusterId;
        clusterId = clusterIdValue.toString();
      }
      return { clusterId, memberId, revision, raftTerm: term() };
    },
  };
}
