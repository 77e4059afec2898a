// Member and cluster IDs derived exactly as etcd derives them, so that a MetaStore started
// with the same --name/--initial-cluster/--initial-cluster-token as an etcd member reports
// the same IDs in every response header (etcd: membership.NewMember and RaftCluster.genID).
//
// member ID = first 8 bytes (big-endian) of SHA-1(sorted peer URLs concatenated + token)
// cluster ID = first 8 bytes of SHA-1(member IDs in ascending order, 8 bytes each)

import { createHash } from 'node:crypto';

export function deriveMemberId(peerUrls: readonly string[], clusterToken: string): bigint {
  const hash = createHash('sha1');
  for (const url of [...peerUrls].sort()) hash.update(url);
  hash.update(clusterToken);
  return hash.digest().readBigUInt64BE(0);
}

export function deriveClusterId(memberIds: readonly bigint[]): bigint {
  const sorted = [...memberIds].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  const bytes = Buffer.alloc(8 * sorted.length);
  for (const [i, id] of sorted.entries()) bytes.writeBigUInt64BE(id, 8 * i);
  return createHash('sha1').update(bytes).digest().readBigUInt64BE(0);
}
