// Micro-benchmark of the peer transport: MsgApp messages carrying 10 entries of 300 bytes
// each, from one PeerTransport to another in the same process over loopback gRPC; plus the
// codec alone (encode and decode of 1 MiB-class frames) to show what the wire costs on top.
//
// Run: node --import tsx bench/transport-bench.ts [messages]
//
// Estimate before measuring: a message is ~3.2 KB on the wire. Encoding copies it once
// (~1 us), decoding makes 10 views (~1 us); gRPC/HTTP2 copies each ~1 MiB frame two or three
// more times (~0.3 ms per frame, ~300 messages) and both ends share one thread here. So
// roughly 5 us per message end to end: ~200k messages/s would be the ceiling, with
// ~50-100k messages/s (150-300 MB/s) expected once HTTP/2 framing and flow control are counted.
//
// Recorded 2026-11-22 (machine date), node v20.20.2, 2-vCPU shared VM (load average ~4 from
// other work; three runs, ranges shown), 100,000 messages of 3,272 B encoded:
//   codec encode (300 messages/frame)  440-530k msg/s  (~1.4-1.7 GB/s)
//   codec decode (300 messages/frame)  620-720k msg/s  (~2.0-2.3 GB/s)
//   transport 1 -> 2, loopback         131-136k msg/s  ~400 MB/s of entry data (~440 MB/s wire)
// Better than the estimate: frames of ~320 messages make gRPC's per-frame costs negligible, so
// the codec copy and HTTP/2's copies dominate. No etcd figure: etcd's peer transport is not
// benchmarked in isolation by its tools; the 3-node commit benchmark (bench/raft) is where the
// two are compared end to end.
//
// The sender keeps at most WINDOW messages in flight (sent, not yet delivered), the way Raft's
// inflight limit bounds a follower's pipeline, so no message is dropped at the queue bound.

import { servePeerConnections } from '../src/grpc/grpc-server.js';
import { PeerTransport } from '../src/transport/peer-transport.js';
import { decodePeerFrame, encodePeerFrame, messageEncodedSize } from '../src/transport/message-codec.js';
import { EntryType, MessageType, makeMessage, type Message } from '../src/raft/types.js';

const TOTAL = Number(process.argv[2] ?? 100_000);
const ENTRIES_PER_MESSAGE = 10;
const ENTRY_BYTES = 300;
const WINDOW = 2048;
const SENDS_PER_TURN = 256;

const payload = new Uint8Array(ENTRY_BYTES).fill(0x5a);
function msgApp(index: number): Message {
  const entries = [];
  for (let i = 0; i < ENTRIES_PER_MESSAGE; i++) {
    entries.push({ term: 5, index: index * ENTRIES_PER_MESSAGE + i + 1, type: EntryType.Normal, data: payload });
  }
  return makeMessage({ type: MessageType.MsgApp, from: 1n, to: 2n, term: 5, logTerm: 5, index, commit: index, entries });
}

const messageBytes = messageEncodedSize(msgApp(0));
const payloadBytesPerMessage = ENTRIES_PER_MESSAGE * ENTRY_BYTES;

function seconds(start: bigint): number {
  return Number(process.hrtime.bigint() - start) / 1e9;
}

function report(label: string, messages: number, elapsed: number): void {
  const perSecond = messages / elapsed;
  console.log(
    `${label.padEnd(28)} ${Math.round(perSecond).toLocaleString('en-US').padStart(10)} msg/s  ` +
      `${((perSecond * payloadBytesPerMessage) / 1e6).toFixed(1).padStart(7)} MB/s entry data  ` +
      `${((perSecond * messageBytes) / 1e6).toFixed(1).padStart(7)} MB/s wire  (${(elapsed * 1e3).toFixed(0)} ms)`,
  );
}

function codecBench(): void {
  const batch = Array.from({ length: 300 }, (_, i) => msgApp(i));
  const header = { clusterId: 1n, fromId: 1n, toId: 2n };
  const rounds = Math.max(1, Math.floor(TOTAL / batch.length));
  let frame = encodePeerFrame(header, batch);
  let start = process.hrtime.bigint();
  for (let r = 0; r < rounds; r++) frame = encodePeerFrame(header, batch);
  report('codec encode (300/frame)', rounds * batch.length, seconds(start));
  let decoded = 0;
  start = process.hrtime.bigint();
  for (let r = 0; r < rounds; r++) decoded += decodePeerFrame(frame).messages.length;
  report('codec decode (300/frame)', decoded, seconds(start));
}

async function transportBench(): Promise<void> {
  let delivered = 0;
  let wake: () => void = () => {};
  let lastIndex = -1;
  const receiver = await PeerTransport.start({
    clusterId: 1n,
    memberId: 2n,
    listenHost: '127.0.0.1',
    listenPort: 0,
    serveCalls: servePeerConnections,
    peers: new Map(),
    onMessages: (messages) => {
      for (const m of messages) {
        if (m.index !== lastIndex + 1) throw new Error(`out of order: ${m.index} after ${lastIndex}`);
        lastIndex = m.index;
      }
      delivered += messages.length;
      wake();
    },
  });
  let unreachable = 0;
  const sender = await PeerTransport.start({
    clusterId: 1n,
    memberId: 1n,
    listenHost: '127.0.0.1',
    listenPort: 0,
    serveCalls: servePeerConnections,
    peers: new Map([[2n, `127.0.0.1:${receiver.port}`]]),
    onMessages: () => {},
    onUnreachable: () => unreachable++,
  });
  const messages = Array.from({ length: WINDOW + SENDS_PER_TURN }, (_, i) => msgApp(i));
  const waitForDelivery = (): Promise<void> => new Promise<void>((resolve) => (wake = resolve));

  // Warm-up: connect and let V8 optimize the paths.
  let sent = 0;
  const run = async (count: number): Promise<void> => {
    const target = sent + count;
    while (delivered < target) {
      while (sent < target && sent - delivered < WINDOW) {
        const n = Math.min(SENDS_PER_TURN, target - sent, WINDOW - (sent - delivered));
        for (let i = 0; i < n; i++) {
          const m = messages[(sent + i) % messages.length]!;
          m.index = sent + i;
          sender.send([m]);
        }
        sent += n;
        // Yield so the end-of-turn flush and the receiver get to run.
        await new Promise<void>((resolve) => setImmediate(resolve));
      }
      if (delivered < target) await waitForDelivery();
    }
  };
  await run(Math.min(10_000, TOTAL));
  const start = process.hrtime.bigint();
  await run(TOTAL);
  report('transport 1 -> 2 (loopback)', TOTAL, seconds(start));
  if (unreachable > 0) console.log(`unreachable reports: ${unreachable}`);
  await sender.close();
  await receiver.close();
}

console.log(
  `node ${process.version}; ${TOTAL.toLocaleString('en-US')} MsgApp x ${ENTRIES_PER_MESSAGE} entries x ` +
    `${ENTRY_BYTES} B (${messageBytes} B encoded); window ${WINDOW}`,
);
codecBench();
await transportBench();
