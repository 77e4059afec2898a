// A closed-loop gRPC load generator in the manner of etcd's benchmark tool: `clients`
// concurrent callers spread over `connections` HTTP/2 connections, each sending its next
// request as soon as the previous one is answered, until `totalOps` requests are done.
//
// Requests are encoded once up front and responses are not decoded, so the generator spends
// as little CPU as possible: on a 2-core machine it shares the CPU with the server under test,
// and the same generator is used against etcd and MetaStore, so their ratio is fair.

import * as grpc from '@grpc/grpc-js';

export interface LoadOptions {
  endpoint: string;
  /** Full gRPC method path, e.g. "/etcdserverpb.KV/Put". */
  path: string;
  clients: number;
  connections: number;
  totalOps: number;
  /** The encoded request for operation i. */
  request: (i: number) => Buffer;
}

export interface LoadResult {
  ops: number;
  errors: number;
  seconds: number;
  opsPerSecond: number;
  latencyMs: { p50: number; p90: number; p99: number; max: number };
}

const identity = (buffer: Buffer): Buffer => buffer;

export async function runLoad(options: LoadOptions): Promise<LoadResult> {
  const channels: grpc.Client[] = [];
  for (let i = 0; i < options.connections; i++) {
    // A distinct option per client keeps grpc-js from sharing one connection between them.
    channels.push(new grpc.Client(options.endpoint, grpc.credentials.createInsecure(), { 'grpc.bench_connection': i, 'grpc.use_local_subchannel_pool': 1 }));
  }
  await Promise.all(
    channels.map(
      (channel) => new Promise<void>((resolve, reject) => channel.waitForReady(Date.now() + 10_000, (error) => (error ? reject(error) : resolve()))),
    ),
  );
  const latencies = new Float64Array(options.totalOps);
  let issued = 0;
  let done = 0;
  let errors = 0;
  const started = process.hrtime.bigint();
  await new Promise<void>((resolveAll) => {
    const next = (channel: grpc.Client): void => {
      if (issued >= options.totalOps) return;
      const i = issued++;
      const sent = process.hrtime.bigint();
      channel.makeUnaryRequest(options.path, identity, identity, options.request(i), (error) => {
        latencies[i] = Number(process.hrtime.bigint() - sent) / 1e6;
        if (error) errors++;
        done++;
        if (done === options.totalOps) resolveAll();
        else next(channel);
      });
    };
    for (let c = 0; c < options.clients; c++) next(channels[c % channels.length]!);
  });
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  for (const channel of channels) channel.close();
  const sorted = Array.from(latencies).sort((a, b) => a - b);
  const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
  return {
    ops: options.totalOps,
    errors,
    seconds,
    opsPerSecond: options.totalOps / seconds,
    latencyMs: { p50: at(0.5), p90: at(0.9), p99: at(0.99), max: sorted[sorted.length - 1]! },
  };
}
