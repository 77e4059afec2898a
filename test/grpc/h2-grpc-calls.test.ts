// The client port's gRPC calls on MetaStore's own HTTP/2 connection (src/grpc/h2, the one gRPC
// server of members and edges) must look on the wire exactly as grpc-js's answers do. Three
// in-process members, one served by our connection and call layer, one through an edge server
// relaying to it (an edge process's path, in process: in-process.ts `edge`) and one by a plain
// grpc-js server over the same handlers (the reference: in-process.ts grpcJsReference), get
// the same exchanges from a raw HTTP/2 client (Node's), one after the other so the stores move alike;
// each exchange's response headers (less Node's date), every DATA byte, the trailers and how
// the stream ended must be equal. Unary calls (success, handler errors, framing errors, limits,
// deadlines, metadata, cancellation; each write sent as its own DATA frame), stream calls
// (Watch, Snapshot), compressed requests, unknown methods and content types.

import http2 from 'node:http2';
import zlib from 'node:zlib';
import * as grpc from '@grpc/grpc-js';
import { createRequire } from 'node:module';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { encodeMessage } from '../../src/grpc/proto.js';
import { startInProcessMember, type InProcessMember } from './in-process.js';
import { framed } from '../support/grpc-frames.js';

const MAX_REQUEST_BYTES = 4096;
/** The prefix limit (grpc-server.ts callLimits, the reference's max_receive_message_length): max(4 MiB, 2 x (max request + 512 KiB)). */
const GRPC_JS_RECEIVE_LIMIT = 4 * 1024 * 1024;
const MAX_SEND_BYTES = 64 * 1024;

let ours: InProcessMember;
let viaGrpcJs: InProcessMember;
let viaEdge: InProcessMember;
const sessions = new Map<string, http2.ClientHttp2Session>();

beforeAll(async () => {
  const options = { maxRequestBytes: MAX_REQUEST_BYTES, grpc: { maxSendMessageBytes: MAX_SEND_BYTES } };
  ours = await startInProcessMember(options);
  viaGrpcJs = await startInProcessMember({ ...options, grpcJsReference: true });
  viaEdge = await startInProcessMember({ ...options, edge: true });
});

afterAll(async () => {
  for (const session of sessions.values()) session.destroy();
  await ours?.close();
  await viaGrpcJs?.close();
  await viaEdge?.close();
});

function sessionTo(endpoint: string): http2.ClientHttp2Session {
  let session = sessions.get(endpoint);
  if (session === undefined || session.destroyed || session.closed) {
    session = http2.connect(`http://${endpoint}`);
    sessions.set(endpoint, session);
  }
  return session;
}

const putMessage = (key: string, value: Buffer | string = 'v') =>
  encodeMessage('etcdserverpb.PutRequest', { key: Buffer.from(key), value: Buffer.from(value) });
const put = (key: string, value: Buffer | string = 'v') => framed(putMessage(key, value));
const range = (request: object) => framed(encodeMessage('etcdserverpb.RangeRequest', request));
const txn = (request: object) => framed(encodeMessage('etcdserverpb.TxnRequest', request));
const watch = (request: object) => framed(encodeMessage('etcdserverpb.WatchRequest', request));

