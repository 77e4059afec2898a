// Watch fan-out batching: a watch stream writes the responses of one flush (a revision's
// responses to all its watchers) as ONE write of framed messages, not one write per watcher.
// Checked on both carriers: the client port's own server (h2/grpc-calls.ts: the HTTP/2 stream's
// writes counted) and a relayed call (an edge's sink, which receives each batch as one frame),
// with order, fragments and backpressure.

import { once } from 'node:events';
import net from 'node:net';
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GatewayStreamCall, type StreamSink } from '../../src/grpc/gateway/gateway-call.js';
import { serveGrpcConnections } from '../../src/grpc/grpc-server.js';
import { serveH2Connection } from '../../src/grpc/h2/connection.js';
import type { H2ConnectionOptions, H2ServerStream } from '../../src/grpc/h2/h2-stream.js';
import { responseHeaders } from '../../src/grpc/handler.js';
import { unframeMessages } from '../../src/grpc/message-frames.js';
import { clients, decodeMessage } from '../../src/grpc/proto.js';
import { watchHandlers } from '../../src/grpc/watch-service.js';
import { waitFor } from '../support/wait.js';
import { type InProcessMember, startInProcessMember } from './in-process.js';

type Msg = Record<string, any>;
const b = (s: string) => Buffer.from(s);
const WATCHERS = 50;

let member: InProcessMember;
beforeAll(async () => {
  member = await startInProcessMember();
});
afterAll(async () => {
  await member.close();
});

function handlers(maxRequestBytes = 1024 * 1024) {
  const headers = responseHeaders({ clusterId: 1n, memberId: 2n }, () => member.kv.term);
  return watchHandlers(member.kv, headers, { maxRequestBytes });
}

/** A relayed watch call (an edge's sink): records every write, and can refuse more (backpressure). */
class RecordingCall {
  readonly writes: Msg[][] = [];
  /** Each write's bytes as the stream handed them over. */
  readonly raw: Buffer[] = [];
  full = false;
  readonly call: GatewayStreamCall;

  constructor(maxRequestBytes?: number) {
    const sink: StreamSink = {
      message: () => {
        throw new Error('a watch stream wrote one message instead of a framed batch');
      },
      framed: (framed, written) => {
        this.raw.push(framed);
        this.writes.push(unframeMessages(framed).map((m) => decodeMessage('etcdserverpb.WatchResponse', m)));
        setImmediate(written);
        return !this.full;
      },
      failed: () => undefined,
      ended: () => undefined,
    };
    const caller = { metadata: new grpc.Metadata(), authContext: () => ({}), deadline: Infinity, peer: 'test', path: '/etcdserverpb.Watch/Watch' };
    this.call = new GatewayStreamCall(undefined, caller, sink);
    (handlers(maxRequestBytes).Watch as unknown as (call: GatewayStreamCall) => void)(this.call);
  }

  create(key: string, rangeEnd: string, extra: object = {}): void {
    this.call.emit('data', { requestUnion: 'createRequest', createRequest: { key: b(key), rangeEnd: b(rangeEnd), ...extra } });
  }

  get responses(): Msg[] {
    return this.writes.flat();
  }
}

