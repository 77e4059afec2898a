// RaftNodes wired together in memory, built exactly as KvServer builds them (createRaftNode),
// each over a MemoryRaftLog and a recording applier, with one ManualScheduler for all their
// timers: tests make time pass and await events, never sleep.
//
// What it checks on every member while a test runs (a breach is recorded in `violations`,
// which a test asserts is empty):
// - an entry is applied only once it is durable here, in index order, never twice;
// - a member acknowledges an append (MsgAppResp) only once the entries are durable, and grants
//   a vote only once the vote is durable.

import { SeededRandom } from '../../src/util/random.js';
import { MessageType, type Message } from '../../src/raft/types.js';
import type { AppliedBatch, CommittedEntry } from '../../src/server/apply/applier.js';
import { encodeInternalRequest, type InternalRequest } from '../../src/server/apply/internal-request.js';
import type { EntryApplier, RaftNode } from '../../src/server/member/raft-node.js';
import { createRaftNode, singleVoter, type ReplicationOptions } from '../../src/server/member/replication.js';
import { ManualScheduler } from './manual-scheduler.js';
import { MemoryRaftLog } from './memory-raft-log.js';

/** Applies nothing but records what it was given, and checks the driver's promises. */
export class RecordingApplier implements EntryApplier {
  /** Entry data (hex) by index, for comparing members. */
  readonly applied = new Map<number, string>();
  /** Indexes in the order they were applied. */
  readonly order: number[] = [];

  constructor(
    private readonly log: MemoryRaftLog,
    public appliedIndex: number,
    private readonly violations: string[],
    private readonly name: string,
  ) {}

  applyEntries(entries: readonly CommittedEntry[]): AppliedBatch {
    const outcomes = entries.map((entry) => {
      if (entry.index !== this.appliedIndex + 1) this.violations.push(`${this.name}: applied ${entry.index} after ${this.appliedIndex}`);
      if (entry.index > this.log.durableIndex) this.violations.push(`${this.name}: applied ${entry.index} while durable only to ${this.log.durableIndex}`);
      this.appliedIndex = entry.index;
      this.applied.set(entry.index, entry.data.toString('hex'));
      this.order.push(entry.index);
      return { ok: true as const, value: { kind: 'none' as const }, revision: entry.index };
    });
    return { outcomes, written: Promise.resolve() };
  }

  flushed(): Promise<void> {
    return Promise.resolve();
  }
}

export interface TestMember {
  id: bigint;
  raft: RaftNode;
  log: MemoryRaftLog;
  applier: RecordingApplier;
  /** Everything this member sent, in order. */
  sent: Message[];
  leaderChanges: Array<{ lead: bigint; term: number }>;
}

/** A request that is cheap to make and to tell apart. */
export function request(n: number): InternalRequest {
  return { kind: 'compact', revision: n, physical: false };
}

/** Settles to the rejection of `promise` (failing if it resolves), without leaving it unhandled. */
export function rejection(promise: Promise<unknown>): Promise<unknown> {
  return promise.then(
    () => {
      throw new Error('expected a rejection');
    },
    (error: unknown) => error,
  );
}

/** How many times the entry of `request(n)` was applied, in a member's applied map. */
export function timesApplied(applied: Map<number, string>, n: number): number {
  const hex = encodeInternalRequest(request(n)).toString('hex');
  return [...applied.values()].filter((data) => data.endsWith(hex)).length;
}

export class RaftNodeCluster {
  readonly scheduler = new ManualScheduler();
  readonly members = new Map<bigint, TestMember>();
  readonly violations: string[] = [];
  /** Members cut off the network: nothing they send or are sent arrives. */
  readonly isolated = new Set<bigint>();
  /** Messages matching this wait in `delayed` until deliverDelayed(). */
  delay: ((message: Message) => boolean) | undefined;
  private delayed: Message[] = [];

  /** `overrides` change every member's replication options (limits, timeouts). */
  constructor(
    private readonly voters: bigint[],
    private readonly overrides: Partial<Pick<ReplicationOptions, 'limits' | 'requestTimeoutMs' | 'readIndexRetryMs' | 'maxWritesInFlight'>> = {},
  ) {}

