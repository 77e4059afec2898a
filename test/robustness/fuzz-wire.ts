// The wire side of the fuzz test: every RPC of every loaded service as a table, calls that
// send exact bytes (a grpc-js client with identity serializers, so truncated or mutated
// protobuf reaches the server as it is), and the error oracle.
//
// Every call carries a deadline: an answer that does not come in time is a hang, except for
// the calls that block by design (a watch stream, Lock, Campaign, Observe), which the test
// ends itself.

import * as grpc from '@grpc/grpc-js';
import { ETCD_ERRORS } from '../../src/grpc/errors.js';
import { decodeMessage, protobufRoot, services, type ServiceName } from '../../src/grpc/proto.js';
import type { Wire } from './fuzz-model.js';

export interface MethodInfo {
  service: ServiceName;
  method: string;
  /** "/etcdserverpb.KV/Range" */
  path: string;
  requestType: string;
  responseType: string;
  requestStream: boolean;
  responseStream: boolean;
}

/** Every method of every service in src/grpc/proto.ts, with its message type names. */
export function methodTable(): MethodInfo[] {
  const out: MethodInfo[] = [];
  for (const [service, definition] of Object.entries(services) as Array<[ServiceName, grpc.ServiceDefinition]>) {
    for (const [method, d] of Object.entries(definition)) {
      const serviceName = d.path.split('/')[1]!;
      const protoMethod = protobufRoot().lookupService(serviceName).methods[method];
      if (protoMethod === undefined) throw new Error(`${d.path} missing from the protobuf root`);
      protoMethod.resolve();
      out.push({
        service,
        method,
        path: d.path,
        requestType: protoMethod.resolvedRequestType!.fullName.slice(1),
        responseType: protoMethod.resolvedResponseType!.fullName.slice(1),
        requestStream: d.requestStream,
        responseStream: d.responseStream,
      });
    }
  }
  return out;
}

export interface Answer {
  code: grpc.status;
  details: string;
  /** Decoded responses, in order. */
  messages: Wire[];
}

const identity = (b: Buffer): Buffer => b;

/**
 * Streams the client cancels itself per connection before it moves its streams to a new one.
 * Cancelling is an RST_STREAM; Node's HTTP/2 server (nghttp2 >= 1.57, the CVE-2023-44487
 * mitigation) answers a connection whose client resets streams faster than a token bucket
 * allows (1,000 at once, then 33 a second) with GOAWAY INTERNAL_ERROR, failing every call open
 * on it. A 100,000-request run cancels thousands of watch streams at hundreds a second.
 */
const CANCELS_PER_CONNECTION = 20;

function newClient(endpoint: string): grpc.Client {
  return new grpc.Client(endpoint, grpc.credentials.createInsecure(), {
    'grpc.max_send_message_length': 64 * 1024 * 1024,
    'grpc.max_receive_message_length': 64 * 1024 * 1024,
    // A connection of its own: grpc-js otherwise shares one connection between all clients
    // with the same target and options, and every stream would reset on the same one.
    'grpc.use_local_subchannel_pool': 1,
  });
}

/** A client that carries streams until it has cancelled CANCELS_PER_CONNECTION of them. */
interface StreamConnection {
  client: grpc.Client;
  open: number;
  cancels: number;
}

export class RawClient {
  private readonly client: grpc.Client;
  /** Where new streams go; replaced once it has cancelled CANCELS_PER_CONNECTION streams. */
  private streams: StreamConnection;
  /** Replaced stream connections whose streams are still open (closed when the last ends). */
  private readonly retired = new Set<StreamConnection>();

  constructor(private readonly endpoint: string) {
    this.client = newClient(endpoint);
    this.streams = { client: newClient(endpoint), open: 0, cancels: 0 };
  }

  close(): void {
    this.client.close();
    this.streams.client.close();
    for (const connection of this.retired) connection.client.close();
  }

  private countCancel(connection: StreamConnection): void {
    if (++connection.cancels < CANCELS_PER_CONNECTION || connection !== this.streams) return;
    this.retired.add(connection);
    this.streams = { client: newClient(this.endpoint), open: 0, cancels: 0 };
  }

  private streamEnded(connection: StreamConnection): void {
    if (--connection.open > 0 || !this.retired.has(connection)) return;
    this.retired.delete(connection);
    connection.client.close();
  }

  /**
   * A unary call on the channel itself, below grpc-js's Client API: that API builds two Error
   * objects with stack traces for every failed call, and about half the fuzzer's calls fail
   * by design (the cost showed in its profile).
   */
  unary(info: MethodInfo, bytes: Buffer, options: { deadlineMs: number; token?: string }): Promise<Answer> {
    return new Promise((resolve) => {
      const call = this.client.getChannel().createCall(info.path, Date.now() + options.deadlineMs, undefined, null, undefined);
      let response: Buffer | undefined;
      call.start(metadataFor(options.token), {
        onReceiveMetadata: () => undefined,
        onReceiveMessage: (message: Buffer) => {
          response = message;
          call.startRead();
        },
        onReceiveStatus: (status) => {
          if (status.code !== grpc.status.OK) resolve({ code: status.code, details: status.details, messages: [] });
          else if (response === undefined) resolve({ code: grpc.status.UNIMPLEMENTED, details: 'no response message', messages: [] });
          else resolve({ code: grpc.status.OK, details: '', messages: [decodeMessage(info.responseType, response)] });
        },
      });
      call.sendMessageWithContext({}, bytes);
      call.halfClose();
      call.startRead();
    });
  }

