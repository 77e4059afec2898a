// The client-facing gRPC server: every etcd v3 service is registered, so clients always get a
// clear answer; methods not built yet answer UNIMPLEMENTED naming themselves.
// - On the client listener (every real member): MetaStore's own HTTP/2 connection (h2/) serves
//   each connection, and h2/grpc-calls.ts every call, with the handlers and codecs below;
//   grpc-js is not on this path (h2/grpc-connections.ts: keepalive, ping policy, close).
// - Bound by grpc-js itself (embedding, in-process tests): grpc-js serves them all, except the
//   KV unary calls, which unary-stream.ts answers on Node's HTTP/2 stream with the same handlers
//   (unaryFastPath; edge processes do the same with their relaying handlers).

import * as grpc from '@grpc/grpc-js';
import type { ClientListener } from './client-listener.js';
import { enforcePingPolicy, http2ServersOf, newHttp2Servers, type PingPolicy } from './keepalive-enforcement.js';
import { answerUnaryCalls, type UnaryMethod, type UnaryStreamLimits } from './unary-stream.js';
import { serveH2Connection } from './h2/connection.js';
import { type GrpcMethod, GrpcCalls } from './h2/grpc-calls.js';
import { GrpcConnections } from './h2/grpc-connections.js';
import { limitReceivingRequests, receivingGate, type ReceiveLimit } from './receive-admission.js';
import type { KvServer } from '../server/member/kv-server.js';
import { type Handlers, responseHeaders, unimplemented, withRequestSizes } from './handler.js';
import { authHandlers } from './auth-service.js';
import { clusterHandlers } from './cluster-service.js';
import { electionHandlers } from './election-service.js';
import { kvHandlers } from './kv-service.js';
import { leaseHandlers } from './lease-service.js';
import { lockHandlers } from './lock-service.js';
import { maintenanceHandlers } from './maintenance-service.js';
import { LeaderGuard } from './require-leader.js';
import { watchHandlers } from './watch-service.js';
import { MemberDialer } from './member-dialer.js';
import { assert } from '../util/assert.js';
import { services, type ServiceName } from './proto.js';
import type { GatewayServices } from './gateway/gateway.js';

export interface GrpcServerOptions {
  host: string;
  port: number;
  maxRequestBytes: number;
  maxTxnOps: number;
  /** Largest message received (grpc-go's MaxRecvMsgSize); larger ones get grpc-go's
   * RESOURCE_EXHAUSTED text. Default etcd's: maxRequestBytes + 512 KiB. */
  maxReceiveMessageBytes?: number;
  /** Largest response message sent; a larger one fails its call with RESOURCE_EXHAUSTED. */
  maxSendMessageBytes: number;
  maxConcurrentStreams: number;
  identity: { clusterId: bigint; memberId: bigint };
  /**
   * The client port's listener (client-listener.ts: every URL, connection limit, TLS, HTTP/1.1
   * beside gRPC); host, port and credentials are then unused. Without it, the server binds
   * host:port itself (in-process tests).
   */
  listener?: ClientListener;
  /** TLS when binding host:port itself; plain text when absent. */
  credentials?: grpc.ServerCredentials;
  /** etcd --experimental-watch-progress-notify-interval; default (and 0) etcd's 10 minutes. */
  watchProgressNotifyIntervalMs?: number;
  /** The member's election timeout: how often streams asking for a leader are checked
   * (require-leader.ts). Default etcd's 1000 ms. */
  electionTimeoutMs?: number;
  /** How calls relayed to other members reach them (their client ports, with the member's
   * client TLS); its owner closes it. Absent: plain-text channels, closed with the server. */
  memberDialer?: MemberDialer;
  /** etcd's --grpc-keepalive-* settings; each missing one is etcd's default. */
  keepalive?: Partial<KeepaliveOptions>;
  /** Told about each connection closed for pinging more often than keepalive minTimeMs allows. */
  onTooManyPings?: (remoteAddress: string | undefined) => void;
  /** Bytes of requests received at once before new ones are refused from their headers
   * (receive-admission.ts); 0 or absent = no limit. */
  maxReceivingRequestBytes?: number;
  /** Without a listener: answer the hot unary calls below grpc-js (unary-stream.ts); default
   * true. false sends every call through grpc-js (the differential tests compare the two). With
   * a listener every call is served by h2/grpc-calls.ts and this is unused. */
  unaryFastPath?: boolean;
}

/** The methods unary-stream.ts answers below grpc-js: the KV calls clients make most. */
const FAST_UNARY_METHODS: Partial<Record<ServiceName, readonly string[]>> = { KV: ['Range', 'Put', 'DeleteRange', 'Txn', 'Compact'] };

