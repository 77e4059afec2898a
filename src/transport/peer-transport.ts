// The peer transport on the raft port: carries Raft messages between the members of one
// cluster over gRPC (service metastore.raftpb.Peer, proto/metastore/raftpb/peer.proto).
//
// Shape:
//   send() ──► per-peer queue ──(microtask, or at once when a frame's worth is queued)──►
//   PeerFrame batches on one long-lived client stream per peer ──► receiver's onMessages()
//   The Stream call's client side is Node's own HTTP/2 client (one session and one stream per
//   peer, each frame written as a gRPC length-prefixed message), not a grpc-js channel, whose
//   per-message work was ~2 us per put per member at 100 clients (bench/RESULTS.md, S14-H4).
//   The server side is MetaStore's own HTTP/2 connection and gRPC call layer (src/grpc/h2, the
//   client port's, handed in as `serveCalls`): grpc-js's server cost ~2.5 us per put per member
//   (its server side, stream decoder, Node's http2; bench/RESULTS.md, S15-H2). The rare Snapshot
//   and Members calls are sent with grpc-js clients.
//   MsgSnap ──► its own Snapshot call on its own connection, in chunks ──► onMessages() once
//   reassembled, then onSnapshotStatus() on the sender.
//   askPeerForMembers() ──► one unary Members call ──► the peer's describeCluster() bytes (how a
//   member joining with an empty data dir learns its ID; etcd's GET /members on the peer port).
//
// Link states of one peer (the stream this member opens towards it):
//
//   connecting ──(server headers)──► up ──(stream fails or ends)──► backoff ──(timer)──► connecting
//        └─────────────(stream fails)──────────────────────────────────►┘
//
//   Each connecting opens a new HTTP/2 session; the end of its stream destroys it. A session
//   pings its peer every 10 s and is destroyed when an answer takes over 5 s (a peer gone
//   without closing its socket), or when it is not connected within 20 s.
//
// Invariants and choices:
// - Raft tolerates lost messages and retransmits, so this layer never buffers without bound:
//   while a peer is in backoff its messages are dropped, a failed stream drops what it held,
//   and a full queue drops the newest messages. onUnreachable is called once per failure
//   episode (an episode ends when a stream is up again), which moves the leader's progress for
//   that peer to probing.
// - Messages to one peer are written to one stream in send() order, and gRPC keeps stream
//   order, so the receiver delivers them in the order sent by each sender.
// - Callbacks (onMessages, onUnreachable, onSnapshotStatus) are never called from inside
//   send(): the Raft driver may call send() while handling a Ready and must not be re-entered.
// - A frame from another cluster or addressed to another member is dropped with a
//   rate-limited warning naming the sender.
// - close() cancels every call, timer and socket (accepted ones and TLS handshakes included), so
//   a process that closed its transports exits on its own.
// - With peer TLS, an incoming call is used only after authorizePeer() accepted it; refusals
//   are logged (rate-limited) naming the remote address and certificate CN.

import * as grpc from '@grpc/grpc-js';
import fs from 'node:fs';
import http2 from 'node:http2';
import net from 'node:net';
import tls from 'node:tls';
import { assert } from '../util/assert.js';
import { listenErrorOf, socketListenErrorOf } from '../util/listen-error.js';
import { MessageType, messageTypeName, type Message } from '../raft/types.js';
import {
  FrameDecodeError,
  decodePeerFrame,
  encodePeerFrame,
  lengthDelimitedPrefix,
  messageEncodedSize,
  protobufFields,
  varintField,
  type Frame,
} from './message-codec.js';

type LogFn = (fields: object, message?: string) => void;
/** The subset of a pino logger the transport uses. */
/** The status detail a peer answers a removed member with (etcd: "the member has been permanently removed from the cluster"). */
const REMOVED_DETAILS = 'the member has been permanently removed from the cluster';

export interface TransportLogger {
  info: LogFn;
  warn: LogFn;
  error: LogFn;
  debug: LogFn;
}

/** Peer TLS credentials (src/tls builds them from the config); both ends default to plain text. */
export interface TransportCredentials {
  /**
   * Terminates TLS on the peer port: a Node TLS server that never listens (accepted sockets are
   * handed to it; it follows certificate rotation), offering ALPN h2. Its 'secureConnection'
   * sockets are served by the transport while it is open.
   */
  server: tls.Server;
  /** For the Snapshot and Members calls (grpc-js). */
  channel: grpc.ChannelCredentials;
  /**
   * For the Stream call's HTTP/2 client: the TLS options of one connection attempt (the same
   * CA, identity and server checks as `channel`), asked for every attempt.
   */
  client: () => tls.ConnectionOptions;
}

/**
 * Where the peer port listens: host:port, or a unix socket file. As etcd's peer listener, a
 * stale socket file at that path is removed first; closing removes the file (libuv unlinks it).
 */
export interface PeerListenAddress {
  readonly host: string;
  readonly port: number;
  readonly socketPath?: string | undefined;
}

