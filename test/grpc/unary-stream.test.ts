// The hot unary calls answered below grpc-js (src/grpc/unary-stream.ts) must look on the wire
// exactly as grpc-js's answers do. Two in-process members, one answering KV calls itself and one
// sending every call through grpc-js (unaryFastPath: false), get the same exchanges from a raw
// HTTP/2 client, one after the other so both stores move alike; each exchange's response
// headers (less Node's date), every DATA byte, the trailers and how the stream ended must be
// equal. Exchanges cover success, handler errors, framing errors, limits, deadlines, metadata,
// cancellation and what the fast path hands to grpc-js. Each write is sent as its own DATA frame
// (the next waits for the previous one's completion).

import http2 from 'node:http2';
import { createRequire } from 'node:module';
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { encodeMessage } from '../../src/grpc/proto.js';
import { startInProcessMember, type InProcessMember } from './in-process.js';
import { framed } from '../support/grpc-frames.js';

/** Small enough to be reached by a test, with the receive limits etcd derives from it. */
const MAX_REQUEST_BYTES = 4096;
/** grpc-js's own receive limit (grpc-server.ts): max(4 MiB, 2 x (max request + 512 KiB)). */
const GRPC_JS_RECEIVE_LIMIT = 4 * 1024 * 1024;
const MAX_SEND_BYTES = 64 * 1024;

let fast: InProcessMember;
let viaGrpcJs: InProcessMember;
const sessions = new Map<string, http2.ClientHttp2Session>();

beforeAll(async () => {
  const options = { maxRequestBytes: MAX_REQUEST_BYTES, grpc: { maxSendMessageBytes: MAX_SEND_BYTES } };
  fast = await startInProcessMember(options);
  viaGrpcJs = await startInProcessMember({ ...options, grpc: { ...options.grpc, unaryFastPath: false } });
});

afterAll(async () => {
  for (const session of sessions.values()) session.destroy();
  await fast?.close();
  await viaGrpcJs?.close();
});

function sessionTo(endpoint: string): http2.ClientHttp2Session {
  let session = sessions.get(endpoint);
  if (session === undefined || session.destroyed || session.closed) {
    session = http2.connect(`http://${endpoint}`);
    sessions.set(endpoint, session);
  }
  return session;
}

const put = (key: string, value: Buffer | string = 'v') =>
  framed(encodeMessage('etcdserverpb.PutRequest', { key: Buffer.from(key), value: Buffer.from(value) }));
const range = (request: object) => framed(encodeMessage('etcdserverpb.RangeRequest', request));
const txn = (request: object) => framed(encodeMessage('etcdserverpb.TxnRequest', request));

interface Exchange {
  path: string;
  headers?: Record<string, string>;
  /** Written in order, each as its own DATA frame. */
  chunks: Buffer[];
  /** How the client finishes: end of stream (default), RST_STREAM, or only once the server's
   * answer is complete (the server answers before the request ends). */
  finish?: 'end' | 'reset' | 'none';
}

interface Seen {
  headers?: Record<string, unknown>;
  data: string;
  trailers?: Record<string, unknown>;
  rstCode?: number;
}

function withoutDate(headers: http2.IncomingHttpHeaders): Record<string, unknown> {
  const { date: _date, ...rest } = headers;
  return { ...rest };
}

/** Resolves once nghttp2 took the chunk into a DATA frame of its own. */
function written(stream: http2.ClientHttp2Stream, chunk: Buffer): Promise<void> {
  return new Promise((resolve, reject) => stream.write(chunk, (error) => (error ? reject(error) : resolve())));
}

async function exchange(endpoint: string, ex: Exchange): Promise<Seen> {
  const session = sessionTo(endpoint);
  const stream = session.request({ ':method': 'POST', ':path': ex.path, 'content-type': 'application/grpc', te: 'trailers', ...ex.headers });
  const seen: Seen = { data: '' };
  const data: Buffer[] = [];
  stream.on('response', (headers) => (seen.headers = withoutDate(headers)));
  stream.on('trailers', (trailers) => (seen.trailers = { ...trailers }));
  stream.on('data', (chunk: Buffer) => data.push(chunk));
  stream.on('error', () => {});
  const closed = new Promise<void>((resolve) => stream.on('close', resolve));
  for (const chunk of ex.chunks) await written(stream, chunk);
  if ((ex.finish ?? 'end') === 'end') stream.end();
  else if (ex.finish === 'reset') stream.close(http2.constants.NGHTTP2_CANCEL);
  else stream.on('end', () => stream.end());
  await closed;
  seen.data = Buffer.concat(data).toString('hex');
  seen.rstCode = stream.rstCode;
  return seen;
}