  /**
   * Builds (or, given the log and applied index a crashed member left, rebuilds) a member and
   * starts it. `applied` is what its state machine had durably applied.
   */
  start(id: bigint, restartFrom?: { log: MemoryRaftLog; applied: number }): TestMember {
    const log = restartFrom?.log ?? new MemoryRaftLog();
    const applier = new RecordingApplier(log, restartFrom?.applied ?? 0, this.violations, `member ${id}`);
    const member: TestMember = { id, log, applier, sent: [], leaderChanges: [], raft: undefined as unknown as RaftNode };
    const replication: ReplicationOptions = {
      ...singleVoter({
        memberId: id,
        scheduler: this.scheduler,
        random: new SeededRandom(Number(id) * 7919),
        onLeaderChange: (lead, term) => member.leaderChanges.push({ lead, term }),
        onFatal: (error) => this.violations.push(`member ${id} failed: ${String((error as Error).stack ?? error)}`),
        ...this.overrides,
      }),
      initialVoters: this.voters,
      sender: { send: (messages) => this.send(member, messages) },
    };
    member.raft = createRaftNode(
      log,
      {
        applier,
        snapshots: {
          dump: async () => ({ appliedIndex: applier.appliedIndex, data: new Uint8Array(0) }),
          install: async () => {
            throw new Error('these tests never compact far enough to need a snapshot');
          },
        },
      },
      replication,
    );
    this.members.set(id, member);
    member.raft.start();
    return member;
  }

  /** Stops a member as a crash would leave it: its log and applied index stay behind. */
  async crash(id: bigint): Promise<{ log: MemoryRaftLog; applied: number }> {
    const member = this.get(id);
    this.members.delete(id);
    await member.raft.stop();
    return { log: member.log, applied: member.applier.appliedIndex };
  }

  get(id: bigint): TestMember {
    const member = this.members.get(id);
    if (member === undefined) throw new Error(`no member ${id}`);
    return member;
  }

  /** The member every running member agrees leads, once there is one. */
  leader(): TestMember | undefined {
    const running = [...this.members.values()].filter((m) => !this.isolated.has(m.id));
    const lead = running[0]?.raft.leader;
    if (lead === undefined || lead === 0n || !running.every((m) => m.raft.leader === lead)) return undefined;
    return this.members.get(lead);
  }

  async electLeader(): Promise<TestMember> {
    await this.scheduler.advanceUntil(() => this.leader() !== undefined, { stepMs: 100, limitMs: 30_000 });
    return this.leader()!;
  }

  /** Moves time on (in 10 ms steps, up to `limitMs`) until `promise` settles; then its value. */
  async until<T>(promise: Promise<T>, limitMs = 10_000): Promise<T> {
    let settled = false;
    const tracked = promise.finally(() => (settled = true));
    tracked.catch(() => undefined);
    await this.scheduler.advanceUntil(() => settled, { stepMs: 10, limitMs });
    return tracked;
  }

  followers(): TestMember[] {
    const lead = this.leader();
    return [...this.members.values()].filter((m) => m !== lead);
  }

  deliverDelayed(): void {
    const messages = this.delayed;
    this.delayed = [];
    for (const message of messages) this.deliver(message);
  }

  async stopAll(): Promise<void> {
    for (const member of this.members.values()) await member.raft.stop();
    this.members.clear();
  }

  private send(from: TestMember, messages: Message[]): void {
    for (const message of messages) {
      this.checkDurableBeforeSend(from, message);
      from.sent.push(message);
      if (this.delay?.(message)) this.delayed.push(message);
      else this.deliver(message);
    }
  }

  private deliver(message: Message): void {
    if (this.isolated.has(message.from) || this.isolated.has(message.to)) return;
    this.members.get(message.to)?.raft.receive([message]);
  }

  private checkDurableBeforeSend(from: TestMember, message: Message): void {
    const { log } = from;
    if (message.type === MessageType.MsgAppResp && !message.reject && message.index > log.durableIndex) {
      this.violations.push(`member ${from.id} acknowledged index ${message.index} while durable only to ${log.durableIndex}`);
    }
    if (message.type === MessageType.MsgVoteResp && !message.reject) {
      const durable = log.durableHardState;
      if (durable.vote !== message.to || durable.term !== message.term) {
        this.violations.push(`member ${from.id} granted its term-${message.term} vote to ${message.to} before writing it`);
      }
    }
  }
}
