// An edge process's end of its channel to the primary: grpc-js handlers for every method of
// every service that relay each call, as raw protobuf bytes, to the primary (primary-relay.ts)
// and carry its responses back. The edge decodes nothing: it terminates TLS and HTTP/2 and
// frames bytes. The caller's identity travels with the call's start: its text metadata (the
// auth token, hasleader), the CN of its verified client certificate, its peer address and its
// deadline. HTTP/1.1 requests for the primary's own endpoints are relayed whole (relayHttp).
//
// When the channel closes (the primary is gone or stopping) every relayed call fails with
// UNAVAILABLE.

import type { Duplex } from 'node:stream';
import * as grpc from '@grpc/grpc-js';
import type { GatewayService, GatewayServices } from '../gateway/gateway.js';
import { type ServiceName, services } from '../proto.js';
import { batchWriterOf } from '../batch-writer.js';
import { frameMessages } from '../message-frames.js';
import { EdgeChannel } from './edge-channel.js';
import { EDGE_METHODS, type EdgeMethod, rawDefinition } from './edge-methods.js';
import { type CallStatus, decodeHttp, decodeStatus, encodeHttp, encodeStart, type Frame, FrameKind } from './frames.js';
import type { HttpRequestHead, HttpResponseHead } from './primary-relay.js';

/** A relayed call waiting for what the primary sends back. */
interface Pending {
  reply?(bytes: Buffer): void;
  message?(bytes: Buffer): void;
  framed?(framed: Buffer): void;
  status(status: CallStatus): void;
  http?(head: HttpResponseHead, body: Buffer): void;
  state?(state: Record<string, unknown>): void;
}

/** What an edge needs from a call object (grpc-js's, or the JSON gateway's). */
interface RelayableCall {
  readonly metadata: grpc.Metadata;
  getAuthContext(): { sslPeerCertificate?: { subject?: Record<string, unknown> } };
  getDeadline(): grpc.Deadline;
  getPeer(): string;
  on(event: 'cancelled', listener: () => void): unknown;
}

/** The channel to the primary closed before the answer came. */
export class ChannelClosedError extends Error {
  constructor() {
    super('edge lost its channel to the member process');
  }
}

const UNAVAILABLE: CallStatus = { code: grpc.status.UNAVAILABLE, details: 'edge lost its channel to the member process' };

export class EdgeRelay {
  private readonly channel: EdgeChannel;
  private readonly pending = new Map<number, Pending>();
  private nextCallId = 1;
  constructor(socket: Duplex, onClose: () => void) {
    this.channel = new EdgeChannel(
      socket,
      (frame) => this.onFrame(frame),
      () => {
        for (const pending of [...this.pending.values()]) pending.status(UNAVAILABLE);
        this.pending.clear();
        onClose();
      },
    );
  }

  /** Every service with relaying handlers, as grpc-js's addService and the JSON gateway take them. */
  services(): GatewayServices {
    const served: Partial<Record<ServiceName, GatewayService>> = {};
    for (const service of Object.keys(services) as ServiceName[]) {
      const handlers: Record<string, grpc.UntypedHandleCall> = {};
      for (const method of EDGE_METHODS.filter((m) => m.service === service)) handlers[method.name] = this.handlerFor(method);
      served[service] = { definition: rawDefinition(service), handlers };
    }
    return served as GatewayServices;
  }

  /** Relays one HTTP/1.1 request to the primary's endpoints. */
  relayHttp(head: HttpRequestHead, body: Buffer): Promise<{ head: HttpResponseHead; body: Buffer }> {
    return new Promise((resolve, reject) => {
      const callId = this.newCallId();
      this.pending.set(callId, {
        http: (responseHead, responseBody) => resolve({ head: responseHead, body: responseBody }),
        status: () => reject(new ChannelClosedError()),
      });
      this.channel.send(callId, FrameKind.httpRequest, encodeHttp(head, body));
    });
  }

  /** The member state the edge answers from by itself, as it is now. */
  queryState(): Promise<Record<string, unknown>> {
    return new Promise((resolve, reject) => {
      const callId = this.newCallId();
      this.pending.set(callId, { state: resolve, status: () => reject(new ChannelClosedError()) });
      this.channel.send(callId, FrameKind.stateQuery);
    });
  }

  close(): void {
    this.channel.close();
  }

  private newCallId(): number {
    const id = this.nextCallId;
    this.nextCallId = id >= 0xffff_fffe ? 1 : id + 1;
    return id;
  }

