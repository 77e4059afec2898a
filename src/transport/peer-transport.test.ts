// Peer transport on loopback: delivery both ways, batching and per-sender order under load,
// reconnect after a peer restarts on the same port, cluster/member checks, chunked snapshots
// alongside heartbeats, and a clean close (checked in a child process that must exit by itself).
// Every wait is on an event (a delivery, a log line, a callback); ports are picked at run time.

import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import http2 from 'node:http2';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { EntryType, MessageType, makeMessage, type Message } from '../raft/types.js';
import type { PeerTlsConfig } from '../config/schema.js';
import { peerPortTls, type PeerPortTls } from '../tls/tls.js';
import { makeTestPki, type TestPki } from '../../test/e2e/tls-certs.js';
import { encodePeerFrame } from './message-codec.js';
import { servePeerConnections } from '../grpc/grpc-server.js';
import { askPeerForMembers, PeerCallError, PeerTransport, type PeerTransportOptions } from './peer-transport.js';
import { Notifier, within } from '../../test/support/wait.js';

interface LogRecord {
  level: string;
  fields: object;
  message?: string;
}

/** A transport plus everything it reported, with a way to await a condition on it. */
class Node {
  readonly received: Message[] = [];
  readonly batches: number[] = [];
  readonly unreachable: bigint[] = [];
  readonly snapshotStatus: Array<{ peer: bigint; ok: boolean }> = [];
  readonly removedBy: bigint[] = [];
  readonly logs: LogRecord[] = [];
  transport!: PeerTransport;
  private readonly changes = new Notifier();

  constructor(
    readonly id: bigint,
    readonly clusterId = 1n,
  ) {}

  async start(listenPort = 0, extra: Partial<PeerTransportOptions> = {}): Promise<this> {
    const record = (level: string) => (fields: object, message?: string) => {
      this.logs.push({ level, fields, message });
      this.notify();
    };
    this.transport = await PeerTransport.start({
      clusterId: this.clusterId,
      memberId: this.id,
      listenHost: '127.0.0.1',
      listenPort,
      peers: new Map(),
      serveCalls: servePeerConnections,
      onMessages: (messages) => {
        this.batches.push(messages.length);
        for (const m of messages) this.received.push(m);
        this.notify();
      },
      onUnreachable: (peer) => {
        this.unreachable.push(peer);
        this.notify();
      },
      onSnapshotStatus: (peer, ok) => {
        this.snapshotStatus.push({ peer, ok });
        this.notify();
      },
      onRemoved: (peer) => {
        this.removedBy.push(peer);
        this.notify();
      },
      logger: { info: record('info'), warn: record('warn'), error: record('error'), debug: record('debug') },
      ...extra,
    });
    return this;
  }

  private notify(): void {
    this.changes.notify();
  }

  /** Resolves once `condition` holds, re-checking after every callback of this node; a timeout
   * names the condition by its source. */
  async until(condition: () => boolean): Promise<void> {
    await this.changes.until(condition, { what: `node ${this.id}: ${condition.toString()}`, timeoutMs: 30_000 });
  }

  from(sender: bigint): Message[] {
    return this.received.filter((m) => m.from === sender);
  }
}

const started: Node[] = [];
async function node(id: bigint, clusterId = 1n, port = 0): Promise<Node> {
  const n = await new Node(id, clusterId).start(port);
  started.push(n);
  return n;
}

/** Connects every node to every other (all already listening). */
function mesh(nodes: Node[]): void {
  for (const a of nodes) {
    for (const b of nodes) if (a !== b) a.transport.addPeer(b.id, `127.0.0.1:${b.transport.port}`);
  }
}

function app(from: bigint, to: bigint, index: number, dataBytes = 16): Message {
  return makeMessage({
    type: MessageType.MsgApp,
    from,
    to,
    term: 2,
    logTerm: 2,
    index,
    commit: index,
    entries: [{ term: 2, index: index + 1, type: EntryType.Normal, data: new Uint8Array(dataBytes).fill(index & 0xff) }],
  });
}

function heartbeat(from: bigint, to: bigint, commit = 0): Message {
  return makeMessage({ type: MessageType.MsgHeartbeat, from, to, term: 2, commit });
}

