// The client-facing gRPC server: every etcd v3 service is registered, so clients always get a
// clear answer; methods not built yet answer UNIMPLEMENTED naming themselves. MetaStore's own
// HTTP/2 connection (h2/) serves each client connection and h2/grpc-calls.ts every call, with
// the handlers and codecs below (grpc-js lends its method definitions, not its server):
// - on the client listener (client-listener.ts: every client URL, TLS, HTTP/1.1 beside gRPC);
//   startGrpcServer without one listens on host:port itself (plain text; in-process tests);
// - in an edge process (server.grpc.workers > 0), over the relaying handlers of edge-relay.ts:
//   serveGrpcConnections, the same connections, limits, keepalive and receive admission;
// - on the peer port (src/transport, wired by src/node): servePeerConnections, the same
//   connections and call layer with the peer service's own method table.

import type * as grpc from '@grpc/grpc-js';
import { ClientListener } from './client-listener.js';
import type { PingPolicy } from './ping-strikes.js';
import { serveH2Connection } from './h2/connection.js';
import { type GrpcCallLimits, type GrpcMethod, GrpcCalls } from './h2/grpc-calls.js';
import { GrpcConnections, type ServeH2Connection } from './h2/grpc-connections.js';
import { receivingGate } from './receive-admission.js';
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
   * beside gRPC); host and port are then unused. Without it, the server listens on host:port
   * itself, plain text, gRPC only (in-process tests), and closes that listener with itself.
   */
  listener?: ClientListener;
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
}

/** etcd's keepalive settings (embed.Config GRPCKeepAlive*), all in milliseconds. */
export interface KeepaliveOptions {
  /** Least spacing of client pings (enforcement, ping-strikes.ts); 0 = grpc-go's 5 min. */
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
  /** Open client connections, counted at accept. */
  openConnections(): number;
  /** Every service's served definition and handlers, for the JSON gateway to call in-process. */
  readonly services: GatewayServices;
  /** Stops accepting, lets in-flight calls finish for up to `graceMs`, then cuts the rest. */
  close(graceMs: number): Promise<void>;
}

/** etcd sets its gRPC receive limit to --max-request-bytes plus this much (grpcOverheadBytes). */
const RECEIVE_HEADROOM_BYTES = 512 * 1024;
/** etcd's default --election-timeout. */
const DEFAULT_ELECTION_TIMEOUT_MS = 1000;

/** What the client port's connections are served with (a member's, or an edge process's: the same settings). */
export type ConnectionOptions = Pick<
  GrpcServerOptions,
  'maxRequestBytes' | 'maxReceiveMessageBytes' | 'maxSendMessageBytes' | 'maxConcurrentStreams' | 'keepalive' | 'onTooManyPings' | 'maxReceivingRequestBytes'
>;

/** The least size of a message the call layer refuses from its prefix (grpc-js's default receive limit). */
const PREFIX_LIMIT_FLOOR_BYTES = 4 * 1024 * 1024;

/** The message limits of the call layer (as grpc-js's max_receive/max_send_message_length). */
export function callLimits(options: Pick<ConnectionOptions, 'maxRequestBytes' | 'maxReceiveMessageBytes' | 'maxSendMessageBytes'>): GrpcCallLimits {
  const { receiveLimit } = effectiveLimits(options);
  return {
    // Messages somewhat over the limit go through to our own check (withRequestSizes), which
    // answers with grpc-go's exact text; anything far larger is refused from its prefix.
    maxReceiveMessageBytes: Math.max(PREFIX_LIMIT_FLOOR_BYTES, 2 * receiveLimit),
    maxSendMessageBytes: options.maxSendMessageBytes,
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
  const { receiveLimit } = effectiveLimits(options);
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
    served[name] = { definition, handlers };
  }
  const listener = options.listener ?? (await listenItself(options));
  const connections = serveGrpcConnections(served as GatewayServices, options);
  listener.serveGrpc((socket) => connections.accept(socket));
  return {
    port: listener.ports[0] ?? 0,
    openConnections: () => listener.open,
    services: served as GatewayServices,
    close: async (graceMs) => {
      leaderGuard.close();
      void listener.close();
      await connections.close(graceMs);
      if (options.memberDialer === undefined) dialer.close();
    },
  };
}