  private onFrame(frame: Frame): void {
    const pending = this.pending.get(frame.callId);
    if (pending === undefined) return;
    switch (frame.kind) {
      case FrameKind.reply:
        this.pending.delete(frame.callId);
        pending.reply?.(frame.body);
        return;
      case FrameKind.streamMessage:
        pending.message?.(frame.body);
        return;
      case FrameKind.streamFramed:
        pending.framed?.(frame.body);
        return;
      case FrameKind.status:
        this.pending.delete(frame.callId);
        pending.status(decodeStatus(frame.body));
        return;
      case FrameKind.state:
        this.pending.delete(frame.callId);
        pending.state?.(JSON.parse(frame.body.toString('utf8')) as Record<string, unknown>);
        return;
      case FrameKind.httpResponse: {
        this.pending.delete(frame.callId);
        const { head, body } = decodeHttp<HttpResponseHead>(frame.body);
        pending.http?.(head, body);
        return;
      }
      default:
        throw new Error(`edge channel: unexpected frame kind ${frame.kind} from the primary`);
    }
  }

  /** Starts relaying a call; the returned ID names it in the frames that follow. */
  private begin(method: EdgeMethod, call: RelayableCall, request: Buffer | undefined, pending: Pending): number {
    const callId = this.newCallId();
    this.pending.set(callId, pending);
    const deadline = call.getDeadline();
    this.channel.send(
      callId,
      FrameKind.start,
      encodeStart({
        method: method.index,
        deadline: deadline instanceof Date ? deadline.getTime() : deadline,
        peer: call.getPeer(),
        certificateCn: certificateCnOf(call),
        metadata: textMetadataOf(call.metadata),
        request,
      }),
    );
    call.on('cancelled', () => {
      if (!this.pending.delete(callId)) return;
      this.channel.send(callId, FrameKind.cancel);
    });
    return callId;
  }

  private handlerFor(method: EdgeMethod): grpc.UntypedHandleCall {
    if (!method.requestStream && !method.responseStream) {
      const unary: grpc.handleUnaryCall<Buffer, Buffer> = (call, callback) => {
        this.begin(method, call, call.request, {
          reply: (bytes) => callback(null, bytes),
          status: (status) => callback({ code: status.code, details: status.details }),
        });
      };
      return unary as grpc.UntypedHandleCall;
    }
    const stream = (call: grpc.ServerDuplexStream<Buffer, Buffer>): void => {
      const request = method.requestStream ? undefined : (call as unknown as { request: Buffer }).request;
      // Every response of the call goes through the batch writer (never call.write: the two
      // would race); the primary's 'written' accounting counts frame body bytes.
      const writer = batchWriterOf(call);
      const write = (framed: Buffer, bodyBytes: number): void => {
        writer.write(framed, () => this.channel.send(callId, FrameKind.written, u32(bodyBytes)));
      };
      const callId = this.begin(method, call, request, {
        message: (bytes) => write(frameMessages([bytes]), bytes.length),
        framed: (framed) => write(framed, framed.length),
        status: (status) => {
          if (status.code === grpc.status.OK) call.end();
          else call.emit('error', { code: status.code, details: status.details });
        },
      });
      if (!method.requestStream) return;
      call.on('data', (bytes: Buffer) => {
        if (this.pending.has(callId)) this.channel.send(callId, FrameKind.message, bytes);
      });
      call.on('end', () => {
        if (this.pending.has(callId)) this.channel.send(callId, FrameKind.halfClose);
      });
    };
    return stream as grpc.UntypedHandleCall;
  }
}

function u32(value: number): Buffer {
  const b = Buffer.allocUnsafe(4);
  b.writeUInt32BE(value, 0);
  return b;
}

/** The call's text metadata; binary values and the user agent stay at the edge. */
function textMetadataOf(metadata: grpc.Metadata): Array<[string, string]> {
  const pairs: Array<[string, string]> = [];
  for (const [key, values] of Object.entries(metadata.toJSON())) {
    if (key.endsWith('-bin') || key === 'user-agent') continue;
    for (const value of values) if (typeof value === 'string') pairs.push([key, value]);
  }
  return pairs;
}

/** CN of the verified client certificate (the last one when there are several), or ''. */
function certificateCnOf(call: RelayableCall): string {
  let cn: unknown;
  try {
    cn = call.getAuthContext().sslPeerCertificate?.subject?.CN;
  } catch (error) {
    // A closed TLS socket has no peer certificate (grpc-js then reads `.raw` of null).
    if (!(error instanceof TypeError)) throw error;
    return '';
  }
  if (typeof cn === 'string') return cn;
  if (Array.isArray(cn) && typeof cn[cn.length - 1] === 'string') return cn[cn.length - 1] as string;
  return '';
}