export interface PeerTransportOptions {
  clusterId: bigint;
  memberId: bigint;
  listenHost: string;
  /** 0 picks a free port (tests); the chosen one is `transport.port`. */
  listenPort: number;
  /** A unix socket file to listen on instead of listenHost:listenPort (a unix peer URL). */
  listenSocketPath?: string;
  /** More addresses to listen on (etcd's several --listen-peer-urls); bound ports in `ports`. */
  alsoListen?: ReadonlyArray<PeerListenAddress>;
  /**
   * Member ID -> "host:port" or a peer URL ("http://host:port", "unix://name:port") of its raft
   * port, excluding this member.
   */
  peers: ReadonlyMap<bigint, string>;
  /** True for members removed from the cluster: their frames are answered "removed". */
  isRemoved?(memberId: bigint): boolean;
  /** A peer answered that this member was removed from the cluster. */
  onRemoved?(byPeer: bigint): void;
  /** A joining member (clusterId 0) learned its cluster's ID from a peer. */
  onClusterId?(clusterId: bigint): void;
  /** Messages received from peers, in arrival order per sender. */
  onMessages(messages: Message[]): void;
  /** A send to this peer failed; called at most once per failure episode. */
  onUnreachable?(peerId: bigint): void;
  /** A snapshot send to this peer completed (ok) or failed. */
  onSnapshotStatus?(peerId: bigint, ok: boolean): void;
  logger?: TransportLogger;
  /** Upper bound of one outgoing frame (a single larger message travels alone). Default 1 MiB. */
  maxBatchBytes?: number;
  credentials?: TransportCredentials;
  /**
   * Peer TLS verification (src/tls): called at the start of every incoming call, before any of
   * its bytes are used; a string is the reason the peer is refused (logged naming the remote
   * address, answered PERMISSION_DENIED).
   */
  authorizePeer?(call: PeerServerCall): string | undefined;
  /** The answer to a Members call: the member list as JSON, written by the member (opaque here). */
  describeCluster?(): Buffer;
  /**
   * Serves the peer port's calls on the connections handed to it: MetaStore's own HTTP/2
   * connection and gRPC call layer (src/grpc's servePeerConnections, which the transport may
   * not import: src/node passes it).
   */
  serveCalls: ServePeerCalls;
}

/**
 * An incoming peer call, streaming (Stream, Snapshot) or unary (Members): what the handlers and
 * authorizePeer read of it (grpc-js's call surface, which the call layer's objects present).
 */
export type PeerServerCall = grpc.ServerReadableStream<Buffer, Buffer> | grpc.ServerUnaryCall<Buffer, Buffer>;

/** One method of the peer service as the call layer serves it (src/grpc/h2/grpc-calls.ts GrpcMethod). */
export interface PeerMethod {
  readonly path: string;
  readonly kind: 'unary' | 'clientStream';
  readonly handler: grpc.UntypedHandleCall;
  readonly deserialize: (bytes: Buffer) => unknown;
  readonly serialize: (value: unknown) => Buffer;
}

/** The peer port's served connections: each accepted (decrypted) socket, until close. */
export interface PeerConnections {
  /** Serves one connection (a plain socket, or a TLS socket once its handshake is done). */
  accept(socket: net.Socket): void;
  /** Ends every connection and call: GOAWAY, then destroyed after graceMs. */
  close(graceMs: number): Promise<void>;
}

/** Builds the peer port's connections for these methods and message limits (-1 = none). */
export type ServePeerCalls = (
  methods: readonly PeerMethod[],
  limits: { readonly maxReceiveMessageBytes: number; readonly maxSendMessageBytes: number },
) => PeerConnections;

const STREAM_PATH = '/metastore.raftpb.Peer/Stream';
const SNAPSHOT_PATH = '/metastore.raftpb.Peer/Snapshot';
const MEMBERS_PATH = '/metastore.raftpb.Peer/Members';

const DEFAULT_MAX_BATCH_BYTES = 1024 * 1024;
/** Messages per frame: enough to amortize a gRPC write, small enough to keep frames flowing. */
const MAX_BATCH_MESSAGES = 1024;
/** Per-peer queue bounds (messages not yet handed to gRPC). */
const MAX_QUEUE_MESSAGES = 4096;
const MAX_QUEUE_BYTES = 64 * 1024 * 1024;
/** Bytes written to a peer's stream and not yet sent, above which writing waits for 'drain'. */
const MAX_STREAM_BUFFER_BYTES = 16 * 1024 * 1024;
/** Largest frame a receiver accepts; a bigger message could never be delivered. */
const MAX_FRAME_BYTES = 64 * 1024 * 1024;
const SNAPSHOT_CHUNK_BYTES = 1024 * 1024;
/** Node's Buffer limit bounds a reassembled snapshot. */
const MAX_SNAPSHOT_BYTES = 2 ** 32 - 1;
/** Keepalive of every peer connection: the Stream session's own pings and the grpc-js channels'. */
const KEEPALIVE_INTERVAL_MS = 10_000;
const KEEPALIVE_TIMEOUT_MS = 5_000;
/** A session not connected by then is given up (grpc-js's minimum connect timeout). */
const CONNECT_TIMEOUT_MS = 20_000;
/** gRPC status codes the sending side tells apart (grpc.status, as numbers on the wire). */
const STATUS_OK = 0;
const STATUS_UNAVAILABLE = 14;
const INITIAL_BACKOFF_MS = 50;
const MAX_BACKOFF_MS = 2000;
const WARN_INTERVAL_MS = 10_000;

const EMPTY_ACK = Buffer.alloc(0);
const passThrough = (buffer: Buffer): Buffer => buffer;
const passBuffer = (value: unknown): Buffer => value as Buffer;

const CHANNEL_OPTIONS: grpc.ChannelOptions = {
  'grpc.max_send_message_length': MAX_FRAME_BYTES,
  // Our own backoff decides when to retry a stream; keep grpc's reconnects in the same range so
  // a restarted peer is found within about two seconds, not grpc's default two minutes.
  'grpc.initial_reconnect_backoff_ms': INITIAL_BACKOFF_MS,
  'grpc.max_reconnect_backoff_ms': MAX_BACKOFF_MS,
  // Transparent retries would keep a copy of every written frame in a retry buffer.
  'grpc.enable_retries': 0,
  // Notice a peer that vanished without closing its socket (power loss, partition).
  'grpc.keepalive_time_ms': KEEPALIVE_INTERVAL_MS,
  'grpc.keepalive_timeout_ms': KEEPALIVE_TIMEOUT_MS,
};

const noop = (): void => {};
const silentLogger: TransportLogger = { info: noop, warn: noop, error: noop, debug: noop };

type LinkState = 'connecting' | 'up' | 'backoff' | 'closed';

