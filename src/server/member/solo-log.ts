// The log of a single-member cluster: proposals are appended to the durable log in batches,
// then applied, exactly as a Raft leader with no followers would (commit = locally synced).
//
// Data path of a write (one turn of the loop, many requests):
//   requests queue up while the previous batch is being synced
//   -> one synced backend write of all their log entries        (the only fsync)
//   -> apply them in index order to MVCC (in memory)            (visible to reads from now on)
//   -> queue the MVCC records + applied index (unsynced) and the log truncation behind them
//   -> answer every request of the batch
// A write is visible and acknowledged only after its log entry is synced, so a read can never
// observe a write that a crash would then lose. The unsynced MVCC batch is recovered from the
// log on restart: entries above the stored applied index are applied again.
//
// This class has the same outward shape (propose -> outcome) as the Raft-driven node that
// replaces it for multi-member clusters; the Applier is shared by both.

import type { Backend, BatchOp } from '../../storage/backend.js';
import { KeySpace, spaceKey } from '../../storage/backend.js';
import { assert } from '../../util/assert.js';
import type { Applier, CommittedEntry } from '../apply/applier.js';
import type { ApplyOutcome } from '../apply/outcome.js';
import { ServerError } from '../apply/errors.js';
import { encodeInternalRequest, type InternalRequest } from '../apply/internal-request.js';

export interface ProposalResult {
  outcome: ApplyOutcome;
  /** Resolves when the apply batch holding this entry's records is on disk. */
  written: Promise<void>;
}

interface Pending {
  request: InternalRequest;
  resolve: (result: ProposalResult) => void;
  reject: (error: Error) => void;
}

/** The most entries persisted in one synced write; bounds memory and latency of a turn. */
const MAX_ENTRIES_PER_BATCH = 4096;

export function logKey(index: number): Buffer {
  const key = Buffer.allocUnsafe(8);
  key.writeBigUInt64BE(BigInt(index));
  return spaceKey(KeySpace.raftLog, key);
}

export class SoloLog {
  private queue: Pending[] = [];
  private persisting = false;
  private stopped = false;
  private last: number;

  private constructor(
    private readonly backend: Backend,
    private readonly applier: Applier,
  ) {
    this.last = applier.appliedIndex;
  }

  /** Opens the log: re-applies whatever was logged but not yet applied before a crash. */
  static async recover(backend: Backend, applier: Applier): Promise<SoloLog> {
    const log = new SoloLog(backend, applier);
    const start = Buffer.allocUnsafe(8);
    start.writeBigUInt64BE(BigInt(applier.appliedIndex + 1));
    const replay: CommittedEntry[] = [];
    const obsolete: BatchOp[] = [];
    for await (const [key, value] of backend.scan(KeySpace.raftLog)) {
      const index = Number(key.readBigUInt64BE(0));
      if (index <= applier.appliedIndex) {
        obsolete.push({ type: 'del', key: spaceKey(KeySpace.raftLog, key) });
        continue;
      }
      assert(index === applier.appliedIndex + replay.length + 1, `gap in the log at index ${index}`);
      replay.push({ index, data: value });
    }
    if (replay.length > 0) {
      const { written } = applier.applyEntries(replay);
      await written;
      log.last = applier.appliedIndex;
    }
    for (const entry of replay) obsolete.push({ type: 'del', key: logKey(entry.index) });
    if (obsolete.length > 0) await backend.write(obsolete, { sync: false });
    return log;
  }

  get lastIndex(): number {
    return this.last;
  }

  propose(request: InternalRequest): Promise<ProposalResult> {
    if (this.stopped) return Promise.reject(new ServerError('Stopped'));
    return new Promise((resolve, reject) => {
      this.queue.push({ request, resolve, reject });
      if (!this.persisting) this.persistBatch();
    });
  }

  private persistBatch(): void {
    if (this.queue.length === 0) return;
    const batch = this.queue.length <= MAX_ENTRIES_PER_BATCH ? this.queue : this.queue.slice(0, MAX_ENTRIES_PER_BATCH);
    this.queue = batch === this.queue ? [] : this.queue.slice(MAX_ENTRIES_PER_BATCH);
    this.persisting = true;
    const first = this.last + 1;
    const ops: BatchOp[] = [];
    const entries: CommittedEntry[] = [];
    for (let i = 0; i < batch.length; i++) {
      const { request } = batch[i]!;
      const data = encodeInternalRequest(request);
      ops.push({ type: 'put', key: logKey(first + i), value: data });
      entries.push({ index: first + i, data, request });
    }
    this.last = first + batch.length - 1;
    this.backend.write(ops, { sync: true }).then(
      () => {
        // Start syncing what queued up meanwhile before doing this batch's CPU work, so the
        // next fsync overlaps applying and answering this one. Apply order is unaffected:
        // the next batch is applied only when its own (later) write completes.
        this.persisting = false;
        this.persistBatch();
        const { outcomes, written } = this.applier.applyEntries(entries);
        // Entries are applied; their log copies can go once the apply batch is down.
        const truncate: BatchOp[] = entries.map((entry) => ({ type: 'del', key: logKey(entry.index) }));
        void this.backend.write(truncate, { sync: false });
        for (let i = 0; i < batch.length; i++) batch[i]!.resolve({ outcome: outcomes[i]!, written });
      },
      (error: Error) => {
        // A failed log write leaves the member unable to promise durability: stop taking writes.
        this.stopped = true;
        this.persisting = false;
        for (const pending of batch) pending.reject(error);
        for (const pending of this.queue) pending.reject(new ServerError('Stopped'));
        this.queue = [];
      },
    );
  }

  stop(): void {
    this.stopped = true;
    for (const pending of this.queue) pending.reject(new ServerError('Stopped'));
    this.queue = [];
  }

  /** Resolves once nothing is being persisted (for graceful shutdown). */
  async drain(): Promise<void> {
    while (this.persisting) await new Promise((resolve) => setImmediate(resolve));
  }
}
