// The gRPC call layer on an in-memory H2ServerStream: what it writes, in which synchronous runs,
// and what the handlers' call objects see. (The wire itself, against grpc-js, is
// test/grpc/h2-grpc-calls.test.ts.)

import net from 'node:net';
import zlib from 'node:zlib';
import * as grpc from '@grpc/grpc-js';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { receivingGate } from '../receive-admission.js';
import { type GrpcMethod, GrpcCalls } from './grpc-calls.js';
import type { H2ServerStream, H2StreamHandlers, HeaderField } from './h2-stream.js';
import { framed } from '../../../test/support/grpc-frames.js';

type Op = { op: 'respond' | 'end'; fields: readonly HeaderField[] } | { op: 'write'; data: string } | { op: 'reset'; code: number };

/** An H2ServerStream that records what the call layer does, and in which synchronous run. */
class FakeStream implements H2ServerStream {
  readonly id = 1;
  readonly socket = new net.Socket();
  handlers: H2StreamHandlers = { data() {}, end() {}, aborted() {}, drain() {} };
  readonly ops: Op[] = [];
  /** The run (incremented by the test between events) of each op. */
  readonly runs: number[] = [];
  run = 0;
  writable = true;

  constructor(readonly fields: readonly HeaderField[]) {}

  respond(fields: readonly HeaderField[]): void {
    this.record({ op: 'respond', fields });
  }
  write(data: Buffer): boolean {
    this.record({ op: 'write', data: data.toString('hex') });
    return this.writable;
  }
  end(fields: readonly HeaderField[]): void {
    this.record({ op: 'end', fields });
  }
  reset(code: number): void {
    this.record({ op: 'reset', code });
  }
  private record(op: Op): void {
    this.ops.push(op);
    this.runs.push(this.run);
  }
}

const LIMITS = { maxReceiveMessageBytes: 1024, maxSendMessageBytes: 1024 };

function request(path: string, extra: HeaderField[] = []): FakeStream {
  return new FakeStream([[':method', 'POST'], [':scheme', 'http'], [':path', path], [':authority', 'x'], ['content-type', 'application/grpc'], ...extra]);
}

/** Methods whose requests and responses are raw bytes (the codecs are the table's business). */
function method(path: string, kind: GrpcMethod['kind'], handler: grpc.UntypedHandleCall): GrpcMethod {
  return { path, kind, handler, deserialize: (b) => Buffer.from(b), serialize: (v) => v as Buffer };
}

const OK_TRAILERS = [
  ['grpc-status', '0'],
  ['grpc-message', 'OK'],
];
const RESPONSE_HEADERS = [
  [':status', '200'],
  ['content-type', 'application/grpc+proto'],
  ['grpc-accept-encoding', 'identity,deflate,gzip'],
  ['grpc-encoding', 'identity'],
];

afterEach(() => {
  vi.useRealTimers();
});

