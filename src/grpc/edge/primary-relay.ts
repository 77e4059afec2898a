// The primary's end of one edge channel: the calls an edge relays run the member's real
// service handlers (the same leader-guarded handlers grpc-js serves with workers = 0) through
// the call objects the JSON gateway uses (gateway-call.ts), so auth, limits, the rate limit,
// metrics and errors are one code path. Requests are decoded here, once; responses leave as
// protobuf bytes. Stream backpressure: a stream call's write() reports full once more than
// HIGH_WATER bytes are sent but not yet handed to HTTP/2 by the edge ('written' frames), and
// emits 'drain' when the edge catches up.
//
// When the channel closes (the edge died or is stopping) every call it carried is cancelled:
// its client's connection went with the edge.

import type { Duplex } from 'node:stream';
import * as grpc from '@grpc/grpc-js';
import type { GatewayServices } from '../gateway/gateway.js';
import { type Caller, GatewayCallBase, GatewayStreamCall, type StreamSink } from '../gateway/gateway-call.js';
import { EdgeChannel } from './edge-channel.js';
import { EDGE_METHODS } from './edge-methods.js';
import { type CallStart, decodeHttp, decodeStart, encodeHttp, encodeStatus, type Frame, FrameKind } from './frames.js';

/** grpc-js's status text for a request that does not decode. */
const UNDECODABLE = 'Error deserializing request';
/** Bytes of stream responses a call may have in flight to its edge before write() says full. */
const HIGH_WATER = 1024 * 1024;

export interface HttpRequestHead {
  readonly method: string;
  readonly url: string;
  readonly headers: Record<string, string | string[] | undefined>;
}

export interface HttpResponseHead {
  readonly status: number;
  readonly headers: Record<string, string | string[] | number | undefined>;
}

/** Answers an HTTP/1.1 request relayed from an edge (the primary's client-port app). */
export type HttpRelayHandler = (head: HttpRequestHead, body: Buffer) => Promise<{ head: HttpResponseHead; body: Buffer }>;

interface Bound {
  readonly definition: grpc.MethodDefinition<unknown, unknown>;
  readonly handler: grpc.UntypedHandleCall;
}

/** Written-callbacks and flow state of one relayed stream call. */
class StreamFlow {
  inFlight = 0;
  full = false;
  readonly callbacks: Array<{ bytes: number; written: () => void }> = [];
}

export class PrimaryRelay {
  private readonly channel: EdgeChannel;
  private readonly calls = new Map<number, GatewayCallBase>();
  private readonly flows = new Map<number, StreamFlow>();
  private readonly bound: Bound[];
  /** The method of each running stream call, to decode its further requests. */
  private readonly definitions = new Map<number, grpc.MethodDefinition<unknown, unknown>>();

  constructor(
    socket: Duplex,
    services: GatewayServices,
    private readonly http: HttpRelayHandler,
    private readonly state: () => object,
    onClose: () => void,
  ) {
    this.bound = EDGE_METHODS.map((method) => {
      const { definition, handlers } = services[method.service];
      return { definition: definition[method.name] as grpc.MethodDefinition<unknown, unknown>, handler: handlers[method.name]! };
    });
    this.channel = new EdgeChannel(
      socket,
      (frame) => this.onFrame(frame),
      () => {
        this.cancelAll();
        onClose();
      },
    );
  }

  /** Calls the edge has running here. */
  get activeCalls(): number {
    return this.calls.size;
  }

  close(): void {
    this.channel.close();
  }

  private onFrame(frame: Frame): void {
    const { callId, body } = frame;
    switch (frame.kind) {
      case FrameKind.start:
        this.start(callId, decodeStart(body));
        return;
      case FrameKind.message:
        this.receive(callId, body);
        return;
      case FrameKind.halfClose:
        this.calls.get(callId)?.emit('end');
        return;
      case FrameKind.cancel:
        this.cancel(callId);
        return;
      case FrameKind.written:
        this.written(callId, body.readUInt32BE(0));
        return;
      case FrameKind.httpRequest:
        this.serveHttp(callId, body);
        return;
      case FrameKind.stateQuery:
        // State the edge answers from by itself (whether the gateway refuses certificate CNs).
        this.channel.send(callId, FrameKind.state, Buffer.from(JSON.stringify(this.state()), 'utf8'));
        return;
      default:
        throw new Error(`edge channel: unexpected frame kind ${frame.kind} from an edge`);
    }
  }

  private start(callId: number, start: CallStart): void {
    const method = EDGE_METHODS[start.method];
    const bound = this.bound[start.method];
    if (method === undefined || bound === undefined) throw new Error(`edge channel: unknown method ${start.method}`);
    const caller = callerOf(start, bound.definition.path);
    let request: unknown;
    if (start.request !== undefined) {
      const decoded = this.decode(callId, bound, start.request);
      if (decoded === undefined) return;
      request = decoded.request;
    }
    if (!method.responseStream && !method.requestStream) {
      this.startUnary(callId, bound, new GatewayCallBase(request, caller));
      return;
    }
    const call = new GatewayStreamCall(request, caller, this.streamSink(callId, bound));
    this.calls.set(callId, call);
    (bound.handler as grpc.handleBidiStreamingCall<unknown, unknown>)(call as unknown as grpc.ServerDuplexStream<unknown, unknown>);
  }