  /**
   * A streaming call: writes `requests` (client streams: then half-closes unless `keepOpen`),
   * collects responses until the stream ends, or until `until` says enough (then cancels).
   */
  stream(
    info: MethodInfo,
    requests: Buffer[],
    options: { deadlineMs: number; token?: string; until?: (messages: Wire[]) => boolean; afterFirst?: Buffer[] },
  ): Promise<Answer & { cancelledByUs: boolean }> {
    const connection = this.streams;
    connection.open++;
    return new Promise<Answer & { cancelledByUs: boolean }>((resolve) => {
      const deadline = { deadline: Date.now() + options.deadlineMs };
      const metadata = metadataFor(options.token);
      const client = connection.client;
      const call: grpc.ClientReadableStream<Buffer> | grpc.ClientDuplexStream<Buffer, Buffer> = info.requestStream
        ? client.makeBidiStreamRequest(info.path, identity, identity, metadata, deadline)
        : client.makeServerStreamRequest(info.path, identity, identity, requests[0] ?? Buffer.alloc(0), metadata, deadline);
      const messages: Wire[] = [];
      let cancelledByUs = false;
      let extraSent = false;
      call.on('data', (bytes: Buffer) => {
        messages.push(decodeMessage(info.responseType, bytes));
        if (!extraSent && options.afterFirst !== undefined && info.requestStream) {
          extraSent = true;
          for (const extra of options.afterFirst) (call as grpc.ClientDuplexStream<Buffer, Buffer>).write(extra);
        }
        if (!cancelledByUs && options.until?.(messages)) {
          cancelledByUs = true;
          // Cancel rather than half-close: etcd keeps a watch stream open after the client's
          // half-close (its recvLoop ends, the stream does not), and so does MetaStore.
          call.cancel();
          this.countCancel(connection);
        }
      });
      call.on('error', (error: grpc.ServiceError) => {
        // Our own cancel, once we had what we wanted, is a clean end.
        if (cancelledByUs && error.code === grpc.status.CANCELLED) resolve({ code: grpc.status.OK, details: '', messages, cancelledByUs });
        else resolve({ code: error.code, details: error.details, messages, cancelledByUs });
      });
      call.on('status', (status: grpc.StatusObject) => {
        if (status.code === grpc.status.OK) resolve({ code: status.code, details: status.details, messages, cancelledByUs });
      });
      if (info.requestStream) {
        const duplex = call as grpc.ClientDuplexStream<Buffer, Buffer>;
        for (const request of requests) duplex.write(request);
        if (options.afterFirst === undefined && options.until === undefined) duplex.end();
      }
    }).then((answer) => {
      // A deadline the client enforces ends the stream with an RST_STREAM too.
      if (answer.code === grpc.status.DEADLINE_EXCEEDED) this.countCancel(connection);
      this.streamEnded(connection);
      return answer;
    });
  }
}

function metadataFor(token: string | undefined): grpc.Metadata {
  const metadata = new grpc.Metadata();
  if (token !== undefined) metadata.set('token', token);
  return metadata;
}

// ---------------------------------------------------------------- the error oracle

const BY_MESSAGE = new Map<string, grpc.status>(Object.values(ETCD_ERRORS).map((row) => [row.message, row.code]));

/** Texts etcd sends outside its rpctypes table, as codes.Unknown (plain Go errors). */
const UNKNOWN_TEXTS = new Set([
  'election: not leader',
  'election: no leader',
  '"leader" field must be provided',
  'auth: authentication failed, password was given for no password user',
  'etcdserver: request timed out, leader transfer took too long',
]);

/** Recipes (Lock, Election) run through an internal client in etcd: its errors arrive as Unknown. */
const RECIPE_SERVICES = new Set<ServiceName>(['Lock', 'Election']);

const GRPC_TOO_LARGE = /^grpc: received message larger than max \(\d+ vs\. \d+\)$/;

/** grpc-js's answer to bytes it cannot decode (grpc-go's text is "grpc: error unmarshalling request: ..."). */
export const UNDECODABLE = { code: grpc.status.INTERNAL, details: 'Error deserializing request' };

/**
 * Why an error answer is not one etcd could give for this method, or undefined when it is.
 * Server-side INTERNAL ("etcdserver: internal error in ...") is always wrong: it is a bug.
 */
export function errorProblem(info: MethodInfo, answer: Answer): string | undefined {
  const { code, details } = answer;
  if (code === UNDECODABLE.code && details === UNDECODABLE.details) return undefined;
  if (code === grpc.status.RESOURCE_EXHAUSTED && GRPC_TOO_LARGE.test(details)) return undefined;
  if (info.method === 'Downgrade' && code === grpc.status.UNIMPLEMENTED) return undefined;
  const tableCode = BY_MESSAGE.get(details);
  if (tableCode !== undefined && tableCode === code) return undefined;
  if (code === grpc.status.UNKNOWN && (UNKNOWN_TEXTS.has(details) || (RECIPE_SERVICES.has(info.service) && tableCode !== undefined))) return undefined;
  return `${info.path}: ${grpc.status[code]} "${details}" is not an answer etcd gives`;
}
