// The member's KV state machine behind the gRPC edge: opens the backend, restores MVCC,
// recovers the log, and serves reads locally and writes through the log.
//
// Reads: a range (or a txn that only reads) is served from the in-memory MVCC store at once.
// On a single member every acknowledged write is already applied, so that is linearizable;
// the Raft-driven node adds a ReadIndex round before a linearizable read.
// Writes: proposed to the log; the answer carries the store revision right after the entry.

import type { Backend } from '../storage/backend.js';
import { KeySpace } from '../storage/backend.js';
import { MvccStore } from '../mvcc/mvcc-store.js';
import { decodeRevisionKey, encodeRevisionKey } from '../mvcc/revision.js';
import type {
  DeleteRangeRequest,
  DeleteRangeResult,
  PutRequest,
  PutResult,
  RangeRequest,
  RangeResult,
  RequestOp,
  TxnRequest,
  TxnResult,
} from '../mvcc/types.js';
import { assert } from '../util/assert.js';
import { Applier, META_APPLIED_INDEX, META_COMPACTED_REVISION, type ApplyOutcome, type ApplyValue } from './applier.js';
import { SoloLog } from './solo-log.js';
import { WatchHub } from './watch-hub.js';

export interface Revisioned<T> {
  result: T;
  /** The store revision the answer's header reports. */
  revision: number;
}

export interface MemberIdentity {
  clusterId: bigint;
  memberId: bigint;
}

function readMetaNumber(backend: Backend, key: string): number {
  const value = backend.get(KeySpace.meta, key);
  return value === undefined ? 0 : Number(value.readBigUInt64BE(0));
}

export function isReadOnlyTxn(txn: TxnRequest): boolean {
  const readOnly = (ops: readonly RequestOp[]): boolean =>
    ops.every((op) => op.kind === 'range' || (op.kind === 'txn' && isReadOnlyTxn(op.txn)));
  return readOnly(txn.success) && readOnly(txn.failure);
}

export class KvServer {
  /** Watchers of this member, fed by the applier (see watch-hub.ts). */
  readonly watchHub: WatchHub;

  private constructor(
    readonly backend: Backend,
    readonly mvcc: MvccStore,
    readonly applier: Applier,
    private readonly log: SoloLog,
  ) {
    this.watchHub = new WatchHub({ mvcc, backend });
    applier.addListener(this.watchHub);
  }

  static async open(backend: Backend): Promise<KvServer> {
    const mvcc = new MvccStore({ history: { readRecord: (rev) => backend.get(KeySpace.mvcc, encodeRevisionKey(rev)) } });
    for await (const [key, record] of backend.scan(KeySpace.mvcc)) {
      mvcc.restoreRecord(decodeRevisionKey(key), record);
    }
    mvcc.finishRestore({ compactedRevision: readMetaNumber(backend, META_COMPACTED_REVISION) });
    const applier = new Applier(mvcc, backend, readMetaNumber(backend, META_APPLIED_INDEX));
    const log = await SoloLog.recover(backend, applier);
    return new KvServer(backend, mvcc, applier, log);
  }

  get currentRevision(): number {
    return this.mvcc.currentRevision;
  }

  get compactedRevision(): number {
    return this.mvcc.compactedRevision;
  }

  /** Raft term of the log; a single member stays in its first term. */
  get term(): number {
    return 1;
  }

  get appliedIndex(): number {
    return this.applier.appliedIndex;
  }

  get lastIndex(): number {
    return this.log.lastIndex;
  }

  range(request: RangeRequest): Revisioned<RangeResult> {
    const result = this.mvcc.range(request);
    return { result, revision: this.mvcc.currentRevision };
  }

  async put(request: PutRequest): Promise<Revisioned<PutResult>> {
    const { outcome } = await this.log.propose({ kind: 'put', put: request });
    const value = unwrap(outcome);
    assert(value.kind === 'put');
    return { result: value.put, revision: revisionOf(outcome) };
  }

  async deleteRange(request: DeleteRangeRequest): Promise<Revisioned<DeleteRangeResult>> {
    const { outcome } = await this.log.propose({ kind: 'deleteRange', deleteRange: request });
    const value = unwrap(outcome);
    assert(value.kind === 'deleteRange');
    return { result: value.deleteRange, revision: revisionOf(outcome) };
  }

  async txn(request: TxnRequest): Promise<Revisioned<TxnResult>> {
    if (isReadOnlyTxn(request)) {
      const result = this.mvcc.txn(request, {
        record: () => assert(false, 'read-only txn wrote a record'),
        event: () => assert(false, 'read-only txn produced an event'),
      });
      return { result, revision: this.mvcc.currentRevision };
    }
    const { outcome } = await this.log.propose({ kind: 'txn', txn: request });
    const value = unwrap(outcome);
    assert(value.kind === 'txn');
    return { result: value.txn, revision: revisionOf(outcome) };
  }

  /** Compacts the history; with `physical`, answers only once the removal is on disk. */
  async compact(revision: number, physical: boolean): Promise<Revisioned<null>> {
    const { outcome, written } = await this.log.propose({ kind: 'compact', revision, physical });
    unwrap(outcome);
    if (physical) await written;
    return { result: null, revision: revisionOf(outcome) };
  }

  async close(): Promise<void> {
    this.watchHub.close();
    this.log.stop();
    await this.log.drain();
    await this.backend.close();
  }
}

function unwrap(outcome: ApplyOutcome): ApplyValue {
  if (!outcome.ok) throw outcome.error;
  return outcome.value;
}

function revisionOf(outcome: ApplyOutcome): number {
  assert(outcome.ok, 'revision of a failed outcome');
  return outcome.revision;
}