interface Exchange {
  path: string;
  headers?: Record<string, string>;
  /** Written in order, each as its own DATA frame. */
  chunks: Buffer[];
  /** How the client finishes: end of stream (default), RST_STREAM, only once the server's answer
   * is complete, or RST_STREAM once `messages` response messages arrived (a watch). */
  finish?: 'end' | 'reset' | 'none' | 'resetAfterData';
  /** With resetAfterData: whether the request side ends after the chunks (default false). */
  halfClose?: boolean;
  messages?: number;
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

/** Resolves once the chunk left, or once the stream is closed (a watch reset as soon as its
 * first answer came may see its request's write fail on a loaded machine). */
function written(stream: http2.ClientHttp2Stream, chunk: Buffer): Promise<void> {
  return new Promise((resolve, reject) => stream.write(chunk, (error) => (error && !stream.closed ? reject(error) : resolve())));
}

/** Complete response messages in `bytes`. */
function messageCount(bytes: Buffer): number {
  let count = 0;
  for (let at = 0; at + 5 <= bytes.length; count++) {
    const end = at + 5 + bytes.readUInt32BE(at + 1);
    if (end > bytes.length) break;
    at = end;
  }
  return count;
}

async function exchange(endpoint: string, ex: Exchange): Promise<Seen> {
  const session = sessionTo(endpoint);
  const stream = session.request({ ':method': 'POST', ':path': ex.path, 'content-type': 'application/grpc', te: 'trailers', ...ex.headers });
  const seen: Seen = { data: '' };
  const data: Buffer[] = [];
  stream.on('response', (headers) => (seen.headers = withoutDate(headers)));
  stream.on('trailers', (trailers) => (seen.trailers = { ...trailers }));
  stream.on('data', (chunk: Buffer) => {
    data.push(chunk);
    if (ex.finish === 'resetAfterData' && messageCount(Buffer.concat(data)) >= (ex.messages ?? 1)) stream.close(http2.constants.NGHTTP2_CANCEL);
  });
  stream.on('error', () => {});
  const closed = new Promise<void>((resolve) => stream.on('close', resolve));
  for (const chunk of ex.chunks) await written(stream, chunk);
  const finish = ex.finish ?? 'end';
  if (finish === 'end' || (finish === 'resetAfterData' && ex.halfClose === true)) stream.end();
  else if (finish === 'reset') stream.close(http2.constants.NGHTTP2_CANCEL);
  else if (finish === 'none') stream.on('end', () => stream.end());
  await closed;
  seen.data = Buffer.concat(data).toString('hex');
  seen.rstCode = stream.rstCode;
  return seen;
}

/** Runs the exchange on the three members; returns our view after checking they agree. */
async function same(ex: Exchange): Promise<Seen> {
  const answered = await exchange(ours.endpoint, ex);
  const reference = await exchange(viaGrpcJs.endpoint, ex);
  const edged = await exchange(viaEdge.endpoint, ex);
  expect(answered).toEqual(reference);
  expect(edged).toEqual(reference);
  return answered;
}

const KV = (method: string) => `/etcdserverpb.KV/${method}`;

/** grpc-js's per-call object: made for every call grpc-js answers, for none of ours. */
const { BaseServerInterceptingCall } = createRequire(import.meta.url)('@grpc/grpc-js/build/src/server-interceptors.js') as {
  BaseServerInterceptingCall: { prototype: { start(listener: unknown): void } };
};

describe('gRPC calls on our own HTTP/2 connection, compared with grpc-js', () => {
  it('answers unary success with the same headers, message bytes and trailers, whatever the DATA frames', async () => {
    // grpc-js answers none of our calls (the member's or the edge's), every call of the reference.
    const grpcJsCalls = vi.spyOn(BaseServerInterceptingCall.prototype, 'start');
    await exchange(ours.endpoint, { path: KV('Put'), chunks: [put('counted')] });
    await exchange(ours.endpoint, { path: '/etcdserverpb.Maintenance/Status', chunks: [framed(Buffer.alloc(0))] });
    await exchange(viaEdge.endpoint, { path: KV('Put'), chunks: [put('counted')] });
    expect(grpcJsCalls).not.toHaveBeenCalled();
    await exchange(viaGrpcJs.endpoint, { path: KV('Put'), chunks: [put('counted')] });
    await exchange(viaGrpcJs.endpoint, { path: '/etcdserverpb.Maintenance/Status', chunks: [framed(Buffer.alloc(0))] });
    expect(grpcJsCalls).toHaveBeenCalledTimes(2);
    grpcJsCalls.mockRestore();
    const done = await same({ path: KV('Put'), chunks: [put('a')] });
    expect(done.trailers).toMatchObject({ 'grpc-status': '0', 'grpc-message': 'OK' });
    expect(done.headers).toMatchObject({ ':status': 200, 'content-type': 'application/grpc+proto' });
    const request = put('b', 'split value');
    await same({ path: KV('Put'), chunks: [request.subarray(0, 3), request.subarray(3, 9), request.subarray(9)] });
    const read = await same({ path: KV('Range'), chunks: [range({ key: Buffer.from('a'), rangeEnd: Buffer.from('z') })] });
    expect(read.data).toContain(Buffer.from('split value').toString('hex'));
    const headers = { 'x-text': 'one', 'x-data-bin': Buffer.from('raw').toString('base64'), hasleader: 'true', 'grpc-timeout': '10S' };
    await same({ path: KV('Range'), headers, chunks: [range({ key: Buffer.from('a') })] });
    await same({ path: KV('Range'), headers: { 'content-type': 'application/grpc+proto' }, chunks: [range({ key: Buffer.from('b') })] });
    await same({ path: KV('DeleteRange'), chunks: [framed(encodeMessage('etcdserverpb.DeleteRangeRequest', { key: Buffer.from('b') }))] });
    await same({ path: KV('Txn'), chunks: [txn({ success: [{ requestPut: { key: Buffer.from('t'), value: Buffer.from('1') } }] })] });
    // A message whose compressed flag is set, without grpc-encoding: read as it is by both.
    await same({ path: KV('Put'), chunks: [framed(putMessage('f', 'x'), 1)] });
    // (Status carries the database's size, which the two stores need not share: another method.)
    const ttl = await same({
      path: '/etcdserverpb.Lease/LeaseTimeToLive',
      chunks: [framed(encodeMessage('etcdserverpb.LeaseTimeToLiveRequest', { ID: 12345 }))],
    });
    expect(ttl.trailers).toMatchObject({ 'grpc-status': '0' });
  });

  it('inflates compressed requests as grpc-js, and answers unsupported encodings alike', async () => {
    await same({ path: KV('Put'), headers: { 'grpc-encoding': 'gzip' }, chunks: [framed(zlib.gzipSync(putMessage('gz', 'zipped')), 1)] });
    await same({ path: KV('Put'), headers: { 'grpc-encoding': 'deflate' }, chunks: [framed(zlib.deflateSync(putMessage('df', 'deflated')), 1)] });
    await same({ path: KV('Put'), headers: { 'grpc-encoding': 'gzip' }, chunks: [put('plain-flag')] });
    const read = await same({ path: KV('Range'), chunks: [range({ key: Buffer.from('df'), rangeEnd: Buffer.from('gz\0') })] });
    expect(read.data).toContain(Buffer.from('zipped').toString('hex'));
    const snappy = await same({ path: KV('Put'), headers: { 'grpc-encoding': 'snappy' }, chunks: [framed(putMessage('s'), 1)] });
    expect(snappy.headers).toMatchObject({ 'grpc-status': '12' });
    const broken = await same({ path: KV('Put'), headers: { 'grpc-encoding': 'gzip' }, chunks: [framed(Buffer.from('not gzip'), 1)] });
    expect(broken.headers).toMatchObject({ 'grpc-status': '13' });
  });

  it('answers handler errors Trailers-Only, with the same percent-encoded text', async () => {
    const empty = await same({ path: KV('Range'), chunks: [range({})] });
    expect(empty.headers).toMatchObject({ 'grpc-status': '3', 'grpc-message': 'etcdserver:%20key%20is%20not%20provided' });
    await same({ path: KV('Range'), chunks: [range({ key: Buffer.from('a'), revision: 1000 })] });
    const tooLarge = await same({ path: KV('Put'), chunks: [put('big', Buffer.alloc(2 * MAX_REQUEST_BYTES, 1))] });
    expect(tooLarge.headers?.['grpc-message']).toBe('etcdserver:%20request%20is%20too%20large');
    const duplicate = await same({
      path: KV('Txn'),
      chunks: [
        txn({
          success: [{ requestPut: { key: Buffer.from('d'), value: Buffer.from('1') } }, { requestPut: { key: Buffer.from('d'), value: Buffer.from('2') } }],
        }),
      ],
    });
    expect(duplicate.headers).toMatchObject({ 'grpc-status': '3' });
  });

  it('refuses messages over our receive limit, over grpc-js limit, and answers over the send limit as grpc-js does', async () => {
    const overOurs = await same({ path: KV('Put'), chunks: [put('huge', Buffer.alloc(MAX_REQUEST_BYTES + 600 * 1024, 2))] });
    expect(overOurs.headers?.['grpc-message']).toMatch(/^grpc:%20received%20message%20larger%20than%20max/);
    const prefix = Buffer.alloc(5);
    prefix.writeUInt32BE(GRPC_JS_RECEIVE_LIMIT + 1, 1);
    const overGrpcJs = await same({ path: KV('Put'), chunks: [prefix], finish: 'none' });
    expect(overGrpcJs.headers).toMatchObject({ 'grpc-status': '8' });
    for (let i = 0; i < 20; i++) await same({ path: KV('Put'), chunks: [put(`s/${i}`, Buffer.alloc(4000, 3))] });
    const overSend = await same({ path: KV('Range'), chunks: [range({ key: Buffer.from('s/'), rangeEnd: Buffer.from('s0') })] });
    expect(overSend.headers).toMatchObject({ 'grpc-status': '8' });
  });

  it('answers framing errors, deadlines, unknown methods and content types as grpc-js', async () => {
    const none = await same({ path: KV('Put'), chunks: [] });
    expect(none.headers?.['grpc-message']).toMatch(/^Received%20no%20request%20message/);
    const two = await same({ path: KV('Put'), chunks: [Buffer.concat([put('x'), put('y')])] });
    expect(two.headers?.['grpc-message']).toMatch(/^Received%20a%20second%20request%20message/);
    await same({ path: KV('Put'), chunks: [put('x2'), put('y2')] });
    const garbage = await same({ path: KV('Txn'), chunks: [framed(Buffer.from([0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f]))] });
    expect(garbage.headers).toMatchObject({ 'grpc-status': '13' });
    await same({ path: KV('Put'), chunks: [put('p'), put('p').subarray(0, 4)] });
    await same({ path: KV('Put'), chunks: [put('p').subarray(0, 4)] });
    const expired = await same({ path: KV('Put'), headers: { 'grpc-timeout': '1m' }, chunks: [], finish: 'none' });
    expect(expired.headers).toMatchObject({ 'grpc-status': '4', 'grpc-message': 'Deadline%20exceeded' });
    const invalid = await same({ path: KV('Put'), headers: { 'grpc-timeout': 'soon' }, chunks: [put('t')] });
    expect(invalid.headers).toMatchObject({ 'grpc-status': '13' });
    const text = await same({ path: KV('Put'), headers: { 'content-type': 'text/plain' }, chunks: [put('t')] });
    expect(text.headers).toMatchObject({ ':status': 415 });
    expect(Object.keys(text.headers ?? {})).toEqual([':status']);
    await same({ path: KV('Put'), headers: { 'content-type': 'application/grpc+json' }, chunks: [put('t')] });
    const unknown = await same({ path: '/etcdserverpb.KV/Nothing', chunks: [put('t')] });
    expect(unknown.headers).toMatchObject({ 'grpc-status': '12' });
  });

  it('writes nothing to a client that reset its stream before its request ended', async () => {
    // A read: whether a put reset after its message still runs, and when, differs between the
    // servers (grpc-js applied it a moment after the exchange), and the stores' revisions,
    // which later exchanges' headers carry, must stay alike.
    const reset = await same({ path: KV('Range'), chunks: [range({ key: Buffer.from('gone') })], finish: 'reset' });
    expect(reset.headers).toBeUndefined();
    expect(reset.data).toBe('');
    expect(reset.rstCode).toBe(http2.constants.NGHTTP2_CANCEL);
  });

  it('serves stream calls alike: a watch (open, half-closed, undecodable), a server stream without its request', async () => {
    const created = await same({ path: '/etcdserverpb.Watch/Watch', chunks: [watch({ createRequest: { key: Buffer.from('w') } })], finish: 'resetAfterData' });
    expect(created.headers).toMatchObject({ ':status': 200 });
    expect(created.data).not.toBe('');
    // Half-closed at once, as the JSON gateway does: the watch stays, its events still come.
    await same({
      path: '/etcdserverpb.Watch/Watch',
      chunks: [watch({ createRequest: { key: Buffer.from('w2'), startRevision: 1 } })],
      finish: 'resetAfterData',
      halfClose: true,
    });
    const undecodable = await same({ path: '/etcdserverpb.Watch/Watch', chunks: [framed(Buffer.from([0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f]))] });
    expect(undecodable.headers).toMatchObject({ 'grpc-status': '13' });
    const noRequest = await same({ path: '/etcdserverpb.Maintenance/Snapshot', chunks: [] });
    expect(noRequest.headers?.['grpc-message']).toMatch(/^Received%20no%20request%20message/);
  });

  it('serves grpc-js clients: unary calls (as the reference does), a watch seeing a put, a lease kept alive', async () => {
    for (const member of [ours, viaEdge, viaGrpcJs]) {
      const response = await member.call('KV', 'Range', { key: Buffer.from('a') });
      expect(response.kvs).toHaveLength(1);
      const error = await member.call('KV', 'Range', {}).catch((e: grpc.ServiceError) => e);
      expect(error).toMatchObject({ code: grpc.status.INVALID_ARGUMENT, details: 'etcdserver: key is not provided' });
    }
    const { clients } = await import('../../src/grpc/proto.js');
    const watchClient = new clients.Watch(ours.endpoint, grpc.credentials.createInsecure()) as unknown as grpc.Client & {
      Watch(): grpc.ClientDuplexStream<object, any>;
    };
    const lease = new clients.Lease(ours.endpoint, grpc.credentials.createInsecure()) as unknown as grpc.Client & {
      LeaseKeepAlive(): grpc.ClientDuplexStream<object, any>;
    };
    try {
      const stream = watchClient.Watch();
      const events = new Promise<any>((resolve) => {
        stream.on('data', (r: any) => {
          if (r.created) void ours.call('KV', 'Put', { key: Buffer.from('watched'), value: Buffer.from('seen') });
          else if (r.events?.length) resolve(r.events[0]);
        });
      });
      stream.on('error', () => {});
      stream.write({ createRequest: { key: Buffer.from('watched') } });
      expect((await events).kv.value.toString()).toBe('seen');
      stream.cancel();
      const granted = await ours.call('Lease', 'LeaseGrant', { TTL: 30 });
      const keepAlive = lease.LeaseKeepAlive();
      keepAlive.on('error', () => {});
      const answer = new Promise<any>((resolve) => keepAlive.once('data', resolve));
      keepAlive.write({ ID: granted.ID });
      expect(await answer).toMatchObject({ ID: granted.ID, TTL: '30' });
      keepAlive.end();
      await new Promise<void>((resolve) => keepAlive.on('status', () => resolve()));
    } finally {
      watchClient.close();
      lease.close();
    }
  });
});
