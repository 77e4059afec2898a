// The client port receives at most max_receiving_request_bytes / (max request size) large
// requests at a time: a request arriving while that many large bodies are still being received
// is refused from its headers with etcd's "etcdserver: too many requests", before any of its
// body is buffered, and a place frees once a body has been read. Small requests never take a
// place, however many are in flight. Bodies held half-sent by a raw HTTP/2 client stand in for
// a flood of slow large uploads; nothing here is timed.

import http2 from 'node:http2';
import { afterEach, describe, expect, it } from 'vitest';
import { encodeMessage } from '../../src/grpc/proto.js';
import { waitFor } from '../support/wait.js';
import { startInProcessMember, type InProcessMember } from './in-process.js';

const MAX_REQUEST_BYTES = 1024 * 1024;
/** Each receiving request is charged at max-request-bytes + 512 KiB: two places. */
const LIMIT_BYTES = 2 * (MAX_REQUEST_BYTES + 512 * 1024);

let member: InProcessMember;
const sessions: http2.ClientHttp2Session[] = [];

afterEach(async () => {
  for (const session of sessions.splice(0)) session.destroy();
  await member?.close();
});

/** A Put whose gRPC frame is sent up to its last byte but not that byte (nor end of stream). */
function halfSentPut(endpoint: string, key: string, valueBytes: number): { finish(): Promise<string | undefined> } {
  const session = http2.connect(`http://${endpoint}`);
  sessions.push(session);
  const message = encodeMessage('etcdserverpb.PutRequest', { key: Buffer.from(key), value: Buffer.alloc(valueBytes, 7) });
  const frame = Buffer.alloc(5 + message.length);
  frame.writeUInt32BE(message.length, 1);
  message.copy(frame, 5);
  const stream = session.request({ ':method': 'POST', ':path': '/etcdserverpb.KV/Put', 'content-type': 'application/grpc', te: 'trailers' });
  stream.write(frame.subarray(0, frame.length - 1));
  const status = new Promise<string | undefined>((resolve) => {
    let grpcStatus: string | undefined;
    stream.on('response', (headers) => {
      grpcStatus ??= headers['grpc-status'] as string | undefined;
    });
    stream.on('trailers', (trailers) => {
      grpcStatus ??= trailers['grpc-status'] as string | undefined;
    });
    stream.resume();
    stream.on('close', () => resolve(grpcStatus));
  });
  return {
    finish: () => {
      stream.end(frame.subarray(frame.length - 1));
      return status;
    },
  };
}

describe('receive admission at the client port', () => {
  it('refuses from the headers while the receiving places are taken, and takes requests again once bodies are read', async () => {
    member = await startInProcessMember({ maxRequestBytes: MAX_REQUEST_BYTES, grpc: { maxReceivingRequestBytes: LIMIT_BYTES } });
    const first = halfSentPut(member.endpoint, 'slow/1', 512 * 1024);
    const second = halfSentPut(member.endpoint, 'slow/2', 512 * 1024);
    // Both places are taken once more than 64 KiB of each body has arrived (a refused call
    // would be answered and close; these stay open).
    await waitFor(
      () =>
        member.call('KV', 'put', { key: Buffer.from('probe'), value: Buffer.from('p') }).then(
          () => undefined,
          (error: unknown) => error,
        ),
      {
        what: 'the half-sent bodies to take both receiving places',
        until: (error) => (error as { code?: number } | undefined)?.code === 8,
      },
    );
    const refused = await member.call('KV', 'put', { key: Buffer.from('k'), value: Buffer.from('v') }).catch((error: unknown) => error);
    expect(refused).toMatchObject({ code: 8, details: 'etcdserver: too many requests' });

    expect(await first.finish()).toBe('0');
    // Nothing refused was applied.
    expect((await member.call('KV', 'range', { key: Buffer.from('k') })).kvs).toEqual([]);
    await expect(member.call('KV', 'put', { key: Buffer.from('k'), value: Buffer.from('v') })).resolves.toBeDefined();
    expect(await second.finish()).toBe('0');
    const stored = await member.call('KV', 'range', { key: Buffer.from('slow/'), rangeEnd: Buffer.from('slow0') });
    expect(stored.kvs.map((kv: { key: Buffer }) => kv.key.toString())).toEqual(['slow/1', 'slow/2']);
  });

  it('small requests take no place, however many are in flight at once', async () => {
    member = await startInProcessMember({ maxRequestBytes: MAX_REQUEST_BYTES, grpc: { maxReceivingRequestBytes: MAX_REQUEST_BYTES } });
    // One place; 200 small puts sent at once all succeed.
    const puts = Array.from({ length: 200 }, (_, i) => member.call('KV', 'put', { key: Buffer.from(`small/${i}`), value: Buffer.from('v') }));
    await expect(Promise.all(puts)).resolves.toHaveLength(200);
  });

  it('does not count watch streams, which keep their request side open', async () => {
    member = await startInProcessMember({ maxRequestBytes: MAX_REQUEST_BYTES, grpc: { maxReceivingRequestBytes: MAX_REQUEST_BYTES } });
    // One place: an open Watch stream must not take it.
    const session = http2.connect(`http://${member.endpoint}`);
    sessions.push(session);
    const watch = session.request({ ':method': 'POST', ':path': '/etcdserverpb.Watch/Watch', 'content-type': 'application/grpc', te: 'trailers' });
    const create = encodeMessage('etcdserverpb.WatchRequest', { createRequest: { key: Buffer.from('w') } });
    const frame = Buffer.alloc(5 + create.length);
    frame.writeUInt32BE(create.length, 1);
    create.copy(frame, 5);
    watch.write(frame);
    watch.resume();
    // The created response: the server has the stream.
    await new Promise((resolve) => watch.once('response', resolve));
    await expect(member.call('KV', 'put', { key: Buffer.from('k'), value: Buffer.from('v') })).resolves.toBeDefined();
  });
});
