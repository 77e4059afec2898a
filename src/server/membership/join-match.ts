// A member joining a running cluster (--initial-cluster-state existing, empty data dir) takes
// its ID, the other members' IDs and the cluster ID from the running cluster's member list,
// because `member add` mixes the time into the ID (member-id.ts): nothing local can derive it.
// As etcd (membership.ValidateClusterAndAssignIDs), the local --initial-cluster must describe
// the same members: as many, each remote member's peer URLs equal to one local member's; the
// local names are kept, the IDs are the remote ones. The messages are etcd's.
//
// Peer URLs are compared as strings (sorted); etcd also resolves host names that differ, which
// MetaStore does not: name a member by the same URL everywhere.

import type { ClusterMembership, InitialMember } from './cluster-members.js';
import type { ClusterListing } from './member-list-json.js';
import type { Member } from './membership.js';

/** The local --initial-cluster does not describe the running cluster (etcd refuses to start). */
export class JoinMismatchError extends Error {
  override name = 'JoinMismatchError';
}

/** The local membership with the running cluster's IDs; throws JoinMismatchError as etcd would. */
export function assignRemoteIds(local: ClusterMembership, remote: ClusterListing): ClusterMembership {
  const problem = mismatch(local.members, remote.members);
  if (problem !== undefined) throw new JoinMismatchError(`error validating peerURLs ${describeCluster(remote)}: ${problem}`);
  const self = local.members.find((m) => m.id === local.selfId);
  const members = local.members.map((m) => ({ ...m, id: remote.members.find((r) => sameUrls(r.peerUrls, m.peerUrls))!.id }));
  const selfIndex = self === undefined ? 0 : local.members.indexOf(self);
  return { selfId: members[selfIndex]!.id, clusterId: remote.clusterId, members };
}

/** etcd's reason the two lists differ, or undefined when every remote member has its local twin. */
function mismatch(local: readonly InitialMember[], remote: readonly Member[]): string | undefined {
  if (local.length !== remote.length) return 'member count is unequal';
  const locals = [...local].sort((a, b) => compareIds(a.id, b.id));
  for (const existing of [...remote].sort((a, b) => compareIds(a.id, b.id))) {
    let lastError = '<nil>';
    if (locals.some((m) => sameUrls(existing.peerUrls, m.peerUrls))) continue;
    for (const m of locals) lastError = urlDifference(existing.peerUrls, m.peerUrls);
    return `PeerURLs: no match found for existing member (${existing.id.toString(16)}, [${existing.peerUrls.join(' ')}]), last resolver error (${lastError})`;
  }
  return undefined;
}

function sameUrls(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && urlDifference(a, b) === '<nil>';
}

/** etcd's netutil.URLStringsEqual error for two URL lists (Go's %q of the values). */
function urlDifference(a: readonly string[], b: readonly string[]): string {
  const quoted = (urls: readonly string[]) => `[${urls.map((u) => JSON.stringify(u)).join(' ')}]`;
  if (a.length !== b.length) return `len(${quoted(a)}) != len(${quoted(b)})`;
  const sortedA = [...a].sort();
  const sortedB = [...b].sort();
  const at = sortedA.findIndex((url, i) => url !== sortedB[i]);
  return at < 0 ? '<nil>' : `resolved urls: ${JSON.stringify(sortedA[at])} != ${JSON.stringify(sortedB[at])}`;
}

/** etcd's RaftCluster String() of the fetched cluster (members in ID order; none removed). */
function describeCluster(remote: ClusterListing): string {
  const members = [...remote.members]
    .sort((a, b) => compareIds(a.id, b.id))
    .map(
      (m) =>
        `&{ID:${m.id.toString(16)} RaftAttributes:{PeerURLs:[${m.peerUrls.join(' ')}] IsLearner:${m.isLearner}} ` +
        `Attributes:{Name:${m.name} ClientURLs:[${m.clientUrls.join(' ')}]}}`,
    );
  return `{ClusterID:${remote.clusterId.toString(16)} Members:[${members.join(' ')}] RemovedMemberIDs:[]}`;
}

function compareIds(a: bigint, b: bigint): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
