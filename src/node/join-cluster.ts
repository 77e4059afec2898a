// First start of a member joining a running cluster (--initial-cluster-state existing, no
// stored identity): as etcd (GetClusterFromRemotePeers), it asks the other members of its
// --initial-cluster, one peer URL after the other in sorted order, for the member list over
// the peer port (the Members call, with the peer link's TLS), and takes its own ID, the other
// members' IDs and the cluster ID from the first answer (join-match.ts). `member add` mixes
// the time into the new member's ID, so this is the only way to know it. The failures are
// etcd's messages; main prints them and exits 2. A restart reads the stored identity and asks
// no one (storage.ts).
//
// Members configured with explicit IDs (server.member_id / server.raft.peers) keep them: they
// do not ask.

import type { Logger } from 'pino';
import type { Config } from '../config/schema.js';
import type { ClusterMembership } from '../server/membership/cluster-members.js';
import { assignRemoteIds, JoinMismatchError } from '../server/membership/join-match.js';
import { decodeClusterListing, MemberListDecodeError, type ClusterListing } from '../server/membership/member-list-json.js';
import { askPeerForMembers, PeerCallError } from '../transport/peer-transport.js';
import { peerTlsOf } from './peers.js';
import { StartupError } from './startup-error.js';

/** etcd's per-URL timeout for the member list (a peer answers within its 5 s TTL or not at all). */
const ASK_TIMEOUT_MS = 10_000;

type JoinConfig = Pick<Config, 'name' | 'raft' | 'dataDir' | 'initialClusterState' | 'memberId'>;

/** Whether a first start takes its identity from the running cluster rather than its flags. */
export function learnsIdentityFromCluster(config: JoinConfig): boolean {
  return config.initialClusterState === 'existing' && config.memberId === 0n && config.raft.peers.length === 0;
}

/** The initial membership with the running cluster's IDs; a StartupError with etcd's words when that fails. */
export async function learnClusterFromPeers(config: JoinConfig, local: ClusterMembership, logger: Logger): Promise<ClusterMembership> {
  const remoteUrls = local.members.filter((m) => m.name !== config.name).flatMap((m) => m.peerUrls);
  const listing = await fetchClusterListing([...remoteUrls].sort(), config, logger);
  try {
    const learnt = assignRemoteIds(local, listing);
    logger.info(
      { memberId: learnt.selfId.toString(16), clusterId: learnt.clusterId.toString(16), members: learnt.members.length },
      'joining an existing cluster: member and cluster IDs taken from its member list',
    );
    return learnt;
  } catch (error) {
    if (error instanceof JoinMismatchError) throw new StartupError(error.message);
    throw error;
  }
}

async function fetchClusterListing(urls: readonly string[], config: JoinConfig, logger: Logger): Promise<ClusterListing> {
  const tls = peerTlsOf(config, logger);
  try {
    for (const url of urls) {
      const listing = await askOne(url, tls?.credentials.channel, logger);
      if (listing === undefined) continue;
      if (listing.members.length === 0)
        throw new StartupError('cannot fetch cluster info from peer urls: failed to get raft cluster member(s) from the given URLs');
      return listing;
    }
    throw new StartupError('cannot fetch cluster info from peer urls: could not retrieve cluster information from the given URLs');
  } finally {
    tls?.close();
  }
}

/** The member list one peer URL answers, or undefined (logged, as etcd) when it does not. */
async function askOne(url: string, channel: Parameters<typeof askPeerForMembers>[1], logger: Logger): Promise<ClusterListing | undefined> {
  try {
    return decodeClusterListing(await askPeerForMembers(url, channel, ASK_TIMEOUT_MS));
  } catch (error) {
    if (!(error instanceof PeerCallError || error instanceof MemberListDecodeError)) throw error;
    logger.warn({ address: url, error: error.message }, 'failed to get cluster response');
    return undefined;
  }
}
