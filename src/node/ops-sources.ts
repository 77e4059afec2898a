// What the health and metrics side ports read: the member's state through a narrow view, plus
// the two things that are the node's rather than the member's (whether it is shutting down, and
// how many client connections are open). The side ports never import the member; this mapping
// is the one place that knows both.

import type { HealthSources } from '../http/health.js';
import { countGrpcConnections } from '../metrics/grpc-connections.js';
import type { MetricsSources } from '../metrics/metrics.js';
import { rangeRequest, type RangeRequest } from '../mvcc/types.js';
import { alarmName, type AlarmMember } from '../server/apply/alarms.js';
import { KeySpace } from '../storage/backend.js';

/** The member as the side ports see it. */
export interface OpsMember {
  /** Absent: a member without Raft, which always leads itself. */
  readonly raft?: { readonly leader: bigint; readonly isLeader: boolean } | undefined;
  readonly appliedIndex: number;
  readonly commitIndex: number;
  readonly lastIndex: number;
  readonly currentRevision: number;
  readonly compactedRevision: number;
  readonly applier: { readonly alarms: { readonly all: readonly AlarmMember[] } };
  readonly backend: { sizeBytes(): Promise<number>; spaceSizeBytes(space: KeySpace): Promise<number> };
  readonly watchHub: { readonly counts: { synced: number; unsynced: number } };
  range(request: RangeRequest): { result: { count: number } };
  readonly mvcc: { readonly liveKeyCount: number };
}

/** The node's own state the side ports report. */
export class NodeStatus {
  /** Set first thing on shutdown: from then on /readiness answers 503. */
  shuttingDown = false;
  /**
   * Open client connections: counted at the client listener once it is up (channelz misses
   * connections the listener still holds before handing them to grpc-js).
   */
  clientConnections: () => number = () => countGrpcConnections();
}

/** A serializable single-key read: what the health checks ask of the store. */
const HEALTH_PROBE = rangeRequest(Buffer.from('health'), undefined, { limit: 1, keysOnly: true });

export function opsSources(member: OpsMember, status: NodeStatus): HealthSources & MetricsSources {
  return {
    hasLeader: () => (member.raft ? member.raft.leader !== 0n : true),
    isLeader: () => (member.raft ? member.raft.isLeader : true),
    appliedIndex: () => member.appliedIndex,
    committedIndex: () => member.commitIndex,
    pendingProposals: () => Math.max(0, member.lastIndex - member.appliedIndex),
    alarms: () => member.applier.alarms.all.map((a) => alarmName(a.alarm)),
    shuttingDown: () => status.shuttingDown,
    checkRead: async () => void member.range(HEALTH_PROBE),
    currentRevision: () => member.currentRevision,
    compactedRevision: () => member.compactedRevision,
    // O(keys) per scrape until the MVCC store keeps a live-key count.
    // Kept by the store as it writes: a count-only range over every key walks the whole index
    // (seconds per scrape at a million keys, on the thread that serves everything).
    keysTotal: () => member.mvcc.liveKeyCount,
    dbSizeBytes: () => member.backend.sizeBytes(),
    dbSizeInUseBytes: () => member.backend.spaceSizeBytes(KeySpace.mvcc),
    activeConnections: () => status.clientConnections(),
    watchers: () => {
      const counts = member.watchHub.counts;
      return counts.synced + counts.unsynced;
    },
  };
}
