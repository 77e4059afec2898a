// The call objects the gateway hands to the gRPC service handlers: the handlers cannot tell
// them from grpc-js's own (they read the same request, metadata, peer certificate and deadline,
// and a stream's write/end/'error' behave alike), so the gateway shares every handler's
// checks, limits, metrics and errors instead of repeating them.
//
// Metadata is what grpc-gateway forwards: the Authorization header as "authorization" (the
// auth token, checked like a gRPC call's) and every "Grpc-Metadata-<key>" header as <key>.

import { EventEmitter } from 'node:events';
import type { IncomingMessage } from 'node:http';
import { TLSSocket } from 'node:tls';
import * as grpc from '@grpc/grpc-js';
import { unframeMessages } from '../message-frames.js';

const METADATA_PREFIX = 'grpc-metadata-';
const noop = (): void => {};

export function metadataOf(request: IncomingMessage): grpc.Metadata {
  const metadata = new grpc.Metadata();
  for (const [name, value] of Object.entries(request.headers)) {
    if (value === undefined) continue;
    const values = Array.isArray(value) ? value : [value];
    const key = name === 'authorization' ? name : name.startsWith(METADATA_PREFIX) ? name.slice(METADATA_PREFIX.length) : undefined;
    if (key === undefined || key === '' || key.endsWith('-bin')) continue;
    for (const v of values) metadata.add(key, v);
  }
  return metadata;
}

/** Who is calling, as a grpc-js call presents it to the handlers. */
export interface Caller {
  readonly metadata: grpc.Metadata;
  authContext(): { transportSecurityType?: string; sslPeerCertificate?: { subject?: Record<string, unknown> } };
  readonly deadline: grpc.Deadline;
  readonly peer: string;
  readonly path: string;
}

/**
 * The caller of a JSON gateway request. etcd 3.4's gateway reaches its own gRPC port presenting
 * the server's certificate, so the CN a call is authenticated by is the server's, never the
 * HTTP client's; and etcd ignores even that when grpc-gateway forwarded an Accept header (curl
 * and fetch always send one).
 */
export function httpCaller(http: IncomingMessage): Caller {
  return {
    metadata: metadataOf(http),
    authContext: () => {
      const socket = http.socket;
      if (!(socket instanceof TLSSocket)) return {};
      const serverCertificate = socket.authorized && http.headers.accept === undefined ? socket.getCertificate() : null;
      return {
        transportSecurityType: 'ssl',
        sslPeerCertificate: serverCertificate === null ? undefined : (serverCertificate as ReturnType<TLSSocket['getPeerCertificate']>),
      };
    },
    deadline: Infinity,
    peer: `${http.socket.remoteAddress ?? ''}:${http.socket.remotePort ?? 0}`,
    path: http.url ?? '',
  };
}

/**
 * What every call object carries: the request's identity as grpc-js would present it. Shared
 * by the JSON gateway, the calls edge processes relay to the primary (src/grpc/edge) and the
 * client port's calls (h2/grpc-calls.ts).
 */
export class GatewayCallBase extends EventEmitter {
  cancelled = false;

  constructor(
    readonly request: unknown,
    private readonly caller: Caller,
  ) {
    super();
  }

  /** Read from the caller when asked: a caller may build it only then (h2/grpc-calls.ts). */
  get metadata(): grpc.Metadata {
    return this.caller.metadata;
  }

  getAuthContext(): ReturnType<Caller['authContext']> {
    return this.caller.authContext();
  }

  getDeadline(): grpc.Deadline {
    return this.caller.deadline;
  }

  getPeer(): string {
    return this.caller.peer;
  }

  getPath(): string {
    return this.caller.path;
  }

  sendMetadata(): void {}

  /** The client went away while a unary call was running. */
  cancelUnary(): void {
    if (this.cancelled) return;
    this.cancelled = true;
    this.emit('cancelled', 'cancelled');
  }
}

/** Where a stream call's output goes (the HTTP response, as chunks). */
export interface StreamSink {
  /** One response message; false when the client should be given time to read (backpressure). */
  message(response: unknown, written: () => void): boolean;
  /**
   * Several encoded responses at once, framed as on a gRPC stream (message-frames.ts), when the
   * sink can pass them on whole (an edge's relay); without it, each goes to message().
   */
  framed?(framed: Buffer, written: () => void): boolean;
  /** The stream failed with this status (grpc-js receives it as an emitted 'error'). */
  failed(status: Partial<grpc.ServiceError>): void;
  /** The server ended the stream. */
  ended(): void;
}

/**
 * A streaming call (server or bidi): the handler writes responses and ends or fails it; the
 * gateway pushes decoded requests ('data') and the end of the body ('end') into it.
 */
export class GatewayStreamCall extends GatewayCallBase {
  private done = false;

  constructor(
    request: unknown,
    caller: Caller,
    private readonly sink: StreamSink,
  ) {
    super(request, caller);
    this.on('error', (status: Partial<grpc.ServiceError>) => {
      if (this.done) return;
      this.done = true;
      sink.failed(status);
      this.emit('close');
    });
  }

  write(response: unknown, callback?: () => void): boolean {
    if (this.done || this.cancelled) return false;
    return this.sink.message(response, () => callback?.());
  }

  /** Encoded responses framed together (message-frames.ts), in order; `callback` once all left. */
  writeFramed(framed: Buffer, callback: () => void): boolean {
    if (this.done || this.cancelled) return false;
    if (this.sink.framed !== undefined) return this.sink.framed(framed, callback);
    const messages = unframeMessages(framed);
    let writable = true;
    messages.forEach((message, i) => {
      writable = this.sink.message(message, i === messages.length - 1 ? callback : noop);
    });
    return writable;
  }

  end(): void {
    if (this.done) return;
    this.done = true;
    this.sink.ended();
    this.emit('finish');
    this.emit('close');
  }

  /** The client went away. */
  cancel(): void {
    if (this.cancelled || this.done) return;
    this.cancelled = true;
    this.done = true;
    this.emit('cancelled', 'cancelled');
    this.emit('close');
  }
}