describe('watch responses leave in one write per flush (relayed call)', () => {
  it('one revision for N watchers of a stream is one write, watchers in order', async () => {
    const rec = new RecordingCall();
    try {
      for (let i = 0; i < WATCHERS; i++) rec.create('a/', 'a0');
      await waitFor(() => rec.responses.length === WATCHERS, { what: 'every watcher created', timeoutMs: 5000, intervalMs: 5 });
      const writesBefore = rec.writes.length;
      await member.call('KV', 'put', { key: b('a/1'), value: b('v') });
      await waitFor(() => rec.responses.length === 2 * WATCHERS, { what: 'every watcher told', timeoutMs: 5000, intervalMs: 5 });
      expect(rec.writes.length).toBe(writesBefore + 1);
      const batch = rec.writes[writesBefore]!;
      expect(batch.map((r) => Number(r.watchId))).toEqual(Array.from({ length: WATCHERS }, (_, i) => i));
      for (const r of batch) expect(r.events.map((e: Msg) => e.kv.key.toString())).toEqual(['a/1']);
    } finally {
      rec.call.cancel();
    }
  });

  it('a revision larger than one write (64 KiB) leaves in a few writes, watchers still in order', async () => {
    const rec = new RecordingCall();
    try {
      for (let i = 0; i < WATCHERS; i++) rec.create('f/', 'f0');
      await waitFor(() => rec.responses.length === WATCHERS, { what: 'every watcher created', timeoutMs: 5000, intervalMs: 5 });
      const writesBefore = rec.writes.length;
      await member.call('KV', 'put', { key: b('f/1'), value: Buffer.alloc(4096, 1) });
      await waitFor(() => rec.responses.length === 2 * WATCHERS, { what: 'every watcher told', timeoutMs: 5000, intervalMs: 5 });
      // 50 responses of ~4.1 KiB: 200 KiB in writes of at most 64 KiB (plus the response that crosses it).
      const writes = rec.writes.slice(writesBefore);
      expect(writes.length).toBeGreaterThanOrEqual(3);
      expect(writes.length).toBeLessThanOrEqual(4);
      expect(writes.flat().map((r) => Number(r.watchId))).toEqual(Array.from({ length: WATCHERS }, (_, i) => i));
    } finally {
      rec.call.cancel();
    }
  });

  it('backpressure: nothing is written until drain, then every watcher gets every revision in order', async () => {
    const rec = new RecordingCall();
    try {
      for (let i = 0; i < 3; i++) rec.create('b/', 'b0');
      await waitFor(() => rec.responses.length === 3, { what: 'every watcher created', timeoutMs: 5000, intervalMs: 5 });
      rec.full = true;
      const first = await member.call('KV', 'put', { key: b('b/0'), value: b('v') });
      await waitFor(() => rec.writes.length === 2, { what: 'the first revision written', timeoutMs: 5000, intervalMs: 5 });
      const revisions = [Number(first.header.revision)];
      for (let i = 1; i < 20; i++) revisions.push(Number((await member.call('KV', 'put', { key: b(`b/${i}`), value: b('v') })).header.revision));
      // A flush would run within an event-loop turn of the puts' notifications (setImmediate).
      for (let turn = 0; turn < 3; turn++) await new Promise((resolve) => setImmediate(resolve));
      expect(rec.writes.length).toBe(2); // the sink said full: the stream waits for 'drain'
      rec.full = false;
      rec.call.emit('drain');
      const seen = (id: number) => rec.responses.filter((r) => Number(r.watchId) === id).flatMap((r) => r.events.map((e: Msg) => Number(e.kv.modRevision)));
      await waitFor(() => [0, 1, 2].every((id) => seen(id).length === revisions.length), { what: 'all revisions', timeoutMs: 5000, intervalMs: 5 });
      for (const id of [0, 1, 2]) expect(seen(id)).toEqual(revisions);
      // The revisions that piled up went out merged (one response per watcher) in one write.
      expect(rec.writes.length).toBe(3);
      expect(rec.writes[2]!.map((r) => Number(r.watchId))).toEqual([0, 1, 2]);
    } finally {
      rec.call.cancel();
    }
  });

  it('fragments of a fragment watcher go out in order, fragment=true on all but the last; the other watcher gets one response', async () => {
    const rec = new RecordingCall(1024);
    try {
      rec.create('c/', 'c0', { fragment: true });
      rec.create('c/', 'c0');
      await waitFor(() => rec.responses.length === 2, { what: 'both watchers created', timeoutMs: 5000, intervalMs: 5 });
      const value = Buffer.alloc(200 * 1024, 1);
      const before = rec.responses.length;
      await member.call('KV', 'txn', { success: [0, 1, 2, 3].map((i) => ({ requestPut: { key: b(`c/${i}`), value } })) });
      const eventsOf = (id: number) =>
        rec.responses
          .slice(before)
          .filter((r) => Number(r.watchId) === id)
          .reduce((n, r) => n + r.events.length, 0);
      await waitFor(() => eventsOf(0) === 4 && eventsOf(1) === 4, { what: 'the revision written', timeoutMs: 5000, intervalMs: 5 });
      const batch = rec.responses.slice(before);
      const fragmented = batch.filter((r) => Number(r.watchId) === 0);
      expect(fragmented.length).toBeGreaterThan(1);
      expect(fragmented.map((r) => r.fragment)).toEqual([...fragmented.slice(1).map(() => true), false]);
      expect(fragmented.flatMap((r) => r.events.map((e: Msg) => e.kv.key.toString()))).toEqual(['c/0', 'c/1', 'c/2', 'c/3']);
      const whole = batch.filter((r) => Number(r.watchId) === 1);
      expect(whole.map((r) => r.events.length)).toEqual([4]);
    } finally {
      rec.call.cancel();
    }
  });
});

