// Deterministic cluster simulator for the Raft core. One seed determines everything: cluster
// size, network faults (drop, delay, duplicate, reorder, partitions), crashes and restarts,
// membership changes, leader transfers and the client workload. Time is a tick counter; the
// nodes are driven exactly by the Ready contract, and a crash loses every write that was not
// synced (a node's "disk" keeps only what a synced Ready flushed).
//
// Checkers (any violation throws SimFailure naming the seed):
//  - election safety: at most one leader per term;
//  - log matching: equal (index, term) means equal entries and equal prefixes;
//  - leader completeness: a new leader holds every entry anyone has applied;
//  - state machine safety: every node applies the same entry at each index, in index order;
//  - linearizability of the client history (puts through the log; gets through the log or
//    through ReadIndex) against a key-value register model;
//  - liveness: once faults heal, a proposal commits on every member within a tick bound.

import { RawNode } from '../../src/raft/raw-node.js';
import { MemoryStorage, type Storage } from '../../src/raft/storage.js';
import { ProposalDroppedError } from '../../src/raft/raft.js';
import {
  ConfChangeType,
  EntryType,
  MessageType,
  StateRole,
  decodeConfChange,
  type ConfState,
  type Entry,
  type HardState,
  type Message,
  type Ready,
  type Snapshot,
} from '../../src/raft/types.js';
import { SeededRandom } from '../../src/util/random.js';
import { checkLinearizable, type KvOp } from './linearizability.js';

export class SimFailure extends Error {}

export interface SimOptions {
  seed: number;
  faultTicks?: number;
  livenessTicks?: number;
  verbose?: boolean;
}

export interface SimStats {
  seed: number;
  nodes: number;
  ticks: number;
  committed: number;
  elections: number;
  crashes: number;
  confChanges: number;
  transfers: number;
  snapshotsSent: number;
  ops: number;
  opsAcked: number;
}

const ELECTION_TICK = 10;
const HEARTBEAT_TICK = 2;
const SNAPSHOT_EVERY = 40;
const KEEP_AFTER_SNAPSHOT = 5;
const CLIENT_TIMEOUT_TICKS = 80;
const KEYS = ['a', 'b', 'c', 'd', 'e', 'f'];
const enc = new TextEncoder();
const dec = new TextDecoder();

interface Command {
  op: 'put' | 'get';
  key: string;
  value?: string;
  req: string;
}

/** Application state: the KV map and the request IDs already applied (applying is
 *  idempotent per request, so a duplicated proposal cannot write twice). */
interface AppState {
  kv: Map<string, string>;
  seen: Set<string>;
}

function encodeState(s: AppState): Uint8Array {
  return enc.encode(JSON.stringify({ kv: [...s.kv], seen: [...s.seen] }));
}

function decodeState(b: Uint8Array): AppState {
  if (b.length === 0) return { kv: new Map(), seen: new Set() };
  const o = JSON.parse(dec.decode(b)) as { kv: [string, string][]; seen: string[] };
  return { kv: new Map(o.kv), seen: new Set(o.seen) };
}

/** What survives a crash: only synced writes. Unsynced ones wait in `pending`. */
interface Disk {
  hardState: HardState;
  snapshot: Snapshot | undefined;
  entries: Entry[];
  compactedTo: number;
  pending: Array<{ hs?: HardState; entries: Entry[] }>;
}

interface PendingOp {
  op: KvOp;
  cmd: Command;
  node: bigint;
  deadline: number;
  viaReadIndex: boolean;
  readIndex?: number;
}

interface SimNode {
  id: bigint;
  founding: boolean;
  raw: RawNode;
  mem: MemoryStorage;
  disk: Disk;
  alive: boolean;
  removed: boolean;
  retiring: boolean;
  app: AppState;
  lastApplied: number;
  confState: ConfState;
  waiters: Map<string, PendingOp>;
  reads: PendingOp[];
  pendingReady: { rd: Ready; dueRound: number } | undefined;
}

interface InFlight {
  at: number;
  seq: number;
  m: Message;
}

function cloneMessage(m: Message): Message {
  // Simulates serialization: the receiver must never share mutable objects with the sender.
  return { ...m, entries: m.entries.map((e) => ({ ...e })) };
}