/** A plain-text listener on host:port serving gRPC only (an HTTP/1.1 connection is closed). */
async function listenItself(options: Pick<GrpcServerOptions, 'host' | 'port'>): Promise<ClientListener> {
  const listener = await ClientListener.listen({
    addresses: [{ host: options.host, port: options.port, secure: false }],
    maxConnections: Number.POSITIVE_INFINITY,
  });
  listener.serveHttp1((socket) => socket.destroy());
  return listener;
}

/**
 * MetaStore's own HTTP/2 connection and call layer for every client connection handed to the
 * result's accept() (a plain or decrypted TLS socket, nothing read): `served` are the member's
 * handlers, or an edge process's relaying ones. `serve` is serveH2Connection (tests wrap it).
 */
export function serveGrpcConnections(served: GatewayServices, options: ConnectionOptions, serve: ServeH2Connection = serveH2Connection): GrpcConnections {
  const { receiveLimit, keepalive } = effectiveLimits(options);
  const pingPolicy: PingPolicy = { minTimeMs: keepalive.minTimeMs, onTooManyPings: options.onTooManyPings };
  const admit = receivingGate({ maxReceivingBytes: options.maxReceivingRequestBytes ?? 0, maxRequestBytes: receiveLimit });
  // etcd passes keepalive.ServerParameters only when both are set; grpc-go's defaults otherwise.
  const pinging = keepalive.intervalMs > 0 && keepalive.timeoutMs > 0;
  return new GrpcConnections({
    calls: new GrpcCalls(servedMethods(served), callLimits(options), admit),
    serve,
    maxConcurrentStreams: options.maxConcurrentStreams,
    maxHeaderListBytes: MAX_HEADER_LIST_BYTES,
    receiveWindowBytes: RECEIVE_WINDOW_BYTES,
    pingPolicy,
    keepalive: {
      intervalMs: pinging ? keepalive.intervalMs : GRPC_GO_KEEPALIVE_TIME_MS,
      timeoutMs: pinging ? keepalive.timeoutMs : GRPC_GO_KEEPALIVE_TIMEOUT_MS,
    },
  });
}

/**
 * The peer port's connections (src/transport: the Stream, Snapshot and Members calls, handed
 * here by src/node) on the same HTTP/2 connection and call layer as the client port's, with what
 * grpc-js's server gave the peer port: no receive admission, a PING from a peer allowed every
 * 5 s (peers ping every 10 s), grpc's server keepalive defaults (a PING after 2 h idle).
 */
export function servePeerConnections(methods: readonly GrpcMethod[], limits: GrpcCallLimits, serve: ServeH2Connection = serveH2Connection): GrpcConnections {
  return new GrpcConnections({
    calls: new GrpcCalls(new Map(methods.map((method) => [method.path, method])), limits),
    serve,
    maxConcurrentStreams: PEER_MAX_CONCURRENT_STREAMS,
    maxHeaderListBytes: MAX_HEADER_LIST_BYTES,
    receiveWindowBytes: RECEIVE_WINDOW_BYTES,
    pingPolicy: { minTimeMs: PEER_PING_MIN_TIME_MS },
    keepalive: { intervalMs: GRPC_GO_KEEPALIVE_TIME_MS, timeoutMs: GRPC_GO_KEEPALIVE_TIMEOUT_MS },
  });
}

/** Calls one peer connection may have open: a Stream, a Snapshot and a Members call at most, with room to spare. */
const PEER_MAX_CONCURRENT_STREAMS = 100;
/** grpc-js's grpc.http2.min_ping_interval_without_data_ms as the peer port set it. */
const PEER_PING_MIN_TIME_MS = 5_000;

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
function servedMethods(served: GatewayServices): Map<string, GrpcMethod> {
  const methods = new Map<string, GrpcMethod>();
  for (const { definition, handlers } of Object.values(served)) {
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
