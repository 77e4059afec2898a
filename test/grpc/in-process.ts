// An in-process MetaStore member (backend + KV server + gRPC on a free loopback port) and a
// promise-based client, for tests that talk gRPC without spawning a process. Its clients reach
// the member's own gRPC server (src/grpc/grpc-server.ts), or, with `edge`, an edge server
// relaying to it as an edge process does (src/grpc/edge, in this process), or, with
// `grpcJsReference`, a plain grpc-js server over the same handlers (the reference of the
// differential tests).

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { once } from 'node:events';
import net from 'node:net';
import * as grpc from '@grpc/grpc-js';
import { ConnectionRouter } from '../../src/grpc/connection-router.js';
import { EdgeRelay } from '../../src/grpc/edge/edge-relay.js';
import { startEdgeServer } from '../../src/grpc/edge/edge-server.js';
import { PrimaryRelay } from '../../src/grpc/edge/primary-relay.js';
import { callLimits, startGrpcServer, type GrpcServerOptions, type RunningGrpcServer } from '../../src/grpc/grpc-server.js';
import { clients } from '../../src/grpc/proto.js';
import { KvServer } from '../../src/server/member/kv-server.js';
import { singleVoter } from '../../src/server/member/replication.js';
import { Backend } from '../../src/storage/backend.js';

export interface InProcessMember {
  endpoint: string;
  kv: KvServer;
  backend: Backend;
  /** The member's served definitions and handlers (leader-guarded), as its gRPC server serves them. */
  services: RunningGrpcServer['services'];
  call<T = any>(service: keyof typeof clients, method: string, request: object): Promise<T>;
  close(): Promise<void>;
}

export interface InProcessOptions {
  maxRequestBytes?: number;
  maxTxnOps?: number;
  watchProgressNotifyIntervalMs?: number;
  /** Any other gRPC server option (keepalive, message limits...). */
  grpc?: Partial<GrpcServerOptions>;
  /** Clients reach an edge server relaying to the member (an edge process's, run in this process). */
  edge?: boolean;
  /** Clients reach a plain grpc-js server over the member's handlers (differential tests' reference). */
  grpcJsReference?: boolean;
  /** The lone voter's options beyond singleVoter()'s defaults (write-path limits...). */
  replication?: Parameters<typeof singleVoter>[0];
}

/** The member's ID: in its response headers, as its Raft ID and in its lease IDs. */
const MEMBER_ID = 2n;

export async function startInProcessMember(options: InProcessOptions = {}): Promise<InProcessMember> {
  const dataDir = mkdtempSync(join(tmpdir(), 'metastore-inproc-'));
  const backend = await Backend.open(dataDir);
  const kv = await KvServer.open(backend, { replication: singleVoter({ memberId: MEMBER_ID, ...options.replication }) });
  await kv.start();
  const grpcOptions: GrpcServerOptions = {
    host: '127.0.0.1',
    port: 0,
    maxRequestBytes: options.maxRequestBytes ?? 1_572_864,
    maxTxnOps: options.maxTxnOps ?? 128,
    maxSendMessageBytes: 16 * 1024 * 1024,
    maxConcurrentStreams: 1000,
    identity: { clusterId: 1n, memberId: MEMBER_ID },
    watchProgressNotifyIntervalMs: options.watchProgressNotifyIntervalMs,
    ...options.grpc,
  };
  const server: RunningGrpcServer = await startGrpcServer(kv, grpcOptions);
  const front = options.edge ? await serveThroughEdge(server, grpcOptions) : options.grpcJsReference ? await grpcJsReference(server, grpcOptions) : undefined;
  const endpoint = `127.0.0.1:${front?.port ?? server.port}`;
  const stubs = new Map<string, grpc.Client>();
  const stub = (service: keyof typeof clients): any => {
    let client = stubs.get(service);
    if (!client) {
      client = new clients[service](endpoint, grpc.credentials.createInsecure(), {
        'grpc.max_send_message_length': 64 * 1024 * 1024,
        'grpc.max_receive_message_length': 64 * 1024 * 1024,
      });
      stubs.set(service, client);
    }
    return client;
  };
  return {
    endpoint,
    kv,
    backend,
    services: server.services,
    call(service, method, request) {
      return new Promise((resolve, reject) => {
        stub(service)[method](request, (error: grpc.ServiceError | null, response: any) => (error ? reject(error) : resolve(response)));
      });
    },
    async close() {
      for (const client of stubs.values()) client.close();
      await front?.close();
      await server.close(1000);
      await kv.close();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/** What clients reach instead of the member's own server. */
interface Front {
  port: number;
  close(): Promise<void>;
}

/**
 * An edge server as edge-main.ts starts one (relaying over a socket pair to a PrimaryRelay on
 * the member's services, as edge-pool.ts does), on a loopback port of its own: each connection
 * is routed as the primary's hand-off would have it routed.
 */
async function serveThroughEdge(member: RunningGrpcServer, options: GrpcServerOptions): Promise<Front> {
  const pairing = net.createServer();
  pairing.listen(0, '127.0.0.1');
  await once(pairing, 'listening');
  const accepted = once(pairing, 'connection') as Promise<[net.Socket]>;
  const edgeEnd = net.connect((pairing.address() as net.AddressInfo).port, '127.0.0.1');
  const [primaryEnd] = await accepted;
  pairing.close();
  const noHttp = async () => ({ head: { status: 404, headers: {} }, body: Buffer.alloc(0) });
  const primary = new PrimaryRelay(
    primaryEnd,
    member.services,
    noHttp,
    () => ({}),
    () => undefined,
  );
  const relay = new EdgeRelay(edgeEnd, () => undefined);
  const router = new ConnectionRouter({});
  const edge = startEdgeServer(relay, router, options);
  const clients = net.createServer({ noDelay: true }, (socket) => router.route(socket, false));
  clients.listen(0, '127.0.0.1');
  await once(clients, 'listening');
  return {
    port: (clients.address() as net.AddressInfo).port,
    close: async () => {
      clients.close();
      await edge.close(1000);
      relay.close();
      primary.close();
    },
  };
}

/** A plain grpc-js server (bindAsync) over the member's served definitions and handlers, with its limits. */
export async function grpcJsReference(member: RunningGrpcServer, options: GrpcServerOptions): Promise<Front> {
  const limits = callLimits(options);
  const server = new grpc.Server({
    'grpc.max_receive_message_length': limits.maxReceiveMessageBytes,
    'grpc.max_send_message_length': limits.maxSendMessageBytes,
    'grpc.max_concurrent_streams': options.maxConcurrentStreams,
  });
  for (const { definition, handlers } of Object.values(member.services)) server.addService(definition, handlers);
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (error, bound) => (error ? reject(error) : resolve(bound))),
  );
  return {
    port,
    close: () =>
      new Promise<void>((resolve) => {
        const force = setTimeout(() => server.forceShutdown(), 1000);
        server.tryShutdown(() => {
          clearTimeout(force);
          resolve();
        });
      }),
  };
}