/** A Stream call's HTTP/2 session; failure() is why it failed, once it has; stop() ends its timers. */
interface PeerSession {
  readonly session: http2.ClientHttp2Session;
  failure(): string | undefined;
  stop(): void;
}

/** How a Stream call ended: its gRPC status, or why the stream or its session failed. */
interface StreamEnd {
  readonly code: number;
  readonly details: string;
}

/** This member's sending side towards one peer. */
interface PeerLink {
  readonly id: bigint;
  /** The gRPC target ("host:port" or "unix:file"), for the Snapshot channel and logs. */
  readonly address: string;
  readonly endpoint: PeerEndpoint;
  state: LinkState;
  /** The HTTP/2 session of the current stream (its timers stop when it closes). */
  session: PeerSession | undefined;
  call: http2.ClientHttp2Stream | undefined;
  /** False from the stream holding MAX_STREAM_BUFFER_BYTES unsent until its 'drain'. */
  writable: boolean;
  queue: Message[];
  /** messageEncodedSize of each queued message, measured once on enqueue. */
  sizes: number[];
  queuedBytes: number;
  backoffMs: number;
  retryTimer: NodeJS.Timeout | undefined;
  /** onUnreachable already called in the current failure episode. */
  unreachableReported: boolean;
  droppedMessages: number;
  snapshot: { client: grpc.Client; call: grpc.ClientWritableStream<Buffer> } | undefined;
}

export class PeerTransport {
  private readonly links = new Map<bigint, PeerLink>();
  /** 0 until a joining member learns its cluster's ID (see acceptFrame). */
  private clusterId: bigint;
  /** Links with queued messages awaiting the end-of-turn flush. */
  private readonly dirty = new Set<PeerLink>();
  private flushQueued = false;
  private readonly pendingImmediates = new Set<NodeJS.Immediate>();
  private readonly log: TransportLogger;
  private readonly maxBatchBytes: number;
  /** The Snapshot channel's grpc-js credentials; plain text by default. */
  private readonly channel: grpc.ChannelCredentials;
  private readonly warnedAt = new Map<string, { atMs: number; suppressed: number }>();
  private closed = false;

  /** The peer port's listening sockets (one per listen address). */
  private listeners: readonly net.Server[] = [];
  /** The served connections (set once listening, before the first socket is accepted). */
  private connections!: PeerConnections;
  /** Every accepted socket until it closes (TLS handshakes included): close() destroys them. */
  private readonly sockets = new Set<net.Socket>();
  private readonly onSecureConnection = (socket: tls.TLSSocket): void => {
    if (this.closed) socket.destroy();
    else this.connections.accept(socket);
  };
  /** Bound ports, one per listen address (the first is `port`). */
  ports: readonly number[] = [];

  private constructor(
    private readonly options: PeerTransportOptions,
    private boundPort = 0,
  ) {
    this.log = options.logger ?? silentLogger;
    this.maxBatchBytes = options.maxBatchBytes ?? DEFAULT_MAX_BATCH_BYTES;
    this.channel = options.credentials?.channel ?? grpc.credentials.createInsecure();
    this.clusterId = options.clusterId;
  }

  static async start(options: PeerTransportOptions): Promise<PeerTransport> {
    const maxBatchBytes = options.maxBatchBytes ?? DEFAULT_MAX_BATCH_BYTES;
    assert(maxBatchBytes > 0 && maxBatchBytes <= MAX_FRAME_BYTES, `maxBatchBytes out of range: ${maxBatchBytes}`);
    const transport = new PeerTransport(options);
    transport.connections = options.serveCalls(transport.methods(), { maxReceiveMessageBytes: MAX_FRAME_BYTES + 1024, maxSendMessageBytes: -1 });
    const tlsServer = options.credentials?.server;
    tlsServer?.on('secureConnection', transport.onSecureConnection);
    const addresses = [{ host: options.listenHost, port: options.listenPort, socketPath: options.listenSocketPath }, ...(options.alsoListen ?? [])];
    let listening: { servers: net.Server[]; ports: number[] };
    try {
      listening = await listenForPeers(addresses, (socket) => transport.acceptSocket(socket));
    } catch (error) {
      transport.closed = true;
      void transport.cutConnections();
      throw error;
    }
    const port = listening.ports[0]!;
    transport.boundPort = port;
    transport.listeners = listening.servers;
    transport.ports = listening.ports;
    for (const [id, address] of options.peers) transport.addPeer(id, address);
    transport.log.info({ port, memberId: options.memberId.toString(16), peers: options.peers.size }, 'peer transport listening');
    return transport;
  }

  /** The peer service (proto/metastore/raftpb/peer.proto): raw Buffers in and out, the codec decodes them in place. */
  private methods(): PeerMethod[] {
    return [
      {
        path: STREAM_PATH,
        kind: 'clientStream',
        handler: this.serveStream.bind(this) as grpc.UntypedHandleCall,
        deserialize: passThrough,
        serialize: passBuffer,
      },
      {
        path: SNAPSHOT_PATH,
        kind: 'clientStream',
        handler: this.serveSnapshot.bind(this) as grpc.UntypedHandleCall,
        deserialize: passThrough,
        serialize: passBuffer,
      },
      { path: MEMBERS_PATH, kind: 'unary', handler: this.serveMembers.bind(this) as grpc.UntypedHandleCall, deserialize: passThrough, serialize: passBuffer },
    ];
  }

  /** An accepted peer connection: TLS first when the port has it, then the call layer. */
  private acceptSocket(socket: net.Socket): void {
    if (this.closed) {
      socket.destroy();
      return;
    }
    this.sockets.add(socket);
    socket.once('close', () => this.sockets.delete(socket));
    // A reset before the connection's (or the TLS socket's) own handlers are on: nothing to do.
    socket.on('error', noop);
    const tlsServer = this.options.credentials?.server;
    if (tlsServer !== undefined) tlsServer.emit('connection', socket);
    else this.connections.accept(socket);
  }

