// Cluster-level observations for end-to-end tests, through the real etcdctl: each member's
// status (who it thinks leads), waiting for a condition that has no event to subscribe to,
// and finding the leader.

import type { MetaStoreCluster } from './servers.js';
import { etcdctl } from './tools.js';

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
 * Polls `probe` until `check` holds, at most `timeoutMs`: for cluster state that no event
 * announces (who leads, how far a member has applied).
 */
export async function waitUntil<T>(what: string, probe: () => Promise<T>, check: (value: T) => boolean, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last = await probe();
  while (!check(last)) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; last: ${JSON.stringify(last)}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
    last = await probe();
  }
  return last;
}

/** Waits until every given endpoint reports the same known leader. */
export async function waitForLeader(endpoints: string, count: number): Promise<MemberStatus[]> {
  return waitUntil('a leader', () => memberStatuses(endpoints), (s) => s.length === count && s.every((m) => m.leader !== '0' && m.leader === s[0]!.leader));
}

/** Index in `cluster.members` of the current leader (waits until one is known). */
export async function leaderIndex(cluster: MetaStoreCluster): Promise<number> {
  const statuses = await waitUntil(
    'a leader',
    () => memberStatuses(cluster.endpoints),
    (s) => s.some((m) => m.leader !== '0' && m.leader === m.memberId),
  );
  const leader = statuses.find((m) => m.leader === m.memberId)!;
  return cluster.members.findIndex((m) => m.endpoint.endsWith(leader.endpoint));
}
