// Raft core benchmark: commits per second and p50/p99 commit latency of a 3-node cluster in
// one process, with MemoryStorage and with the LevelDB RaftLogStore (temp dirs, synced
// writes). The loop plays the node loop of src/server: each turn every node handles one
// Ready (persist, send, apply, advance), then messages are delivered. A closed-loop client
// keeps `concurrency` proposals outstanding on the leader; latency is propose -> applied on
// the leader.
//
//   node --import tsx bench/raft/raft-bench.ts [--append]    (--append writes bench/RESULTS.md)
//
// Estimate before measuring: with MemoryStorage the cost is a few object allocations and Map
// operations per entry per node (~1-3 µs), so one core should commit a few 100k entries/s
// at high concurrency and ~20-50k/s one at a time (several Ready turns per commit). With
// synced LevelDB each commit round needs the leader's fsync and then a follower's fsync in
// series, so throughput ≈ batch / (2 × fsync) and latency ≈ 2 × fsync.

import { mkdtempSync, rmSync, appendFileSync, readFileSync } from 'node:fs';
import { tmpdir, cpus } from 'node:os';
import { join } from 'node:path';
import { execSync } from 'node:child_process';
import { ClassicLevel } from 'classic-level';
import { RawNode } from '../../src/raft/raw-node.js';
import { MemoryStorage, type Storage } from '../../src/raft/storage.js';
import { RaftLogStore } from '../../src/storage/raft-log-store.js';
import { EntryType, type Entry, type HardState, type Message, type Snapshot } from '../../src/raft/types.js';
import { SeededRandom } from '../../src/util/random.js';

interface Persister {
  storage: Storage;
  persist(hs: HardState | undefined, ents: Entry[], snap: Snapshot | undefined, sync: boolean): Promise<void> | void;
  close(): Promise<void>;
}

function memoryPersister(): Persister {
  const m = new MemoryStorage();
  return {
    storage: m,
    persist(hs, ents, snap) {
      if (snap) m.applySnapshot(snap);
      m.append(ents);
      if (hs) m.setHardState(hs);
    },
    async close() {},
  };
}

