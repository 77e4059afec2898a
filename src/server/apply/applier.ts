// The apply side of the log: committed entries, in index order, go into the MVCC store, and
// the records they produce are written together with the applied index ("consistent index")
// in one backend batch.
//
// Invariants:
// - Entries are applied exactly once and in order: an entry at or below the applied index is
//   a bug (assert); recovery skips them before calling here.
// - Apply is deterministic: the same entries on the same state give the same records and
//   results on every member. No clock, no randomness.
// - Expected errors (compacted revision, missing lease, ...) become results for the waiting
//   client and change nothing; anything else thrown is a bug and propagates (fail-stop).
// - The batch that carries an entry's records also carries the applied index covering it, so
//   after a crash the state on disk is always "everything up to the stored applied index".
// - Until that batch is handed to the backend, its records are readable through
//   unwrittenRecord(): the store reads values back from history (a put reads the key's
//   previous record when a watcher wants prev_kv), and a later entry of the same batch may
//   touch the same key.

import type { Backend, BatchOp } from '../../storage/backend.js';
import { KeySpace, spaceKey } from '../../storage/backend.js';
import { LeaseError } from '../../lease/errors.js';
import { AuthError } from '../../auth/errors.js';
import { MvccError } from '../../mvcc/errors.js';
import type { MvccStore, WriteSink } from '../../mvcc/mvcc-store.js';
import { encodeRevisionKey } from '../../mvcc/revision.js';
import type { Event, Revision } from '../../mvcc/types.js';
import { assert } from '../../util/assert.js';
import { decodeInternalRequest, type InternalRequest } from './internal-request.js';
import type { LeaseApplier } from './lease-apply.js';
import { Alarms, AlarmType } from './alarms.js';
import { ServerError } from './errors.js';
import type { ApplyOutcome } from './outcome.js';
import type { AuthApplier } from './auth-apply.js';

export const META_APPLIED_INDEX = 'appliedIndex';
export const META_COMPACTED_REVISION = 'compactedRevision';

export interface CommittedEntry {
  index: number;
  /** The encoded InternalRequest; empty for entries that carry no request (raft no-ops). */
  data: Buffer;
  /** The decoded request when this member proposed it: saves decoding it again. */
  request?: InternalRequest;
}

export interface AppliedBatch {
  outcomes: ApplyOutcome[];
  /** Resolves when the batch's records and applied index are written to the backend. */
  written: Promise<void>;
}

/** Receives the events of every applied write, in revision order (the watch hub). */
export interface EventListener {
  onEvents(events: readonly Event[], revision: number): void;
  /** Whether an event on this key (latin1) about to be applied must carry prevKv: the store
   * reads the previous value back only then. Asked during the apply, before onEvents. */
  wantsPrevKv(keyText: string): boolean;
  /** The store was rebuilt from a snapshot; it held revisions up to `previousRevision` before. */
  onRestored(previousRevision: number): void;
}

/** Made once: LevelDB and the backend only read the keys of the ops they are given. */
const APPLIED_INDEX_KEY = spaceKey(KeySpace.meta, META_APPLIED_INDEX);

/** The backend key of the record filed under `rev`: spaceKey(mvcc, revision key), one allocation. */
function mvccRecordKey(rev: Revision): Buffer {
  const key = encodeRevisionKey(rev, 1);
  key[0] = KeySpace.mvcc;
  return key;
}

export class Applier {
  private applied: number;
  private readonly listeners: EventListener[] = [];
  private lastWritten: Promise<void> = Promise.resolve();
  private leases: LeaseApplier | undefined;
  private auth: AuthApplier | undefined;
  private members: { applyPublish(id: bigint, name: string, clientUrls: string[]): void } | undefined;
  /** Records of the batch being applied, by main revision, indexed by sub revision. */
  private readonly unwritten = new Map<number, Buffer[]>();

  constructor(
    private readonly mvcc: MvccStore,
    private readonly backend: Backend,
    appliedIndex: number,
  ) {
    this.applied = appliedIndex;
  }

  get appliedIndex(): number {
    return this.applied;
  }

  /** The cluster's alarms (NOSPACE, CORRUPT), kept in step with the log. */
  readonly alarms = new Alarms();

  /**
   * etcd's capped and corrupt appliers: with NOSPACE active, entries that can grow the store
   * (put, writing txn, lease grant) are refused; with CORRUPT, every data entry is.
   */
  private alarmRefusal(request: InternalRequest): ServerError | undefined {
    if (this.alarms.all.length === 0) return undefined;
    const data =
      request.kind === 'put' || request.kind === 'txn' || request.kind === 'deleteRange' || request.kind === 'compact' || request.kind === 'leaseGrant';
    if (data && this.alarms.has(AlarmType.CORRUPT)) return new ServerError('Corrupt');
    if ((request.kind === 'put' || request.kind === 'txn' || request.kind === 'leaseGrant') && this.alarms.has(AlarmType.NOSPACE))
      return new ServerError('NoSpace');
    return undefined;
  }

  /** A record emitted by the batch being applied, not yet handed to the backend (whose reads
   * see it from then on); for the store's HistoryReader. */
  unwrittenRecord(rev: Revision): Buffer | undefined {
    return this.unwritten.get(rev.main)?.[rev.sub];
  }

  /** Resolves when every apply batch so far is on disk (before compacting the log behind it). */
  flushed(): Promise<void> {
    return this.lastWritten;
  }