/** etcd's keepalive settings (embed.Config GRPCKeepAlive*), all in milliseconds. */
export interface KeepaliveOptions {
  /** Least spacing of client pings (enforcement, keepalive-enforcement.ts); 0 = grpc-go's 5 min. */
  minTimeMs: number;
  /** Server-to-client ping period; with timeoutMs, 0 = grpc-go's 2 h. */
  intervalMs: number;
  /** How long a server ping may go unanswered before the connection is closed; 0 = grpc-go's 20 s. */
  timeoutMs: number;
}

/** etcd's defaults (embed.DefaultGRPCKeepAlive*). */
const ETCD_KEEPALIVE: KeepaliveOptions = { minTimeMs: 5000, intervalMs: 2 * 60 * 60 * 1000, timeoutMs: 20_000 };
/** grpc-go's server defaults, which etcd leaves in place unless both interval and timeout are set. */
const GRPC_GO_KEEPALIVE_TIME_MS = 2 * 60 * 60 * 1000;
const GRPC_GO_KEEPALIVE_TIMEOUT_MS = 20_000;

export interface RunningGrpcServer {
  port: number;
  /** Open client connections, counted at accept (undefined without the limited listener). */
  openConnections(): number | undefined;
  /** Every service's served definition and handlers, for the JSON gateway to call in-process. */
  readonly services: GatewayServices;
  /** Stops accepting, lets in-flight calls finish for up to `graceMs`, then cuts the rest. */
  close(graceMs: number): Promise<void>;
}

/** etcd sets its gRPC receive limit to --max-request-bytes plus this much (grpcOverheadBytes). */
const RECEIVE_HEADROOM_BYTES = 512 * 1024;
/** etcd's default --election-timeout. */
const DEFAULT_ELECTION_TIMEOUT_MS = 1000;

/** grpc-js server options: message limits, concurrent streams and server keepalive pings. */
export function serverOptions(
  options: Pick<GrpcServerOptions, 'maxSendMessageBytes' | 'maxConcurrentStreams'>,
  receiveLimit: number,
  keepalive: KeepaliveOptions,
): grpc.ServerOptions {
  // etcd passes keepalive.ServerParameters only when both are set; grpc-go's defaults otherwise.
  const pinging = keepalive.intervalMs > 0 && keepalive.timeoutMs > 0;
  return {
    // Let messages somewhat over the limit through to our own check (withRequestSizes), which
    // answers with grpc-go's exact text; grpc-js still guards against anything far larger.
    'grpc.max_receive_message_length': Math.max(4 * 1024 * 1024, 2 * receiveLimit),
    'grpc.max_send_message_length': options.maxSendMessageBytes,
    'grpc.max_concurrent_streams': options.maxConcurrentStreams,
    'grpc.keepalive_time_ms': pinging ? keepalive.intervalMs : GRPC_GO_KEEPALIVE_TIME_MS,
    'grpc.keepalive_timeout_ms': pinging ? keepalive.timeoutMs : GRPC_GO_KEEPALIVE_TIMEOUT_MS,
    // channelz keeps per-call bookkeeping (two Date objects, timestamps, a tracker with four
    // closures) that nothing reads: the connection count comes from the client listener.
    'grpc.enable_channelz': 0,
  };
}

/** The receive limit and keepalive settings the options imply (etcd's defaults for what is missing). */
export function effectiveLimits(options: Pick<GrpcServerOptions, 'maxReceiveMessageBytes' | 'maxRequestBytes' | 'keepalive'>): {
  receiveLimit: number;
  keepalive: KeepaliveOptions;
} {
  const receiveLimit = options.maxReceiveMessageBytes ?? options.maxRequestBytes + RECEIVE_HEADROOM_BYTES;
  return { receiveLimit, keepalive: { ...ETCD_KEEPALIVE, ...options.keepalive } };
}