  get port(): number {
    return this.boundPort;
  }

  /**
   * Queues messages for their peers (by `to`). Never blocks and never throws for network
   * trouble: undeliverable messages are dropped, as Raft expects of its network.
   */
  send(messages: Message[]): void {
    if (this.closed) return;
    for (const m of messages) {
      const link = this.links.get(m.to);
      if (link === undefined) {
        this.warnRateLimited(`unknown:${m.to}`, { to: m.to.toString(16), type: messageTypeName(m.type) }, 'dropping message to unknown peer');
        continue;
      }
      if (m.type === MessageType.MsgSnap) {
        this.sendSnapshot(link, m);
        continue;
      }
      if (link.state === 'backoff') {
        link.droppedMessages++;
        continue;
      }
      const size = messageEncodedSize(m);
      if (link.queue.length >= MAX_QUEUE_MESSAGES || link.queuedBytes + size > MAX_QUEUE_BYTES || size > MAX_FRAME_BYTES) {
        link.droppedMessages++;
        this.warnRateLimited(
          `full:${link.id}`,
          { peer: link.id.toString(16), queued: link.queue.length, queuedBytes: link.queuedBytes, messageBytes: size },
          'peer queue full or message too large; dropping (raft will retransmit)',
        );
        continue;
      }
      link.queue.push(m);
      link.sizes.push(size);
      link.queuedBytes += size;
      // A frame's worth is ready: write it now rather than letting the queue grow until the
      // end of the turn; the batch is already as large as a frame may be.
      if (link.queue.length >= MAX_BATCH_MESSAGES || link.queuedBytes >= this.maxBatchBytes) this.flushLink(link);
      else this.markDirty(link);
    }
  }

  addPeer(id: bigint, address: string): void {
    assert(!this.closed, 'addPeer after close');
    assert(id !== this.options.memberId, 'a member is not its own peer');
    const existing = this.links.get(id);
    if (existing !== undefined) {
      if (existing.address === grpcTarget(address)) return;
      this.removePeer(id);
    }
    const target = grpcTarget(address);
    const link: PeerLink = {
      id,
      address: target,
      endpoint: peerEndpoint(target),
      state: 'connecting',
      session: undefined,
      call: undefined,
      writable: true,
      queue: [],
      sizes: [],
      queuedBytes: 0,
      backoffMs: INITIAL_BACKOFF_MS,
      retryTimer: undefined,
      unreachableReported: false,
      droppedMessages: 0,
      snapshot: undefined,
    };
    this.links.set(id, link);
    this.openStream(link);
  }

  updatePeer(id: bigint, address: string): void {
    this.addPeer(id, address);
  }

