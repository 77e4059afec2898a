// The recorded history of a fault run: every client operation with the monotonic times it was
// invoked and completed (process.hrtime, in ms) and how it ended. An operation that timed out
// or failed in a way that does not prove it was never applied is "unknown": it may or may not
// have taken effect, at any time after its invocation.

/** What a register operation on one key did. Values are unique per write. */
export type RegisterOp =
  | { kind: 'get' }
  | { kind: 'put'; value: string }
  /** Txn: if value(key) == expected then put value else read key. */
  | { kind: 'cas'; expected: string; value: string };

export type Outcome =
  /** get: the value read (null: absent); cas: whether it swapped, and the value seen if not. */
  | { status: 'ok'; value?: string | null; swapped?: boolean; revision?: number }
  /** Certainly not applied (the request never reached a server). */
  | { status: 'failed'; error: string }
  /** May or may not have been applied (timeout, connection lost mid-call, server error). */
  | { status: 'unknown'; error: string };

export interface Operation {
  readonly id: number;
  readonly client: number;
  readonly key: string;
  readonly op: RegisterOp;
  /** Member the client sent it to. */
  readonly member: number;
  readonly invokedMs: number;
  completedMs: number;
  outcome: Outcome;
}

export function nowMs(): number {
  return Number(process.hrtime.bigint()) / 1e6;
}

/** Append-only log of operations, shared by every client worker of a run. */
export class History {
  readonly operations: Operation[] = [];
  private nextId = 0;

  /** Records the invocation; the caller completes the returned operation exactly once. */
  invoke(client: number, member: number, key: string, op: RegisterOp): Operation {
    const operation: Operation = {
      id: this.nextId++,
      client,
      member,
      key,
      op,
      invokedMs: nowMs(),
      completedMs: Number.POSITIVE_INFINITY,
      outcome: { status: 'unknown', error: 'not completed' },
    };
    this.operations.push(operation);
    return operation;
  }

  complete(operation: Operation, outcome: Outcome): void {
    operation.completedMs = nowMs();
    operation.outcome = outcome;
  }

  count(status: Outcome['status']): number {
    return this.operations.filter((o) => o.outcome.status === status).length;
  }
}