/**
 * Sends a heartbeat now and again every 20 ms until `done` resolves: what Raft does while a
 * peer is away (messages sent in the meantime are dropped by design).
 */
async function retransmitUntil(sender: Node, to: bigint, done: Promise<void>): Promise<void> {
  sender.transport.send([heartbeat(sender.id, to)]);
  const timer = setInterval(() => sender.transport.send([heartbeat(sender.id, to)]), 20);
  try {
    await done;
  } finally {
    clearInterval(timer);
  }
}

afterEach(async () => {
  await Promise.all(started.splice(0).map((n) => n.transport.close()));
});

describe('PeerTransport', () => {
  it('delivers messages both ways between two members', async () => {
    const [a, b] = [await node(1n), await node(2n)];
    a.transport.addPeer(2n, `127.0.0.1:${b.transport.port}`);
    // etcd-style peer URLs work too.
    b.transport.addPeer(1n, `http://127.0.0.1:${a.transport.port}`);
    a.transport.send([app(1n, 2n, 10), heartbeat(1n, 2n, 10)]);
    b.transport.send([heartbeat(2n, 1n, 7)]);
    await b.until(() => b.received.length === 2);
    await a.until(() => a.received.length === 1);
    expect(b.received.map((m) => m.type)).toEqual([MessageType.MsgApp, MessageType.MsgHeartbeat]);
    expect(Array.from(b.received[0]!.entries[0]!.data)).toEqual(Array(16).fill(10));
    expect(a.received[0]).toMatchObject({ type: MessageType.MsgHeartbeat, from: 2n, to: 1n, commit: 7 });
    expect(a.unreachable).toEqual([]);
  });

  it('batches 10,000 messages into few frames, complete and in order', async () => {
    const [a, b] = [await node(1n), await node(2n)];
    mesh([a, b]);
    // One send() per message, all in one turn, like a busy leader's Ready loop.
    for (let i = 0; i < 10_000; i++) a.transport.send([app(1n, 2n, i)]);
    await b.until(() => b.received.length === 10_000);
    expect(b.received.map((m) => m.index)).toEqual(Array.from({ length: 10_000 }, (_, i) => i));
    expect(b.batches.length).toBeLessThanOrEqual(20);
  });

  it('keeps per-sender order among three members sending to each other at once', async () => {
    const nodes = [await node(1n), await node(2n), await node(3n)];
    mesh(nodes);
    const perPair = 10_000;
    // Interleave the sends of all senders within each turn, spread over several turns.
    for (let turn = 0; turn < 10; turn++) {
      for (let i = turn * (perPair / 10); i < (turn + 1) * (perPair / 10); i++) {
        for (const s of nodes) s.transport.send(nodes.filter((r) => r !== s).map((r) => app(s.id, r.id, i)));
      }
      await new Promise<void>((resolve) => setImmediate(resolve));
    }
    for (const r of nodes) {
      await r.until(() => r.received.length === 2 * perPair);
      for (const s of nodes) {
        if (s === r) continue;
        expect(r.from(s.id).map((m) => m.index)).toEqual(Array.from({ length: perPair }, (_, i) => i));
      }
    }
  });

  it('reports an unreachable peer once, then reconnects when it restarts on the same port', async () => {
    const [a, b] = [await node(1n), await node(2n)];
    mesh([a, b]);
    await retransmitUntil(
      a,
      2n,
      b.until(() => b.received.length > 0),
    );
    const port = b.transport.port;
    await b.transport.close();

    a.transport.send([heartbeat(1n, 2n)]);
    await a.until(() => a.unreachable.length > 0);
    // Keep sending through several failed reconnects: still one report for the whole episode.
    await retransmitUntil(
      a,
      2n,
      a.until(() => a.logs.filter((l) => l.message === 'peer stream retry failed').length >= 3),
    );
    expect(a.unreachable).toEqual([2n]);

    const b2 = await node(2n, 1n, port);
    b2.transport.addPeer(1n, `127.0.0.1:${a.transport.port}`);
    await retransmitUntil(
      a,
      2n,
      b2.until(() => b2.received.length > 0),
    );
    expect(b2.received[0]).toMatchObject({ type: MessageType.MsgHeartbeat, from: 1n });
    await a.until(() => a.logs.some((l) => l.message === 'peer reachable again'));
    // Traffic flows again, in order, without further reports.
    for (let i = 0; i < 100; i++) a.transport.send([app(1n, 2n, i)]);
    await b2.until(() => b2.received.filter((m) => m.type === MessageType.MsgApp).length === 100);
    expect(b2.received.filter((m) => m.type === MessageType.MsgApp).map((m) => m.index)).toEqual(Array.from({ length: 100 }, (_, i) => i));
    expect(a.unreachable).toEqual([2n]);
  });

  it('drops frames from another cluster or for another member, logging the sender', async () => {
    const a = await node(1n, 1n);
    const stranger = await node(7n, 99n);
    const confused = await node(8n, 1n);
    stranger.transport.addPeer(1n, `127.0.0.1:${a.transport.port}`);
    // `confused` believes member 5 lives at a's address.
    confused.transport.addPeer(5n, `127.0.0.1:${a.transport.port}`);
    stranger.transport.send([heartbeat(7n, 1n)]);
    confused.transport.send([heartbeat(8n, 5n)]);
    await a.until(() => a.logs.filter((l) => l.level === 'warn').length >= 2);
    const warns = a.logs.filter((l) => l.level === 'warn');
    expect(warns.map((w) => w.message).sort()).toEqual(['dropping peer frame: addressed to another member', 'dropping peer frame: cluster ID mismatch']);
    expect(warns.find((w) => w.message?.includes('cluster'))!.fields).toMatchObject({ sender: '7', frameClusterId: '63' });
    expect(warns.find((w) => w.message?.includes('member'))!.fields).toMatchObject({ sender: '8', frameTo: '5' });

    expect(a.received).toEqual([]);
  });

  it('rate-limits the warning for a flood of foreign frames', async () => {
    const a = await node(1n, 1n);
    const client = new grpc.Client(`127.0.0.1:${a.transport.port}`, grpc.credentials.createInsecure());
    const call = client.makeClientStreamRequest<Buffer, Buffer>(
      '/metastore.raftpb.Peer/Stream',
      (b) => b,
      (b) => b,
      () => {},
    );
    for (let i = 0; i < 50; i++) call.write(encodePeerFrame({ clusterId: 99n, fromId: 7n, toId: 1n }, [heartbeat(7n, 1n)]));
    // One good frame last on the same stream: once it is delivered, all 50 were handled.
    call.write(encodePeerFrame({ clusterId: 1n, fromId: 7n, toId: 1n }, [heartbeat(7n, 1n, 42)]));
    await a.until(() => a.received.length > 0);
    call.cancel();
    client.close();
    expect(a.received.map((m) => m.commit)).toEqual([42]);
    expect(a.logs.filter((l) => l.level === 'warn').map((l) => l.message)).toEqual(['dropping peer frame: cluster ID mismatch']);
  });

  it('answers a malformed frame with INVALID_ARGUMENT', async () => {
    const a = await node(1n);
    const client = new grpc.Client(`127.0.0.1:${a.transport.port}`, grpc.credentials.createInsecure());
    const status = await new Promise<grpc.ServiceError | null>((resolve) => {
      const call = client.makeClientStreamRequest<Buffer, Buffer>(
        '/metastore.raftpb.Peer/Stream',
        (b) => b,
        (b) => b,
        (error) => resolve(error),
      );
      call.write(Buffer.from([0x0a, 0x03, 0x01, 0x02, 0x03]));
    });
    client.close();
    expect(status?.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(status?.details).toMatch(/truncated/);
    expect(a.received).toEqual([]);
  });

  it('delivers a 20 MiB snapshot intact in chunks while heartbeats keep flowing', async () => {
    const [a, b] = [await node(1n), await node(2n)];
    mesh([a, b]);
    await retransmitUntil(
      a,
      2n,
      b.until(() => b.received.length > 0),
    );
    const data = randomBytes(20 * 1024 * 1024);
    const snap = makeMessage({
      type: MessageType.MsgSnap,
      from: 1n,
      to: 2n,
      term: 3,
      snapshot: { metadata: { index: 5000, term: 3, confState: { voters: [1n, 2n], learners: [9n] } }, data },
    });
    const before = b.received.length;
    let heartbeatsDuringSnapshot = 0;
    let snapshotArrived = false;
    const countHeartbeats = b.until(() => {
      const snapshotMessage = b.received.find((m) => m.type === MessageType.MsgSnap);
      if (snapshotMessage !== undefined && !snapshotArrived) {
        snapshotArrived = true;
        heartbeatsDuringSnapshot = b.received.indexOf(snapshotMessage) - before;
      }
      return snapshotArrived;
    });
    a.transport.send([snap]);
    // Heartbeats every millisecond while the snapshot is in flight.
    await retransmitUntilFast(a, 2n, countHeartbeats);
    await a.until(() => a.snapshotStatus.length > 0);
    expect(a.snapshotStatus).toEqual([{ peer: 2n, ok: true }]);
    const received = b.received.find((m) => m.type === MessageType.MsgSnap)!;
    expect(received.snapshot!.metadata).toEqual(snap.snapshot!.metadata);
    expect(Buffer.from(received.snapshot!.data).equals(data)).toBe(true);
    // Heartbeats kept arriving while the snapshot was on its way, not only after it.
    expect(heartbeatsDuringSnapshot).toBeGreaterThanOrEqual(3);
    const receivedLog = b.logs.find((l) => l.message === 'snapshot received');
    expect(receivedLog?.fields).toMatchObject({ bytes: data.length, chunks: 20 });
  });

  it('reports a failed snapshot send when the peer is down', async () => {
    const a = await node(1n);
    const gone = await node(2n);
    const port = gone.transport.port;
    await gone.transport.close();
    a.transport.addPeer(2n, `127.0.0.1:${port}`);
    a.transport.send([
      makeMessage({
        type: MessageType.MsgSnap,
        from: 1n,
        to: 2n,
        snapshot: { metadata: { index: 1, term: 1, confState: { voters: [1n], learners: [] } }, data: new Uint8Array(10) },
      }),
    ]);
    await a.until(() => a.snapshotStatus.length > 0);
    expect(a.snapshotStatus).toEqual([{ peer: 2n, ok: false }]);
  });

  it("answers a Members call with the member's describeCluster bytes; without one, or refused, it is a PeerCallError", async () => {
    const listing = Buffer.from('{"clusterId":"c1","members":[]}');
    const describing = await new Node(1n).start(0, { describeCluster: () => listing });
    const silent = await node(2n);
    const refusing = await new Node(3n).start(0, { describeCluster: () => listing, authorizePeer: () => 'no certificate' });
    started.push(describing, refusing);
    expect((await askPeerForMembers(`http://127.0.0.1:${describing.transport.port}`, undefined, 5_000)).equals(listing)).toBe(true);
    await expect(askPeerForMembers(`127.0.0.1:${silent.transport.port}`, undefined, 5_000)).rejects.toMatchObject({ code: grpc.status.UNIMPLEMENTED });
    await expect(askPeerForMembers(`127.0.0.1:${refusing.transport.port}`, undefined, 5_000)).rejects.toMatchObject({
      code: grpc.status.PERMISSION_DENIED,
      message: 'peer refused: no certificate',
    });
    const closedPort = silent.transport.port;
    await silent.transport.close();
    await expect(askPeerForMembers(`127.0.0.1:${closedPort}`, undefined, 5_000)).rejects.toBeInstanceOf(PeerCallError);
  });

  it('hears the removed answer of a peer that removed this member (onRemoved, once per stream)', async () => {
    const a = await node(1n);
    const b = await new Node(2n).start(0, { isRemoved: (id) => id === 1n });
    started.push(b);
    mesh([a, b]);
    a.transport.send([heartbeat(1n, 2n)]);
    await a.until(() => a.removedBy.length > 0 && a.unreachable.length > 0);
    expect(a.removedBy[0]).toBe(2n);
    expect(a.unreachable).toEqual([2n]);
    expect(b.received).toEqual([]);
    // The answer is not taken for a removal by a peer that did not remove this member.
    expect(b.removedBy).toEqual([]);
  });

  it('backs off after a refused stream, doubling the delay, with one unreachable report', async () => {
    const a = await node(1n);
    const refusing = await new Node(2n).start(0, { authorizePeer: () => 'no certificate' });
    started.push(refusing);
    a.transport.addPeer(2n, `127.0.0.1:${refusing.transport.port}`);
    await retransmitUntil(
      a,
      2n,
      a.until(() => a.logs.filter((l) => l.message === 'peer stream retry failed').length >= 3),
    );
    expect(a.unreachable).toEqual([2n]);
    const refused = a.logs.find((l) => l.message === 'peer refused this member');
    expect(refused?.fields).toMatchObject({ peer: '2', error: 'peer refused: no certificate' });
    expect(a.logs.find((l) => l.message === 'peer unreachable')?.fields).toMatchObject({ error: 'peer refused: no certificate' });
    const delays = a.logs.filter((l) => l.message === 'peer stream retry failed').map((l) => (l.fields as { retryInMs: number }).retryInMs);
    expect(delays.slice(0, 3)).toEqual([100, 200, 400]);
    expect(refusing.received).toEqual([]);
  });

  it('backs off after a failed stream (a server that is not gRPC), then connects once the peer is back', async () => {
    const a = await node(1n);
    // An HTTP/2 server answering every request with 404, then closed for a real peer on its port.
    const impostor = http2.createServer((_request, response) => {
      response.writeHead(404);
      response.end();
    });
    await new Promise<void>((resolve) => impostor.listen(0, '127.0.0.1', resolve));
    const port = (impostor.address() as import('node:net').AddressInfo).port;
    a.transport.addPeer(2n, `127.0.0.1:${port}`);
    await retransmitUntil(
      a,
      2n,
      a.until(() => a.logs.filter((l) => l.message === 'peer stream retry failed').length >= 2),
    );
    expect(a.unreachable).toEqual([2n]);
    expect(a.logs.find((l) => l.message === 'peer unreachable')?.fields).toMatchObject({ error: 'HTTP status 404' });
    await new Promise<void>((resolve) => impostor.close(() => resolve()));
    const b = await node(2n, 1n, port);
    await retransmitUntil(
      a,
      2n,
      b.until(() => b.received.length > 0),
    );
    await a.until(() => a.logs.some((l) => l.message === 'peer reachable again'));
    expect(a.unreachable).toEqual([2n]);
  });

  it('gives up a connection whose peer stops answering without closing it (keepalive ping, ~15 s)', async () => {
    const a = await node(1n);
    // Accepts the TCP connection and never says a word: no SETTINGS, no PING answer.
    const sockets: import('node:net').Socket[] = [];
    const silent = net.createServer((socket) => {
      sockets.push(socket);
      socket.on('error', () => {});
    });
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    try {
      a.transport.addPeer(2n, `127.0.0.1:${(silent.address() as import('node:net').AddressInfo).port}`);
      a.transport.send([heartbeat(1n, 2n)]);
      await a.until(() => a.unreachable.length > 0);
      expect(a.unreachable).toEqual([2n]);
      expect(a.logs.find((l) => l.message === 'peer unreachable')?.fields).toMatchObject({ error: expect.stringMatching(/keepalive ping not answered/) });
    } finally {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => silent.close(() => resolve()));
    }
  });

  it('serves every listen address (a unix socket too), answers PINGs, and refuses a frame over the size limit from its prefix', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'peer-'));
    const socketPath = join(dir, 'peer.sock');
    const listing = Buffer.from('{"members":[]}');
    const a = await new Node(1n).start(0, {
      describeCluster: () => listing,
      alsoListen: [
        { host: '127.0.0.1', port: 0 },
        { host: 'localhost', port: 0, socketPath },
      ],
    });
    started.push(a);
    try {
      expect(a.transport.ports).toHaveLength(3);
      for (const target of [`127.0.0.1:${a.transport.ports[1]}`, `unix:${socketPath}`]) {
        expect((await askPeerForMembers(target, undefined, 5_000)).equals(listing)).toBe(true);
      }
      const session = http2.connect(`http://127.0.0.1:${a.transport.ports[1]}`);
      try {
        // A peer's keepalive PING is answered.
        await new Promise<void>((resolve) => session.once('connect', () => resolve()));
        await new Promise<void>((resolve, reject) => session.ping((error) => (error ? reject(error) : resolve())));
        const stream = session.request({ ':method': 'POST', ':path': '/metastore.raftpb.Peer/Stream', 'content-type': 'application/grpc', te: 'trailers' });
        const prefix = Buffer.alloc(5);
        prefix.writeUInt32BE(65 * 1024 * 1024 + 1, 1);
        stream.write(prefix);
        const trailers = await new Promise<http2.IncomingHttpHeaders>((resolve) => {
          stream.on('response', (headers) => {
            if (headers['grpc-status'] !== undefined) resolve(headers);
          });
          stream.on('trailers', resolve);
        });
        stream.close();
        expect(trailers['grpc-status']).toBe(String(grpc.status.RESOURCE_EXHAUSTED));
        expect(decodeURIComponent(String(trailers['grpc-message']))).toMatch(/^Received message larger than max \(68157441 vs \d+\)$/);
      } finally {
        session.destroy();
      }
    } finally {
      await a.transport.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  describe('with peer TLS', () => {
    let pki: TestPki;
    const tlsSetups: PeerPortTls[] = [];
    const tlsConfig = (pair: { cert: string; key: string }, allowedCn = ''): PeerTlsConfig => ({
      enabled: true,
      certFile: pair.cert,
      keyFile: pair.key,
      caFile: pki.ca.cert,
      clientCertAuth: true,
      autoTls: false,
      crlFile: '',
      cipherSuites: [],
      minVersion: 'TLS1.2',
      allowedCn,
    });
    async function tlsNode(id: bigint, config: PeerTlsConfig): Promise<Node> {
      const setup = peerPortTls(config, { dataDir: pki.dir, hosts: ['127.0.0.1'] })!;
      tlsSetups.push(setup);
      const n = await new Node(id).start(0, { credentials: setup.credentials, authorizePeer: (call) => setup.authorizePeer(call) });
      started.push(n);
      return n;
    }

    beforeAll(() => {
      pki = makeTestPki();
    });
    afterAll(() => {
      for (const setup of tlsSetups.splice(0)) setup.close();
      pki.remove();
    });

    it('delivers both ways between members with certificates of the peer CA', async () => {
      const a = await tlsNode(1n, tlsConfig(pki.issue('a', { cn: 'member' }), 'member'));
      const b = await tlsNode(2n, tlsConfig(pki.issue('b', { cn: 'member' }), 'member'));
      mesh([a, b]);
      await retransmitUntil(
        a,
        2n,
        b.until(() => b.received.length > 0),
      );
      await retransmitUntil(
        b,
        1n,
        a.until(() => a.received.length > 0),
      );
      for (let i = 0; i < 100; i++) a.transport.send([app(1n, 2n, i)]);
      await b.until(() => b.received.filter((m) => m.type === MessageType.MsgApp).length === 100);
      expect(a.unreachable).toEqual([]);
      expect(b.unreachable).toEqual([]);
    });

    it('refuses a sender with another CN: PERMISSION_DENIED, logged with its address and CN', async () => {
      const a = await tlsNode(1n, tlsConfig(pki.issue('a3', { cn: 'member' }), 'member'));
      const intruder = await tlsNode(2n, tlsConfig(pki.issue('i', { cn: 'intruder' })));
      intruder.transport.addPeer(1n, `127.0.0.1:${a.transport.port}`);
      await retransmitUntil(
        intruder,
        1n,
        intruder.until(() => intruder.logs.some((l) => l.message === 'peer refused this member')),
      );
      const refusal = a.logs.find((l) => l.message === 'refused peer connection: TLS verification failed');
      expect(refusal?.fields).toMatchObject({
        remote: expect.stringMatching(/^127\.0\.0\.1:\d+$/),
        certificateCn: 'intruder',
        reason: 'peer certificate CN "intruder" is not the allowed CN "member"',
      });
      expect(intruder.logs.find((l) => l.message === 'peer refused this member')?.fields).toMatchObject({
        error: 'peer refused: peer certificate CN "intruder" is not the allowed CN "member"',
      });
      expect(a.received).toEqual([]);
    });

    it('close() cuts a TLS handshake in progress and the open calls', async () => {
      const a = await tlsNode(1n, tlsConfig(pki.issue('a4', { cn: 'member' }), 'member'));
      const b = await tlsNode(2n, tlsConfig(pki.issue('b4', { cn: 'member' }), 'member'));
      mesh([a, b]);
      await retransmitUntil(
        b,
        1n,
        a.until(() => a.received.length > 0),
      );
      // A client that connects and never starts its handshake.
      const silent = net.connect(a.transport.port, '127.0.0.1');
      const silentClosed = new Promise<void>((resolve) => silent.on('close', () => resolve()));
      silent.on('error', () => {});
      await new Promise<void>((resolve) => silent.on('connect', () => resolve()));
      await a.transport.close();
      await silentClosed;
      // b's stream to a was cut: b sees its peer unreachable.
      await retransmitUntil(
        b,
        1n,
        b.until(() => b.unreachable.includes(1n)),
      );
    });

    it("refuses a peer server whose certificate is another CA's or has another CN, and is refused by it", async () => {
      const a = await tlsNode(1n, tlsConfig(pki.issue('a2', { cn: 'member' }), 'member'));
      const stranger = await tlsNode(2n, { ...tlsConfig(pki.issue('s', { cn: 'member', by: 'otherCa' })), caFile: pki.otherCa.cert });
      const wrongCn = await tlsNode(3n, tlsConfig(pki.issue('w', { cn: 'intruder' })));
      mesh([a, stranger, wrongCn]);
      a.transport.send([heartbeat(1n, 2n), heartbeat(1n, 3n)]);
      await a.until(() => a.unreachable.length === 2);
      const errors = a.logs.filter((l) => l.message === 'peer unreachable').map((l) => l.fields as { peer: string; error: string });
      // The server checks of this member's own client: the chain, then the allowed CN.
      expect(errors.find((e) => e.peer === '2')?.error).toMatch(/certificate/i);
      expect(errors.find((e) => e.peer === '3')?.error).toMatch(/is not the allowed CN/);
      // The other direction: a's server refuses both senders' calls.
      stranger.transport.send([heartbeat(2n, 1n)]);
      wrongCn.transport.send([heartbeat(3n, 1n)]);
      await stranger.until(() => stranger.unreachable.length > 0);
      await wrongCn.until(() => wrongCn.logs.some((l) => l.message === 'peer refused this member'));
      expect(a.received).toEqual([]);
      expect(stranger.received).toEqual([]);
      expect(wrongCn.received).toEqual([]);
    });
  });

  it('does nothing after close', async () => {
    const [a, b] = [await node(1n), await node(2n)];
    mesh([a, b]);
    await retransmitUntil(
      a,
      2n,
      b.until(() => b.received.length > 0),
    );
    await a.transport.close();
    a.transport.send([heartbeat(1n, 2n)]);
    await a.transport.close();
    expect(a.unreachable).toEqual([]);
  });

  it('lets the process exit after close (no open handles)', async () => {
    const fixture = fileURLToPath(new URL('../../test/transport/close-exit.fixture.ts', import.meta.url));
    const child = spawn(process.execPath, ['--import', 'tsx', fixture], { stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    // 'close': exited and its output drained.
    const exited = new Promise<number | null>((resolve) => child.on('close', (c) => resolve(c)));
    let code: number | null;
    try {
      code = await within(exited, { what: 'the fixture to exit by itself after close', timeoutMs: 20_000 });
    } finally {
      child.kill('SIGKILL');
    }
    expect(output).toContain('closed');
    expect(code).toBe(0);
  });
});

async function retransmitUntilFast(sender: Node, to: bigint, done: Promise<void>): Promise<void> {
  const timer = setInterval(() => sender.transport.send([heartbeat(sender.id, to)]), 1);
  try {
    await done;
  } finally {
    clearInterval(timer);
  }
}