  removePeer(id: bigint): void {
    const link = this.links.get(id);
    if (link === undefined) return;
    this.links.delete(id);
    this.dirty.delete(link);
    this.closeLink(link);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const handle of this.pendingImmediates) clearImmediate(handle);
    this.pendingImmediates.clear();
    for (const link of this.links.values()) this.closeLink(link);
    this.links.clear();
    this.dirty.clear();
    // Peers keep their streams open for good, so a graceful shutdown would wait forever.
    for (const listener of this.listeners) listener.close();
    await this.cutConnections();
  }

  /** Ends every accepted connection (and TLS handshake) now, which cancels its calls. */
  private cutConnections(): Promise<void> {
    this.options.credentials?.server.off('secureConnection', this.onSecureConnection);
    const closing = this.connections.close(0);
    for (const socket of this.sockets) socket.destroy();
    this.sockets.clear();
    return closing;
  }

  // ---- sending side ---------------------------------------------------------------------------

  private openStream(link: PeerLink): void {
    link.retryTimer = undefined;
    link.state = 'connecting';
    link.writable = true;
    let peerSession: PeerSession;
    let call: http2.ClientHttp2Stream;
    try {
      peerSession = this.connectSession(link);
      call = peerSession.session.request({ ':method': 'POST', ':path': STREAM_PATH, 'content-type': 'application/grpc', te: 'trailers' }, { endStream: false });
    } catch (error) {
      // Node refused the options (a TLS setting it cannot use): a failed attempt like any
      // other, reported on a later turn (addPeer may run inside the driver's turn).
      link.session?.stop();
      link.session = undefined;
      const details = error instanceof Error ? error.message : String(error);
      this.later(() => {
        if (link.state === 'connecting' && link.call === undefined) this.linkFailed(link, details);
      });
      return;
    }
    const sessionFailure = peerSession.failure;
    let end: StreamEnd | undefined;
    let failure: string | undefined;
    link.call = call;
    call.on('response', (headers) => {
      // A status in the headers is a trailers-only answer: the call failed before it began.
      end = streamEndOf(headers) ?? end;
      if (end !== undefined || link.call !== call || link.state !== 'connecting') return;
      link.state = 'up';
      link.backoffMs = INITIAL_BACKOFF_MS;
      if (link.unreachableReported) {
        link.unreachableReported = false;
        this.log.info({ peer: link.id.toString(16), address: link.address, dropped: link.droppedMessages }, 'peer reachable again');
        link.droppedMessages = 0;
      }
    });
    call.on('trailers', (headers) => {
      end = streamEndOf(headers) ?? end;
    });
    call.on('drain', () => {
      if (link.call !== call) return;
      link.writable = true;
      this.flushLink(link);
    });
    call.on('error', (error: Error) => {
      failure ??= error.message;
    });
    // The answer is one empty message and the status at the end; read it so the stream can
    // finish, and close our half then (the server has ended the call; 'close' follows).
    call.resume();
    call.on('end', () => call.close());
    call.on('close', () => {
      this.onStreamEnd(
        link,
        call,
        end ?? { code: STATUS_UNAVAILABLE, details: failure ?? sessionFailure() ?? `stream closed (HTTP/2 code ${call.rstCode ?? '?'})` },
      );
    });
    // Whatever was queued while the previous stream was being replaced goes out now.
    if (link.queue.length > 0) this.markDirty(link);
  }

  /** A new HTTP/2 session towards the link's peer, with its keepalive and connect deadline. */
  private connectSession(link: PeerLink): PeerSession {
    const { host, port, socketPath } = link.endpoint;
    const tlsOptions = this.options.credentials?.client();
    const authority = socketPath !== undefined ? 'localhost' : net.isIPv6(host) ? `[${host}]:${port}` : `${host}:${port}`;
    const session = http2.connect(`${tlsOptions !== undefined ? 'https' : 'http'}://${authority}`, {
      createConnection: () => {
        const socket = socketPath !== undefined ? net.connect({ path: socketPath }) : net.connect({ host, port, noDelay: true });
        if (tlsOptions === undefined) return socket;
        // As grpc-js: the host is the name checked against the certificate (a unix socket's is
        // localhost); SNI carries it unless it is an IP address (RFC 6066).
        const name = socketPath !== undefined ? 'localhost' : host;
        return tls.connect({
          ...tlsOptions,
          socket,
          host: name,
          ...(net.isIP(name) === 0 && { servername: name }),
          ALPNProtocols: ['h2'],
        });
      },
      // Node's default limit throttles a session holding a large frame; the queue bounds above
      // are the limit (grpc-js lifts it the same way).
      maxSessionMemory: Number.MAX_SAFE_INTEGER,
    });
    let failure: string | undefined;
    session.on('error', (error: Error) => {
      failure ??= error.message;
    });
    const connectTimer = setTimeout(() => session.destroy(new Error(`not connected within ${CONNECT_TIMEOUT_MS} ms`)), CONNECT_TIMEOUT_MS);
    session.once('connect', () => clearTimeout(connectTimer));
    let pingTimer: NodeJS.Timeout | undefined;
    const keepalive = setInterval(() => {
      if (session.destroyed || session.closed || session.connecting || pingTimer !== undefined) return;
      pingTimer = setTimeout(() => session.destroy(new Error(`keepalive ping not answered within ${KEEPALIVE_TIMEOUT_MS} ms`)), KEEPALIVE_TIMEOUT_MS);
      session.ping(() => {
        clearTimeout(pingTimer);
        pingTimer = undefined;
      });
    }, KEEPALIVE_INTERVAL_MS);
    const stop = (): void => {
      clearTimeout(connectTimer);
      clearInterval(keepalive);
      clearTimeout(pingTimer);
    };
    session.once('close', stop);
    const peerSession: PeerSession = { session, failure: () => failure, stop };
    link.session = peerSession;
    return peerSession;
  }

  private onStreamEnd(link: PeerLink, call: http2.ClientHttp2Stream, end: StreamEnd): void {
    if (end.code === grpc.status.FAILED_PRECONDITION && end.details === REMOVED_DETAILS) this.options.onRemoved?.(link.id);
    if (end.code === grpc.status.PERMISSION_DENIED) {
      // A refusal (TLS verification on the peer's side) is worth a line every time it changes
      // nothing, not only at the start of an unreachable episode that began for another reason.
      this.warnRateLimited(`refusedby:${link.id}`, { peer: link.id.toString(16), address: link.address, error: end.details }, 'peer refused this member');
    }
    if (link.call !== call) return;
    link.call = undefined;
    // One session per stream: the next attempt connects afresh.
    link.session?.session.destroy();
    link.session = undefined;
    if (link.state === 'closed' || this.closed) return;
    this.linkFailed(link, end.code === STATUS_OK ? 'stream ended' : end.details);
  }

  /** The link's stream failed or ended: drop what it held, report, back off. */
  private linkFailed(link: PeerLink, details: string): void {
    // What the stream still held is lost, like anything sent on a broken network; drop the
    // queue too rather than deliver it much later and out of context.
    link.droppedMessages += link.queue.length;
    link.queue = [];
    link.sizes = [];
    link.queuedBytes = 0;
    this.dirty.delete(link);
    if (!link.unreachableReported) {
      link.unreachableReported = true;
      this.log.warn({ peer: link.id.toString(16), address: link.address, error: details }, 'peer unreachable');
      this.options.onUnreachable?.(link.id);
    } else {
      this.log.debug({ peer: link.id.toString(16), retryInMs: link.backoffMs, error: details }, 'peer stream retry failed');
    }
    link.state = 'backoff';
    link.retryTimer = setTimeout(() => {
      if (link.state === 'backoff') this.openStream(link);
    }, link.backoffMs);
    link.backoffMs = Math.min(link.backoffMs * 2, MAX_BACKOFF_MS);
  }

  private markDirty(link: PeerLink): void {
    this.dirty.add(link);
    if (this.flushQueued) return;
    this.flushQueued = true;
    // A microtask, not setImmediate: the driver sends from its turn, which runs in the event
    // loop's check phase, where an immediate waits for the next loop iteration (a whole poll
    // phase of client traffic on a busy member) before the message leaves, and every peer
    // hop of a ReadIndex round or a commit paid that. The microtask runs as soon as the
    // sending callback returns, so the messages of one turn still share one frame per peer.
    queueMicrotask(() => {
      this.flushQueued = false;
      if (this.closed) return;
      for (const dirtyLink of this.dirty) this.flushLink(dirtyLink);
    });
  }

  /** Writes queued messages as frames until the queue is empty or the stream pushes back. */
  private flushLink(link: PeerLink): void {
    this.dirty.delete(link);
    const call = link.call;
    if (call === undefined || !link.writable || link.queue.length === 0) return;
    const queue = link.queue;
    const sizes = link.sizes;
    const header = { clusterId: this.clusterId, fromId: this.options.memberId, toId: link.id };
    let start = 0;
    while (start < queue.length) {
      let end = start;
      let bytes = 0;
      // At least one message per frame, so a message above maxBatchBytes still travels.
      do {
        bytes += sizes[end]!;
        end++;
      } while (end < queue.length && end - start < MAX_BATCH_MESSAGES && bytes + sizes[end]! <= this.maxBatchBytes);
      const frame = encodePeerFrame(header, queue, { start, end, sizes, grpcPrefix: true });
      link.queuedBytes -= bytes;
      start = end;
      call.write(frame);
      // The stream's own mark (16 KiB) is below one frame; push back by bytes held instead, as
      // grpc-js did by frames held (16).
      if (call.writableLength >= MAX_STREAM_BUFFER_BYTES) {
        link.writable = false;
        break;
      }
    }
    if (start === queue.length) {
      link.queue = [];
      link.sizes = [];
    } else {
      // Rare: the stream pushed back; keep the rest for 'drain'.
      link.queue = queue.slice(start);
      link.sizes = sizes.slice(start);
    }
  }

  private sendSnapshot(link: PeerLink, m: Message): void {
    const snapshot = m.snapshot;
    if (snapshot === undefined || link.snapshot !== undefined || snapshot.data.length > MAX_SNAPSHOT_BYTES) {
      // Raft sends one snapshot per follower at a time; refuse a second rather than queue it.
      this.log.warn({ peer: link.id.toString(16), inFlight: link.snapshot !== undefined, hasSnapshot: snapshot !== undefined }, 'refusing MsgSnap');
      this.later(() => this.options.onSnapshotStatus?.(link.id, false));
      return;
    }
    const startedMs = Date.now();
    // A connection of its own, so the chunks never sit in front of heartbeats in one TCP stream.
    const client = new grpc.Client(link.address, this.channel, {
      ...CHANNEL_OPTIONS,
      'grpc.use_local_subchannel_pool': 1,
    });
    let finished = false;
    const call = client.makeClientStreamRequest<Buffer, Buffer>(SNAPSHOT_PATH, passThrough, passThrough, (error) => {
      finished = true;
      client.close();
      if (link.snapshot?.call === call) link.snapshot = undefined;
      if (this.closed) return;
      const fields = {
        peer: link.id.toString(16),
        index: snapshot.metadata.index,
        bytes: snapshot.data.length,
        tookMs: Date.now() - startedMs,
      };
      if (error === null) this.log.info(fields, 'snapshot sent');
      else this.log.warn({ ...fields, error: error.details }, 'snapshot send failed');
      this.options.onSnapshotStatus?.(link.id, error === null);
    });
    call.on('error', noop);
    link.snapshot = { client, call };

    const header = encodePeerFrame({ clusterId: this.clusterId, fromId: this.options.memberId, toId: link.id }, [m]);
    const data = snapshot.data;
    let offset = 0;
    const pump = (): void => {
      if (finished) return;
      let more = true;
      if (offset === 0 && more) {
        more = call.write(Buffer.concat([lengthDelimitedPrefix(1, header.length), header, varintField(2, data.length)]));
      }
      while (more && offset < data.length) {
        const chunk = data.subarray(offset, Math.min(offset + SNAPSHOT_CHUNK_BYTES, data.length));
        offset += chunk.length;
        more = call.write(Buffer.concat([lengthDelimitedPrefix(3, chunk.length), chunk]));
      }
      if (offset === data.length) call.end();
      else call.once('drain', pump);
    };
    pump();
  }

  private closeLink(link: PeerLink): void {
    link.state = 'closed';
    if (link.retryTimer !== undefined) clearTimeout(link.retryTimer);
    link.retryTimer = undefined;
    const call = link.call;
    link.call = undefined;
    call?.close(http2.constants.NGHTTP2_CANCEL);
    link.session?.session.destroy();
    link.session?.stop();
    link.session = undefined;
    if (link.snapshot !== undefined) {
      link.snapshot.call.cancel();
      link.snapshot.client.close();
    }
    link.queue = [];
    link.sizes = [];
    link.queuedBytes = 0;
  }

  /** Runs a callback on a later turn (never inside send()), unless the transport closes first. */
  private later(fn: () => void): void {
    const handle = setImmediate(() => {
      this.pendingImmediates.delete(handle);
      fn();
    });
    this.pendingImmediates.add(handle);
  }

  // ---- receiving side -------------------------------------------------------------------------

  /** True if the peer behind this call passes TLS verification; otherwise refuses the call. */
  private admitPeer(call: PeerServerCall, callback: grpc.sendUnaryData<Buffer>): boolean {
    const refusal = this.options.authorizePeer?.(call);
    if (refusal === undefined) return true;
    const remote = call.getPeer();
    const certificate = call.getAuthContext().sslPeerCertificate;
    // Keyed by host, not host:port: a refused peer retries from a new port every time.
    this.warnRateLimited(
      `refused:${remote.replace(/:\d+$/, '')}:${refusal}`,
      { remote, certificateCn: certificate?.subject?.CN, reason: refusal },
      'refused peer connection: TLS verification failed',
    );
    call.on('error', noop);
    callback({ code: grpc.status.PERMISSION_DENIED, details: `peer refused: ${refusal}` });
    return false;
  }

  private serveStream(call: grpc.ServerReadableStream<Buffer, Buffer>, callback: grpc.sendUnaryData<Buffer>): void {
    if (!this.admitPeer(call, callback)) return;
    // Headers now tell the sender the stream is up (its link goes from connecting to up).
    call.sendMetadata(new grpc.Metadata());
    let failed = false;
    call.on('data', (wire: Buffer) => {
      if (failed) return;
      let frame: Frame;
      try {
        frame = decodePeerFrame(wire);
      } catch (error) {
        if (!(error instanceof FrameDecodeError)) throw error;
        failed = true;
        this.warnRateLimited(`bad:${call.getPeer()}`, { remote: call.getPeer(), error: error.message }, 'malformed peer frame; closing stream');
        callback({ code: grpc.status.INVALID_ARGUMENT, details: error.message });
        return;
      }
      if (this.options.isRemoved?.(frame.fromId)) {
        // Tell a removed member so, as etcd's peers do (HTTP 410): it shuts itself down.
        failed = true;
        callback({ code: grpc.status.FAILED_PRECONDITION, details: REMOVED_DETAILS });
        return;
      }
      if (!this.acceptFrame(frame)) return;
      if (frame.messages.length > 0) this.options.onMessages(frame.messages);
    });
    call.on('end', () => {
      if (!failed) callback(null, EMPTY_ACK);
    });
    call.on('error', noop);
  }

  /**
   * True if the frame is for this cluster and member; otherwise logs (rate-limited) and false.
   * A member joining an existing cluster starts with cluster ID 0 and adopts the ID of the
   * first frame a known peer sends it; until it has, known peers accept its frames with ID 0.
   */
  private acceptFrame(frame: Frame): boolean {
    const { memberId } = this.options;
    if (this.clusterId === 0n && frame.clusterId !== 0n && this.links.has(frame.fromId)) {
      this.clusterId = frame.clusterId;
      this.log.info({ clusterId: frame.clusterId.toString(16), from: frame.fromId.toString(16) }, 'joined cluster');
      this.options.onClusterId?.(frame.clusterId);
    }
    const clusterId = this.clusterId;
    let reason: string | undefined;
    const joining = frame.clusterId === 0n && this.links.has(frame.fromId);
    if (frame.clusterId !== clusterId && !joining) reason = 'cluster ID mismatch';
    else if (frame.toId !== memberId) reason = 'addressed to another member';
    else if (frame.messages.some((m) => m.to !== memberId || m.from !== frame.fromId)) reason = 'message IDs disagree with frame header';
    if (reason === undefined) return true;
    this.warnRateLimited(
      `reject:${frame.fromId}:${reason}`,
      {
        sender: frame.fromId.toString(16),
        frameClusterId: frame.clusterId.toString(16),
        clusterId: clusterId.toString(16),
        frameTo: frame.toId.toString(16),
        memberId: memberId.toString(16),
      },
      `dropping peer frame: ${reason}`,
    );
    return false;
  }

  private serveSnapshot(call: grpc.ServerReadableStream<Buffer, Buffer>, callback: grpc.sendUnaryData<Buffer>): void {
    if (!this.admitPeer(call, callback)) return;
    let message: Message | undefined;
    let data: Buffer | undefined;
    let received = 0;
    let chunks = 0;
    let done = false;
    const fail = (code: grpc.status, details: string): void => {
      if (done) return;
      done = true;
      data = undefined;
      callback({ code, details });
    };
    call.on('data', (wire: Buffer) => {
      if (done) return;
      try {
        for (const field of protobufFields(wire)) {
          if (field.number === 1 && field.bytes !== undefined) {
            if (message !== undefined) throw new FrameDecodeError('second snapshot header');
            const frame = decodePeerFrame(field.bytes);
            if (!this.acceptFrame(frame)) {
              fail(grpc.status.FAILED_PRECONDITION, 'snapshot not for this cluster or member');
              return;
            }
            const m = frame.messages[0];
            if (frame.messages.length !== 1 || m === undefined || m.type !== MessageType.MsgSnap || m.snapshot === undefined) {
              throw new FrameDecodeError('snapshot header must hold exactly one MsgSnap with metadata');
            }
            message = m;
          } else if (field.number === 2 && field.varint !== undefined) {
            if (data !== undefined) throw new FrameDecodeError('second snapshot size');
            if (field.varint > MAX_SNAPSHOT_BYTES) throw new FrameDecodeError(`snapshot of ${field.varint} bytes is too large`);
            data = Buffer.allocUnsafe(field.varint);
          } else if (field.number === 3 && field.bytes !== undefined) {
            if (data === undefined) throw new FrameDecodeError('snapshot data before its size');
            if (received + field.bytes.length > data.length) throw new FrameDecodeError('snapshot data exceeds its size');
            data.set(field.bytes, received);
            received += field.bytes.length;
            chunks++;
          }
        }
      } catch (error) {
        if (!(error instanceof FrameDecodeError)) throw error;
        this.warnRateLimited(`badsnap:${call.getPeer()}`, { remote: call.getPeer(), error: error.message }, 'malformed snapshot chunk');
        fail(grpc.status.INVALID_ARGUMENT, error.message);
      }
    });
    call.on('end', () => {
      if (done) return;
      if (message === undefined || data === undefined || received !== data.length) {
        fail(grpc.status.INVALID_ARGUMENT, `incomplete snapshot: ${received} of ${data?.length ?? '?'} bytes`);
        return;
      }
      done = true;
      message.snapshot!.data = data;
      this.log.info({ sender: message.from.toString(16), index: message.snapshot!.metadata.index, bytes: data.length, chunks }, 'snapshot received');
      this.options.onMessages([message]);
      callback(null, EMPTY_ACK);
    });
    call.on('error', noop);
  }

  private serveMembers(call: grpc.ServerUnaryCall<Buffer, Buffer>, callback: grpc.sendUnaryData<Buffer>): void {
    if (!this.admitPeer(call, callback)) return;
    const describe = this.options.describeCluster;
    if (describe === undefined) {
      callback({ code: grpc.status.UNIMPLEMENTED, details: 'this member does not describe its cluster' });
      return;
    }
    const json = describe();
    callback(null, Buffer.concat([lengthDelimitedPrefix(1, json.length), json]));
  }

  private warnRateLimited(key: string, fields: Record<string, unknown>, message: string): void {
    const nowMs = Date.now();
    const entry = this.warnedAt.get(key);
    if (entry !== undefined && nowMs - entry.atMs < WARN_INTERVAL_MS) {
      entry.suppressed++;
      return;
    }
    this.log.warn({ ...fields, suppressed: entry?.suppressed ?? 0 }, message);
    // Keys are per sender and reason; a bound keeps a stream of forged senders from growing it.
    if (this.warnedAt.size > 1024) this.warnedAt.clear();
    this.warnedAt.set(key, { atMs: nowMs, suppressed: 0 });
  }
}