export async function startGrpcServer(kv: KvServer, options: GrpcServerOptions): Promise<RunningGrpcServer> {
  const { receiveLimit, keepalive } = effectiveLimits(options);
  const grpcOptions = serverOptions(options, receiveLimit, keepalive);
  const server = new grpc.Server(grpcOptions);
  const headers = responseHeaders(options.identity, () => kv.term);
  const dialer = options.memberDialer ?? new MemberDialer();
  const built: Partial<Record<ServiceName, Handlers>> = {
    KV: kvHandlers(kv, headers, { maxTxnOps: options.maxTxnOps, maxRequestBytes: options.maxRequestBytes }),
    Maintenance: maintenanceHandlers(kv, headers),
    Watch: watchHandlers(kv, headers, {
      maxRequestBytes: options.maxRequestBytes,
      receiveLimit,
      progressNotifyIntervalMs: options.watchProgressNotifyIntervalMs,
    }),
    Lease: leaseHandlers(kv, headers, dialer),
    Lock: lockHandlers(kv, headers),
    Election: electionHandlers(kv, headers),
    Cluster: clusterHandlers(kv, headers, dialer),
    Auth: authHandlers(kv, headers),
  };
  // A member without a Raft driver (in-process embedding) is its own leader.
  const leaderGuard = new LeaderGuard({
    hasLeader: () => kv.raft === undefined || kv.raft.leader !== 0n,
    checkIntervalMs: options.electionTimeoutMs ?? DEFAULT_ELECTION_TIMEOUT_MS,
  });
  const served: Partial<Record<ServiceName, GatewayServices[ServiceName]>> = {};
  for (const name of Object.keys(services) as ServiceName[]) {
    const definition = withRequestSizes(services[name], receiveLimit);
    const handlers: Handlers = {};
    for (const [method, methodDefinition] of Object.entries(definition)) {
      handlers[method] = leaderGuard.wrap(method, methodDefinition, built[name]?.[method] ?? unimplemented(name, method));
    }
    server.addService(definition, handlers);
    served[name] = { definition, handlers };
  }
  const serving: Serving = {
    options,
    grpcOptions,
    services: served,
    pingPolicy: { minTimeMs: keepalive.minTimeMs, onTooManyPings: options.onTooManyPings },
    receiving: { maxReceivingBytes: options.maxReceivingRequestBytes ?? 0, maxRequestBytes: receiveLimit },
    stopGuard: () => leaderGuard.close(),
    closeDialer: () => {
      if (options.memberDialer === undefined) dialer.close();
    },
  };
  return options.listener !== undefined ? serveOnListener(options.listener, serving) : await bindWithGrpcJs(server, serving);
}

/** What both ways of serving need from startGrpcServer. */
interface Serving {
  readonly options: GrpcServerOptions;
  readonly grpcOptions: grpc.ServerOptions;
  readonly services: Partial<Record<ServiceName, GatewayServices[ServiceName]>>;
  readonly pingPolicy: PingPolicy;
  readonly receiving: ReceiveLimit;
  /** Stops the leader guard's periodic check. */
  readonly stopGuard: () => void;
  /** Closes the member dialer if the server made it. */
  readonly closeDialer: () => void;
}

/**
 * Our own HTTP/2 connection and call layer on the client listener, which terminates TLS and
 * hands over decrypted sockets (grpc-js's server only lent its definitions).
 */
function serveOnListener(listener: ClientListener, serving: Serving): RunningGrpcServer {
  const { options, grpcOptions } = serving;
  const calls = new GrpcCalls(servedMethods(serving.services), unaryLimits(grpcOptions), receivingGate(serving.receiving));
  const connections = new GrpcConnections({
    calls,
    serve: serveH2Connection,
    maxConcurrentStreams: options.maxConcurrentStreams,
    maxHeaderListBytes: MAX_HEADER_LIST_BYTES,
    receiveWindowBytes: RECEIVE_WINDOW_BYTES,
    pingPolicy: serving.pingPolicy,
    keepalive: { intervalMs: grpcOptions['grpc.keepalive_time_ms'] as number, timeoutMs: grpcOptions['grpc.keepalive_timeout_ms'] as number },
  });
  listener.serveGrpc((socket) => connections.accept(socket), { authorityShim: false });
  return {
    port: listener.ports[0] ?? 0,
    openConnections: () => listener.open,
    services: serving.services as GatewayServices,
    close: async (graceMs) => {
      serving.stopGuard();
      void listener.close();
      await connections.close(graceMs);
      serving.closeDialer();
    },
  };
}

/** grpc-js binding host:port itself (embedding, in-process tests), with the unary fast path. */
async function bindWithGrpcJs(server: grpc.Server, serving: Serving): Promise<RunningGrpcServer> {
  const { options, grpcOptions } = serving;
  const fast = options.unaryFastPath === false ? undefined : unaryFastPath(serving.services, grpcOptions);
  const before = http2ServersOf(server);
  const credentials = options.credentials ?? grpc.ServerCredentials.createInsecure();
  const port = await new Promise<number>((resolve, reject) => {
    server.bindAsync(`${options.host}:${options.port}`, credentials, (error, boundPort) => (error ? reject(error) : resolve(boundPort)));
  });
  // bindAsync creates its server asynchronously: watch it once bound.
  for (const created of newHttp2Servers(server, before)) guardHttp2Server(created, serving.pingPolicy, serving.receiving, fast);
  return {
    port,
    openConnections: () => undefined,
    services: serving.services as GatewayServices,
    close: (graceMs) =>
      new Promise<void>((resolve) => {
        serving.stopGuard();
        const force = setTimeout(() => server.forceShutdown(), graceMs);
        server.tryShutdown(() => {
          clearTimeout(force);
          serving.closeDialer();
          resolve();
        });
      }),
  };
}