/**
 * The member's services on the client port's own server (its HTTP/2 connection and call layer)
 * with this send limit; `onStream` sees each HTTP/2 stream before the call layer serves it.
 */
async function watchServer(maxSendMessageBytes: number, onStream: (stream: H2ServerStream) => void = () => {}) {
  const connections = serveGrpcConnections(
    member.services,
    { maxRequestBytes: 1024 * 1024, maxSendMessageBytes, maxConcurrentStreams: 100 },
    (socket, options) => serveH2Connection(socket, seeing(options, onStream)),
  );
  const server = net.createServer((socket) => connections.accept(socket));
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const client: any = new clients.Watch(`127.0.0.1:${(server.address() as net.AddressInfo).port}`, grpc.credentials.createInsecure());
  return {
    client,
    close: async () => {
      client.close();
      server.close();
      await connections.close(0);
    },
  };
}

/** A connection's options that show each new stream to `onStream` first. */
function seeing(options: H2ConnectionOptions, onStream: (stream: H2ServerStream) => void): H2ConnectionOptions {
  return {
    maxConcurrentStreams: options.maxConcurrentStreams,
    maxHeaderListBytes: options.maxHeaderListBytes,
    receiveWindowBytes: options.receiveWindowBytes,
    onStream: (stream) => {
      onStream(stream);
      options.onStream(stream);
    },
    ping: (wrote) => options.ping(wrote),
    closed: () => options.closed(),
  };
}

describe('streams with the same watchers send the bytes encoded once', () => {
  it("a stream reuses the last stream's batch, or its prefix, only while its responses encode the same; every stream decodes right", async () => {
    await member.call('KV', 'put', { key: b('sh/a'), value: b('v1') });
    const same1 = new RecordingCall();
    const same2 = new RecordingCall();
    const fewer = new RecordingCall();
    const prevKv = new RecordingCall();
    const otherIds = new RecordingCall();
    const all = [same1, same2, fewer, prevKv, otherIds];
    try {
      for (let i = 0; i < 5; i++) {
        same1.create('sh/', 'sh0');
        same2.create('sh/', 'sh0');
        if (i < 3) fewer.create('sh/', 'sh0');
        prevKv.create('sh/', 'sh0', i === 2 ? { prevKv: true } : {});
        otherIds.create('sh/', 'sh0', { watchId: 10 + i });
      }
      const counts = [5, 5, 3, 5, 5];
      await waitFor(() => all.every((rec, i) => rec.responses.length === counts[i]), { what: 'every watcher created', timeoutMs: 5000, intervalMs: 5 });
      const before = all.map((rec) => rec.writes.length);
      const put = await member.call('KV', 'put', { key: b('sh/a'), value: b('v2') });
      const revision = Number(put.header.revision);
      await waitFor(() => all.every((rec, i) => rec.responses.length === 2 * counts[i]!), { what: 'every watcher told', timeoutMs: 5000, intervalMs: 5 });
      const [s1, s2, s3, s4, s5] = all.map((rec, i) => {
        expect(rec.writes.length).toBe(before[i]! + 1);
        return { raw: rec.raw[rec.raw.length - 1]!, responses: rec.writes[rec.writes.length - 1]! };
      }) as [{ raw: Buffer; responses: Msg[] }, ...{ raw: Buffer; responses: Msg[] }[]];
      // What every stream's watchers must get, whatever bytes were reused.
      const expectResponses = (responses: Msg[], ids: number[], prevKvId?: number) => {
        expect(responses.map((r) => Number(r.watchId))).toEqual(ids);
        for (const r of responses) {
          expect(Number(r.header.revision)).toBe(revision);
          expect(r.events).toHaveLength(1);
          expect(r.events[0].kv.key.toString()).toBe('sh/a');
          expect(r.events[0].kv.value.toString()).toBe('v2');
          expect(Number(r.events[0].kv.modRevision)).toBe(revision);
          if (Number(r.watchId) === prevKvId) expect(r.events[0].prevKv.value.toString()).toBe('v1');
          else expect(r.events[0].prevKv ?? null).toBeNull();
        }
      };
      expectResponses(s1!.responses, [0, 1, 2, 3, 4]);
      expectResponses(s2!.responses, [0, 1, 2, 3, 4]);
      expectResponses(s3!.responses, [0, 1, 2]);
      expectResponses(s4!.responses, [0, 1, 2, 3, 4], 2);
      expectResponses(s5!.responses, [10, 11, 12, 13, 14]);
      // The same watchers: the same bytes in memory; fewer: their start (the streams flush in
      // wake order). Small buffers share Node's pool: the offset tells them apart.
      const sameMemory = (x: Buffer, y: Buffer) => x.buffer === y.buffer && x.byteOffset === y.byteOffset;
      expect(sameMemory(s2!.raw, s1!.raw)).toBe(true);
      expect(s2!.raw.equals(s1!.raw)).toBe(true);
      expect(sameMemory(s3!.raw, s1!.raw)).toBe(true);
      expect(s3!.raw.equals(s1!.raw.subarray(0, s3!.raw.length))).toBe(true);
      // A prev_kv watcher in the middle: encoded on its own, its first two messages the same bytes.
      expect(sameMemory(s4!.raw, s1!.raw)).toBe(false);
      expect(unframeMessages(s4!.raw).slice(0, 2)).toEqual(unframeMessages(s1!.raw).slice(0, 2));
      expect(unframeMessages(s4!.raw)[2]!.equals(unframeMessages(s1!.raw)[2]!)).toBe(false);
      expect(s5!.raw.equals(s1!.raw)).toBe(false);
    } finally {
      for (const rec of all) rec.call.cancel();
    }
  });
});

