// The cluster's member list as etcd's Cluster service shows it: ID, name, peer URLs, client
// URLs, learner flag. Raft's configuration (voters/learners) decides who votes; this store
// carries the descriptive part, changed only by applying committed log entries:
// - conf changes (member add/remove/update/promote), whose context carries the member's data;
// - "publish" entries, by which a starting member announces its name and client URLs (etcd
//   publishes its attributes the same way, so every member's list has everyone's URLs).
//
// Layout in KeySpace.members: 'm' + id (8 bytes) -> JSON of the member; 'r' + id -> a removed
// member's marker (a removed ID may not come back: the Raft core cannot re-add it);
// 'local' (this member's identity) belongs to src/node/storage.ts.
//
// Writes are idempotent (a replay after a crash writes the same records again).

import type { Backend, BatchOp } from '../../storage/backend.js';
import { KeySpace, spaceKey } from '../../storage/backend.js';

export interface Member {
  id: bigint;
  /** Empty until the member has started and published itself ("unstarted" in etcdctl). */
  name: string;
  peerUrls: string[];
  clientUrls: string[];
  isLearner: boolean;
}

/** What a member-add conf change carries in its context. */
export interface MemberContext {
  name?: string;
  peerUrls: string[];
  isLearner?: boolean;
}

function memberKey(tag: 'm' | 'r', id: bigint): Buffer {
  const key = Buffer.allocUnsafe(9);
  key.write(tag, 0, 'latin1');
  key.writeBigUInt64BE(id, 1);
  return spaceKey(KeySpace.members, key);
}

export function encodeMember(member: Member): Buffer {
  return Buffer.from(JSON.stringify({ ...member, id: member.id.toString() }));
}

export function decodeMember(value: Buffer): Member {
  const raw = JSON.parse(value.toString()) as Omit<Member, 'id'> & { id: string };
  return { ...raw, id: BigInt(raw.id) };
}

export class Membership {
  private readonly members = new Map<bigint, Member>();
  private readonly removed = new Set<bigint>();
  private readonly listeners: Array<(members: readonly Member[]) => void> = [];

  private constructor(private readonly backend: Backend) {}

  static async load(backend: Backend): Promise<Membership> {
    const membership = new Membership(backend);
    await membership.reload();
    return membership;
  }

  /** Re-reads the records (after a snapshot install replaced them). */
  async reload(): Promise<void> {
    this.members.clear();
    this.removed.clear();
    for await (const [key, value] of this.backend.scan(KeySpace.members)) {
      if (key.length !== 9) continue;
      const id = key.readBigUInt64BE(1);
      if (key[0] === 0x6d) this.members.set(id, decodeMember(value));
      else if (key[0] === 0x72) this.removed.add(id);
    }
    this.notify();
  }

  /** At a new cluster's first start: the initial members, unless records exist already. */
  async seed(initial: ReadonlyArray<{ id: bigint; name: string; peerUrls: string[] }>): Promise<void> {
    if (this.members.size > 0) return;
    const ops: BatchOp[] = [];
    for (const m of initial) {
      const member: Member = { id: m.id, name: '', peerUrls: m.peerUrls, clientUrls: [], isLearner: false };
      this.members.set(m.id, member);
      ops.push({ type: 'put', key: memberKey('m', m.id), value: encodeMember(member) });
    }
    await this.backend.write(ops, { sync: true });
    this.notify();
  }

  list(): Member[] {
    return [...this.members.values()].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  }

  get(id: bigint): Member | undefined {
    return this.members.get(id);
  }

  wasRemoved(id: bigint): boolean {
    return this.removed.has(id);
  }

  onChange(listener: (members: readonly Member[]) => void): void {
    this.listeners.push(listener);
  }

  private notify(): void {
    const members = this.list();
    for (const listener of this.listeners) listener(members);
  }

  applyAdd(id: bigint, context: MemberContext, isLearner: boolean): void {
    const existing = this.members.get(id);
    const member: Member = {
      id,
      name: existing?.name ?? context.name ?? '',
      peerUrls: context.peerUrls,
      clientUrls: existing?.clientUrls ?? [],
      isLearner,
    };
    this.store(member);
  }

  applyRemove(id: bigint): void {
    this.members.delete(id);
    this.removed.add(id);
    void this.backend.write(
      [
        { type: 'del', key: memberKey('m', id) },
        { type: 'put', key: memberKey('r', id), value: Buffer.alloc(0) },
      ],
      { sync: false },
    );
    this.notify();
  }

  applyUpdate(id: bigint, peerUrls: string[]): void {
    const existing = this.members.get(id);
    if (existing === undefined) return;
    this.store({ ...existing, peerUrls });
  }

  applyPromote(id: bigint): void {
    const existing = this.members.get(id);
    if (existing === undefined) return;
    this.store({ ...existing, isLearner: false });
  }

  applyPublish(id: bigint, name: string, clientUrls: string[]): void {
    const existing = this.members.get(id);
    if (existing === undefined) return; // published by a member removed meanwhile
    this.store({ ...existing, name, clientUrls });
  }

  private store(member: Member): void {
    this.members.set(member.id, member);
    void this.backend.write([{ type: 'put', key: memberKey('m', member.id), value: encodeMember(member) }], { sync: false });
    this.notify();
  }
}
