// The linearizable reads a RaftNode holds, from arrival to release. A read goes through three
// stages:
//   queued        arrived since the last ReadIndex request went out; a loop turn groups them
//                 under one context once no request is out (one round at a time, as etcd's
//                 linearizableReadLoop: reads arriving during a round share the next one, so
//                 the rounds, each a heartbeat broadcast and its answers (on three voters a
//                 follower's is its request and the answer alone), do not grow with the number
//                 of loop turns)
//   awaiting      its group's ReadIndex request is out (context -> group); the request may be
//                 lost (leader gone, message dropped), so the driver re-sends every awaiting
//                 context periodically and whenever a new leader appears
//   at an index   the leader answered; released once this member has applied that index
//
// Re-sending a context is safe: any answer for it was produced after every read in its group
// arrived, so whichever answer comes first gives a linearizable index; later answers find no
// group and are ignored. A read that reached its deadline is marked settled and skipped.

export interface PendingRead {
  resolve: () => void;
  reject: (error: Error) => void;
  /** Answered or failed already (its deadline passed): nothing more may happen to it. */
  settled: boolean;
}

interface ReadGroup {
  context: Uint8Array;
  reads: PendingRead[];
}

export class PendingReads {
  private queued: PendingRead[] = [];
  private readonly awaiting = new Map<string, ReadGroup>();
  private atIndex: Array<{ index: number; reads: PendingRead[] }> = [];

  add(read: PendingRead): void {
    this.queued.push(read);
  }

  get hasQueued(): boolean {
    return this.queued.length > 0;
  }

  /** Puts the queued reads into one group under `context`, which the caller then sends. */
  groupQueued(context: Uint8Array): void {
    const reads = this.queued.filter((read) => !read.settled);
    this.queued = [];
    if (reads.length > 0) this.awaiting.set(contextKey(context), { context, reads });
  }

  /** True while a request with unsettled reads is out (groups whose reads all settled are dropped). */
  get roundInFlight(): boolean {
    for (const [key, group] of this.awaiting) {
      if (!group.reads.every((read) => read.settled)) return true;
      this.awaiting.delete(key);
    }
    return false;
  }

  /** Contexts still waiting for an answer (groups whose reads all settled are dropped). */
  awaitingContexts(): Uint8Array[] {
    const contexts: Uint8Array[] = [];
    for (const [key, group] of this.awaiting) {
      if (group.reads.every((read) => read.settled)) this.awaiting.delete(key);
      else contexts.push(group.context);
    }
    return contexts;
  }

  /** The leader answered `context` with `index`: its reads now wait for apply to reach it. */
  answered(context: Uint8Array, index: number): void {
    const key = contextKey(context);
    const group = this.awaiting.get(key);
    if (group === undefined) return; // a duplicate answer to a re-sent request
    this.awaiting.delete(key);
    this.atIndex.push({ index, reads: group.reads });
  }

  /** Takes the reads whose index this member has applied. */
  takeReleasable(appliedIndex: number): PendingRead[] {
    if (this.atIndex.length === 0) return [];
    const released: PendingRead[] = [];
    const still: typeof this.atIndex = [];
    for (const entry of this.atIndex) {
      if (entry.index > appliedIndex) still.push(entry);
      else released.push(...entry.reads);
    }
    this.atIndex = still;
    return released.filter((read) => !read.settled);
  }

  /** Takes every read in every stage (the node is stopping). */
  takeAll(): PendingRead[] {
    const all = [...this.queued, ...[...this.awaiting.values()].flatMap((group) => group.reads), ...this.atIndex.flatMap((entry) => entry.reads)];
    this.queued = [];
    this.awaiting.clear();
    this.atIndex = [];
    return all.filter((read) => !read.settled);
  }
}

function contextKey(context: Uint8Array): string {
  return Buffer.from(context.buffer, context.byteOffset, context.byteLength).toString('hex');
}