describe('watch responses leave in one write per flush (the client port)', () => {
  it('one revision for N watchers of a stream is one HTTP/2 write, and the client decodes every response in order', async () => {
    const writes: number[] = [];
    const { client, close } = await watchServer(16 * 1024 * 1024, (stream) => {
      const write = stream.write.bind(stream);
      stream.write = (data: Buffer) => {
        writes.push(data.length);
        return write(data);
      };
    });
    const responses: Msg[] = [];
    const watch: grpc.ClientDuplexStream<object, Msg> = client.watch();
    watch.on('data', (m: Msg) => responses.push(m));
    watch.on('error', () => undefined);
    try {
      for (let i = 0; i < WATCHERS; i++) watch.write({ createRequest: { key: b('d/'), rangeEnd: b('d0') } });
      await waitFor(() => responses.length === WATCHERS, { what: 'every watcher created', timeoutMs: 5000, intervalMs: 5 });
      const writesBefore = writes.length;
      await member.call('KV', 'put', { key: b('d/1'), value: b('v') });
      await waitFor(() => responses.length === 2 * WATCHERS, { what: 'every watcher told', timeoutMs: 5000, intervalMs: 5 });
      expect(writes.length).toBe(writesBefore + 1);
      const events = responses.slice(WATCHERS);
      expect(events.map((r) => Number(r.watchId))).toEqual(Array.from({ length: WATCHERS }, (_, i) => i));
      for (const r of events) expect(r.events.map((e: Msg) => e.kv.key.toString())).toEqual(['d/1']);
    } finally {
      watch.cancel();
      await close();
    }
  });

  it("a response over the send limit fails the stream with grpc-js's status text, after the responses before it", async () => {
    const { client, close } = await watchServer(500);
    const responses: Msg[] = [];
    const watch: grpc.ClientDuplexStream<object, Msg> = client.watch();
    watch.on('data', (m: Msg) => responses.push(m));
    const failed = new Promise<grpc.ServiceError>((resolve) => watch.on('error', resolve));
    try {
      watch.write({ createRequest: { key: b('e/'), rangeEnd: b('e0') } });
      await waitFor(() => responses.length === 1, { what: 'the watcher created', timeoutMs: 5000, intervalMs: 5 });
      await member.call('KV', 'put', { key: b('e/1'), value: b('small') });
      await member.call('KV', 'put', { key: b('e/2'), value: Buffer.alloc(1000, 1) });
      const error = await failed;
      expect(error.code).toBe(grpc.status.RESOURCE_EXHAUSTED);
      expect(error.details).toMatch(/^Sent message larger than max \(\d+ vs\. 500\)$/);
      expect(responses.flatMap((r) => r.events.map((e: Msg) => e.kv.key.toString()))).toEqual(['e/1']);
    } finally {
      await close();
    }
  });
});
