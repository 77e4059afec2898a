// Member and cluster IDs derived exactly as etcd derives them, so that a MetaStore started
// with the same --name/--initial-cluster/--initial-cluster-token as an etcd member reports
// the same IDs in every response header (etcd: membership.NewMember and RaftCluster.genID).
//
// member ID = first 8 bytes (big-endian) of SHA-1(sorted peer URLs concatenated + token)
// cluster ID = first 8 bytes of SHA-1(member IDs in ascending order, 8 bytes each)
// A member added at run time (MemberAdd) gets etcd's runtime ID: SHA-1 of its sorted peer
// URLs, an empty token and the current Unix time in decimal seconds, so a removed member's peer
// URL can be added again (in a later second) under a new ID.

import { createHash } from 'node:crypto';

export function deriveMemberId(peerUrls: readonly string[], clusterToken: string, unixSeconds?: number): bigint {
  const hash = createHash('sha1');
  for (const url of [...peerUrls].sort()) hash.update(url);
  hash.update(clusterToken);
  if (unixSeconds !== undefined) hash.update(String(unixSeconds));
  return hash.digest().readBigUInt64BE(0);
}

/** The ID of a member added at run time, as etcd's MemberAdd derives it (no token, the time). */
export function deriveAddedMemberId(peerUrls: readonly string[], unixSeconds: number): bigint {
  return deriveMemberId(peerUrls, '', unixSeconds);
}

export function deriveClusterId(memberIds: readonly bigint[]): bigint {
  const sorted = [...memberIds].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  const bytes = Buffer.alloc(8 * sorted.length);
  for (const [i, id] of sorted.entries()) bytes.writeBigUInt64BE(id, 8 * i);
  return createHash('sha1').update(bytes).digest().readBigUInt64BE(0);
}