export class Simulation {
  readonly rnd: SeededRandom;
  readonly seed: number;
  readonly nodes = new Map<bigint, SimNode>();
  private readonly initialPeers: bigint[];
  private nextId: bigint;
  now = 0;
  private clock = 0; // history clock: strictly increasing event counter
  private seq = 0;
  private flight: InFlight[] = [];
  private blocked = new Set<string>();
  private dropRate = 0;
  private dupRate = 0;
  private maxDelay = 2;
  private readonly leaders = new Map<number, bigint>();
  private readonly appliedAt = new Map<number, string>();
  private readonly history: KvOp[] = [];
  private readonly clientBusy: Array<PendingOp | undefined>;
  private opCounter = 0;
  private readonly verbose: boolean;
  private readonly faultPercent: number;
  private readonly preVote: boolean;
  private readonly checkQuorum: boolean;
  private readonly maxSizePerMsg: number;
  private readonly asyncPersist: boolean;
  private round = 0;
  readonly stats: SimStats;

  constructor(opts: SimOptions) {
    this.seed = opts.seed;
    this.rnd = new SeededRandom(opts.seed);
    this.verbose = opts.verbose ?? false;
    const n = this.rnd.int(2) === 0 ? 3 : 5;
    this.initialPeers = Array.from({ length: n }, (_, i) => BigInt(i + 1));
    this.nextId = BigInt(n + 1);
    this.clientBusy = new Array<PendingOp | undefined>(5).fill(undefined);
    // Seeds differ in how hostile the world is: calm ones exercise steady replication, harsh
    // ones churn leaders fast enough to reach the rare interleavings.
    this.faultPercent = [2, 5, 10][this.rnd.int(3)] as number;
    // Half the seeds run the defaults (pre-vote and check-quorum on); the rest mix them off.
    const mode = this.rnd.int(6);
    this.preVote = mode < 3 || mode === 4;
    this.checkQuorum = mode < 3 || mode === 5;
    // Tiny messages split batches (one entry per MsgApp), reaching interleavings where an old
    // leader's entry and a new leader's no-op travel separately (Raft paper figure 8).
    this.maxSizePerMsg = this.rnd.int(2) === 0 ? 1 : 4096;
    this.asyncPersist = this.rnd.int(2) === 0;
    for (const id of this.initialPeers) this.startNode(id, true, emptyDisk());
    this.stats = {
      seed: opts.seed,
      nodes: n,
      ticks: 0,
      committed: 0,
      elections: 0,
      crashes: 0,
      confChanges: 0,
      transfers: 0,
      snapshotsSent: 0,
      ops: 0,
      opsAcked: 0,
    };
  }

  private log(s: string): void {
    if (this.verbose) console.log(`[t${this.now}] ${s}`);
  }

  fail(what: string): never {
    throw new SimFailure(`seed ${this.seed} tick ${this.now}: ${what}`);
  }

  // ---- nodes ---------------------------------------------------------------------------

  private startNode(id: bigint, founding: boolean, disk: Disk): SimNode {
    const mem = new MemoryStorage();
    let app: AppState = { kv: new Map(), seen: new Set() };
    let applied = 0;
    if (disk.snapshot !== undefined) {
      mem.applySnapshot(disk.snapshot);
      app = decodeState(disk.snapshot.data);
      applied = disk.snapshot.metadata.index;
    }
    // Entries the snapshot covers are dropped; the rest continue right after it.
    const base = disk.snapshot?.metadata.index ?? 0;
    mem.append(disk.entries.filter((e) => e.index > base));
    mem.setHardState(disk.hardState);
    const raw = new RawNode({
      id,
      electionTick: ELECTION_TICK,
      heartbeatTick: HEARTBEAT_TICK,
      storage: mem as Storage,
      random: new SeededRandom(this.rnd.int(2 ** 31)),
      applied,
      peers: founding ? this.initialPeers : [],
      maxSizePerMsg: this.maxSizePerMsg,
      maxInflightMsgs: 16,
      preVote: this.preVote,
      checkQuorum: this.checkQuorum,
    });
    const node: SimNode = {
      id,
      founding,
      raw,
      mem,
      disk,
      alive: true,
      removed: false,
      retiring: this.nodes.get(id)?.retiring ?? false,
      app,
      lastApplied: applied,
      confState: disk.snapshot?.metadata.confState ?? { voters: [], learners: [] },
      waiters: new Map(),
      reads: [],
      pendingReady: undefined,
    };
    this.nodes.set(id, node);
    return node;
  }