describe('unary calls on our HTTP/2 stream', () => {
  it('answers headers, message and trailers in the synchronous run of the handler, after the request ended', () => {
    const seen: Buffer[] = [];
    const echo = method('/s/Echo', 'unary', ((call: grpc.ServerUnaryCall<Buffer, Buffer>, callback: grpc.sendUnaryData<Buffer>) => {
      seen.push(call.request);
      callback(null, Buffer.concat([Buffer.from('re:'), call.request]));
    }) as grpc.UntypedHandleCall);
    const calls = new GrpcCalls(new Map([[echo.path, echo]]), LIMITS);
    const stream = request('/s/Echo');
    calls.onStream(stream);
    // The request in three pieces, the connection reusing its buffer after each one.
    const bytes = framed(Buffer.from('hello'));
    const buffer = Buffer.alloc(bytes.length);
    for (const [from, to] of [
      [0, 2],
      [2, 7],
      [7, bytes.length],
    ] as const) {
      stream.run++;
      bytes.copy(buffer, 0, from, to);
      stream.handlers.data(buffer.subarray(0, to - from));
      buffer.fill(0);
    }
    expect(stream.ops).toEqual([]);
    stream.run++;
    stream.handlers.end();
    expect(seen.map(String)).toEqual(['hello']);
    expect(stream.ops).toEqual([
      { op: 'respond', fields: RESPONSE_HEADERS },
      { op: 'write', data: framed(Buffer.from('re:hello')).toString('hex') },
      { op: 'end', fields: OK_TRAILERS },
    ]);
    expect(new Set(stream.runs)).toEqual(new Set([stream.run]));
  });

  it('keeps a request decoded from a whole-message chunk apart from the connection buffer', () => {
    let kept: Buffer | undefined;
    const keep = method('/s/Keep', 'unary', ((call: grpc.ServerUnaryCall<Buffer, Buffer>, callback: grpc.sendUnaryData<Buffer>) => {
      kept = call.request;
      callback(null, Buffer.alloc(0));
    }) as grpc.UntypedHandleCall);
    const calls = new GrpcCalls(new Map([[keep.path, keep]]), LIMITS);
    const stream = request('/s/Keep');
    calls.onStream(stream);
    const chunk = framed(Buffer.from('value'));
    stream.handlers.data(chunk);
    chunk.fill(0);
    stream.handlers.end();
    expect(String(kept)).toBe('value');
  });

  it('answers what grpc-js answers: unknown method, wrong content type, no message, oversized, handler error with metadata', () => {
    const fail = method('/s/Fail', 'unary', ((_call: unknown, callback: grpc.sendUnaryData<Buffer>) => {
      const metadata = new grpc.Metadata();
      metadata.set('x-why', 'because');
      callback({ code: grpc.status.FAILED_PRECONDITION, details: 'no way: 100%', metadata });
    }) as grpc.UntypedHandleCall);
    const calls = new GrpcCalls(new Map([[fail.path, fail]]), LIMITS);
    const unknown = request('/s/Nope');
    calls.onStream(unknown);
    expect(unknown.ops).toEqual([
      {
        op: 'end',
        fields: [
          [':status', '200'],
          ['grpc-status', '12'],
          ['grpc-message', 'The server does not implement the method /s/Nope'],
          ['content-type', 'application/grpc+proto'],
        ],
      },
    ]);
    const json = new FakeStream([
      [':method', 'POST'],
      [':path', '/s/Fail'],
      ['content-type', 'application/json'],
    ]);
    calls.onStream(json);
    expect(json.ops).toEqual([{ op: 'end', fields: [[':status', '415']] }]);
    const empty = request('/s/Fail');
    calls.onStream(empty);
    empty.handlers.end();
    expect(empty.ops).toEqual([
      {
        op: 'end',
        fields: [
          [':status', '200'],
          ['grpc-status', '12'],
          ['grpc-message', 'Received%20no%20request%20message%20for%20server%20streaming%20method%20/s/Fail'],
          ['content-type', 'application/grpc+proto'],
        ],
      },
    ]);
    const big = request('/s/Fail');
    calls.onStream(big);
    big.handlers.data(framed(Buffer.alloc(2000)));
    expect(big.ops[0]).toMatchObject({
      op: 'end',
      fields: [[':status', '200'], ['grpc-status', '8'], ['grpc-message', 'Received%20message%20larger%20than%20max%20(2000%20vs%201024)'], expect.anything()],
    });
    const failing = request('/s/Fail');
    calls.onStream(failing);
    failing.handlers.data(framed(Buffer.from('x')));
    failing.handlers.end();
    expect(failing.ops).toEqual([
      {
        op: 'end',
        fields: [
          [':status', '200'],
          ['grpc-status', '9'],
          ['grpc-message', 'no%20way:%20100%25'],
          ['content-type', 'application/grpc+proto'],
          ['x-why', 'because'],
        ],
      },
    ]);
  });

  it('inflates gzip and deflate requests and refuses other encodings with grpc-js texts', () => {
    const seen: string[] = [];
    const echo = method('/s/Echo', 'unary', ((call: grpc.ServerUnaryCall<Buffer, Buffer>, callback: grpc.sendUnaryData<Buffer>) => {
      seen.push(String(call.request));
      callback(null, Buffer.alloc(0));
    }) as grpc.UntypedHandleCall);
    const calls = new GrpcCalls(new Map([[echo.path, echo]]), LIMITS);
    for (const [encoding, compress] of [
      ['gzip', zlib.gzipSync],
      ['deflate', zlib.deflateSync],
    ] as const) {
      const stream = request('/s/Echo', [['grpc-encoding', encoding]]);
      calls.onStream(stream);
      stream.handlers.data(framed(compress(Buffer.from(`via ${encoding}`)), 1));
      stream.handlers.end();
      expect(stream.ops.at(-1)).toEqual({ op: 'end', fields: OK_TRAILERS });
    }
    expect(seen).toEqual(['via gzip', 'via deflate']);
    const snappy = request('/s/Echo', [['grpc-encoding', 'snappy']]);
    calls.onStream(snappy);
    snappy.handlers.data(framed(Buffer.from('zz'), 1));
    expect(snappy.ops[0]).toMatchObject({
      op: 'end',
      fields: [
        expect.anything(),
        ['grpc-status', '12'],
        ['grpc-message', 'Received%20message%20compressed%20with%20unsupported%20encoding%20%22snappy%22'],
        expect.anything(),
      ],
    });
    const bomb = request('/s/Echo', [['grpc-encoding', 'gzip']]);
    calls.onStream(bomb);
    bomb.handlers.data(framed(zlib.gzipSync(Buffer.alloc(5000)), 1));
    expect(bomb.ops[0]).toMatchObject({
      op: 'end',
      fields: [
        expect.anything(),
        ['grpc-status', '8'],
        ['grpc-message', 'Received%20message%20that%20decompresses%20to%20a%20size%20larger%20than%201024'],
        expect.anything(),
      ],
    });
    const garbage = request('/s/Echo', [['grpc-encoding', 'gzip']]);
    calls.onStream(garbage);
    garbage.handlers.data(framed(Buffer.from('not gzip'), 1));
    expect(garbage.ops[0]).toMatchObject({
      op: 'end',
      fields: [expect.anything(), ['grpc-status', '13'], ['grpc-message', 'Failed%20to%20decompress%20message'], expect.anything()],
    });
  });

  it('answers DEADLINE_EXCEEDED at the deadline and tells the handler its call is cancelled; a reset cancels too', () => {
    vi.useFakeTimers();
    const cancelled: string[] = [];
    const hang = method('/s/Hang', 'unary', ((call: grpc.ServerUnaryCall<Buffer, Buffer>) => {
      call.on('cancelled', () => cancelled.push(String(call.request)));
    }) as grpc.UntypedHandleCall);
    const calls = new GrpcCalls(new Map([[hang.path, hang]]), LIMITS);
    const timed = request('/s/Hang', [['grpc-timeout', '50m']]);
    calls.onStream(timed);
    timed.handlers.data(framed(Buffer.from('timed')));
    timed.handlers.end();
    vi.advanceTimersByTime(49);
    expect(timed.ops).toEqual([]);
    vi.advanceTimersByTime(1);
    expect(timed.ops[0]).toMatchObject({
      op: 'end',
      fields: [expect.anything(), ['grpc-status', '4'], ['grpc-message', 'Deadline%20exceeded'], expect.anything()],
    });
    const reset = request('/s/Hang');
    calls.onStream(reset);
    reset.handlers.data(framed(Buffer.from('reset')));
    reset.handlers.end();
    reset.handlers.aborted(8);
    expect(cancelled).toEqual(['timed', 'reset']);
    expect(reset.ops).toEqual([]);
    const invalid = request('/s/Hang', [['grpc-timeout', 'soon']]);
    calls.onStream(invalid);
    expect(invalid.ops[0]).toMatchObject({
      op: 'end',
      fields: [expect.anything(), ['grpc-status', '13'], ['grpc-message', 'Invalid%20grpc-timeout%20value%20%22soon%22'], expect.anything()],
    });
  });
});

