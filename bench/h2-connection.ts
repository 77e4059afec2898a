// Main-thread CPU per unary-shaped HTTP/2 exchange: our own server connection
// (src/grpc/h2/connection.ts) against Node's http2 server doing the same exchange.
//
// Run: npx tsc -p tsconfig.build.json && flock /tmp/metastore-bench.lock node --import tsx bench/h2-connection.ts
//        [--seconds 5] [--rounds 3] [--concurrency 1,100] [--only ours|node] [--answer sync|async]
//        [--dist /absolute/path/of/another/build's/dist] (ours from another build, for A/B)
//      ... bench/h2-connection.ts --inproc [--batch 100] [--rounds 3] [--dist ...]: ours alone, in
//        this process, fed from memory and writing to a sink (no kernel, no client): its JS per exchange.
//      ... bench/h2-connection.ts --upload [--rounds 3] [--dist ...]: ours alone, 1 MiB requests
//        whose 16 KiB frames straddle 64 KiB chunks.
//
// Each run starts a server process (this file with --server ours|node, running the built dist/),
// and a raw client in this process replays pre-encoded request frames shaped like grpc-go's
// (etcdctl's Put: HEADERS of 7 fields whose HPACK entries hit the dynamic table after the first
// request, then one DATA frame of 5 + 270 bytes with END_STREAM), keeping N streams in flight:
// every response that ends (its trailers) is answered with a new request, those of one read in
// one write. The server answers each with respond(':status' 200, content-type) + a 5 + 30 byte
// message + trailers (grpc-status, grpc-message): ours with respond + write + end, Node's with
// respond({waitForTrailers}) + end(message) + sendTrailers on 'wantTrailers' (as
// the removed src/grpc/unary-stream.ts did); with --answer async, after two awaits (a handler's promise
// continuations) instead of in the 'end' callback itself. The server's main thread (its /proc task stat) and whole
// process (process.cpuUsage) CPU over the timed window, divided by the exchanges completed, are
// what it prints; the client's own cost is in this process and not counted. Impls alternate,
// the first one changes each round.

import { type ChildProcess, fork } from 'node:child_process';
import { readFileSync } from 'node:fs';
import http2 from 'node:http2';
import net from 'node:net';
import { fileURLToPath } from 'node:url';
import { Duplex } from 'node:stream';
import type { H2ConnectionOptions } from '../src/grpc/h2/h2-stream.js';
import { numberFlag, textFlag } from './flags.js';

type Impl = 'ours' | 'node';

const RESPONSE_MESSAGE = Buffer.concat([Buffer.from([0, 0, 0, 0, 30]), Buffer.alloc(30, 7)]);

