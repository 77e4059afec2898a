// The initial membership of a cluster, from either of the two ways of describing it:
// etcd's --initial-cluster (name=peer-URL pairs; IDs derived from URLs + token as etcd does)
// or MetaStore's YAML (explicit member IDs and `ID@host:port` raft peers).
//
// The result names every member with its ID and the host:port its raft transport listens on,
// this member's ID, and the cluster ID. It is computed once at first start (a member joining a
// running cluster takes the cluster's IDs instead: join-match.ts); restarts read the stored
// identity back (src/node/storage.ts), so a later change of flags cannot silently re-identify a
// member.

import { dialAddress } from './member-address.js';
import { deriveClusterId, deriveMemberId } from './member-id.js';

export interface InitialMember {
  id: bigint;
  name: string;
  /** Peer URLs as given (etcd hashes them verbatim). */
  peerUrls: string[];
  /** host:port of the member's raft transport (`unix:<file>` for a unix peer URL). */
  peerAddress: string;
}

export interface ClusterMembership {
  selfId: bigint;
  clusterId: bigint;
  members: InitialMember[];
}

export interface MembershipInput {
  name: string;
  token: string;
  /** etcd --initial-cluster, if given. */
  initialCluster: ReadonlyArray<{ name: string; peerUrls: readonly string[] }>;
  /** This member's advertised peer URLs (etcd --initial-advertise-peer-urls), if given. */
  advertisePeerUrls: readonly string[];
  /** Where this member's raft port is reached (advertise_address, else the bound address). */
  reachablePeerUrls: readonly string[];
  /** YAML raft peers, if given. */
  peers: ReadonlyArray<{ id: bigint; host: string; port: number }>;
  /** YAML IDs; 0 = derive. */
  memberId: bigint;
  clusterId: bigint;
}

/** etcd's default member name (--name), which MetaStore's server.name shares. */
const DEFAULT_NAME = 'default';

/** etcd's default when no cluster flags are given: one member at http://localhost:2380. */
export const DEFAULT_PEER_URL = 'http://localhost:2380';

export function initialMembership(input: MembershipInput): ClusterMembership {
  if (input.peers.length > 0) {
    // Other members are member-N until they publish their own names; this one is server.name
    // when set (etcd's default name "default" counts as unset).
    const members = input.peers.map((peer) => ({
      id: peer.id,
      name: peer.id === input.memberId && input.name !== DEFAULT_NAME && input.name !== '' ? input.name : `member-${peer.id.toString()}`,
      peerUrls: [`http://${peer.host}:${peer.port}`],
      peerAddress: `${peer.host}:${peer.port}`,
    }));
    return {
      selfId: input.memberId,
      clusterId: input.clusterId !== 0n ? input.clusterId : deriveClusterId(members.map((m) => m.id)),
      members,
    };
  }
  // The guide's lone member (member_id, cluster_id, no peers): a one-member cluster of that
  // member, reachable at its advertised (or bound) raft address.
  if (input.initialCluster.length === 0 && input.memberId !== 0n) {
    const peerUrls = input.reachablePeerUrls.length > 0 ? [...input.reachablePeerUrls] : [DEFAULT_PEER_URL];
    const members = [{ id: input.memberId, name: input.name, peerUrls, peerAddress: dialAddress(peerUrls[0]!) }];
    return { selfId: input.memberId, clusterId: input.clusterId !== 0n ? input.clusterId : deriveClusterId([input.memberId]), members };
  }
  const described =
    input.initialCluster.length > 0
      ? input.initialCluster.map((m) => ({ name: m.name, peerUrls: [...m.peerUrls] }))
      : [{ name: input.name, peerUrls: input.advertisePeerUrls.length > 0 ? [...input.advertisePeerUrls] : [DEFAULT_PEER_URL] }];
  const members = described.map((m) => ({
    id: deriveMemberId(m.peerUrls, input.token),
    name: m.name,
    peerUrls: m.peerUrls,
    peerAddress: dialAddress(m.peerUrls[0] ?? DEFAULT_PEER_URL),
  }));
  const self = members.find((m) => m.name === input.name) ?? members[0]!;
  return {
    selfId: input.memberId !== 0n ? input.memberId : self.id,
    clusterId: input.clusterId !== 0n ? input.clusterId : deriveClusterId(members.map((m) => m.id)),
    members,
  };
}
