// An in-process MetaStore member (backend + KV server + gRPC on a free loopback port) and a
// promise-based client, for tests that talk gRPC without spawning a process.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { ClientListener } from '../../src/grpc/client-listener.js';
import { startGrpcServer, type GrpcServerOptions, type RunningGrpcServer } from '../../src/grpc/grpc-server.js';
import { clients } from '../../src/grpc/proto.js';
import { KvServer } from '../../src/server/member/kv-server.js';
import { singleVoter } from '../../src/server/member/replication.js';
import { Backend } from '../../src/storage/backend.js';

export interface InProcessMember {
  endpoint: string;
  kv: KvServer;
  backend: Backend;
  call<T = any>(service: keyof typeof clients, method: string, request: object): Promise<T>;
  close(): Promise<void>;
}

export interface InProcessOptions {
  maxRequestBytes?: number;
  maxTxnOps?: number;
  watchProgressNotifyIntervalMs?: number;
  /** Any other gRPC server option (keepalive, message limits...). */
  grpc?: Partial<GrpcServerOptions>;
  /** Serve through MetaStore's own client listener (connection limit, protocol routing), as a
   * running member does, instead of grpc-js's bindAsync. */
  clientListener?: boolean;
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
  const listener = options.clientListener
    ? await ClientListener.listen({ addresses: [{ host: '127.0.0.1', port: 0, secure: false }], maxConnections: 100 })
    : undefined;
  const server: RunningGrpcServer = await startGrpcServer(kv, {
    listener,
    host: '127.0.0.1',
    port: 0,
    maxRequestBytes: options.maxRequestBytes ?? 1_572_864,
    maxTxnOps: options.maxTxnOps ?? 128,
    maxSendMessageBytes: 16 * 1024 * 1024,
    maxConcurrentStreams: 1000,
    identity: { clusterId: 1n, memberId: MEMBER_ID },
    watchProgressNotifyIntervalMs: options.watchProgressNotifyIntervalMs,
    ...options.grpc,
  });
  // The in-process member serves gRPC only: an HTTP/1.1 connection is closed.
  listener?.serveHttp1((socket) => socket.destroy());
  const endpoint = `127.0.0.1:${server.port}`;
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
    call(service, method, request) {
      return new Promise((resolve, reject) => {
        stub(service)[method](request, (error: grpc.ServiceError | null, response: any) => (error ? reject(error) : resolve(response)));
      });
    },
    async close() {
      for (const client of stubs.values()) client.close();
      await server.close(1000);
      await kv.close();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}
