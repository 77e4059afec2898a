// Authority shim: the HPACK block and HEADERS frame rewriter on hand-built bytes (every literal
// form, Huffman and raw values, padding/priority, fields before :authority, no-ops), the bytes a
// shimmed socket hands over (ACK dropped, HEADERS rewritten), and a real Node HTTP/2 server that
// refuses a URL authority without the shim and serves it (twice, through the HPACK dynamic
// table) with it.

import http2 from 'node:http2';
import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { findAuthority, rewriteHeaderBlock, rewriteHeadersFrame, sanitizedAuthority, shimAuthority } from './authority-shim.js';
import { huffmanEncode } from './hpack-huffman.js';
import { holdFor, waitFor } from '../../test/support/wait.js';

const hex = (s: string): Buffer => Buffer.from(s.replace(/\s+/g, ''), 'hex');

/** A string literal: H bit + 7-bit prefix length (values here stay below 127) + octets. */
function str(value: string, huffman: boolean): Buffer {
  const octets = huffman ? huffmanEncode(Buffer.from(value, 'latin1')) : Buffer.from(value, 'latin1');
  if (octets.length >= 127) throw new Error('test helper handles short strings only');
  return Buffer.concat([Buffer.from([(huffman ? 0x80 : 0) | octets.length]), octets]);
}

function frame(type: number, flags: number, streamId: number, payload: Buffer): Buffer {
  const header = Buffer.alloc(9);
  header.writeUIntBE(payload.length, 0, 3);
  header[3] = type;
  header[4] = flags;
  header.writeUInt32BE(streamId, 5);
  return Buffer.concat([header, payload]);
}

const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');
const CLIENT_SETTINGS = frame(4, 0, 0, Buffer.alloc(0));
const SETTINGS_ACK = frame(4, 1, 0, Buffer.alloc(0));
const END_HEADERS = 0x4;
const PADDED = 0x8;
const PRIORITY = 0x20;

// Fields grpc-go puts before :authority: :method POST (indexed 3), :scheme http (indexed 6),
// :path as a literal with incremental indexing (name index 4).
const BEFORE = Buffer.concat([Buffer.from([0x83, 0x86, 0x44]), str('/etcdserverpb.Maintenance/Status', true)]);
const AFTER = Buffer.concat([Buffer.from([0x5f]), str('application/grpc', true), Buffer.from([0x40]), str('te', false), str('trailers', false)]);

describe('rewriteHeaderBlock', () => {
  it.each([
    ['with incremental indexing', 0x41],
    ['without indexing', 0x01],
    ['never indexed', 0x11],
  ])('rewrites a Huffman-coded :authority literal %s, after other fields, as a plain literal', (_form, first) => {
    const block = Buffer.concat([BEFORE, Buffer.from([first]), str('http://127.0.0.1:2379', true), AFTER]);
    const rewritten = rewriteHeaderBlock(block);
    expect(rewritten).toEqual(Buffer.concat([BEFORE, Buffer.from([first]), str('http:..127.0.0.1:2379', false), AFTER]));
  });

  it('rewrites a raw (non-Huffman) value, keeping its decoded length', () => {
    const block = Buffer.concat([Buffer.from([0x41]), str('https://member-1.example:2379', false)]);
    const field = findAuthority(rewriteHeaderBlock(block)!);
    expect(field?.value.toString()).toBe('https:..member-1.example:2379');
    expect(field?.value.length).toBe('https://member-1.example:2379'.length);
    expect(field?.literal.huffman).toBe(false);
  });

  it('rewrites an :authority sent with a literal name', () => {
    const block = Buffer.concat([BEFORE, Buffer.from([0x40]), str(':authority', true), str('http://h:1', false)]);
    expect(rewriteHeaderBlock(block)).toEqual(Buffer.concat([BEFORE, Buffer.from([0x40]), str(':authority', true), str('http:..h:1', false)]));
  });

  it('walks size updates, dynamic indexes and multi-byte integers before the :authority', () => {
    const block = Buffer.concat([
      hex('3fe11f'), // dynamic table size update to 4096
      hex('be'), // indexed, dynamic entry 62
      hex('0f0d'),
      str('12', false), // without indexing, name index 28 (content-length)
      hex('7f00'),
      str('v', false), // with incremental indexing, name index 63 (a dynamic entry)
      hex('41'),
      str('http://10.0.0.1:2379', true),
    ]);
    const rewritten = rewriteHeaderBlock(block);
    expect(findAuthority(rewritten!)?.value.toString()).toBe('http:..10.0.0.1:2379');
    expect(rewritten!.subarray(0, 12)).toEqual(block.subarray(0, 12));
  });

  it('leaves an authority without a scheme alone (and reports no change)', () => {
    const block = Buffer.concat([BEFORE, Buffer.from([0x41]), str('127.0.0.1:2379', true), AFTER]);
    expect(findAuthority(block)?.value.toString()).toBe('127.0.0.1:2379');
    expect(rewriteHeaderBlock(block)).toBeUndefined();
    expect(sanitizedAuthority(Buffer.from('host/with/slashes'))).toBeUndefined();
  });

  it('gives up on blocks without :authority, truncated blocks and bad Huffman', () => {
    expect(rewriteHeaderBlock(BEFORE)).toBeUndefined();
    const block = Buffer.concat([BEFORE, Buffer.from([0x41]), str('http://127.0.0.1:2379', false)]);
    expect(rewriteHeaderBlock(block.subarray(0, block.length - 1))).toBeUndefined();
    expect(rewriteHeaderBlock(hex('4181ff'))).toBeUndefined(); // 8 bits of padding
    expect(rewriteHeaderBlock(hex('1fffffffff0f'))).toBeUndefined(); // absurd integer
  });
});

