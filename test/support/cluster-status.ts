// Cluster-level observations for end-to-end tests, through the real etcdctl: each member's
// status (who it thinks leads), waiting for a leader, and finding it. Nothing announces these
// states, so they are polled (with waitFor).

import type { MetaStoreCluster } from './servers.js';
import { etcdctl } from './tools.js';
import { waitFor } from './wait.js';

export interface MemberStatus {
  /** host:port as etcdctl printed it. */
  endpoint: string;
  memberId: string;
  /** "0" when the member knows no leader (etcdctl's JSON omits a zero leader). */
  leader: string;
  raftIndex: number;
  appliedIndex: number;
}

/** `etcdctl endpoint status` of the given endpoints; members that don't answer are left out. */
export async function memberStatuses(endpoints: string): Promise<MemberStatus[]> {
  const result = await etcdctl(endpoints, ['endpoint', 'status', '-w', 'json', '--command-timeout=2s']);
  // Keep 64-bit IDs exact: quote them before JSON.parse.
  const text = result.stdout.replace(/"(member_id|leader|cluster_id)":(\d+)/g, '"$1":"$2"');
  if (!text.trim().startsWith('[')) return [];
  return (JSON.parse(text) as Array<{ Endpoint: string; Status: any }>).map((e) => ({
    endpoint: e.Endpoint,
    memberId: e.Status.header.member_id,
    leader: e.Status.leader ?? '0',
    raftIndex: e.Status.raftIndex,
    appliedIndex: e.Status.raftAppliedIndex,
  }));
}

/**
 * Waits until every given endpoint answers and reports the same leader, one of them: a leader
 * that is serving, not one that was stopped and is still remembered (a follower forwards some
 * calls to the leader it knows).
 */
export async function waitForLeader(endpoints: string, count: number): Promise<MemberStatus[]> {
  return waitFor(() => memberStatuses(endpoints), {
    what: `a leader among ${endpoints}`,
    until: (s) => s.length === count && s.every((m) => m.leader === s[0]!.leader) && s.some((m) => m.memberId === m.leader),
  });
}

/** Index in `cluster.members` of the current leader (waits until one is known). */
export async function leaderIndex(cluster: MetaStoreCluster): Promise<number> {
  const statuses = await waitFor(() => memberStatuses(cluster.endpoints), {
    what: 'a leader',
    until: (s) => s.some((m) => m.leader !== '0' && m.leader === m.memberId),
  });
  const leader = statuses.find((m) => m.leader === m.memberId)!;
  return cluster.members.findIndex((m) => m.endpoint.endsWith(leader.endpoint));
}