/** This thread's CPU (user + system) so far, us: the main thread is the task whose id is the pid. */
function mainThreadMicros(): number {
  const stat = readFileSync(`/proc/self/task/${process.pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(') ') + 2).split(' ');
  return ((Number(fields[11]) + Number(fields[12])) * 1_000_000) / 100;
}

function processMicros(): number {
  const u = process.cpuUsage();
  return u.user + u.system;
}

// ------------------------------------------------------------------ server side (child)

async function loadOurs(): Promise<typeof import('../src/grpc/h2/connection.js').serveH2Connection> {
  const distFlag = textFlag('dist');
  const dist = distFlag === undefined ? new URL('../dist/src/grpc/h2/connection.js', import.meta.url).href : `file://${distFlag}/src/grpc/h2/connection.js`;
  return ((await import(dist)) as typeof import('../src/grpc/h2/connection.js')).serveH2Connection;
}

const RESPONSE_HEADERS: ReadonlyArray<readonly [string, string]> = [
  [':status', '200'],
  ['content-type', 'application/grpc'],
];
const TRAILERS: ReadonlyArray<readonly [string, string]> = [
  ['grpc-status', '0'],
  ['grpc-message', ''],
];

/** Our connection's options: each stream answered as the header comment says. */
function ourOptions(): H2ConnectionOptions {
  return {
    onStream(stream) {
      let received = 0;
      stream.handlers = {
        data(chunk) {
          received += chunk.length;
        },
        end() {
          if (received === 0) throw new Error('no request message');
          const answer = () => {
            stream.respond(RESPONSE_HEADERS);
            stream.write(RESPONSE_MESSAGE);
            stream.end(TRAILERS);
          };
          if (asyncAnswer) void twoAwaits().then(answer);
          else answer();
        },
        aborted() {},
        drain() {},
      };
    },
    maxConcurrentStreams: 1000,
    maxHeaderListBytes: 16 * 1024,
    receiveWindowBytes: 1 << 20,
    ping: () => true,
    closed() {},
  };
}

/** An async handler's shape: the answer comes after two awaits of settled promises. */
async function twoAwaits(): Promise<void> {
  await Promise.resolve();
  await Promise.resolve();
}

const asyncAnswer = textFlag('answer', 'sync') === 'async';

async function runServer(impl: Impl): Promise<void> {
  let port: number;
  if (impl === 'ours') {
    const serveH2Connection = await loadOurs();
    const server = net.createServer((socket) => {
      serveH2Connection(socket, ourOptions());
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    port = (server.address() as net.AddressInfo).port;
  } else {
    const server = http2.createServer({ settings: { maxConcurrentStreams: 1000, initialWindowSize: 1 << 20 } });
    server.on('stream', (stream) => {
      let received = 0;
      stream.on('data', (chunk: Buffer) => {
        received += chunk.length;
      });
      stream.on('end', () => {
        if (received === 0) throw new Error('no request message');
        const answer = () => {
          stream.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
          stream.on('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '0', 'grpc-message': '' }));
          stream.end(RESPONSE_MESSAGE);
        };
        if (asyncAnswer) void twoAwaits().then(answer);
        else answer();
      });
      stream.on('error', () => {});
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    port = (server.address() as net.AddressInfo).port;
  }
  process.on('message', (m: string) => {
    if (m === 'cpu') process.send!({ main: mainThreadMicros(), all: processMicros() });
    if (m === 'exit') process.exit(0);
  });
  process.send!({ port });
}

// ------------------------------------------------------------------ client side

function frame(type: number, flags: number, streamId: number, payload: Buffer): Buffer {
  const out = Buffer.alloc(9 + payload.length);
  out.writeUIntBE(payload.length, 0, 3);
  out[3] = type;
  out[4] = flags;
  out.writeUInt32BE(streamId, 5);
  payload.copy(out, 9);
  return out;
}

async function hpackBlocks(port: number): Promise<{ first: Buffer; next: Buffer }> {
  const { huffmanEncode } = await import('../test/support/huffman-reference.js');
  const str = (s: string): Buffer => {
    const h = huffmanEncode(Buffer.from(s));
    if (h.length >= 127) throw new Error('long string');
    return Buffer.concat([Buffer.from([0x80 | h.length]), h]);
  };
  // Literal with incremental indexing, indexed name (6-bit index) or new name (0x40).
  const indexedName = (index: number, value: string) => Buffer.concat([Buffer.from([0x40 | index]), str(value)]);
  const first = Buffer.concat([
    Buffer.from([0x83, 0x86]), // :method POST, :scheme http
    indexedName(4, '/etcdserverpb.KV/Put'),
    indexedName(1, `127.0.0.1:${port}`),
    indexedName(31, 'application/grpc'),
    indexedName(58, 'grpc-go/1.33.3'),
    Buffer.concat([Buffer.from([0x40]), str('te'), str('trailers')]),
  ]);
  // The dynamic table now holds (newest first, index 62..66): te, user-agent, content-type,
  // :authority, :path.
  const next = Buffer.from([0x83, 0x86, 0x80 | 66, 0x80 | 65, 0x80 | 64, 0x80 | 63, 0x80 | 62]);
  return { first, next };
}

interface RunResult {
  impl: Impl;
  concurrency: number;
  exchanges: number;
  seconds: number;
  /** The client's socket reads per exchange (at concurrency 1: the server's writes per answer, about). */
  readsPerExchange: number;
  mainUs: number;
  allUs: number;
  load: string;
}

async function runOnce(impl: Impl, concurrency: number, seconds: number): Promise<RunResult> {
  const self = fileURLToPath(import.meta.url);
  const child: ChildProcess = fork(
    self,
    ['--server', impl, '--answer', textFlag('answer', 'sync'), ...(textFlag('dist') === undefined ? [] : ['--dist', textFlag('dist')!])],
    {
      execArgv: ['--import', 'tsx'],
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    },
  );
  const ask = <T>(message: string): Promise<T> =>
    new Promise((resolve) => {
      child.once('message', (m) => resolve(m as T));
      child.send(message);
    });
  const { port } = await new Promise<{ port: number }>((resolve) => child.once('message', (m) => resolve(m as { port: number })));
  const blocks = await hpackBlocks(port);
  const body = Buffer.concat([Buffer.from([0, 0, 0, 1, 14]), Buffer.alloc(270, 0x61)]);

  const socket = net.connect(port, '127.0.0.1');
  socket.setNoDelay(true);
  await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
  const settings = Buffer.alloc(6);
  settings.writeUInt16BE(4, 0); // INITIAL_WINDOW_SIZE
  settings.writeUInt32BE(0x7fffffff, 2);
  const windowUpdate = Buffer.alloc(4);
  windowUpdate.writeUInt32BE(0x7fffffff - 65535);
  socket.write(
    Buffer.concat([
      Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1'),
      frame(4, 0, 0, settings),
      frame(8, 0, 0, windowUpdate),
      frame(4, 1, 0, Buffer.alloc(0)),
    ]),
  );

  let nextId = 1;
  let firstSent = false;
  const request = (): Buffer => {
    const id = nextId;
    nextId += 2;
    const block = firstSent ? blocks.next : blocks.first;
    firstSent = true;
    return Buffer.concat([frame(1, 0x4, id, block), frame(0, 0x1, id, body)]);
  };

  let completed = 0;
  let errors = 0;
  let running = true;
  let rest = Buffer.alloc(0);
  let reads = 0;
  socket.on('data', (chunk: Buffer) => {
    reads++;
    const buf = rest.length > 0 ? Buffer.concat([rest, chunk]) : chunk;
    let pos = 0;
    let done = 0;
    while (buf.length - pos >= 9) {
      const length = buf.readUIntBE(pos, 3);
      if (buf.length - pos - 9 < length) break;
      const type = buf[pos + 3]!;
      const flags = buf[pos + 4]!;
      if (type === 1 && flags & 0x1) done++;
      if (type === 3 || type === 7) errors++;
      pos += 9 + length;
    }
    rest = Buffer.from(buf.subarray(pos));
    completed += done;
    if (running && done > 0) {
      const out: Buffer[] = [];
      for (let i = 0; i < done; i++) out.push(request());
      socket.write(Buffer.concat(out));
    }
  });
  socket.on('error', () => {});
  const initial: Buffer[] = [];
  for (let i = 0; i < concurrency; i++) initial.push(request());
  socket.write(Buffer.concat(initial));

  await new Promise((resolve) => setTimeout(resolve, 1000)); // warm-up
  const cpu0 = await ask<{ main: number; all: number }>('cpu');
  const done0 = completed;
  const reads0 = reads;
  const t0 = process.hrtime.bigint();
  await new Promise((resolve) => setTimeout(resolve, seconds * 1000));
  const cpu1 = await ask<{ main: number; all: number }>('cpu');
  const done1 = completed;
  const reads1 = reads;
  const elapsed = Number(process.hrtime.bigint() - t0) / 1e9;
  const load = readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
  running = false;
  socket.destroy();
  child.send('exit');
  await new Promise((resolve) => child.once('exit', resolve));
  if (errors > 0) throw new Error(`${impl}: ${errors} RST_STREAM/GOAWAY frames`);
  const exchanges = done1 - done0;
  return {
    impl,
    concurrency,
    exchanges,
    seconds: elapsed,
    readsPerExchange: (reads1 - reads0) / exchanges,
    mainUs: (cpu1.main - cpu0.main) / exchanges,
    allUs: (cpu1.all - cpu0.all) / exchanges,
    load,
  };
}

/** A socket stand-in: what the connection writes is kept, and parsed only when asked (outside the timing). */
class SinkSocket extends Duplex {
  private readonly chunks: Buffer[] = [];
  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: () => void): void {
    this.chunks.push(chunk);
    callback();
  }
  override _writev(chunks: Array<{ chunk: Buffer }>, callback: () => void): void {
    for (const c of chunks) this.chunks.push(c.chunk);
    callback();
  }
  override _read(): void {}
  /** Responses ended (HEADERS with END_STREAM) in everything written so far. */
  ended(): number {
    const buf = Buffer.concat(this.chunks);
    let pos = 0;
    let ended = 0;
    while (buf.length - pos >= 9) {
      const length = buf.readUIntBE(pos, 3);
      if (buf[pos + 3] === 1 && buf[pos + 4]! & 0x1) ended++;
      pos += 9 + length;
    }
    return ended;
  }
}

/**
 * --inproc: our connection alone, no kernel and no client process: batches of `batch` requests
 * are handed to it as one 'data' chunk each, its output goes to a sink; CPU us per exchange.
 */
async function runInProcess(batch: number, batches: number): Promise<{ us: number; exchanges: number }> {
  const serveH2Connection = await loadOurs();
  const socket = new SinkSocket();
  serveH2Connection(socket as never, ourOptions());
  const settings = Buffer.alloc(6);
  settings.writeUInt16BE(4, 0);
  settings.writeUInt32BE(0x7fffffff, 2);
  const windowUpdate = Buffer.alloc(4);
  windowUpdate.writeUInt32BE(0x7fffffff - 65535);
  socket.emit(
    'data',
    Buffer.concat([
      Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1'),
      frame(4, 0, 0, settings),
      frame(8, 0, 0, windowUpdate),
      frame(4, 1, 0, Buffer.alloc(0)),
    ]),
  );
  const blocks = await hpackBlocks(2379);
  const body = Buffer.concat([Buffer.from([0, 0, 0, 1, 14]), Buffer.alloc(270, 0x61)]);
  let id = 1;
  const chunks: Buffer[] = [];
  for (let b = 0; b < batches; b++) {
    const parts: Buffer[] = [];
    for (let i = 0; i < batch; i++) {
      parts.push(frame(1, 0x4, id, id === 1 ? blocks.first : blocks.next), frame(0, 0x1, id, body));
      id += 2;
    }
    chunks.push(Buffer.concat(parts));
  }
  const turn = () => new Promise((resolve) => setImmediate(resolve));
  const warm = Math.floor(batches / 5);
  for (let b = 0; b < warm; b++) {
    socket.emit('data', chunks[b]);
    await turn();
  }
  const ended0 = socket.ended();
  const cpu0 = processMicros();
  for (let b = warm; b < batches; b++) {
    socket.emit('data', chunks[b]);
    await turn();
  }
  const cpu = processMicros() - cpu0;
  const exchanges = socket.ended() - ended0;
  if (exchanges !== (batches - warm) * batch) throw new Error(`answered ${exchanges} of ${(batches - warm) * batch}`);
  return { us: cpu / exchanges, exchanges };
}

/**
 * --upload: our connection alone, in process: 200 requests of 1 MiB each (16 KiB DATA frames) fed
 * in 64 KiB chunks, so frames straddle chunks as they do off a socket; CPU us per request.
 */
async function runUpload(): Promise<number> {
  const serveH2Connection = await loadOurs();
  const socket = new SinkSocket();
  serveH2Connection(socket as never, { ...ourOptions(), receiveWindowBytes: 1 << 30 });
  socket.emit('data', Buffer.concat([Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1'), frame(4, 0, 0, Buffer.alloc(0))]));
  const blocks = await hpackBlocks(2379);
  const chunks: Buffer[] = [];
  for (let u = 0; u < 200; u++) {
    const id = 2 * u + 1;
    const parts = [frame(1, 0x4, id, u === 0 ? blocks.first : blocks.next)];
    for (let i = 0; i < 64; i++) parts.push(frame(0, i === 63 ? 0x1 : 0, id, Buffer.alloc(16384, 1)));
    const all = Buffer.concat(parts);
    for (let off = 0; off < all.length; off += 65536) chunks.push(all.subarray(off, Math.min(all.length, off + 65536)));
  }
  const cpu0 = processMicros();
  for (const c of chunks) socket.emit('data', c);
  await new Promise((resolve) => setImmediate(resolve));
  const cpu = processMicros() - cpu0;
  if (socket.ended() !== 200) throw new Error(`answered ${socket.ended()} of 200 uploads`);
  return cpu / 200;
}

async function main(): Promise<void> {
  if (process.argv.includes('--upload')) {
    for (let round = 1; round <= numberFlag('rounds', 3); round++) {
      const us = await runUpload();
      const load = readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
      console.log(`in process, 1 MiB uploads in 64 KiB chunks: ${us.toFixed(0)} us CPU per upload (load ${load})`);
    }
    return;
  }
  if (process.argv.includes('--inproc')) {
    const batch = numberFlag('batch', 100);
    const rounds = numberFlag('rounds', 3);
    for (let round = 1; round <= rounds; round++) {
      const r = await runInProcess(batch, Math.ceil(200_000 / batch));
      const load = readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
      console.log(`in process, batches of ${batch}: ${r.us.toFixed(2)} us CPU per exchange (${r.exchanges} exchanges; load ${load})`);
    }
    return;
  }
  const serverImpl = textFlag('server');
  if (serverImpl !== undefined) {
    await runServer(serverImpl as Impl);
    return;
  }
  const seconds = numberFlag('seconds', 5);
  const rounds = numberFlag('rounds', 3);
  const concurrencies = textFlag('concurrency', '1,100').split(',').map(Number);
  const only = textFlag('only');
  const impls: Impl[] = only === undefined ? ['ours', 'node'] : [only as Impl];
  console.log('| round | concurrency | impl | exchanges/s | server main thread us/exchange | server process us/exchange | client reads/exchange | load |');
  console.log('|---|---:|---|---:|---:|---:|---:|---|');
  for (let round = 1; round <= rounds; round++) {
    for (const concurrency of concurrencies) {
      const order = round % 2 === 1 ? impls : [...impls].reverse();
      for (const impl of order) {
        const r = await runOnce(impl, concurrency, seconds);
        console.log(
          `| ${round} | ${r.concurrency} | ${r.impl} | ${Math.round(r.exchanges / r.seconds)} | ${r.mainUs.toFixed(1)} | ${r.allUs.toFixed(1)} | ${r.readsPerExchange.toFixed(2)} | ${r.load} |`,
        );
      }
    }
  }
}

await main();