  private crash(n: SimNode): void {
    this.log(`crash ${n.id}`);
    this.stats.crashes++;
    n.alive = false;
    // Unsynced writes may or may not have reached the disk: keep a random prefix of them.
    n.disk.pending = n.disk.pending.slice(0, this.rnd.int(n.disk.pending.length + 1));
    this.flushDisk(n);
    for (const w of n.waiters.values()) this.abandon(w);
    for (const r of n.reads) this.abandon(r);
    n.waiters.clear();
    n.reads = [];
  }

  private restart(n: SimNode): void {
    this.log(`restart ${n.id}`);
    const disk = n.disk;
    this.startNode(n.id, n.founding, { ...disk, entries: disk.entries.slice(), pending: [] });
  }

  // ---- network -------------------------------------------------------------------------

  private send(m: Message): void {
    // Snapshots are never silently lost: like a real transport, delivery failure is reported
    // back to the leader (see deliverDue), or its progress would wait in Snapshot forever.
    if (m.type !== MessageType.MsgSnap && this.rnd.float() < this.dropRate) return;
    const copies = this.rnd.float() < this.dupRate ? 2 : 1;
    for (let i = 0; i < copies; i++) {
      this.flight.push({ at: this.now + this.rnd.int(this.maxDelay + 1), seq: this.seq++, m: cloneMessage(m) });
    }
  }

  private linkBlocked(a: bigint, b: bigint): boolean {
    return this.blocked.has(`${a}-${b}`);
  }

  private deliverDue(): number {
    if (this.flight.length === 0) return 0;
    const due: InFlight[] = [];
    const later: InFlight[] = [];
    for (const f of this.flight) (f.at <= this.now ? due : later).push(f);
    this.flight = later;
    due.sort((x, y) => x.at - y.at || x.seq - y.seq);
    for (const { m } of due) {
      const to = this.nodes.get(m.to);
      const ok = to?.alive === true && !to.removed && !this.linkBlocked(m.from, m.to);
      if (ok) to.raw.step(m);
      const from = this.nodes.get(m.from);
      if (from === undefined || !from.alive || from.removed) continue;
      if (m.type === MessageType.MsgSnap) from.raw.reportSnapshot(m.to, ok);
      // A transport notices some failed sends (a broken connection), not all of them.
      else if (!ok && m.type === MessageType.MsgApp && this.rnd.int(4) === 0) from.raw.reportUnreachable(m.to);
    }
    return due.length;
  }

  private partitionRandom(): void {
    const ids = [...this.nodes.keys()];
    const side = new Set<bigint>();
    for (const id of ids) if (this.rnd.int(2) === 0) side.add(id);
    this.blocked.clear();
    for (const a of ids) for (const b of ids) if (side.has(a) !== side.has(b)) this.blocked.add(`${a}-${b}`);
    this.log(`partition {${[...side].join(',')}} | rest`);
  }

  // ---- Ready handling ------------------------------------------------------------------

  /** Takes (or finishes) one Ready. With asynchronous persistence the write "takes" a few
   *  rounds, during which the node keeps stepping messages, as a real node loop does while
   *  LevelDB syncs; a crash in between loses the Ready entirely. */
  private handleReady(n: SimNode): boolean {
    if (!n.alive || n.removed) return false;
    if (n.pendingReady !== undefined) {
      if (this.round < n.pendingReady.dueRound) return true;
      const rd = n.pendingReady.rd;
      n.pendingReady = undefined;
      this.finishReady(n, rd);
      return true;
    }
    if (!n.raw.hasReady()) return false;
    const rd = n.raw.ready();
    if (this.asyncPersist && this.rnd.int(2) === 0) {
      n.pendingReady = { rd, dueRound: this.round + 1 + this.rnd.int(3) };
      return true;
    }
    this.finishReady(n, rd);
    return true;
  }

