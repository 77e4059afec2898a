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
    const started = timed ? performance.now() : 0;
    const done = (error: Partial<grpc.ServiceError> | null, response?: unknown): void => {
      if (timed) {
        const tookMs = performance.now() - started;
        const code = error?.code ?? grpc.status.OK;
        hooks.observe?.(method, code, tookMs / 1000);
        if (hooks.slowMs > 0 && tookMs >= hooks.slowMs) hooks.onSlow?.(method, call.request, tookMs, code);
      }
      callback(error, response);
    };
    const refused = hooks.admit?.();
    if (refused !== undefined) {
      done(rawStatus(grpc.status.RESOURCE_EXHAUSTED, refused));
      return;
    }
    const tooLarge = oversize(call.request);
    if (tooLarge !== undefined) {
      done(rawStatus(grpc.status.RESOURCE_EXHAUSTED, tooLarge));
      return;
    }
    let result: unknown;
    try {
      result = body(call.request, call);
    } catch (error) {
      done(toStatus(method, error));
      return;
    }
    if (result instanceof Promise) {
      if (hooks.timeoutMs > 0 && options.waits !== true) {
        // Node keeps timers of one duration in one list: arming and clearing is O(1).
        let answered = false;
        const timer = setTimeout(() => {
          answered = true;
          done(etcdStatus('Timeout'));
        }, hooks.timeoutMs);
        result.then(
          (response) => {
            if (answered) return;
            answered = true;
            clearTimeout(timer);
            done(null, response);
          },
          (error: unknown) => {
            if (answered) return;
            answered = true;
            clearTimeout(timer);
            done(toStatus(method, error));
          },
        );
        return;
      }
      result.then(
        (response) => done(null, response),
        (error: unknown) => done(toStatus(method, error)),
      );
    } else {
      done(null, result);
    }
  };
}

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