  /** After a snapshot install replaced the state: continue from its applied index. */
  /** After the state was replaced by a snapshot (member-state.ts installState). */
  restored(index: number, previousRevision: number): void {
    this.applied = index;
    for (const listener of this.listeners) listener.onRestored(previousRevision);
  }

  /** Member publications are applied to the member list (src/server/membership.ts). */
  setMembers(members: { applyPublish(id: bigint, name: string, clientUrls: string[]): void }): void {
    this.members = members;
  }

  /** Lease entries are applied by the lessor's applier (src/server/lease-apply.ts). */
  setLeaseApplier(leases: LeaseApplier): void {
    this.leases = leases;
  }

  /** Auth entries, and the permission checks of writes, go to the auth applier (auth-apply.ts). */
  setAuthApplier(auth: AuthApplier): void {
    this.auth = auth;
  }

  addListener(listener: EventListener): void {
    this.listeners.push(listener);
  }

  /** Applies consecutive committed entries and queues their write; see the file header. */
  applyEntries(entries: readonly CommittedEntry[]): AppliedBatch {
    const ops: BatchOp[] = [];
    const events: Event[] = [];
    const unwritten = this.unwritten;
    const listeners = this.listeners;
    const sink: WriteSink = {
      record(rev: Revision, record: Buffer): void {
        ops.push({ type: 'put', key: mvccRecordKey(rev), value: record });
        const subs = unwritten.get(rev.main);
        if (subs === undefined) unwritten.set(rev.main, [record]);
        else subs[rev.sub] = record;
      },
      event(event: Event): void {
        events.push(event);
      },
      wantsPrevKv(keyText: string): boolean {
        for (const listener of listeners) if (listener.wantsPrevKv(keyText)) return true;
        return false;
      },
    };
    const outcomes: ApplyOutcome[] = [];
    for (const entry of entries) {
      assert(entry.index === this.applied + 1, `apply out of order: entry ${entry.index} after ${this.applied}`);
      this.applied = entry.index;
      if (entry.data.length === 0 && entry.request === undefined) {
        outcomes.push({ ok: true, value: { kind: 'none' }, revision: this.mvcc.currentRevision });
        continue;
      }
      const request = entry.request ?? decodeInternalRequest(entry.data);
      outcomes.push(this.applyOne(request, sink, ops));
    }
    const indexBytes = Buffer.allocUnsafe(8);
    indexBytes.writeBigUInt64BE(BigInt(this.applied));
    ops.push({ type: 'put', key: APPLIED_INDEX_KEY, value: indexBytes });
    const written = this.backend.write(ops, { sync: false });
    unwritten.clear();
    this.lastWritten = written;
    if (events.length > 0) {
      for (const listener of this.listeners) listener.onEvents(events, this.mvcc.currentRevision);
    }
    return { outcomes, written };
  }

  private applyOne(request: InternalRequest, sink: WriteSink, ops: BatchOp[]): ApplyOutcome {
    try {
      this.auth?.check(request);
      const refusal = this.alarmRefusal(request);
      if (refusal !== undefined) return { ok: false, error: refusal };
      switch (request.kind) {
        case 'put':
          return { ok: true, value: { kind: 'put', put: this.mvcc.put(request.put, sink) }, revision: this.mvcc.currentRevision };
        case 'deleteRange':
          return {
            ok: true,
            value: { kind: 'deleteRange', deleteRange: this.mvcc.deleteRange(request.deleteRange, sink) },
            revision: this.mvcc.currentRevision,
          };
        case 'txn':
          return { ok: true, value: { kind: 'txn', txn: this.mvcc.txn(request.txn, sink) }, revision: this.mvcc.currentRevision };
        case 'compact': {
          const { obsolete } = this.mvcc.compact(request.revision);
          for (const rev of obsolete) ops.push({ type: 'del', key: mvccRecordKey(rev) });
          const revisionBytes = Buffer.allocUnsafe(8);
          revisionBytes.writeBigUInt64BE(BigInt(request.revision));
          ops.push({ type: 'put', key: spaceKey(KeySpace.meta, META_COMPACTED_REVISION), value: revisionBytes });
          return { ok: true, value: { kind: 'compact' }, revision: this.mvcc.currentRevision };
        }
        case 'leaseGrant':
        case 'leaseRevoke':
        case 'leaseCheckpoint':
          assert(this.leases !== undefined, 'lease entry applied without a lessor');
          return this.leases.apply(request, sink, ops);
        case 'alarm':
          return {
            ok: true,
            value: { kind: 'alarm', members: this.alarms.apply(request.action, request.memberId, request.alarm as AlarmType, ops) },
            revision: this.mvcc.currentRevision,
          };
        case 'publishMember':
          this.members?.applyPublish(request.memberId, request.name, [...request.clientUrls]);
          return { ok: true, value: { kind: 'none' }, revision: this.mvcc.currentRevision };
        case 'auth':
          assert(this.auth !== undefined, 'auth entry applied without an auth applier');
          this.auth.apply(request, ops);
          return { ok: true, value: { kind: 'auth' }, revision: this.mvcc.currentRevision };
      }
    } catch (error) {
      if (error instanceof MvccError || error instanceof LeaseError || error instanceof AuthError) return { ok: false, error };
      throw error;
    }
  }
}