describe('rewriteHeadersFrame', () => {
  const block = Buffer.concat([BEFORE, Buffer.from([0x41]), str('http://127.0.0.1:2379', true), AFTER]);
  const newBlock = rewriteHeaderBlock(block)!;

  it('updates the length field and keeps flags and stream id', () => {
    const out = rewriteHeadersFrame(frame(1, END_HEADERS, 1, block))!;
    expect(out).toEqual(frame(1, END_HEADERS, 1, newBlock));
    expect(out.readUIntBE(0, 3)).toBe(newBlock.length);
    expect(newBlock.length).not.toBe(block.length);
  });

  it('keeps the pad length, priority fields and padding', () => {
    const priority = hex('80000003 10'); // exclusive, depends on stream 3, weight 16
    const padding = Buffer.alloc(5);
    const payload = Buffer.concat([Buffer.from([padding.length]), priority, block, padding]);
    const out = rewriteHeadersFrame(frame(1, END_HEADERS | PADDED | PRIORITY, 5, payload));
    expect(out).toEqual(frame(1, END_HEADERS | PADDED | PRIORITY, 5, Buffer.concat([Buffer.from([padding.length]), priority, newBlock, padding])));
    expect(rewriteHeadersFrame(frame(1, END_HEADERS | PRIORITY, 5, Buffer.concat([priority, block])))).toEqual(
      frame(1, END_HEADERS | PRIORITY, 5, Buffer.concat([priority, newBlock])),
    );
    expect(rewriteHeadersFrame(frame(1, END_HEADERS | PADDED, 5, Buffer.concat([Buffer.from([2]), block, Buffer.alloc(2)])))).toEqual(
      frame(1, END_HEADERS | PADDED, 5, Buffer.concat([Buffer.from([2]), newBlock, Buffer.alloc(2)])),
    );
  });

  it('rewrites the frame etcdctl 3.4 sent, leaving every other field byte-identical', () => {
    // `etcdctl --endpoints=http://127.0.0.1:23999 endpoint status`, first HEADERS frame.
    const captured = hex(
      '000076010400000001 8386459760a924882d9dcb6571afa066a925a87510ac6e48d36a3f 41909d29aee30c044eae05c0b86e0997df7f' +
        '5f8b1d75d0620d263d4c4d65647a8b9acac8b4c7602bb2caecff40027465864d833505b11f40899acac8b24d494f6a7f857df032072d408d25062d495875996ee5b1063d5f03332e34',
    );
    const out = rewriteHeadersFrame(captured)!;
    const plain = Buffer.concat([Buffer.from([0x41, 22]), Buffer.from('http:..127.0.0.1:23999')]);
    expect(out).toEqual(Buffer.concat([hex('00007c010400000001'), captured.subarray(9, 36), plain, captured.subarray(54)]));
  });

  it('leaves alone frames that need CONTINUATION, other frame types, and authorities without a scheme', () => {
    expect(rewriteHeadersFrame(frame(1, 0, 1, block))).toBeUndefined();
    expect(rewriteHeadersFrame(frame(0, END_HEADERS, 1, block))).toBeUndefined();
    const noScheme = Buffer.concat([BEFORE, Buffer.from([0x41]), str('127.0.0.1:2379', true)]);
    expect(rewriteHeadersFrame(frame(1, END_HEADERS, 1, noScheme))).toBeUndefined();
    expect(rewriteHeadersFrame(frame(1, END_HEADERS | PADDED, 1, Buffer.concat([Buffer.from([200]), block])))).toBeUndefined();
  });
});