  private finishReady(n: SimNode, rd: Ready): void {
    // 1. persist
    if (rd.snapshot !== undefined) {
      n.mem.applySnapshot(rd.snapshot);
      this.flushDisk(n);
      n.disk.snapshot = rd.snapshot;
      n.disk.entries = [];
      n.disk.compactedTo = rd.snapshot.metadata.index;
      n.app = decodeState(rd.snapshot.data);
      n.lastApplied = rd.snapshot.metadata.index;
      n.confState = rd.snapshot.metadata.confState;
      this.stats.snapshotsSent++;
    }
    n.mem.append(rd.entries);
    if (rd.hardState !== undefined) n.mem.setHardState(rd.hardState);
    const write: { hs?: HardState; entries: Entry[] } = { entries: rd.entries };
    if (rd.hardState !== undefined) write.hs = rd.hardState;
    n.disk.pending.push(write);
    if (rd.mustSync || rd.snapshot !== undefined) this.flushDisk(n);
    // 2. send. Like etcd's server, a snapshot goes out as a fresh one of the current applied
    // state: the stored one may predate the recipient's own admission to the cluster.
    for (const m of rd.messages) {
      if (m.type === MessageType.MsgSnap && n.lastApplied > n.mem.snapshot().metadata.index) {
        this.takeSnapshot(n);
        m.snapshot = n.mem.snapshot();
      }
      this.send(m);
    }
    // 3. apply
    for (const e of rd.committedEntries) this.apply(n, e);
    for (const rs of rd.readStates) {
      const key = dec.decode(rs.requestCtx);
      const w = n.reads.find((r) => r.cmd.req === key);
      if (w !== undefined) w.readIndex = rs.index;
    }
    n.raw.advance();
    this.serveReads(n);
    if (n.raw.raft.removed) {
      this.log(`node ${n.id} applied its removal and stops`);
      n.removed = true;
    }
    this.maybeSnapshot(n);
    // Safety checks that are cheap enough to run on every Ready.
    if (n.raw.raft.state === StateRole.Leader) this.checkLeader(n);
  }

  private flushDisk(n: SimNode): void {
    for (const w of n.disk.pending) {
      if (w.hs !== undefined) n.disk.hardState = w.hs;
      if (w.entries.length > 0) {
        const first = (w.entries[0] as Entry).index;
        // Drop a conflicting suffix, then append.
        let keep = n.disk.entries.length;
        while (keep > 0 && (n.disk.entries[keep - 1] as Entry).index >= first) keep--;
        n.disk.entries.length = keep;
        for (const e of w.entries) if (e.index > n.disk.compactedTo) n.disk.entries.push(e);
      }
    }
    n.disk.pending = [];
  }

  private maybeSnapshot(n: SimNode): void {
    const snapIndex = n.mem.snapshot().metadata.index;
    if (n.lastApplied - snapIndex < SNAPSHOT_EVERY) return;
    this.takeSnapshot(n);
  }

  private takeSnapshot(n: SimNode): void {
    const snap = n.mem.createSnapshot(n.lastApplied, n.confState, encodeState(n.app));
    const compactTo = n.lastApplied - KEEP_AFTER_SNAPSHOT;
    if (compactTo > n.mem.firstIndex()) n.mem.compact(compactTo);
    // Snapshot and compaction are synced writes (flushing anything pending first).
    this.flushDisk(n);
    n.disk.snapshot = snap;
    if (compactTo > n.disk.compactedTo) {
      n.disk.entries = n.disk.entries.filter((e) => e.index > compactTo);
      n.disk.compactedTo = compactTo;
    }
  }

  private apply(n: SimNode, e: Entry): void {
    if (e.index !== n.lastApplied + 1) this.fail(`node ${n.id} applied index ${e.index} after ${n.lastApplied}`);
    n.lastApplied = e.index;
    const digest = `${e.term}:${e.type}:${dec.decode(e.data)}`;
    const prev = this.appliedAt.get(e.index);
    if (prev === undefined) {
      this.appliedAt.set(e.index, digest);
      this.stats.committed = Math.max(this.stats.committed, e.index);
    } else if (prev !== digest) {
      this.fail(`state machine safety: node ${n.id} applied ${digest} at ${e.index}, another node applied ${prev}`);
    }
    if (e.type === EntryType.ConfChange) {
      const cc = decodeConfChange(e.data);
      n.confState = n.raw.applyConfChange(cc);
      return;
    }
    if (e.data.length === 0) return;
    const cmd = JSON.parse(dec.decode(e.data)) as Command;
    let result: string | null = null;
    if (!n.app.seen.has(cmd.req)) {
      n.app.seen.add(cmd.req);
      if (cmd.op === 'put') n.app.kv.set(cmd.key, cmd.value as string);
    }
    result = n.app.kv.get(cmd.key) ?? null;
    const w = n.waiters.get(cmd.req);
    if (w !== undefined) {
      n.waiters.delete(cmd.req);
      if (w.cmd.op === 'get') w.op.value = result;
      this.complete(w);
    }
  }

