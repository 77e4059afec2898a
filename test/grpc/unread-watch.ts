// A Watch stream over plain node:http2 whose reader can really stop: nothing is read from the
// HTTP/2 stream until read() is called, so the client's flow-control window closes and the
// server has to hold back. (A grpc-js client stream that is never read does not do this: it
// keeps draining the connection into an unbounded in-process list of unread messages.)

import * as http2 from 'node:http2';
import v8 from 'node:v8';
import vm from 'node:vm';
import { decodeMessage, encodeMessage } from '../../src/grpc/proto.js';

type Msg = Record<string, any>;

export class UnreadWatch {
  private readonly session: http2.ClientHttp2Session;
  private readonly stream: http2.ClientHttp2Stream;
  private pending: Buffer = Buffer.alloc(0);
  onMessage: (m: Msg) => void = () => {};

  constructor(endpoint: string) {
    this.session = http2.connect(`http://${endpoint.replace(/^http:\/\//, '')}`);
    this.session.on('error', () => undefined);
    this.stream = this.session.request({
      ':method': 'POST',
      ':path': '/etcdserverpb.Watch/Watch',
      'content-type': 'application/grpc',
      te: 'trailers',
    });
    this.stream.on('error', () => undefined);
  }

  send(request: object): void {
    const body = encodeMessage('etcdserverpb.WatchRequest', request);
    const head = Buffer.alloc(5);
    head.writeUInt32BE(body.length, 1);
    this.stream.write(Buffer.concat([head, body]));
  }

  /** Starts reading: every whole gRPC message is decoded and handed to onMessage. */
  read(): void {
    this.stream.on('data', (chunk: Buffer) => {
      this.pending = this.pending.length === 0 ? chunk : Buffer.concat([this.pending, chunk]);
      while (this.pending.length >= 5) {
        const length = this.pending.readUInt32BE(1);
        if (this.pending.length < 5 + length) break;
        const body = this.pending.subarray(5, 5 + length);
        this.pending = this.pending.subarray(5 + length);
        this.onMessage(decodeMessage('etcdserverpb.WatchResponse', body));
      }
    });
  }

  close(): void {
    this.stream.close();
    this.session.destroy();
  }
}

let collect: (() => void) | undefined;

/** Buffer memory still referenced after a full garbage collection: what is really held, not
 * what is merely not collected yet (decoded responses leave plenty of dead Buffers behind). */
export async function retainedOffHeapBytes(): Promise<number> {
  if (collect === undefined) {
    v8.setFlagsFromString('--expose-gc');
    collect = vm.runInNewContext('gc') as () => void;
  }
  // Backing stores are freed by finalizers after a collection: give them a turn, twice.
  for (let i = 0; i < 2; i++) {
    collect();
    await new Promise((resolve) => setImmediate(resolve));
  }
  return process.memoryUsage().arrayBuffers;
}