describe('stream calls on our HTTP/2 stream', () => {
  it('bidi: requests as data, half close as end, writes with backpressure and drain, trailers at the end', async () => {
    const events: string[] = [];
    let call: grpc.ServerDuplexStream<Buffer, Buffer> | undefined;
    const chat = method('/s/Chat', 'bidi', ((c: grpc.ServerDuplexStream<Buffer, Buffer>) => {
      call = c;
      c.on('data', (m: Buffer) => events.push(`data ${m}`));
      c.on('end', () => events.push('end'));
      c.on('drain', () => events.push('drain'));
    }) as grpc.UntypedHandleCall);
    const calls = new GrpcCalls(new Map([[chat.path, chat]]), LIMITS);
    const stream = request('/s/Chat');
    calls.onStream(stream);
    expect(call).toBeDefined();
    // Two messages in one DATA frame, a third split over two.
    stream.handlers.data(Buffer.concat([framed(Buffer.from('a')), framed(Buffer.from('b')), framed(Buffer.from('c')).subarray(0, 3)]));
    stream.handlers.data(framed(Buffer.from('c')).subarray(3));
    stream.handlers.end();
    expect(events).toEqual(['data a', 'data b', 'data c', 'end']);
    const written: string[] = [];
    expect(call?.write(Buffer.from('one'), () => written.push('one'))).toBe(true);
    stream.writable = false;
    expect(call?.write(Buffer.from('two'), () => written.push('two'))).toBe(false);
    await new Promise((resolve) => process.nextTick(resolve));
    expect(written).toEqual([]);
    stream.writable = true;
    stream.handlers.drain();
    expect(written).toEqual(['one', 'two']);
    expect(events.at(-1)).toBe('drain');
    call?.end();
    expect(stream.ops).toEqual([
      { op: 'respond', fields: RESPONSE_HEADERS },
      { op: 'write', data: framed(Buffer.from('one')).toString('hex') },
      { op: 'write', data: framed(Buffer.from('two')).toString('hex') },
      { op: 'end', fields: OK_TRAILERS },
    ]);
  });

  it('bidi: messages across DATA frames in any split, from a buffer the connection reuses, arrive whole and in order', () => {
    const seen: string[] = [];
    const chat = method('/s/Chat', 'bidi', ((c: grpc.ServerDuplexStream<Buffer, Buffer>) => {
      c.on('data', (m: Buffer) => seen.push(m.toString()));
    }) as grpc.UntypedHandleCall);
    const calls = new GrpcCalls(new Map([[chat.path, chat]]), LIMITS);
    const messages = ['a'.repeat(900), 'b', '', 'c'.repeat(300), 'd'.repeat(1000)];
    const bytes = Buffer.concat(messages.map((m) => framed(Buffer.from(m))));
    // Cuts through prefixes, bodies, between messages; one frame holds three of them.
    const cuts = [0, 2, 4, 450, 905, 906, 912, 917, 925, 1220, 1230, 1232, bytes.length];
    const stream = request('/s/Chat');
    calls.onStream(stream);
    const reused = Buffer.alloc(bytes.length);
    for (let i = 1; i < cuts.length; i++) {
      const length = bytes.copy(reused, 0, cuts[i - 1], cuts[i]);
      stream.handlers.data(reused.subarray(0, length));
      reused.fill(0x55);
    }
    expect(seen).toEqual(messages);
  });

  it('bidi: an error before any message is Trailers-Only; a client reset cancels the call and nothing more is written', () => {
    const failing = method('/s/Fail', 'bidi', ((c: grpc.ServerDuplexStream<Buffer, Buffer>) => {
      c.emit('error', { code: grpc.status.UNAVAILABLE, details: 'etcdserver: no leader' });
    }) as grpc.UntypedHandleCall);
    let call: grpc.ServerDuplexStream<Buffer, Buffer> | undefined;
    const cancelled: string[] = [];
    const watch = method('/s/Watch', 'bidi', ((c: grpc.ServerDuplexStream<Buffer, Buffer>) => {
      call = c;
      c.on('cancelled', () => cancelled.push('cancelled'));
    }) as grpc.UntypedHandleCall);
    const calls = new GrpcCalls(
      new Map([
        [failing.path, failing],
        [watch.path, watch],
      ]),
      LIMITS,
    );
    const refused = request('/s/Fail');
    calls.onStream(refused);
    expect(refused.ops).toEqual([
      {
        op: 'end',
        fields: [
          [':status', '200'],
          ['grpc-status', '14'],
          ['grpc-message', 'etcdserver:%20no%20leader'],
          ['content-type', 'application/grpc+proto'],
        ],
      },
    ]);
    const stream = request('/s/Watch');
    calls.onStream(stream);
    call?.write(Buffer.from('created'));
    stream.handlers.aborted(8);
    expect(cancelled).toEqual(['cancelled']);
    expect(call?.write(Buffer.from('late'))).toBe(false);
    expect(stream.ops.map((o) => o.op)).toEqual(['respond', 'write']);
  });

  it('server stream: the handler runs at the half close with the one request; a batch over the send limit fails after the messages before it', () => {
    let call: (grpc.ServerWritableStream<Buffer, Buffer> & { writeFramed(b: Buffer, cb: () => void): boolean }) | undefined;
    const snap = method('/s/Snap', 'serverStream', ((c: typeof call) => {
      call = c;
    }) as grpc.UntypedHandleCall);
    const calls = new GrpcCalls(new Map([[snap.path, snap]]), LIMITS);
    const stream = request('/s/Snap');
    calls.onStream(stream);
    stream.handlers.data(framed(Buffer.from('req')));
    expect(call).toBeUndefined();
    stream.handlers.end();
    expect(String(call?.request)).toBe('req');
    const batch = Buffer.concat([framed(Buffer.from('small')), framed(Buffer.alloc(2000))]);
    expect(call?.writeFramed(batch, () => {})).toBe(false);
    expect(stream.ops).toEqual([
      { op: 'respond', fields: RESPONSE_HEADERS },
      { op: 'write', data: framed(Buffer.from('small')).toString('hex') },
      {
        op: 'end',
        fields: [
          ['grpc-status', '8'],
          ['grpc-message', 'Sent%20message%20larger%20than%20max%20(2005%20vs.%201024)'],
        ],
      },
    ]);
  });
});