  private serveReads(n: SimNode): void {
    if (n.reads.length === 0) return;
    const rest: PendingOp[] = [];
    for (const r of n.reads) {
      if (r.readIndex !== undefined && n.lastApplied >= r.readIndex) {
        r.op.value = n.app.kv.get(r.cmd.key) ?? null;
        this.complete(r);
      } else {
        rest.push(r);
      }
    }
    n.reads = rest;
  }

  // ---- checkers ------------------------------------------------------------------------

  private checkLeader(n: SimNode): void {
    const term = n.raw.raft.term;
    const known = this.leaders.get(term);
    if (known === undefined) {
      this.leaders.set(term, n.id);
      this.stats.elections++;
      this.log(`leader ${n.id} term ${term}`);
      this.checkLeaderCompleteness(n);
    } else if (known !== n.id) {
      this.fail(`election safety: leaders ${known} and ${n.id} in term ${term}`);
    }
  }

  private checkLeaderCompleteness(n: SimNode): void {
    const log = n.raw.raft.raftLog;
    const first = log.firstIndex();
    const last = log.lastIndex();
    for (const [index, digest] of this.appliedAt) {
      if (index < first) continue;
      if (index > last) this.fail(`leader completeness: leader ${n.id} lacks applied index ${index} (last ${last})`);
      const t = log.term(index);
      if (t === undefined || !digest.startsWith(`${t}:`)) this.fail(`leader completeness: leader ${n.id} has term ${t} at ${index}, applied ${digest}`);
    }
  }

  checkLogMatching(): void {
    const logs: Array<{ id: bigint; first: number; ents: Entry[] }> = [];
    for (const n of this.nodes.values()) {
      if (!n.alive || n.removed) continue;
      const log = n.raw.raft.raftLog;
      const ents = log.slice(log.firstIndex(), log.lastIndex() + 1, Number.MAX_SAFE_INTEGER) ?? [];
      logs.push({ id: n.id, first: log.firstIndex(), ents });
    }
    for (let i = 0; i < logs.length; i++) {
      for (let j = i + 1; j < logs.length; j++) {
        const a = logs[i]!;
        const b = logs[j]!;
        const lo = Math.max(a.first, b.first);
        const hi = Math.min(a.first + a.ents.length - 1, b.first + b.ents.length - 1);
        // Find the highest index where the terms agree; everything at or below must be equal.
        let top = -1;
        for (let k = hi; k >= lo; k--) {
          if (a.ents[k - a.first]!.term === b.ents[k - b.first]!.term) {
            top = k;
            break;
          }
        }
        for (let k = lo; k <= top; k++) {
          const x = a.ents[k - a.first]!;
          const y = b.ents[k - b.first]!;
          if (x.term !== y.term || x.type !== y.type || dec.decode(x.data) !== dec.decode(y.data)) {
            this.fail(`log matching: nodes ${a.id} and ${b.id} agree at ${top} but differ at ${k}`);
          }
        }
      }
    }
  }

  // ---- clients -------------------------------------------------------------------------

  private pickNode(): SimNode | undefined {
    const live = [...this.nodes.values()].filter((n) => n.alive && !n.removed);
    if (live.length === 0) return undefined;
    return live[this.rnd.int(live.length)];
  }

  private clientStep(c: number): void {
    const busy = this.clientBusy[c];
    if (busy !== undefined) {
      if (this.now >= busy.deadline) this.abandon(busy);
      return;
    }
    if (this.rnd.float() > 0.3) return;
    const n = this.pickNode();
    if (n === undefined) return;
    const roll = this.rnd.int(10);
    const key = KEYS[this.rnd.int(KEYS.length)] as string;
    const req = `${this.seed}-${this.opCounter++}`;
    const kind: 'put' | 'get' = roll < 6 ? 'put' : 'get';
    const cmd: Command = kind === 'put' ? { op: 'put', key, value: `v${req}`, req } : { op: 'get', key, req };
    const op: KvOp = { kind, key, value: kind === 'put' ? (cmd.value as string) : null, call: ++this.clock, ret: Infinity, client: c };
    const p: PendingOp = { op, cmd, node: n.id, deadline: this.now + CLIENT_TIMEOUT_TICKS, viaReadIndex: kind === 'get' && roll >= 8 };
    try {
      if (p.viaReadIndex) {
        n.raw.readIndex(enc.encode(req));
        n.reads.push(p);
      } else {
        n.raw.propose(enc.encode(JSON.stringify(cmd)));
        n.waiters.set(req, p);
      }
    } catch (e) {
      if (e instanceof ProposalDroppedError) return; // refused at once: never happened
      throw e;
    }
    this.stats.ops++;
    this.history.push(op);
    this.clientBusy[c] = p;
  }

