// The linearizable reads a RaftNode holds, from arrival to release. A read goes through three
// stages:
//   queued        arrived since the last ReadIndex request went out; a loop turn groups them
//                 under one context while fewer than the driver's limit of requests are out
//                 (MAX_READ_ROUNDS_IN_FLIGHT; etcd's linearizableReadLoop keeps one): reads
//                 arriving during the rounds in flight share the next one, so the rounds, each a
//                 heartbeat broadcast and its answers (on three voters a follower's is its
//                 request and the answer alone), do not grow with the number of loop turns
//   awaiting      its group's ReadIndex request is out (context -> group); the request may be
//                 lost (leader gone, message dropped), so the driver re-sends every awaiting
//                 context periodically and whenever a new leader appears
//   at an index   the leader answered; released once this member has applied that index
//
// Re-sending a context is safe: any answer for it was produced after every read in its group
// arrived, so whichever answer comes first gives a linearizable index; later answers find no
// group and are ignored.
//
// Deadlines: reads all wait the same time, so in arrival order their deadlines never decrease;
// one timer (the driver's) armed for the oldest unsettled read replaces a timer per read. Taking
// a read out (released, expired, stopping) settles it; a settled read left in a group is skipped.

export interface PendingRead {
  resolve: () => void;
  reject: (error: Error) => void;
  /** When the read fails with a timeout (the driver's clock, ms). */
  deadline: number;
  /** Taken out already (released, expired or stopping): nothing more may happen to it. */
  settled: boolean;
}

interface ReadGroup {
  context: Uint8Array;
  reads: PendingRead[];
}

/** Settled reads at the front of the arrival list are dropped in chunks of at least this many. */
const COMPACT_AFTER = 1024;

export class PendingReads {
  private queued: PendingRead[] = [];
  private readonly awaiting = new Map<string, ReadGroup>();
  private atIndex: Array<{ index: number; reads: PendingRead[] }> = [];
  /** Every read not known to be settled, in arrival order (so by deadline) from `head` on. */
  private byArrival: PendingRead[] = [];
  private head = 0;

  add(read: PendingRead): void {
    this.queued.push(read);
    this.byArrival.push(read);
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

  /** Requests with unsettled reads that are out (groups whose reads all settled are dropped). */
  get roundsInFlight(): number {
    for (const [key, group] of this.awaiting) if (group.reads.every((read) => read.settled)) this.awaiting.delete(key);
    return this.awaiting.size;
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

  /** Takes (settles) the reads whose index this member has applied. */
  takeReleasable(appliedIndex: number): PendingRead[] {
    if (this.atIndex.length === 0) return [];
    const released: PendingRead[] = [];
    let kept = 0;
    for (const entry of this.atIndex) {
      if (entry.index > appliedIndex) this.atIndex[kept++] = entry;
      else for (const read of entry.reads) if (settle(read)) released.push(read);
    }
    this.atIndex.length = kept;
    this.dropSettledFront();
    return released;
  }

  /** Takes (settles) the reads whose deadline is at or before `now`, oldest first. */
  takeExpired(now: number): PendingRead[] {
    const expired: PendingRead[] = [];
    this.dropSettledFront();
    while (this.head < this.byArrival.length) {
      const read = this.byArrival[this.head] as PendingRead;
      if (!read.settled) {
        if (read.deadline > now) break;
        settle(read);
        expired.push(read);
      }
      this.head++;
    }
    this.compact();
    return expired;
  }

  /** The deadline of the oldest unsettled read, if any. */
  nextDeadline(): number | undefined {
    this.dropSettledFront();
    return this.byArrival[this.head]?.deadline;
  }

  /** Takes (settles) every read in every stage (the node is stopping). */
  takeAll(): PendingRead[] {
    const all = this.byArrival.slice(this.head).filter(settle);
    this.queued = [];
    this.awaiting.clear();
    this.atIndex = [];
    this.byArrival = [];
    this.head = 0;
    return all;
  }

  private dropSettledFront(): void {
    while (this.head < this.byArrival.length && (this.byArrival[this.head] as PendingRead).settled) this.head++;
    this.compact();
  }

  private compact(): void {
    if (this.head === this.byArrival.length) {
      this.byArrival = [];
      this.head = 0;
    } else if (this.head >= COMPACT_AFTER && this.head * 2 >= this.byArrival.length) {
      this.byArrival = this.byArrival.slice(this.head);
      this.head = 0;
    }
  }
}

/** Marks a read settled; false if it was already. */
function settle(read: PendingRead): boolean {
  if (read.settled) return false;
  read.settled = true;
  return true;
}

function contextKey(context: Uint8Array): string {
  return Buffer.from(context.buffer, context.byteOffset, context.byteLength).toString('hex');
}
