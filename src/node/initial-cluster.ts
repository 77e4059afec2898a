// The cluster this member was configured to start in: from etcd's --initial-cluster or the
// YAML raft peers. A first start's identity is derived from it (or, for a member joining a
// running cluster, its IDs are replaced by the cluster's: join-cluster.ts); the member takes
// its initial voters and member list from it, the peer transport its first peers.

import { peerAdvertiseUrls, type Config } from '../config/schema.js';
import { formatUrl } from '../config/values.js';
import { initialMembership, type ClusterMembership } from '../server/membership/cluster-members.js';

export type ClusterConfig = Pick<Config, 'name' | 'initialClusterToken' | 'initialCluster' | 'raft' | 'memberId' | 'clusterId'>;

export function initialClusterOf(config: ClusterConfig): ClusterMembership {
  return initialMembership({
    name: config.name,
    token: config.initialClusterToken,
    initialCluster: config.initialCluster.map((m) => ({ name: m.name, peerUrls: m.peerUrls.map(formatUrl) })),
    advertisePeerUrls: config.raft.advertiseUrls.map(formatUrl),
    reachablePeerUrls: peerAdvertiseUrls(config).map(formatUrl),
    peers: config.raft.peers,
    memberId: config.memberId,
    clusterId: config.clusterId,
  });
}
