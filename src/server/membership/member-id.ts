// Member and cluster IDs derived exactly as etcd derives them, so that a MetaStore started
// with the same --name/--initial-cluster/--initial-cluster-token as an etcd member reports
// the same IDs in every response header (etcd: membership.NewMember and RaftCluster.genID).
//
// member ID = first 8 bytes (big-endian) of SHA-1(sorted peer URLs concatenated + token)
// added member ID = the same over (sorted peer URLs + the add's Unix time in decimal seconds):
//   etcd's v3 MemberAdd passes an empty cluster name and the time, so re-adding a removed
//   member's peer URL a second or more later gets a new ID
// cluster ID = first 8 bytes of SHA-1(member IDs in ascending order, 8 bytes each)

import { createHash } from 'node:crypto';

export function deriveMemberId(peerUrls: readonly string[], clusterToken: string): bigint {
  const hash = createHash('sha1');
  for (const url of [...peerUrls].sort()) hash.update(url);
  hash.update(clusterToken);
  return hash.digest().readBigUInt64BE(0);
}

/** The ID etcd's Cluster.MemberAdd gives a member added at `unixSeconds` (membership.NewMember with a time). */
export function deriveAddedMemberId(peerUrls: readonly string[], unixSeconds: number): bigint {
  return deriveMemberId(peerUrls, String(Math.floor(unixSeconds)));
}

export function deriveClusterId(memberIds: readonly bigint[]): bigint {
  const sorted = [...memberIds].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  const bytes = Buffer.alloc(8 * sorted.length);
  for (const [i, id] of sorted.entries()) bytes.writeBigUInt64BE(id, 8 * i);
  return createHash('sha1').update(bytes).digest().readBigUInt64BE(0);
}