// ---------------------------------------------------------------------------------------------

const cleanups: Array<() => void> = [];
afterEach(() => {
  for (const cleanup of cleanups.splice(0)) cleanup();
});

/** A listener whose sockets go through the shim; resolves each hand-over with the socket. */
async function shimmedListener(timeoutMs = 1000): Promise<{ port: number; handedOver: Promise<net.Socket> }> {
  let resolve!: (socket: net.Socket) => void;
  const handedOver = new Promise<net.Socket>((r) => (resolve = r));
  const server = net.createServer((socket) => shimAuthority(socket, resolve, { timeoutMs }));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  cleanups.push(() => server.close());
  const address = server.address() as net.AddressInfo;
  return { port: address.port, handedOver };
}

async function connect(port: number): Promise<net.Socket> {
  const socket = net.connect(port, '127.0.0.1');
  await new Promise<void>((r) => socket.once('connect', r));
  cleanups.push(() => socket.destroy());
  return socket;
}

function nextData(socket: net.Socket): Promise<Buffer> {
  return new Promise((r) => socket.once('data', r));
}

async function drain(socket: net.Socket): Promise<Buffer> {
  cleanups.push(() => socket.destroy());
  const chunks: Buffer[] = [];
  for (let chunk = socket.read() as Buffer | null; chunk !== null; chunk = socket.read() as Buffer | null) chunks.push(chunk);
  return Buffer.concat(chunks);
}

