// Test-only helper: a synchronous in-memory cluster of RawNodes over MemoryStorage, driven
// exactly by the Ready contract (persist, then send, then apply, then advance). Messages can
// be filtered (drop / isolate) to build the scenarios of the unit and script tests.
// Invariant: delivery is fully deterministic (insertion order, no randomness except the
// seeded election jitter).

import { RawNode } from '../../src/raft/raw-node.js';
import { MemoryStorage } from '../../src/raft/storage.js';
import type { RaftConfig } from '../../src/raft/raft.js';
import { EntryType, decodeConfChange, type ConfState, type Entry, type Message } from '../../src/raft/types.js';
import { SeededRandom } from '../../src/util/random.js';

export interface TestNode {
  id: bigint;
  node: RawNode;
  storage: MemoryStorage;
  applied: Entry[];
  confState: ConfState;
  /** ReadStates delivered in Ready, as "index:ctx" strings. */
  reads: string[];
}

export type MessageFilter = (m: Message) => boolean; // true = drop

export class TestCluster {
  readonly nodes = new Map<bigint, TestNode>();
  filters: MessageFilter[] = [];
  /** Every message delivered, for assertions. */
  log: Message[] = [];
  private seed = 1;

  constructor(ids: bigint[], opts: Partial<RaftConfig> & { learners?: bigint[] } = {}) {
    const learners = opts.learners ?? [];
    for (const id of [...ids, ...learners]) this.add(id, { ...opts, peers: ids, learners });
    // Persist and apply the bootstrap configuration entries.
    this.stabilize();
  }

  add(id: bigint, opts: Partial<RaftConfig>): TestNode {
    const storage = new MemoryStorage();
    const node = new RawNode({
      id,
      electionTick: 10,
      heartbeatTick: 1,
      storage,
      random: new SeededRandom(this.seed++),
      ...opts,
    });
    const tn: TestNode = { id, node, storage, applied: [], reads: [], confState: { voters: opts.peers ?? [], learners: opts.learners ?? [] } };
    this.nodes.set(id, tn);
    return tn;
  }

  get(id: bigint): TestNode {
    const n = this.nodes.get(id);
    if (n === undefined) throw new Error(`no node ${id}`);
    return n;
  }

  /** Runs one Ready cycle on every node; returns the messages they emitted. */
  private cycle(): Message[] {
    const out: Message[] = [];
    for (const tn of this.nodes.values()) {
      if (!tn.node.hasReady()) continue;
      const rd = tn.node.ready();
      if (rd.snapshot) {
        tn.storage.applySnapshot(rd.snapshot);
        tn.confState = rd.snapshot.metadata.confState;
      }
      tn.storage.append(rd.entries);
      if (rd.hardState) tn.storage.setHardState(rd.hardState);
      out.push(...rd.messages);
      for (const rs of rd.readStates) tn.reads.push(`${rs.index}:${new TextDecoder().decode(rs.requestCtx)}`);
      for (const e of rd.committedEntries) {
        tn.applied.push(e);
        if (e.type === EntryType.ConfChange) tn.confState = tn.node.applyConfChange(decodeConfChange(e.data));
      }
      tn.node.advance();
    }
    return out;
  }

  /** Delivers messages until the cluster is quiet (no message and no Ready left: a write that
   *  lands can raise a leader's commit without any message, e.g. a lone voter's). */
  stabilize(maxRounds = 1000): void {
    for (let round = 0; round < maxRounds; round++) {
      const msgs = this.cycle();
      if (msgs.length === 0 && ![...this.nodes.values()].some((tn) => tn.node.hasReady())) return;
      this.deliver(msgs);
    }
    throw new Error('cluster did not stabilize');
  }

  deliver(msgs: Message[]): void {
    for (const m of msgs) {
      if (this.filters.some((f) => f(m))) continue;
      const to = this.nodes.get(m.to);
      if (to === undefined) continue;
      this.log.push(m);
      to.node.step(m);
    }
  }

  /** Ticks every node (or the given ones) n times, stabilizing after each tick. */
  tick(n: number, ids?: bigint[]): void {
    for (let i = 0; i < n; i++) {
      for (const tn of this.nodes.values()) if (ids === undefined || ids.includes(tn.id)) tn.node.tick();
      this.stabilize();
    }
  }

  campaign(id: bigint): void {
    this.get(id).node.campaign();
    this.stabilize();
  }

  isolate(id: bigint): void {
    this.filters.push((m) => m.from === id || m.to === id);
  }

  /** Drops traffic between the two groups. */
  partition(a: bigint[], b: bigint[]): void {
    this.filters.push((m) => (a.includes(m.from) && b.includes(m.to)) || (b.includes(m.from) && a.includes(m.to)));
  }

  heal(): void {
    this.filters = [];
  }

  leader(): TestNode | undefined {
    for (const tn of this.nodes.values()) if (tn.node.isLeader && !tn.node.raft.removed) return tn;
    return undefined;
  }

  appliedData(id: bigint): string[] {
    return this.get(id)
      .applied.filter((e) => e.type === EntryType.Normal && e.data.length > 0)
      .map((e) => new TextDecoder().decode(e.data));
  }
}

export const enc = (s: string): Uint8Array => new TextEncoder().encode(s);
