// The primary's end of an edge channel, driven by hand-written frames: a relayed stream's
// write() reports full once a megabyte is in flight to the edge and emits 'drain' when the
// edge reports it written; when the channel closes, running calls are cancelled.
import net from 'node:net';
import { once } from 'node:events';
import type * as grpc from '@grpc/grpc-js';
import { afterEach, describe, expect, it } from 'vitest';
import type { GatewayServices } from '../gateway/gateway.js';
import { type ServiceName, services } from '../proto.js';
import { EDGE_METHODS } from './edge-methods.js';
import { encodeStart, FrameKind, FrameReader, frameHeader } from './frames.js';
import { PrimaryRelay } from './primary-relay.js';

const cleanups: Array<() => void> = [];
afterEach(() => {
  for (const cleanup of cleanups.splice(0)) cleanup();
});

/** Two connected sockets on loopback: [edge end, primary end]. */
async function socketPair(): Promise<[net.Socket, net.Socket]> {
  const server = net.createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const port = (server.address() as net.AddressInfo).port;
  const accepted = once(server, 'connection') as Promise<[net.Socket]>;
  const edge = net.connect(port, '127.0.0.1');
  const [primary] = await accepted;
  server.close();
  cleanups.push(() => {
    edge.destroy();
    primary.destroy();
  });
  return [edge, primary];
}

/** Every service's real definition; Watch.Watch runs `watch`, everything else is unused. */
function servicesWith(watch: (call: grpc.ServerDuplexStream<unknown, unknown>) => void): GatewayServices {
  const served: Partial<Record<ServiceName, { definition: grpc.ServiceDefinition; handlers: Record<string, grpc.UntypedHandleCall> }>> = {};
  for (const name of Object.keys(services) as ServiceName[]) {
    const handlers: Record<string, grpc.UntypedHandleCall> = {};
    for (const method of Object.keys(services[name])) handlers[method] = (() => undefined) as grpc.UntypedHandleCall;
    served[name] = { definition: services[name], handlers };
  }
  served.Watch!.handlers.Watch = watch as grpc.UntypedHandleCall;
  return served as GatewayServices;
}

function frame(callId: number, kind: number, body: Buffer = Buffer.alloc(0)): Buffer {
  return Buffer.concat([frameHeader(callId, kind, body.length), body]);
}

const WATCH = EDGE_METHODS.find((m) => m.service === 'Watch' && m.name === 'Watch')!.index;
const start = encodeStart({ method: WATCH, deadline: Infinity, peer: '127.0.0.1:1', certificateCn: '', metadata: [], request: undefined });

describe('PrimaryRelay', () => {
  it('reports a stream full past 1 MiB in flight and drains as the edge writes', async () => {
    const [edge, primary] = await socketPair();
    let call!: grpc.ServerDuplexStream<unknown, unknown>;
    const started = new Promise<void>((resolve) => {
      new PrimaryRelay(
        primary,
        servicesWith((c) => {
          call = c;
          resolve();
        }),
        async () => ({ head: { status: 200, headers: {} }, body: Buffer.alloc(0) }),
        () => ({}),
        () => undefined,
      );
    });
    edge.write(frame(9, FrameKind.start, start));
    await started;
    const event = { kv: { key: Buffer.from('k'), value: Buffer.alloc(256 * 1024, 1) } };
    const accepted: boolean[] = [];
    for (let i = 0; i < 5; i++) accepted.push(call.write({ watchId: '1', events: [event] }));
    expect(accepted).toEqual([true, true, true, false, false]);
    // The edge receives the messages and reports them written to HTTP/2.
    const reader = new FrameReader();
    let sent = 0;
    const pastHighWater = new Promise<void>((resolve) => {
      edge.on('data', (chunk: Buffer) => {
        for (const f of reader.push(chunk)) if (f.kind === FrameKind.streamMessage && f.callId === 9) sent += f.body.length;
        if (sent > 1024 * 1024) resolve();
      });
    });
    const drained = once(call, 'drain');
    await pastHighWater;
    const written = Buffer.alloc(4);
    written.writeUInt32BE(sent, 0);
    edge.write(frame(9, FrameKind.written, written));
    await drained;
  });

  it('cancels the running calls when the channel closes', async () => {
    const [edge, primary] = await socketPair();
    let call!: grpc.ServerDuplexStream<unknown, unknown>;
    const started = new Promise<void>((resolve) => {
      new PrimaryRelay(
        primary,
        servicesWith((c) => {
          call = c;
          resolve();
        }),
        async () => ({ head: { status: 200, headers: {} }, body: Buffer.alloc(0) }),
        () => ({}),
        () => undefined,
      );
    });
    edge.write(frame(3, FrameKind.start, start));
    await started;
    const cancelled = once(call, 'cancelled');
    edge.destroy();
    await cancelled;
    expect(call.cancelled).toBe(true);
  });
});
