// Where one unary call's time goes on the wire, from a loopback capture of a 1-client run:
//   tcpdump -i lo -nn tcp -w run.pcap   (while e.g. kv-bench --clients 1 --connections 1 runs)
//   node --import tsx bench/h2-timeline.ts run.pcap <server port>
// Reassembles each direction's TCP bytes, splits them into HTTP/2 frames, and prints, per call
// (stream), the time from the request's END_STREAM to the response's first DATA frame, from that
// DATA frame to the trailers (HEADERS with END_STREAM), and from the trailers to the client's next
// request HEADERS (the client's own turn-around). Classic pcap files only (tcpdump's default).

import { readFileSync } from 'node:fs';

interface Frame {
  at: number;
  type: number;
  flags: number;
  stream: number;
}

const FRAME_DATA = 0;
const FRAME_HEADERS = 1;
const END_STREAM = 1;
const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');

/** The HTTP/2 frames each way (c: to the server, s: from it), stamped with their segment's time. */
function framesOf(pcap: Buffer, serverPort: number): { c: Frame[]; s: Frame[] } {
  const linkType = pcap.readUInt32LE(20);
  const linkHeader = linkType === 1 ? 14 : linkType === 0 ? 4 : 16; // Ethernet, BSD loopback, Linux cooked
  const out = { c: [] as Frame[], s: [] as Frame[] };
  const pending = { c: Buffer.alloc(0), s: Buffer.alloc(0) };
  for (let off = 24; off + 16 <= pcap.length; ) {
    const at = pcap.readUInt32LE(off) + pcap.readUInt32LE(off + 4) / 1e6;
    const length = pcap.readUInt32LE(off + 8);
    const ip = pcap.subarray(off + 16 + linkHeader, off + 16 + length);
    off += 16 + length;
    const ipHeader = (ip[0]! & 15) * 4;
    const tcp = ip.subarray(ipHeader);
    const payload = ip.subarray(ipHeader + (tcp[12]! >> 4) * 4, ip.readUInt16BE(2));
    if (payload.length === 0) continue;
    const way = tcp.readUInt16BE(0) === serverPort ? 's' : 'c';
    let bytes = Buffer.concat([pending[way], payload]);
    if (way === 'c' && bytes.subarray(0, PREFACE.length).equals(PREFACE)) bytes = bytes.subarray(PREFACE.length);
    while (bytes.length >= 9) {
      const frameLength = bytes.readUIntBE(0, 3);
      if (bytes.length < 9 + frameLength) break;
      out[way].push({ at, type: bytes[3]!, flags: bytes[4]!, stream: bytes.readUInt32BE(5) & 0x7fffffff });
      bytes = bytes.subarray(9 + frameLength);
    }
    pending[way] = bytes;
  }
  return out;
}

function summary(name: string, seconds: number[]): string {
  const sorted = [...seconds].sort((a, b) => a - b);
  const us = (x: number | undefined): string => ((x ?? Number.NaN) * 1e6).toFixed(0);
  return `${name}: p50 ${us(sorted[Math.floor(sorted.length / 2)])} us, p90 ${us(sorted[Math.floor(sorted.length * 0.9)])} us (${sorted.length} calls)`;
}

const [file, port] = process.argv.slice(2);
if (file === undefined || port === undefined) throw new Error('usage: h2-timeline.ts <capture.pcap> <server port>');
const { c, s } = framesOf(readFileSync(file), Number(port));
const requestHeaders = new Map<number, number>();
const requestEnd = new Map<number, number>();
for (const f of c) {
  if (f.type === FRAME_HEADERS && !requestHeaders.has(f.stream)) requestHeaders.set(f.stream, f.at);
  if ((f.type === FRAME_DATA || f.type === FRAME_HEADERS) && f.flags & END_STREAM) requestEnd.set(f.stream, f.at);
}
const message = new Map<number, number>();
const trailers = new Map<number, number>();
for (const f of s) {
  if (f.type === FRAME_DATA && !message.has(f.stream)) message.set(f.stream, f.at);
  if (f.type === FRAME_HEADERS && f.flags & END_STREAM) trailers.set(f.stream, f.at);
}
const calls = [...requestEnd.keys()].filter((id) => message.has(id) && trailers.has(id)).sort((a, b) => a - b);
const toMessage = calls.map((id) => message.get(id)! - requestEnd.get(id)!);
const toTrailers = calls.map((id) => trailers.get(id)! - message.get(id)!);
const turnAround = calls.flatMap((id) => (requestHeaders.has(id + 2) ? [requestHeaders.get(id + 2)! - trailers.get(id)!] : []));
console.log(summary('request end -> response message', toMessage));
console.log(summary('response message -> trailers', toTrailers));
console.log(summary("trailers -> the client's next request", turnAround));
