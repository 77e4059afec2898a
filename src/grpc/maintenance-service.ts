// etcd's Maintenance service. Status is what `etcdctl endpoint status` shows; Alarm GET lists
// no alarms (no alarm can be raised yet: ACTIVATE/DEACTIVATE answer UNIMPLEMENTED-like
// errors); Defragment compacts LevelDB; Hash/HashKV checksum the replicated state
// (server/maintenance-hash.ts); Snapshot streams an etcd 3.4 snapshot file, a bbolt database
// with etcd's buckets (server/maintenance/backup.ts); MoveLeader hands leadership to another voter
// (server/maintenance-leader.ts). Downgrade stays UNIMPLEMENTED.
//
// Snapshot follows etcd's stream exactly: 32 KiB blobs, each with the bytes still to come in
// `remaining_bytes`, then one more message whose blob is the SHA-256 of all blobs (and
// remaining_bytes 0). etcdctl writes the blobs to the file in order, so the file ends with
// that digest; it also requires the file length to be 32 modulo 512, which a database of whole
// pages gives.
//
// Hash, HashKV, Snapshot, MoveLeader and Defragment need the root user in etcd once auth is
// enabled; `requireRoot` is where that check goes (by default the member's auth: root role).

import { once } from 'node:events';
import * as grpc from '@grpc/grpc-js';
import type { SnapshotStream } from '../server/maintenance/backup.js';
import type { KvServer } from '../server/member/kv-server.js';
import { alarmName } from '../server/apply/alarms.js';
import { LeaderTransferTimeoutError, moveLeader } from '../server/maintenance/maintenance-leader.js';
import { type Handlers, type ResponseHeaders, StatusError, toStatus, unary } from './handler.js';
import { requireRoot as requireRootUser } from './auth-check.js';

/** The etcd release whose API and behaviour MetaStore reproduces; clients gate features on it. */
export const ETCD_COMPATIBLE_VERSION = '3.4.23';

export interface MaintenanceOptions {
  /** Throws (an etcd-coded error) unless the caller may run root-only maintenance calls. */
  requireRoot?: (call: grpc.ServerUnaryCall<unknown, unknown> | grpc.ServerWritableStream<unknown, unknown>) => void | Promise<void>;
  /** Bound on MoveLeader's wait for the new leader (default 5 s, within the call's deadline). */
  leaderTransferTimeoutMs?: number;
}

const DEFAULT_LEADER_TRANSFER_TIMEOUT_MS = 5000;

export function maintenanceHandlers(kv: KvServer, headers: ResponseHeaders, options: MaintenanceOptions = {}): Handlers {
  const requireRoot = options.requireRoot ?? ((call) => void requireRootUser(kv.auth, call));
  return {
    Status: unary('Status', async () => {
      const { dbSize, dbSizeInUse } = await kv.dbSizes();
      return {
        header: headers.at(kv.currentRevision),
        version: ETCD_COMPATIBLE_VERSION,
        dbSize,
        dbSizeInUse,
        leader: kv.leader.toString(),
        raftIndex: kv.commitIndex,
        raftTerm: kv.term,
        raftAppliedIndex: kv.appliedIndex,
        // etcd lists each active alarm as "memberID:<decimal ID> alarm:<NAME> ".
        errors: kv.applier.alarms.all.map((a) => `memberID:${a.memberId.toString()} alarm:${alarmName(a.alarm)} `),
        isLearner: false,
      };
    }),

    Alarm: unary<{ action?: number; memberID?: string; alarm?: number }>('Alarm', async (request, call) => {
      const action = request.action ?? 0;
      // Raising or disarming an alarm is an admin action (root under auth), as in etcd.
      if (action !== 0) await requireRoot(call);
      const members = await kv.alarm(action, BigInt(request.memberID ?? '0'), request.alarm ?? 0);
      // etcd 3.4's Alarm answers carry no header (its maintenance server never fills one).
      return { alarms: members.map((a) => ({ memberID: a.memberId.toString(), alarm: a.alarm })) };
    }),

    Defragment: unary('Defragment', async (_request, call) => {
      await requireRoot(call);
      await kv.defragment();
      return { header: headers.at(kv.currentRevision) };
    }),

    Hash: unary('Hash', async (_request, call) => {
      await requireRoot(call);
      const { hash, currentRevision } = await kv.hash();
      return { header: headers.at(currentRevision), hash };
    }),

    HashKV: unary<{ revision?: string }>('HashKV', async (request, call) => {
      await requireRoot(call);
      const revision = Number(request.revision ?? '0');
      // etcd hashes nothing for a negative revision; MetaStore reads it as 0 (current).
      return hashKvResponse(kv, headers, Number.isSafeInteger(revision) && revision > 0 ? revision : 0);
    }),

    MoveLeader: unary<{ targetID?: string }>('MoveLeader', async (request, call) => {
      await requireRoot(call);
      const target = BigInt(request.targetID ?? '0');
      const deadline = call.getDeadline();
      const untilDeadline = deadline instanceof Date ? deadline.getTime() - Date.now() : Number.isFinite(deadline) ? deadline - Date.now() : Infinity;
      const timeoutMs = Math.max(0, Math.min(options.leaderTransferTimeoutMs ?? DEFAULT_LEADER_TRANSFER_TIMEOUT_MS, untilDeadline));
      try {
        await moveLeader(kv.raft, target, { timeoutMs, pollMs: 10 });
      } catch (error) {
        // Not one of etcd's rpctypes errors: it reaches etcd clients as Unknown with this text.
        if (error instanceof LeaderTransferTimeoutError) throw new StatusError(grpc.status.UNKNOWN, error.message);
        throw error;
      }
      return { header: headers.at(kv.currentRevision) };
    }),

    Snapshot: ((call: grpc.ServerWritableStream<unknown, unknown>) => {
      void streamSnapshot(kv, headers, call, requireRoot);
    }) as grpc.handleServerStreamingCall<unknown, unknown>,
  };
}

async function hashKvResponse(kv: KvServer, headers: ResponseHeaders, revision: number) {
  const result = await kv.hashKv(revision);
  return {
    header: headers.at(result.currentRevision),
    hash: result.hash,
    compactRevision: result.compactRevision,
    hashRevision: result.hashRevision,
  };
}

async function streamSnapshot(
  kv: KvServer,
  headers: ResponseHeaders,
  call: grpc.ServerWritableStream<unknown, unknown>,
  requireRoot: NonNullable<MaintenanceOptions['requireRoot']>,
): Promise<void> {
  let cancelled = false;
  call.on('cancelled', () => {
    cancelled = true;
  });
  let snapshot: SnapshotStream | undefined;
  try {
    await requireRoot(call);
    snapshot = await kv.openSnapshot();
    let remaining = snapshot.totalBytes;
    const send = async (message: object): Promise<void> => {
      // Respect the stream's flow control: a slow client must not make us buffer the file.
      if (!call.write(message)) await Promise.race([once(call, 'drain'), once(call, 'cancelled')]);
    };
    for await (const blob of snapshot.blobs()) {
      if (cancelled) return;
      remaining -= blob.length;
      await send({ header: headers.at(kv.currentRevision), remainingBytes: remaining, blob });
    }
    if (cancelled) return;
    await send({ header: headers.at(kv.currentRevision), remainingBytes: 0, blob: snapshot.sha256() });
    call.end();
  } catch (error) {
    if (!cancelled) call.emit('error', toStatus('Snapshot', error));
  } finally {
    await snapshot?.close();
  }
}
