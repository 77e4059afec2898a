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
 * Cancelling is an RST_STREAM; Node's HTTP/2 server (nghttp2) closes a connection that resets
 * streams faster than its rapid-reset limit allows, which no real client does at this rate.
 */
const CANCELS_PER_CONNECTION = 20;

function newClient(endpoint: string): grpc.Client {
  return new grpc.Client(endpoint, grpc.credentials.createInsecure(), {
    'grpc.max_send_message_length': 64 * 1024 * 1024,
    'grpc.max_receive_message_length': 64 * 1024 * 1024,
  });
}

export class RawClient {
  private readonly client: grpc.Client;
  /** Where streams go; replaced every CANCELS_PER_CONNECTION cancels (old ones closed at the end). */
  private streamClient: grpc.Client;
  private readonly retired: grpc.Client[] = [];
  private cancels = 0;

  constructor(private readonly endpoint: string) {
    this.client = newClient(endpoint);
    this.streamClient = newClient(endpoint);
  }

  close(): void {
    this.client.close();
    this.streamClient.close();
    for (const client of this.retired) client.close();
  }

  private countCancel(): void {
    if (++this.cancels % CANCELS_PER_CONNECTION !== 0) return;
    this.retired.push(this.streamClient);
    this.streamClient = newClient(this.endpoint);
  }

  unary(info: MethodInfo, bytes: Buffer, options: { deadlineMs: number; token?: string }): Promise<Answer> {
    return new Promise((resolve) => {
      this.client.makeUnaryRequest(
        info.path,
        identity,
        identity,
        bytes,
        metadataFor(options.token),
        { deadline: Date.now() + options.deadlineMs },
        (error, response) => {
          if (error) resolve({ code: error.code, details: error.details, messages: [] });
          else resolve({ code: grpc.status.OK, details: '', messages: [decodeMessage(info.responseType, response!)] });
        },
      );
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
    return new Promise((resolve) => {
      const deadline = { deadline: Date.now() + options.deadlineMs };
      const metadata = metadataFor(options.token);
      const call: grpc.ClientReadableStream<Buffer> | grpc.ClientDuplexStream<Buffer, Buffer> = info.requestStream
        ? this.streamClient.makeBidiStreamRequest(info.path, identity, identity, metadata, deadline)
        : this.streamClient.makeServerStreamRequest(info.path, identity, identity, requests[0] ?? Buffer.alloc(0), metadata, deadline);
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
          this.countCancel();
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