describe('client-streaming calls on our HTTP/2 stream (the peer port)', () => {
  it('runs the handler at once; requests as data in order, half close as end; headers when asked; the callback answers', () => {
    const events: string[] = [];
    const peers: string[] = [];
    let answer: grpc.sendUnaryData<Buffer> | undefined;
    const upload = method('/s/Upload', 'clientStream', ((c: grpc.ServerReadableStream<Buffer, Buffer>, callback: grpc.sendUnaryData<Buffer>) => {
      answer = callback;
      peers.push(c.getPeer());
      c.sendMetadata(new grpc.Metadata());
      c.on('data', (m: Buffer) => events.push(`data ${m}`));
      c.on('end', () => events.push('end'));
    }) as grpc.UntypedHandleCall);
    const calls = new GrpcCalls(new Map([[upload.path, upload]]), LIMITS);
    const stream = request('/s/Upload');
    calls.onStream(stream);
    // Before any request: the handler runs and its headers go out (the peer's link is then up).
    expect(answer).toBeDefined();
    expect(stream.ops).toEqual([{ op: 'respond', fields: RESPONSE_HEADERS }]);
    expect(peers).toEqual(['unknown']);
    // Two messages in one DATA frame, a third split over two, a fourth larger than one piece.
    stream.handlers.data(Buffer.concat([framed(Buffer.from('a')), framed(Buffer.from('b')), framed(Buffer.from('c')).subarray(0, 2)]));
    stream.handlers.data(framed(Buffer.from('c')).subarray(2));
    const large = framed(Buffer.from('d'.repeat(900)));
    stream.handlers.data(large.subarray(0, 300));
    stream.handlers.data(large.subarray(300));
    expect(events).toEqual(['data a', 'data b', 'data c', `data ${'d'.repeat(900)}`]);
    stream.handlers.end();
    expect(events.at(-1)).toBe('end');
    stream.run++;
    answer?.(null, Buffer.from('ack'));
    expect(stream.ops.slice(1)).toEqual([
      { op: 'write', data: framed(Buffer.from('ack')).toString('hex') },
      { op: 'end', fields: OK_TRAILERS },
    ]);
    // The answer in one synchronous run.
    expect(stream.runs.slice(1)).toEqual([1, 1]);
  });

  it('an answer before the half close ends the call (trailers after headers, Trailers-Only without); nothing more is read', () => {
    const seen: string[] = [];
    const refusing = method('/s/Refuse', 'clientStream', ((_c: grpc.ServerReadableStream<Buffer, Buffer>, callback: grpc.sendUnaryData<Buffer>) => {
      callback({ code: grpc.status.PERMISSION_DENIED, details: 'peer refused: no certificate' });
    }) as grpc.UntypedHandleCall);
    const removing = method('/s/Stream', 'clientStream', ((c: grpc.ServerReadableStream<Buffer, Buffer>, callback: grpc.sendUnaryData<Buffer>) => {
      c.sendMetadata(new grpc.Metadata());
      c.on('data', (m: Buffer) => {
        seen.push(m.toString());
        callback({ code: grpc.status.FAILED_PRECONDITION, details: 'removed' });
      });
      c.on('end', () => seen.push('end'));
    }) as grpc.UntypedHandleCall);
    const calls = new GrpcCalls(
      new Map([
        [refusing.path, refusing],
        [removing.path, removing],
      ]),
      LIMITS,
    );
    const refused = request('/s/Refuse');
    calls.onStream(refused);
    expect(refused.ops).toEqual([
      {
        op: 'end',
        fields: [
          [':status', '200'],
          ['grpc-status', String(grpc.status.PERMISSION_DENIED)],
          ['grpc-message', 'peer%20refused:%20no%20certificate'],
          ['content-type', 'application/grpc+proto'],
        ],
      },
    ]);
    const stream = request('/s/Stream');
    calls.onStream(stream);
    stream.handlers.data(Buffer.concat([framed(Buffer.from('first')), framed(Buffer.from('second'))]));
    stream.handlers.end();
    expect(seen).toEqual(['first']);
    expect(stream.ops).toEqual([
      { op: 'respond', fields: RESPONSE_HEADERS },
      {
        op: 'end',
        fields: [
          ['grpc-status', String(grpc.status.FAILED_PRECONDITION)],
          ['grpc-message', 'removed'],
        ],
      },
    ]);
  });

  it('a client reset or lost connection cancels the call; its late answer writes nothing', () => {
    const events: string[] = [];
    let answer: grpc.sendUnaryData<Buffer> | undefined;
    const upload = method('/s/Upload', 'clientStream', ((c: grpc.ServerReadableStream<Buffer, Buffer>, callback: grpc.sendUnaryData<Buffer>) => {
      answer = callback;
      c.on('data', (m: Buffer) => events.push(`data ${m}`));
      c.on('end', () => events.push('end'));
      c.on('cancelled', () => events.push('cancelled'));
    }) as grpc.UntypedHandleCall);
    const calls = new GrpcCalls(new Map([[upload.path, upload]]), LIMITS);
    const stream = request('/s/Upload');
    calls.onStream(stream);
    stream.handlers.data(framed(Buffer.from('x')));
    stream.handlers.aborted(-1);
    answer?.(null, Buffer.from('late'));
    expect(events).toEqual(['data x', 'cancelled']);
    expect(stream.ops).toEqual([]);
  });

  it('refuses a message over the receive limit from its prefix', () => {
    const events: string[] = [];
    const upload = method('/s/Upload', 'clientStream', ((c: grpc.ServerReadableStream<Buffer, Buffer>) => {
      c.on('data', () => events.push('data'));
    }) as grpc.UntypedHandleCall);
    const calls = new GrpcCalls(new Map([[upload.path, upload]]), LIMITS);
    const stream = request('/s/Upload');
    calls.onStream(stream);
    stream.handlers.data(framed(Buffer.alloc(2000)).subarray(0, 100));
    expect(events).toEqual([]);
    expect(stream.ops).toEqual([
      {
        op: 'end',
        fields: [
          [':status', '200'],
          ['grpc-status', String(grpc.status.RESOURCE_EXHAUSTED)],
          ['grpc-message', 'Received%20message%20larger%20than%20max%20(2000%20vs%201024)'],
          ['content-type', 'application/grpc+proto'],
        ],
      },
    ]);
  });
});

