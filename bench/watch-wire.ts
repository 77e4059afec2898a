// Where a watch event's time goes on the wire, from a loopback capture of a watch-bench run
// (etcd or MetaStore alike: no server probe), for the put -> event latency row:
//   tcpdump -i lo -nn -s 0 -w run.pcap tcp     (while bench/watch-bench.ts runs)
//   node --import tsx bench/watch-wire.ts run.pcap
// bench/go-watch puts a 64-byte value whose first 8 bytes are the client's send time (Unix ns,
// big-endian). That stamp is found in the put request (PutRequest.value: tag 0x12, length 0x40)
// and in every event carrying it (KeyValue.value: tag 0x2a, length 0x40), so each segment's
// capture time minus the stamp is where on the wire that put or event was. Per put it reports:
// the request on the wire; the first and the last watch connection's first segment carrying the
// event; the put's answer (the server's next segment on the putter's connection); and how many
// segments the events took. Classic pcap, microsecond stamps (tcpdump's default).

import { readFileSync } from 'node:fs';

interface Put {
  stamp: number;
  /** Capture times, ms after the stamp. */
  request: number;
  putPort: number;
  serverPort: number;
  /** Per watch connection (client port): the first segment carrying the event, ms after the stamp. */
  events: Map<number, number>;
  segments: number;
  answer: number | undefined;
}

const [file] = process.argv.slice(2);
if (file === undefined) throw new Error('usage: watch-wire.ts <capture.pcap>');
const pcap = readFileSync(file);
const magic = pcap.readUInt32LE(0);
const nano = magic === 0xa1b23c4d;
if (magic !== 0xa1b2c3d4 && !nano) throw new Error('not a classic little-endian pcap');
const linkType = pcap.readUInt32LE(20);
const linkHeader = linkType === 1 ? 14 : linkType === 0 ? 4 : 16;

const puts = new Map<number, Put>();
/** Capture times of the segments carrying HEADERS or DATA, per direction of each connection, in order. */
const segments = new Map<string, number[]>();

/** A stamp that is a plausible Unix-ns time within 60 s of the segment's capture time. */
function stampAt(payload: Buffer, i: number, atMs: number): number | undefined {
  if (i + 10 > payload.length) return undefined;
  const ns = payload.readBigUInt64BE(i + 2);
  const ms = Number(ns) / 1e6;
  return Math.abs(atMs - ms) < 60_000 ? ms : undefined;
}

for (let off = 24; off + 16 <= pcap.length; ) {
  const atMs = pcap.readUInt32LE(off) * 1000 + pcap.readUInt32LE(off + 4) / (nano ? 1e6 : 1e3);
  const length = pcap.readUInt32LE(off + 8);
  const ip = pcap.subarray(off + 16 + linkHeader, off + 16 + length);
  off += 16 + length;
  if (ip[0]! >> 4 !== 4 || ip[9] !== 6) continue;
  const ipHeader = (ip[0]! & 15) * 4;
  const tcp = ip.subarray(ipHeader);
  const payload = ip.subarray(ipHeader + (tcp[12]! >> 4) * 4, ip.readUInt16BE(2));
  if (payload.length === 0) continue;
  const src = tcp.readUInt16BE(0);
  const dst = tcp.readUInt16BE(2);
  // Segments that carry a response (HEADERS or DATA frame), not only PING, SETTINGS or
  // WINDOW_UPDATE (grpc-go answers a request's DATA with those at once). Small writes start
  // at a frame boundary, so the frames are walked from the segment's start.
  let carriesResponse = false;
  for (let f = 0; f + 9 <= payload.length; f += 9 + payload.readUIntBE(f, 3)) {
    if (payload[f + 3] === 0 || payload[f + 3] === 1) carriesResponse = true;
  }
  if (carriesResponse) {
    const way = `${src}>${dst}`;
    const times = segments.get(way);
    if (times === undefined) segments.set(way, [atMs]);
    else times.push(atMs);
  }
  let counted = false;
  for (let i = payload.indexOf(0x40, 1) - 1; i >= 0; i = payload.indexOf(0x40, i + 2) - 1) {
    const tag = payload[i];
    if (tag !== 0x12 && tag !== 0x2a) continue;
    const stamp = stampAt(payload, i, atMs);
    if (stamp === undefined) continue;
    if (tag === 0x12) {
      if (!puts.has(stamp)) puts.set(stamp, { stamp, request: atMs - stamp, putPort: src, serverPort: dst, events: new Map(), segments: 0, answer: undefined });
      continue;
    }
    const put = puts.get(stamp);
    if (put === undefined || src !== put.serverPort) continue;
    if (!put.events.has(dst)) put.events.set(dst, atMs - stamp);
    if (!counted) {
      put.segments++;
      counted = true;
    }
  }
}

// The answer: the server's first segment on the putter's connection after the request.
for (const put of puts.values()) {
  const requestAt = put.stamp + put.request;
  const times = segments.get(`${put.serverPort}>${put.putPort}`) ?? [];
  let lo = 0;
  let hi = times.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (times[mid]! <= requestAt) lo = mid + 1;
    else hi = mid;
  }
  if (lo < times.length) put.answer = times[lo]! - put.stamp;
}

function pct(values: number[], q: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(q * (sorted.length - 1)))] ?? Number.NaN;
}
function row(name: string, values: number[]): string {
  return `| ${name} | ${pct(values, 0.5).toFixed(3)} | ${pct(values, 0.9).toFixed(3)} | ${pct(values, 0.99).toFixed(3)} | ${values.length} |`;
}

for (const serverPort of new Set([...puts.values()].map((p) => p.serverPort))) {
  const all = [...puts.values()].filter((p) => p.serverPort === serverPort && p.events.size > 0);
  const firsts = all.map((p) => Math.min(...p.events.values()));
  const lasts = all.map((p) => Math.max(...p.events.values()));
  const everyConnection = all.flatMap((p) => [...p.events.values()]);
  const answered = all.filter((p) => p.answer !== undefined);
  console.log(`\nserver port ${serverPort}: ${all.length} puts with events`);
  console.log('| ms after the client stamp | p50 | p90 | p99 | n |');
  console.log('|---|---:|---:|---:|---:|');
  console.log(
    row(
      'put request on the wire',
      all.map((p) => p.request),
    ),
  );
  console.log(row('first watch connection has the event', firsts));
  console.log(row('each watch connection has the event', everyConnection));
  console.log(row('last watch connection has the event', lasts));
  console.log(
    row(
      'first -> last watch connection',
      all.map((_, i) => lasts[i]! - firsts[i]!),
    ),
  );
  console.log(
    row(
      'request -> first event',
      all.map((p, i) => firsts[i]! - p.request),
    ),
  );
  console.log(
    row(
      'put answered (its segment)',
      answered.map((p) => p.answer!),
    ),
  );
  console.log(
    row(
      'last event -> put answer',
      answered.map((p) => p.answer! - Math.max(...p.events.values())),
    ),
  );
  console.log(
    row(
      "segments carrying one put's events",
      all.map((p) => p.segments),
    ),
  );
  console.log(
    row(
      'watch connections reached',
      all.map((p) => p.events.size),
    ),
  );
}