  private complete(p: PendingOp): void {
    p.op.ret = ++this.clock;
    this.stats.opsAcked++;
    const c = p.op.client;
    if (this.clientBusy[c] === p) this.clientBusy[c] = undefined;
  }

  /** The client gives up: a write may still take effect later (ret stays Infinity); a read
   *  that never returned says nothing and leaves the history. */
  private abandon(p: PendingOp): void {
    const c = p.op.client;
    if (this.clientBusy[c] === p) this.clientBusy[c] = undefined;
    const n = this.nodes.get(p.node);
    n?.waiters.delete(p.cmd.req);
    if (n !== undefined) n.reads = n.reads.filter((r) => r !== p);
    if (p.op.kind === 'get') {
      const i = this.history.indexOf(p.op);
      if (i >= 0) this.history.splice(i, 1);
    }
    // Mark so a late completion cannot resurrect it.
    p.deadline = -1;
  }

  // ---- faults --------------------------------------------------------------------------

  private leader(): SimNode | undefined {
    let best: SimNode | undefined;
    for (const n of this.nodes.values()) {
      if (!n.alive || n.removed || n.raw.raft.state !== StateRole.Leader) continue;
      if (best === undefined || n.raw.raft.term > best.raw.raft.term) best = n;
    }
    return best;
  }

  private injectFault(): void {
    const r = this.rnd.int(25);
    const nodes = [...this.nodes.values()].filter((n) => !n.removed);
    if (r < 4) {
      const live = nodes.filter((n) => n.alive);
      const down = nodes.length - live.length;
      if (down < Math.floor((nodes.length - 1) / 2) && live.length > 0) this.crash(live[this.rnd.int(live.length)] as SimNode);
    } else if (r < 9) {
      const dead = nodes.filter((n) => !n.alive && !n.retiring);
      if (dead.length > 0) this.restart(dead[this.rnd.int(dead.length)] as SimNode);
    } else if (r < 14) {
      this.partitionRandom();
    } else if (r < 19) {
      this.blocked.clear();
    } else if (r < 20) {
      this.dropRate = [0, 0.02, 0.1, 0.3][this.rnd.int(4)] as number;
      this.dupRate = [0, 0.05][this.rnd.int(2)] as number;
      this.maxDelay = [0, 2, 5][this.rnd.int(3)] as number;
    } else if (r < 22) {
      this.changeMembership();
    } else {
      const l = this.leader();
      const voters = l?.confState.voters.filter((id) => id !== l.id) ?? [];
      if (l !== undefined && voters.length > 0) {
        const to = voters[this.rnd.int(voters.length)] as bigint;
        this.log(`transfer ${l.id} -> ${to}`);
        this.stats.transfers++;
        l.raw.transferLeader(to);
      }
    }
  }

  private changeMembership(): void {
    const l = this.leader();
    if (l === undefined) return;
    const cs = l.confState;
    const choice = this.rnd.int(3);
    try {
      if (choice === 0 && this.nodes.size < 8) {
        const id = this.nextId++;
        this.log(`add learner ${id}`);
        this.startNode(id, false, emptyDisk());
        l.raw.proposeConfChange({ type: ConfChangeType.AddLearnerNode, nodeId: id });
      } else if (choice === 1 && cs.learners.length > 0) {
        const id = cs.learners[this.rnd.int(cs.learners.length)] as bigint;
        this.log(`promote ${id}`);
        l.raw.proposeConfChange({ type: ConfChangeType.AddNode, nodeId: id });
      } else if (choice === 2 && cs.voters.length > 3) {
        // One retiring voter at a time, so at most one stale member can be missing.
        if (cs.voters.some((id) => this.nodes.get(id)?.retiring)) return;
        const id = cs.voters[this.rnd.int(cs.voters.length)] as bigint;
        this.log(`remove ${id}`);
        const n = this.nodes.get(id);
        if (n !== undefined) n.retiring = true;
        l.raw.proposeConfChange({ type: ConfChangeType.RemoveNode, nodeId: id });
      } else {
        return;
      }
      this.stats.confChanges++;
    } catch (e) {
      if (!(e instanceof ProposalDroppedError)) throw e;
    }
  }