/** A unary call to a peer failed (no answer, an error status, or a malformed answer). */
export class PeerCallError extends Error {
  override name = 'PeerCallError';
  constructor(
    message: string,
    readonly code: grpc.status,
  ) {
    super(message);
  }
}

/**
 * Asks the member at `address` (host:port or a peer URL) for its member list over one unary
 * Members call, with the peer link's credentials; resolves to the JSON its describeCluster()
 * wrote. Rejects with a PeerCallError when the peer does not answer within `timeoutMs`, answers
 * with an error status, or answers something that is not a MemberList.
 */
export function askPeerForMembers(address: string, channel: grpc.ChannelCredentials | undefined, timeoutMs: number): Promise<Buffer> {
  const client = new grpc.Client(grpcTarget(address), channel ?? grpc.credentials.createInsecure(), CHANNEL_OPTIONS);
  return new Promise<Buffer>((resolve, reject) => {
    client.makeUnaryRequest(MEMBERS_PATH, passThrough, passThrough, EMPTY_ACK, { deadline: Date.now() + timeoutMs }, (error, answer) => {
      client.close();
      if (error !== null) {
        reject(new PeerCallError(error.details || error.message, error.code));
        return;
      }
      try {
        resolve(memberListJson(answer ?? EMPTY_ACK));
      } catch (decodeError) {
        if (!(decodeError instanceof FrameDecodeError)) throw decodeError;
        reject(new PeerCallError(decodeError.message, grpc.status.INTERNAL));
      }
    });
  });
}