describe('shimAuthority', () => {
  const block = Buffer.concat([BEFORE, Buffer.from([0x41]), str('http://127.0.0.1:2379', true), AFTER]);
  const headers = frame(1, END_HEADERS, 1, block);

  it('answers the client SETTINGS, drops the ACK, rewrites the first HEADERS and hands over paused', async () => {
    const { port, handedOver } = await shimmedListener();
    const client = await connect(port);
    const serverSettings = nextData(client);
    client.write(Buffer.concat([PREFACE, CLIENT_SETTINGS]));
    expect(await serverSettings).toEqual(hex('000000040000000000'));
    const windowUpdate = frame(8, 0, 0, hex('00010000'));
    const data = frame(0, 0, 1, hex('0000000000'));
    client.write(Buffer.concat([SETTINGS_ACK, windowUpdate, headers, data]));
    const socket = await handedOver;
    expect(socket.isPaused()).toBe(true);
    expect(socket.listenerCount('data')).toBe(0);
    expect(await drain(socket)).toEqual(Buffer.concat([PREFACE, CLIENT_SETTINGS, windowUpdate, rewriteHeadersFrame(headers)!, data]));
  });

  it('waits for the ACK when the request came before it, and passes later HEADERS untouched', async () => {
    const { port, handedOver } = await shimmedListener();
    const client = await connect(port);
    const second = frame(1, END_HEADERS, 3, block);
    client.write(Buffer.concat([PREFACE, CLIENT_SETTINGS, headers, second]));
    await nextData(client);
    client.write(SETTINGS_ACK);
    expect(await drain(await handedOver)).toEqual(Buffer.concat([PREFACE, CLIENT_SETTINGS, rewriteHeadersFrame(headers)!, second]));
  });

  it('hands over unmodified bytes that are not an HTTP/2 preface at once', async () => {
    const { port, handedOver } = await shimmedListener(60_000);
    const client = await connect(port);
    client.write('GET / HTTP/1.1\r\n\r\n');
    expect((await drain(await handedOver)).toString()).toBe('GET / HTTP/1.1\r\n\r\n');
  });

  it('hands over what it has when no HEADERS comes within the timeout (ACK still dropped)', async () => {
    const { port, handedOver } = await shimmedListener(100);
    const client = await connect(port);
    client.write(Buffer.concat([PREFACE, CLIENT_SETTINGS]));
    await nextData(client);
    client.write(SETTINGS_ACK);
    expect(await drain(await handedOver)).toEqual(Buffer.concat([PREFACE, CLIENT_SETTINGS]));
  });

  it('never hands over between our SETTINGS and a late ACK: it waits past the timeout for the ACK', async () => {
    const { port, handedOver } = await shimmedListener(50);
    const client = await connect(port);
    client.write(Buffer.concat([PREFACE, CLIENT_SETTINGS]));
    await nextData(client);
    let handed = false;
    void handedOver.then(() => (handed = true));
    await holdFor(200, "well past the shim's 50 ms timeout without the client's ACK: the shim must still hold the connection");
    expect(handed).toBe(false);
    client.write(SETTINGS_ACK);
    expect(await drain(await handedOver)).toEqual(Buffer.concat([PREFACE, CLIENT_SETTINGS]));
  });

  it('holds past the buffer limit while our SETTINGS is unacknowledged (DATA before the ACK)', async () => {
    let resolve!: (socket: net.Socket) => void;
    const handedOver = new Promise<net.Socket>((r) => (resolve = r));
    let accepted: net.Socket | undefined;
    const server = net.createServer((socket) => {
      accepted = socket;
      shimAuthority(socket, resolve, { maxBufferedBytes: 1000 });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    cleanups.push(() => server.close());
    const client = await connect((server.address() as net.AddressInfo).port);
    client.write(Buffer.concat([PREFACE, CLIENT_SETTINGS]));
    await nextData(client);
    const data = frame(0, 0, 1, Buffer.alloc(4000, 7));
    client.write(Buffer.concat([headers, data]));
    let handed = false;
    void handedOver.then(() => (handed = true));
    // Everything sent so far has reached the shim (whose handler runs as each chunk is read).
    const sent = PREFACE.length + CLIENT_SETTINGS.length + headers.length + data.length;
    await waitFor(() => handed || accepted!.bytesRead >= sent, { what: `the shim to read ${sent} bytes`, timeoutMs: 5000, intervalMs: 5 });
    expect(handed).toBe(false);
    client.write(SETTINGS_ACK);
    expect(await drain(await handedOver)).toEqual(Buffer.concat([PREFACE, CLIENT_SETTINGS, rewriteHeadersFrame(headers)!, data]));
  });

  it('destroys a socket the client closes before hand-over', async () => {
    let handed = false;
    let onClosed!: () => void;
    const closed = new Promise<void>((r) => (onClosed = r));
    const server = net.createServer((socket) => {
      shimAuthority(socket, () => (handed = true), { timeoutMs: 50 });
      socket.once('close', onClosed);
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    cleanups.push(() => server.close());
    const client = await connect((server.address() as net.AddressInfo).port);
    client.end(PREFACE.subarray(0, 10));
    await closed;
    await holdFor(100, "past the shim's 50 ms timeout: its timer must not hand over the closed socket");
    expect(handed).toBe(false);
  });
});

describe('shimAuthority in front of Node HTTP/2 (nghttp2)', () => {
  async function h2Server(withShim: boolean): Promise<number> {
    const server = http2.createServer();
    server.on('stream', (stream, headers) => {
      stream.respond({ ':status': 200 });
      stream.end(String(headers[':authority']));
    });
    const listener = net.createServer((socket) =>
      withShim ? shimAuthority(socket, (ready) => server.emit('connection', ready)) : server.emit('connection', socket),
    );
    await new Promise<void>((r) => listener.listen(0, '127.0.0.1', r));
    cleanups.push(() => {
      listener.close();
      server.close();
    });
    return (listener.address() as net.AddressInfo).port;
  }

  function get(session: http2.ClientHttp2Session, authority: string): Promise<string> {
    return new Promise((resolve, reject) => {
      const request = session.request({ ':path': '/', ':authority': authority });
      let body = '';
      request.setEncoding('utf8');
      request.on('data', (chunk: string) => (body += chunk));
      request.on('error', reject);
      request.on('end', () => resolve(body));
      request.end();
    });
  }

  it('nghttp2 alone resets a stream whose :authority is a URL', async () => {
    const port = await h2Server(false);
    const session = http2.connect(`http://127.0.0.1:${port}`);
    cleanups.push(() => session.destroy());
    await expect(get(session, `http://127.0.0.1:${port}`)).rejects.toThrow(/PROTOCOL_ERROR/);
  });

  it('with the shim the URL authority is served, and stays in sync through the dynamic table', async () => {
    const port = await h2Server(true);
    const session = http2.connect(`http://127.0.0.1:${port}`);
    cleanups.push(() => session.destroy());
    let goaways = 0;
    session.on('goaway', () => goaways++);
    const authority = `http://127.0.0.1:${port}`;
    const dotted = authority.replaceAll('/', '.');
    expect(await get(session, authority)).toBe(dotted);
    // Later requests index the entry; nghttp2 stored the rewritten value.
    expect(await Promise.all([get(session, authority), get(session, authority)])).toEqual([dotted, dotted]);
    expect(await get(session, `127.0.0.1:${port}`)).toBe(`127.0.0.1:${port}`);
    // Both server SETTINGS were ACKed without a connection error: a PING answered after every
    // frame before it means a GOAWAY for any of them would already be here.
    await new Promise<void>((resolve, reject) => session.ping((error) => (error ? reject(error) : resolve())));
    expect(goaways).toBe(0);
    expect(session.closed || session.destroyed).toBe(false);
  });
});