describe('receive admission on our HTTP/2 streams', () => {
  it('refuses a request from its headers while the receiving places are taken, and frees the place at the end', () => {
    const sink = method('/s/Put', 'unary', ((_c: unknown, callback: grpc.sendUnaryData<Buffer>) => callback(null, Buffer.alloc(0))) as grpc.UntypedHandleCall);
    const refusedPaths: string[] = [];
    const gate = receivingGate({ maxReceivingBytes: 100_000, maxRequestBytes: 100_000, onRefused: (p) => refusedPaths.push(p) });
    const calls = new GrpcCalls(new Map([[sink.path, sink]]), { maxReceiveMessageBytes: 1 << 20, maxSendMessageBytes: 1 << 20 }, gate);
    const large = request('/s/Put');
    calls.onStream(large);
    const body = framed(Buffer.alloc(70_000));
    large.handlers.data(body.subarray(0, 65_537));
    const refused = request('/s/Put');
    calls.onStream(refused);
    expect(refused.ops).toEqual([
      {
        op: 'end',
        fields: [
          [':status', '200'],
          ['content-type', 'application/grpc'],
          ['grpc-status', '8'],
          ['grpc-message', 'etcdserver: too many requests'],
        ],
      },
      { op: 'reset', code: 0 },
    ]);
    expect(refusedPaths).toEqual(['/s/Put']);
    large.handlers.data(body.subarray(65_537));
    large.handlers.end();
    const next = request('/s/Put');
    calls.onStream(next);
    expect(next.ops).toEqual([]);
  });

  it('frees the place of a large request answered before its end (its stream reports nothing more)', () => {
    const sink = method('/s/Put', 'unary', ((_c: unknown, callback: grpc.sendUnaryData<Buffer>) => callback(null, Buffer.alloc(0))) as grpc.UntypedHandleCall);
    const gate = receivingGate({ maxReceivingBytes: 100_000, maxRequestBytes: 100_000 });
    const calls = new GrpcCalls(new Map([[sink.path, sink]]), { maxReceiveMessageBytes: 1 << 20, maxSendMessageBytes: 1 << 20 }, gate);
    const large = request('/s/Put', [['grpc-timeout', '1S']]);
    vi.useFakeTimers();
    calls.onStream(large);
    large.handlers.data(framed(Buffer.alloc(70_000)).subarray(0, 65_537));
    const refused = request('/s/Put');
    calls.onStream(refused);
    expect(refused.ops.map((o) => o.op)).toEqual(['end', 'reset']);
    vi.advanceTimersByTime(1000);
    expect(large.ops[0]).toMatchObject({ op: 'end', fields: [expect.anything(), ['grpc-status', '4'], expect.anything(), expect.anything()] });
    const next = request('/s/Put');
    calls.onStream(next);
    expect(next.ops).toEqual([]);
  });
});