/** The json field (1) of a MemberList message. */
function memberListJson(wire: Buffer): Buffer {
  for (const field of protobufFields(wire)) if (field.number === 1 && field.bytes !== undefined) return field.bytes;
  throw new FrameDecodeError('Members answer without its json field');
}

/**
 * Accepts "host:port" or an etcd-style peer URL; gRPC wants "host:port", or "unix:<file>" for a
 * unix socket (a unix or unixs URL's host:port is the file name, relative to the working dir).
 */
function grpcTarget(address: string): string {
  if (!address.includes('://')) return address;
  const unix = /^unixs?:\/\/([^/]+)\/?$/.exec(address);
  if (unix) return `unix:${unix[1]}`;
  const url = new URL(address);
  assert(url.port !== '', `peer URL without a port: ${address}`);
  return url.host;
}

/** Listens on every address (a taken port is a typed ListenError), each accepted socket to `accept`. */
async function listenForPeers(
  addresses: ReadonlyArray<PeerListenAddress>,
  accept: (socket: net.Socket) => void,
): Promise<{ servers: net.Server[]; ports: number[] }> {
  const servers: net.Server[] = [];
  const ports: number[] = [];
  try {
    for (const address of addresses) {
      const listener = net.createServer({ noDelay: true }, accept);
      servers.push(listener);
      const socketPath = address.socketPath;
      if (socketPath !== undefined) removeStaleSocket(socketPath);
      await new Promise<void>((resolve, reject) => {
        listener.once('error', reject);
        listener.listen(socketPath !== undefined ? { path: socketPath } : { host: address.host, port: address.port }, () => {
          listener.off('error', reject);
          resolve();
        });
      }).catch((error: unknown) => {
        throw socketPath !== undefined ? socketListenErrorOf(error, socketPath) : listenErrorOf(error, address.host, address.port);
      });
      ports.push(socketPath !== undefined ? address.port : (listener.address() as net.AddressInfo).port);
    }
  } catch (error) {
    for (const listener of servers) listener.close();
    throw error;
  }
  return { servers, ports };
}

