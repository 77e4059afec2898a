// The member list one member tells another over the peer port (the Members call): what a member
// joining with an empty data dir learns its own ID, the other members' IDs and the cluster ID
// from. The shape follows etcd's GET /members answer on the peer port (IDs in hex, `peerURLs`,
// `clientURLs`), with the cluster ID that etcd sends in its X-Etcd-Cluster-ID header.

import type { Member } from './membership.js';

export interface ClusterListing {
  clusterId: bigint;
  members: Member[];
}

/** An answer that is not a member list (another program on the port, a damaged answer). */
export class MemberListDecodeError extends Error {
  override name = 'MemberListDecodeError';
}

export function encodeClusterListing(listing: ClusterListing): Buffer {
  const members = listing.members.map((m) => ({
    id: m.id.toString(16),
    name: m.name,
    peerURLs: m.peerUrls,
    clientURLs: m.clientUrls,
    isLearner: m.isLearner,
  }));
  return Buffer.from(JSON.stringify({ clusterId: listing.clusterId.toString(16), members }));
}

export function decodeClusterListing(json: Buffer): ClusterListing {
  let raw: unknown;
  try {
    raw = JSON.parse(json.toString('utf8'));
  } catch (error) {
    throw new MemberListDecodeError(`member list is not JSON: ${(error as Error).message}`);
  }
  if (!isRecord(raw) || !Array.isArray(raw.members)) throw new MemberListDecodeError('member list without members');
  return { clusterId: hexId(raw.clusterId), members: raw.members.map(decodeListedMember) };
}

function decodeListedMember(raw: unknown): Member {
  if (!isRecord(raw)) throw new MemberListDecodeError('member is not an object');
  return {
    id: hexId(raw.id),
    name: typeof raw.name === 'string' ? raw.name : '',
    peerUrls: strings(raw.peerURLs, 'peerURLs'),
    clientUrls: strings(raw.clientURLs, 'clientURLs'),
    isLearner: raw.isLearner === true,
  };
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function hexId(value: unknown): bigint {
  if (typeof value !== 'string' || !/^[0-9a-f]{1,16}$/.test(value)) throw new MemberListDecodeError(`bad ID ${JSON.stringify(value)}`);
  return BigInt(`0x${value}`);
}

function strings(value: unknown, field: string): string[] {
  if (value === undefined) return [];
  if (!Array.isArray(value) || !value.every((v) => typeof v === 'string')) throw new MemberListDecodeError(`${field} is not a list of strings`);
  return value;
}