/**
 * SETTINGS_MAX_HEADER_LIST_SIZE of the client port: Node's HTTP/2 default, which grpc-js left in
 * place (an auth token and metadata fit many times over).
 */
const MAX_HEADER_LIST_BYTES = 65_535;
/**
 * Our receive window per stream and for the connection. The connection gives bytes back as it
 * reads them, so this bounds bytes in flight, not memory held: 1 MiB lets a large put arrive in
 * one round trip (Node's default, 64 KiB, took many); receive admission bounds what is held.
 */
const RECEIVE_WINDOW_BYTES = 1024 * 1024;

/** Every served method, by path, as grpc-js would call it (the leader-guarded handlers and the withRequestSizes codecs). */
function servedMethods(served: Partial<Record<ServiceName, GatewayServices[ServiceName]>>): Map<string, GrpcMethod> {
  const methods = new Map<string, GrpcMethod>();
  for (const { definition, handlers } of Object.values(served) as GatewayServices[ServiceName][]) {
    for (const [name, method] of Object.entries(definition) as [string, grpc.MethodDefinition<unknown, unknown>][]) {
      assert(method.responseStream || !method.requestStream, `${method.path} is client-streaming: etcd has none, grpc-calls.ts serves none`);
      methods.set(method.path, {
        path: method.path,
        kind: method.requestStream ? 'bidi' : method.responseStream ? 'serverStream' : 'unary',
        handler: handlers[name] as grpc.UntypedHandleCall,
        deserialize: method.requestDeserialize,
        serialize: method.responseSerialize as (value: unknown) => Buffer,
      });
    }
  }
  return methods;
}

type NodeHttp2Server = Parameters<typeof enforcePingPolicy>[0];

/** What unary-stream.ts answers on a server with these services and grpc-js options. */
export interface UnaryFastPath {
  readonly methods: ReadonlyMap<string, UnaryMethod>;
  readonly limits: UnaryStreamLimits;
}

/** The fast path for FAST_UNARY_METHODS of `served` (the member's handlers, or an edge's relaying ones). */
export function unaryFastPath(served: Partial<Record<ServiceName, GatewayServices[ServiceName]>>, grpcOptions: grpc.ServerOptions): UnaryFastPath {
  // Skipping grpc-js's stream handler skips its idle-timeout and channelz bookkeeping too
  // (unary-stream.ts): only right while neither is switched on.
  assert(grpcOptions['grpc.max_connection_idle_ms'] === undefined, 'the unary fast path bypasses grpc-js: grpc.max_connection_idle_ms must stay unset');
  assert(grpcOptions['grpc.enable_channelz'] === 0, 'the unary fast path bypasses grpc-js: channelz must stay off');
  return { methods: fastUnaryMethods(served), limits: unaryLimits(grpcOptions) };
}

/** The served handlers and codecs of FAST_UNARY_METHODS, by path, as grpc-js would call them. */
function fastUnaryMethods(served: Partial<Record<ServiceName, GatewayServices[ServiceName]>>): Map<string, UnaryMethod> {
  const methods = new Map<string, UnaryMethod>();
  for (const [service, names] of Object.entries(FAST_UNARY_METHODS) as [ServiceName, readonly string[]][]) {
    const { definition, handlers } = served[service] as GatewayServices[ServiceName];
    for (const name of names) {
      const method = definition[name] as grpc.MethodDefinition<unknown, unknown>;
      assert(!method.requestStream && !method.responseStream, `${service}.${name} is not unary: it cannot be answered by unary-stream.ts`);
      methods.set(method.path, {
        path: method.path,
        handler: handlers[name] as grpc.handleUnaryCall<unknown, unknown>,
        deserialize: method.requestDeserialize,
        serialize: method.responseSerialize as (value: unknown) => Buffer,
      });
    }
  }
  return methods;
}

/** The message limits grpc-js enforces with these server options (-1 = none). */
function unaryLimits(grpcOptions: grpc.ServerOptions): UnaryStreamLimits {
  return {
    maxReceiveMessageBytes: grpcOptions['grpc.max_receive_message_length'] as number,
    maxSendMessageBytes: grpcOptions['grpc.max_send_message_length'] as number,
  };
}

/** Keepalive enforcement, receive admission and (given `fast`) the unary fast path on one of
 * grpc-js's HTTP/2 servers (the member's own, or an edge process's). */
export function guardHttp2Server(http2Server: NodeHttp2Server, pingPolicy: PingPolicy, receiving: ReceiveLimit, fast?: UnaryFastPath): void {
  // The fast path first, so that receive admission (which then takes its place) runs before it.
  if (fast !== undefined) answerUnaryCalls(http2Server, fast.methods, fast.limits);
  enforcePingPolicy(http2Server, pingPolicy);
  limitReceivingRequests(http2Server, receiving);
}
