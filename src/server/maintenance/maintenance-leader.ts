// MoveLeader: the leader hands its leadership to a chosen voter and the call returns once the
// member sees the transferee as leader, as etcd's EtcdServer.MoveLeader does.
//
// Rules (etcd 3.4): only the leader accepts it ("etcdserver: not leader"); the transferee must
// be a voting member ("etcdserver: bad leader transferee", learners and unknown IDs alike);
// when the transfer does not finish in time the answer is etcd's unmapped error text
// "etcdserver: request timed out, leader transfer took too long" (gRPC Unknown).
// Moving leadership to the current leader succeeds at once (a lone voter may "move" it to itself).

/** Carries the name of the etcd error (grpc/errors.ts) the edge answers with. */
export class MoveLeaderError extends Error {
  override name = 'MoveLeaderError';
  constructor(readonly etcdCode: 'NotLeader' | 'BadLeaderTransferee') {
    super(etcdCode);
  }
}

/** etcd's ErrTimeoutLeaderTransfer; not in rpctypes, so it reaches clients as Unknown. */
export const LEADER_TRANSFER_TIMEOUT_TEXT = 'etcdserver: request timed out, leader transfer took too long';

export class LeaderTransferTimeoutError extends Error {
  override name = 'LeaderTransferTimeoutError';
  constructor() {
    super(LEADER_TRANSFER_TIMEOUT_TEXT);
  }
}

/** What MoveLeader needs of the member's Raft node. */
export interface LeaderTransferrer {
  readonly leader: bigint;
  readonly isLeader: boolean;
  readonly voters: readonly bigint[];
  transferLeadership(to: bigint): void;
}

export interface MoveLeaderOptions {
  timeoutMs: number;
  /** How often to look at the leader while waiting (etcd: one tick). */
  pollMs: number;
}

export async function moveLeader(raft: LeaderTransferrer, target: bigint, options: MoveLeaderOptions): Promise<void> {
  if (!raft.isLeader) throw new MoveLeaderError('NotLeader');
  if (!raft.voters.includes(target)) throw new MoveLeaderError('BadLeaderTransferee');
  if (raft.leader === target) return;
  raft.transferLeadership(target);
  const deadline = performance.now() + options.timeoutMs;
  while (raft.leader !== target) {
    if (performance.now() >= deadline) throw new LeaderTransferTimeoutError();
    await new Promise((resolve) => setTimeout(resolve, options.pollMs));
  }
}