/** Runs the exchange on both members; returns the fast path's view after checking they agree. */
async function same(ex: Exchange): Promise<Seen> {
  const answered = await exchange(fast.endpoint, ex);
  const reference = await exchange(viaGrpcJs.endpoint, ex);
  expect(answered).toEqual(reference);
  return answered;
}

const KV = (method: string) => `/etcdserverpb.KV/${method}`;

/** grpc-js's per-call object: made for every call grpc-js answers, for none the fast path does. */
const { BaseServerInterceptingCall } = createRequire(import.meta.url)('@grpc/grpc-js/build/src/server-interceptors.js') as {
  BaseServerInterceptingCall: { prototype: { start(listener: unknown): void } };
};

describe('unary calls answered below grpc-js, compared with grpc-js', () => {
  it('answers success with the same headers, message bytes and trailers, whatever the DATA frames', async () => {
    const grpcJsCalls = vi.spyOn(BaseServerInterceptingCall.prototype, 'start');
    await exchange(fast.endpoint, { path: KV('Put'), chunks: [put('counted')] });
    expect(grpcJsCalls).not.toHaveBeenCalled();
    await exchange(viaGrpcJs.endpoint, { path: KV('Put'), chunks: [put('counted')] });
    expect(grpcJsCalls).toHaveBeenCalledTimes(1);
    grpcJsCalls.mockRestore();
    const written = await same({ path: KV('Put'), chunks: [put('a')] });
    expect(written.trailers).toMatchObject({ 'grpc-status': '0', 'grpc-message': 'OK' });
    expect(written.headers).toMatchObject({ ':status': 200, 'content-type': 'application/grpc+proto' });
    const request = put('b', 'split value');
    await same({ path: KV('Put'), chunks: [request.subarray(0, 3), request.subarray(3, 9), request.subarray(9)] });
    const read = await same({ path: KV('Range'), chunks: [range({ key: Buffer.from('a'), rangeEnd: Buffer.from('z') })] });
    expect(read.data).toContain(Buffer.from('split value').toString('hex'));
    // Metadata of every kind, text and -bin, a leader requirement and a deadline far off.
    const headers = { 'x-text': 'one', 'x-data-bin': Buffer.from('raw').toString('base64'), hasleader: 'true', 'grpc-timeout': '10S' };
    await same({ path: KV('Range'), headers, chunks: [range({ key: Buffer.from('a') })] });
    await same({ path: KV('Range'), headers: { 'content-type': 'application/grpc+proto' }, chunks: [range({ key: Buffer.from('b') })] });
    await same({ path: KV('DeleteRange'), chunks: [framed(encodeMessage('etcdserverpb.DeleteRangeRequest', { key: Buffer.from('b') }))] });
    const changed = await same({ path: KV('Txn'), chunks: [txn({ success: [{ requestPut: { key: Buffer.from('t'), value: Buffer.from('1') } }] })] });
    expect(changed.trailers).toMatchObject({ 'grpc-status': '0' });
    // A message whose compressed flag is set, without grpc-encoding: read as it is by both.
    await same({ path: KV('Put'), chunks: [framed(encodeMessage('etcdserverpb.PutRequest', { key: Buffer.from('f'), value: Buffer.from('x') }), 1)] });
  });

  it('answers handler errors Trailers-Only, with the same percent-encoded text', async () => {
    const empty = await same({ path: KV('Range'), chunks: [range({})] });
    expect(empty.headers).toMatchObject({ 'grpc-status': '3', 'grpc-message': 'etcdserver:%20key%20is%20not%20provided' });
    await same({ path: KV('Range'), chunks: [range({ key: Buffer.from('a'), revision: 1000 })] });
    const tooLarge = await same({ path: KV('Put'), chunks: [put('big', Buffer.alloc(2 * MAX_REQUEST_BYTES, 1))] });
    expect(tooLarge.headers?.['grpc-message']).toBe('etcdserver:%20request%20is%20too%20large');
    await same({
      path: KV('Txn'),
      chunks: [
        txn({
          success: [{ requestPut: { key: Buffer.from('d'), value: Buffer.from('1') } }, { requestPut: { key: Buffer.from('d'), value: Buffer.from('2') } }],
        }),
      ],
    });
  });

  it('refuses messages over our receive limit, over grpc-js limit, and answers over the send limit as grpc-js does', async () => {
    // Over --max-request-bytes + 512 KiB: withRequestSizes' grpc-go text.
    const overOurs = await same({ path: KV('Put'), chunks: [put('huge', Buffer.alloc(MAX_REQUEST_BYTES + 600 * 1024, 2))] });
    expect(overOurs.headers?.['grpc-message']).toMatch(/^grpc:%20received%20message%20larger%20than%20max/);
    // A prefix announcing more than grpc-js's limit: refused from the prefix alone.
    const prefix = Buffer.alloc(5);
    prefix.writeUInt32BE(GRPC_JS_RECEIVE_LIMIT + 1, 1);
    const overGrpcJs = await same({ path: KV('Put'), chunks: [prefix], finish: 'none' });
    expect(overGrpcJs.headers).toMatchObject({ 'grpc-status': '8' });
    // A range answer over the send limit (20 values of 4 KiB = 80 KiB > 64 KiB).
    for (let i = 0; i < 20; i++) await same({ path: KV('Put'), chunks: [put(`s/${i}`, Buffer.alloc(4000, 3))] });
    const overSend = await same({ path: KV('Range'), chunks: [range({ key: Buffer.from('s/'), rangeEnd: Buffer.from('s0') })] });
    expect(overSend.headers).toMatchObject({ 'grpc-status': '8' });
  });

  it('answers framing errors as grpc-js: no message, two messages, undecodable bytes, a partial second message', async () => {
    const none = await same({ path: KV('Put'), chunks: [] });
    expect(none.headers?.['grpc-message']).toMatch(/^Received%20no%20request%20message/);
    const two = await same({ path: KV('Put'), chunks: [Buffer.concat([put('x'), put('y')])] });
    expect(two.headers?.['grpc-message']).toMatch(/^Received%20a%20second%20request%20message/);
    await same({ path: KV('Put'), chunks: [put('x2'), put('y2')] });
    const garbage = await same({ path: KV('Txn'), chunks: [framed(Buffer.from([0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f]))] });
    expect(garbage.headers).toMatchObject({ 'grpc-status': '13' });
    const request = put('p');
    await same({ path: KV('Put'), chunks: [request, request.subarray(0, 4)] });
    await same({ path: KV('Put'), chunks: [request.subarray(0, 4)] });
  });

  it('answers DEADLINE_EXCEEDED at the deadline, and leaves what it does not handle to grpc-js', async () => {
    const expired = await same({ path: KV('Put'), headers: { 'grpc-timeout': '1m' }, chunks: [], finish: 'none' });
    expect(expired.headers).toMatchObject({ 'grpc-status': '4', 'grpc-message': 'Deadline%20exceeded' });
    await same({ path: KV('Put'), headers: { 'grpc-timeout': 'soon' }, chunks: [put('t')] });
    await same({ path: KV('Put'), headers: { 'content-type': 'text/plain' }, chunks: [put('t')] });
    await same({ path: KV('Put'), headers: { 'content-type': 'application/grpc+json' }, chunks: [put('t')] });
    await same({ path: KV('Put'), headers: { 'grpc-encoding': 'gzip' }, chunks: [put('t')] });
    await same({ path: '/etcdserverpb.KV/Nothing', chunks: [put('t')] });
  });

  it('writes nothing to a client that reset its stream before its request ended', async () => {
    // A read: whether a put reset after its message still runs, and when, differs between the
    // two servers, and the stores' revisions must stay alike for the exchanges after it.
    const reset = await same({ path: KV('Range'), chunks: [range({ key: Buffer.from('gone') })], finish: 'reset' });
    expect(reset.headers).toBeUndefined();
    expect(reset.data).toBe('');
    expect(reset.rstCode).toBe(http2.constants.NGHTTP2_CANCEL);
  });

  it('serves grpc-js clients alike: status, details and response, with metadata and deadlines', async () => {
    for (const member of [fast, viaGrpcJs]) {
      const metadata = new grpc.Metadata();
      metadata.set('hasleader', 'true');
      const response = await member.call('KV', 'Range', { key: Buffer.from('a') });
      expect(response.kvs).toHaveLength(1);
      const error = await member.call('KV', 'Range', {}).catch((e: grpc.ServiceError) => e);
      expect(error).toMatchObject({ code: grpc.status.INVALID_ARGUMENT, details: 'etcdserver: key is not provided' });
    }
  });
});