  /** The request as the handler sees it; undefined (after failing the call) if it is not protobuf. */
  private decode(callId: number, bound: Bound, bytes: Buffer): { request: unknown } | undefined {
    try {
      return { request: bound.definition.requestDeserialize(bytes) };
    } catch {
      // grpc-js's own answer to a request it cannot decode (its text without the debug detail,
      // as the member's client port answers: h2/grpc-calls.ts).
      this.channel.send(callId, FrameKind.status, encodeStatus({ code: grpc.status.INTERNAL, details: UNDECODABLE }));
      return undefined;
    }
  }

  private startUnary(callId: number, bound: Bound, call: GatewayCallBase): void {
    this.calls.set(callId, call);
    (bound.handler as grpc.handleUnaryCall<unknown, unknown>)(call as unknown as grpc.ServerUnaryCall<unknown, unknown>, (error, response) => {
      if (this.calls.get(callId) !== call) return;
      this.calls.delete(callId);
      if (error) this.channel.send(callId, FrameKind.status, encodeStatus(statusOf(error)));
      else this.channel.send(callId, FrameKind.reply, bound.definition.responseSerialize(response));
    });
  }

  private receive(callId: number, bytes: Buffer): void {
    const call = this.calls.get(callId);
    const definition = this.definitions.get(callId);
    if (call === undefined || definition === undefined) return;
    let request: unknown;
    try {
      request = definition.requestDeserialize(bytes);
    } catch {
      this.fail(callId, call, UNDECODABLE);
      return;
    }
    call.emit('data', request);
  }

  private fail(callId: number, call: GatewayCallBase, details: string): void {
    this.forget(callId);
    this.channel.send(callId, FrameKind.status, encodeStatus({ code: grpc.status.INTERNAL, details }));
    if (call instanceof GatewayStreamCall) call.cancel();
    else call.cancelUnary();
  }

  private cancel(callId: number): void {
    const call = this.calls.get(callId);
    if (call === undefined) return;
    this.forget(callId);
    if (call instanceof GatewayStreamCall) call.cancel();
    else call.cancelUnary();
  }

  private forget(callId: number): void {
    this.calls.delete(callId);
    this.flows.delete(callId);
    this.definitions.delete(callId);
  }

  private cancelAll(): void {
    for (const callId of [...this.calls.keys()]) this.cancel(callId);
  }

  private written(callId: number, bytes: number): void {
    const flow = this.flows.get(callId);
    if (flow === undefined) return;
    let left = bytes;
    while (left > 0 && flow.callbacks.length > 0) {
      const next = flow.callbacks[0]!;
      if (next.bytes > left) {
        next.bytes -= left;
        break;
      }
      left -= next.bytes;
      flow.callbacks.shift();
      next.written();
    }
    flow.inFlight -= bytes;
    if (flow.full && flow.inFlight < HIGH_WATER) {
      flow.full = false;
      this.calls.get(callId)?.emit('drain');
    }
  }

  private streamSink(callId: number, bound: Bound): StreamSink {
    const flow = new StreamFlow();
    this.flows.set(callId, flow);
    this.definitions.set(callId, bound.definition);
    const finish = (status: { code: number; details: string }): void => {
      if (!this.calls.has(callId)) return;
      this.forget(callId);
      this.channel.send(callId, FrameKind.status, encodeStatus(status));
    };
    const send = (kind: number, bytes: Buffer, written: () => void): boolean => {
      this.channel.send(callId, kind, bytes);
      flow.inFlight += bytes.length;
      flow.callbacks.push({ bytes: bytes.length, written });
      if (flow.inFlight >= HIGH_WATER) flow.full = true;
      return !flow.full;
    };
    return {
      message: (response, written) => send(FrameKind.streamMessage, bound.definition.responseSerialize(response), written),
      // A batch (a watch stream's responses of one flush) crosses as one frame and leaves the
      // edge in one write.
      framed: (framed, written) => send(FrameKind.streamFramed, framed, written),
      failed: (status) => finish(statusOf(status)),
      ended: () => finish({ code: grpc.status.OK, details: '' }),
    };
  }

  private serveHttp(callId: number, body: Buffer): void {
    const request = decodeHttp<HttpRequestHead>(body);
    void this.http(request.head, request.body).then(
      (response) => this.channel.send(callId, FrameKind.httpResponse, encodeHttp(response.head, response.body)),
      (error: unknown) => {
        this.channel.send(callId, FrameKind.httpResponse, encodeHttp({ status: 500, headers: {} }, Buffer.from(String(error))));
      },
    );
  }
}

function statusOf(error: Partial<grpc.ServiceError>): { code: number; details: string } {
  return { code: error.code ?? grpc.status.UNKNOWN, details: error.details ?? error.message ?? '' };
}

/** The caller identity the edge relayed, presented as grpc-js presents a call's. */
function callerOf(start: CallStart, path: string): Caller {
  const metadata = new grpc.Metadata();
  for (const [key, value] of start.metadata) metadata.add(key, value);
  const certificate = start.certificateCn === '' ? undefined : { subject: { CN: start.certificateCn } };
  return {
    metadata,
    authContext: () => (certificate === undefined ? {} : { transportSecurityType: 'ssl', sslPeerCertificate: certificate }),
    deadline: start.deadline,
    peer: start.peer,
    path,
  };
}