async function levelPersister(): Promise<Persister> {
  const dir = mkdtempSync(join(tmpdir(), 'raft-bench-'));
  const db = new ClassicLevel<Buffer, Buffer>(dir, { keyEncoding: 'buffer', valueEncoding: 'buffer' });
  await db.open();
  const store = await RaftLogStore.open(db, 0x03);
  return {
    storage: store,
    persist(hs, ents, snap, sync) {
      return store.save(hs, ents, snap, { sync });
    },
    async close() {
      await db.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

interface Result {
  storage: string;
  concurrency: number;
  commits: number;
  seconds: number;
  perSecond: number;
  p50Ms: number;
  p99Ms: number;
}

async function run(kind: 'memory' | 'leveldb', concurrency: number, total: number, payloadBytes: number): Promise<Result> {
  const ids = [1n, 2n, 3n];
  const persisters = new Map<bigint, Persister>();
  const nodes = new Map<bigint, RawNode>();
  for (const id of ids) {
    const p = kind === 'memory' ? memoryPersister() : await levelPersister();
    persisters.set(id, p);
    nodes.set(
      id,
      new RawNode({
        id,
        electionTick: 10,
        heartbeatTick: 1,
        storage: p.storage,
        random: new SeededRandom(Number(id)),
        peers: ids,
        maxInflightMsgs: 256,
        maxSizePerMsg: 1 << 20,
      }),
    );
  }
  const leader = nodes.get(1n) as RawNode;
  let inbox: Message[] = [];
  const startTimes = new Map<number, number>();
  const latencies: number[] = [];
  let nextReq = 0;
  let outstanding = 0;
  let committed = 0;
  let started = -1;
  const payload = new Uint8Array(payloadBytes);

  const turn = async (): Promise<void> => {
    // Persist every node's Ready in parallel (they are separate machines), then send/apply.
    const readies = [];
    for (const [id, n] of nodes) if (n.hasReady()) readies.push({ id, n, rd: n.ready() });
    await Promise.all(readies.map(({ id, rd }) => persisters.get(id)!.persist(rd.hardState, rd.entries, rd.snapshot, rd.mustSync)));
    const now = performance.now();
    for (const { id, n, rd } of readies) {
      for (const m of rd.messages) inbox.push(m);
      if (id === 1n && started >= 0) {
        for (const e of rd.committedEntries) {
          if (e.type !== EntryType.Normal || e.data.length < 4) continue;
          const req = new DataView(e.data.buffer, e.data.byteOffset).getUint32(0);
          const t0 = startTimes.get(req);
          if (t0 === undefined) continue;
          startTimes.delete(req);
          latencies.push(now - t0);
          committed++;
          outstanding--;
        }
      }
      n.advance();
    }
    const msgs = inbox;
    inbox = [];
    for (const m of msgs) nodes.get(m.to)!.step(m);
  };

  // Apply the bootstrap configuration first: a node does not campaign with it unapplied.
  for (let i = 0; i < 3; i++) await turn();
  leader.campaign();
  for (let i = 0; i < 20; i++) await turn();
  if (!leader.isLeader) throw new Error('no leader');
  started = performance.now();
  while (committed < total) {
    const batch: Uint8Array[] = [];
    const now = performance.now();
    while (outstanding < concurrency && nextReq < total) {
      const data = payload.slice();
      new DataView(data.buffer).setUint32(0, nextReq);
      startTimes.set(nextReq, now);
      nextReq++;
      outstanding++;
      batch.push(data);
    }
    if (batch.length > 0) leader.proposeBatch(batch);
    await turn();
  }
  const seconds = (performance.now() - started) / 1000;
  for (const p of persisters.values()) await p.close();
  latencies.sort((a, b) => a - b);
  const q = (f: number): number => latencies[Math.min(latencies.length - 1, Math.floor(f * latencies.length))] ?? NaN;
  return { storage: kind, concurrency, commits: committed, seconds, perSecond: committed / seconds, p50Ms: q(0.5), p99Ms: q(0.99) };
}

async function main(): Promise<void> {
  const cases: Array<['memory' | 'leveldb', number, number]> = [
    ['memory', 1, 20_000],
    ['memory', 64, 200_000],
    ['memory', 1024, 400_000],
    ['leveldb', 1, 1_000],
    ['leveldb', 64, 20_000],
    ['leveldb', 1024, 100_000],
  ];
  const rows: string[] = [];
  for (const [kind, conc, total] of cases) {
    const r = await run(kind, conc, total, 256);
    const row = `| ${r.storage} | ${r.concurrency} | ${r.commits} | ${r.seconds.toFixed(2)} | ${Math.round(r.perSecond).toLocaleString('en-US')} | ${r.p50Ms.toFixed(3)} | ${r.p99Ms.toFixed(3)} |`;
    console.log(row);
    rows.push(row);
  }
  if (process.argv.includes('--append')) {
    const cpuModel = /model name\s*:\s*(.*)/.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1] ?? cpus()[0]?.model ?? 'unknown';
    const nproc = execSync('nproc').toString().trim();
    const section = [
      '',
      '## Raft core',
      '',
      `- date: ${new Date().toISOString()}`,
      `- machine: nproc ${nproc}, ${cpuModel}, Node ${process.version}`,
      '- command: `node --import tsx bench/raft/raft-bench.ts --append`',
      "- setup: 3 nodes in one process, one Ready per node per turn, 256-byte proposals, closed loop with `concurrency` outstanding proposals on the leader; latency = propose to applied on the leader. LevelDB: RaftLogStore in temp dirs, synced writes when Ready.mustSync, the three nodes' writes in parallel.",
      '- estimate beforehand: memory a few 100k/s at high concurrency; LevelDB ≈ batch / (2 × fsync).',
      '',
      '| storage | concurrency | commits | seconds | commits/s | p50 ms | p99 ms |',
      '|---|---|---|---|---|---|---|',
      ...rows,
      '',
    ].join('\n');
    appendFileSync(new URL('../RESULTS.md', import.meta.url), section);
  }
}

await main();