/** A socket file left by a member that did not stop cleanly; anything else there is left alone. */
function removeStaleSocket(socketPath: string): void {
  let stat: fs.Stats | undefined;
  try {
    stat = fs.lstatSync(socketPath);
  } catch (error) {
    if ((error as { code?: unknown }).code === 'ENOENT') return;
    throw error;
  }
  if (stat.isSocket()) fs.unlinkSync(socketPath);
}

/** Where a peer's Stream session connects: host and port, or a unix socket file. */
interface PeerEndpoint {
  readonly host: string;
  readonly port: number;
  readonly socketPath: string | undefined;
}

/** The endpoint of a gRPC target ("host:port", "[v6]:port" or "unix:file"). */
function peerEndpoint(target: string): PeerEndpoint {
  if (target.startsWith('unix:')) return { host: 'localhost', port: 0, socketPath: target.slice('unix:'.length) };
  const colon = target.lastIndexOf(':');
  assert(colon > 0, `peer address without a port: ${target}`);
  const host = target.slice(0, colon).replace(/^\[(.*)\]$/, '$1');
  const port = Number(target.slice(colon + 1));
  assert(Number.isInteger(port) && port > 0 && port < 65536, `bad peer port: ${target}`);
  return { host, port, socketPath: undefined };
}

/** The gRPC status in response headers or trailers, undefined when they hold none. */
function streamEndOf(headers: http2.IncomingHttpHeaders): StreamEnd | undefined {
  const status = headers['grpc-status'];
  if (typeof status !== 'string') {
    const http = headers[':status'] as number | undefined;
    // A non-gRPC answer (a proxy, the wrong port): no status of its own, the stream failed.
    if (http !== undefined && http !== 200) return { code: STATUS_UNAVAILABLE, details: `HTTP status ${http}` };
    return undefined;
  }
  const message = headers['grpc-message'];
  let details = typeof message === 'string' ? message : '';
  try {
    details = decodeURIComponent(details);
  } catch {
    // Not percent-encoded as gRPC says it must be: keep the raw text.
  }
  return { code: Number(status), details };
}
