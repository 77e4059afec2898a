// Pending ReadIndex requests on the leader (safe mode). A request records the commit index at
// arrival; it may be answered once a quorum of voters has acknowledged a heartbeat carrying
// its context, which proves nobody else was leader at that moment (Raft thesis §6.4).
//
// Invariants: the queue and the map hold the same requests; requests are answered in arrival
// order, and an ack for a later request also confirms every earlier one (heartbeat rounds are
// ordered per follower, so a later ack implies the earlier heartbeat's leadership too).

import type { Message } from './types.js';

export interface ReadIndexStatus {
  req: Message;
  index: number;
  acks: Set<bigint>;
}

export function contextKey(ctx: Uint8Array | undefined): string {
  if (ctx === undefined) return '';
  let s = '';
  for (let i = 0; i < ctx.length; i++) s += String.fromCharCode(ctx[i] as number);
  return s;
}

export class ReadOnly {
  private readonly pending = new Map<string, ReadIndexStatus>();
  private queue: string[] = [];

  addRequest(index: number, m: Message): void {
    const key = contextKey(m.context);
    if (this.pending.has(key)) return;
    this.pending.set(key, { req: m, index, acks: new Set() });
    this.queue.push(key);
  }

  /** Records an ack and returns the acks so far, or undefined for an unknown context. */
  recvAck(id: bigint, ctx: Uint8Array | undefined): Set<bigint> | undefined {
    const rs = this.pending.get(contextKey(ctx));
    if (rs === undefined) return undefined;
    rs.acks.add(id);
    return rs.acks;
  }

  /** Removes and returns every request up to and including the one with this context. */
  advance(ctx: Uint8Array | undefined): ReadIndexStatus[] {
    const key = contextKey(ctx);
    const i = this.queue.indexOf(key);
    if (i < 0) return [];
    const done = this.queue.slice(0, i + 1);
    this.queue = this.queue.slice(i + 1);
    const out: ReadIndexStatus[] = [];
    for (const k of done) {
      const rs = this.pending.get(k);
      if (rs) out.push(rs);
      this.pending.delete(k);
    }
    return out;
  }

  lastPendingRequestCtx(): Uint8Array | undefined {
    if (this.queue.length === 0) return undefined;
    return this.pending.get(this.queue[this.queue.length - 1] as string)?.req.context;
  }

  get size(): number {
    return this.queue.length;
  }
}