  // ---- main loop -----------------------------------------------------------------------

  /** One tick: tick every node, then alternate delivery and Ready handling until quiet (or a
   *  round cap, so a message storm cannot stall the simulation). */
  private tickOnce(withClients: boolean): void {
    this.now++;
    this.stats.ticks++;
    for (const n of this.nodes.values()) if (n.alive && !n.removed) n.raw.tick();
    if (withClients) for (let c = 0; c < this.clientBusy.length; c++) this.clientStep(c);
    for (let round = 0; round < 8; round++) {
      this.round++;
      let work = 0;
      for (const n of this.nodes.values()) if (this.handleReady(n)) work++;
      work += this.deliverDue();
      if (work === 0) break;
    }
  }

  run(faultTicks: number, livenessTicks: number): SimStats {
    for (let t = 0; t < faultTicks; t++) {
      if (this.rnd.int(100) < this.faultPercent) this.injectFault();
      this.tickOnce(true);
      if (t % 100 === 99) this.checkLogMatching();
    }
    // Heal: network reliable, every crashed (non-retiring) node back.
    this.blocked.clear();
    this.dropRate = 0;
    this.dupRate = 0;
    this.maxDelay = 1;
    for (const n of this.nodes.values()) if (!n.alive && !n.removed && !n.retiring) this.restart(n);
    // Let outstanding client operations finish or time out.
    for (let t = 0; t < CLIENT_TIMEOUT_TICKS / 2; t++) this.tickOnce(false);
    this.liveness(livenessTicks);
    for (const c of this.clientBusy) if (c !== undefined) this.abandon(c);
    this.checkLogMatching();
    const lin = checkLinearizable(this.history);
    if (!lin.ok) this.fail(`linearizability: ${lin.detail}`);
    return this.stats;
  }

  private liveness(bound: number): void {
    const marker = `${this.seed}-liveness`;
    const cmd: Command = { op: 'put', key: 'liveness', value: 'ok', req: marker };
    let proposedAt = -Infinity;
    for (let t = 0; t < bound; t++) {
      const l = this.leader();
      if (l !== undefined && this.now - proposedAt >= 20) {
        try {
          l.raw.propose(enc.encode(JSON.stringify(cmd)));
          proposedAt = this.now;
        } catch (e) {
          if (!(e instanceof ProposalDroppedError)) throw e;
        }
      }
      this.tickOnce(false);
      const lead = this.leader();
      if (lead === undefined) continue;
      const members = [...lead.confState.voters, ...lead.confState.learners]
        .map((id) => this.nodes.get(id))
        .filter((n): n is SimNode => n !== undefined && !n.retiring && !n.removed);
      if (members.length > 0 && members.every((n) => n.alive && n.app.seen.has(marker))) return;
    }
    const desc = [...this.nodes.values()]
      .map(
        (n) =>
          `${n.id}:${n.alive ? 'up' : 'down'}${n.removed ? '/removed' : ''}${n.retiring ? '/retiring' : ''} ${['F', 'C', 'L', 'P'][n.raw.raft.state]} t${n.raw.raft.term} c${n.raw.raft.raftLog.committed} a${n.lastApplied} voters=${n.confState.voters.join(',')} learners=${n.confState.learners.join(',')}`,
      )
      .join('\n  ');
    const l = this.leader();
    const prs =
      l === undefined
        ? ''
        : [...l.raw.status().progress].map(([id, p]) => `${id}:m${p.match}/n${p.next}/s${p.state}/i${p.inflight}/a${p.recentActive}`).join(' ');
    this.fail(`liveness: no proposal committed on all members within ${bound} ticks after healing\n  ${desc}\n  leader progress: ${prs}`);
  }
}

function emptyDisk(): Disk {
  return { hardState: { term: 0, vote: 0n, commit: 0 }, snapshot: undefined, entries: [], compactedTo: 0, pending: [] };
}

export function runSeed(opts: SimOptions): SimStats {
  const sim = new Simulation(opts);
  return sim.run(opts.faultTicks ?? 1000, opts.livenessTicks ?? 300);
}
