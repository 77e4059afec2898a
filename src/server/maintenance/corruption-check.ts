// Corruption checks compare this member's HashKV with its peers' at the same revision. Two
// users: the initial check (etcd's --experimental-initial-corrupt-check), which stops a member
// before it serves data that differs from the cluster's, and the periodic check (next file),
// which the leader runs to raise CORRUPT for a member whose history differs.
//
// Peers that are behind (future revision for them), compacted past that revision, or at
// another compaction point cannot be compared and are skipped, as etcd skips them.

import { dialAddress } from '../membership/member-address.js';
import type { HashKvResult } from './maintenance-hash.js';

export interface PeerHash {
  hash: number;
  compactRevision: number;
}

/** HashKV of a peer at a revision; rejects when the peer can't answer (unreachable, behind). */
export type PeerHashFetch = (address: string, revision: number) => Promise<PeerHash>;

/** What a corruption check reads from the member: its member list and its own HashKV. */
export interface HashedMember {
  listMembers(): ReadonlyArray<{ id: bigint; clientUrls: readonly string[] }>;
  /** This member's HashKV at `revision` (0 = its current revision). */
  hashKv(revision: number): Promise<Pick<HashKvResult, 'hash' | 'hashRevision' | 'compactRevision'>>;
}

export interface HashComparison {
  revision: number;
  compared: bigint[];
  skipped: Array<{ id: bigint; reason: string }>;
  mismatched: Array<{ id: bigint; localHash: number; peerHash: number }>;
}

/** Every other member with a client URL, at the address its client port is dialled on. */
export function peersToCompare(member: HashedMember, selfId: bigint): Array<{ id: bigint; address: string }> {
  return member
    .listMembers()
    .filter((m) => m.id !== selfId && m.clientUrls[0] !== undefined)
    .map((m) => ({ id: m.id, address: dialAddress(m.clientUrls[0]!) }));
}

/** Compares this member's HashKV at its current revision with every other member's. */
export async function compareHashesWithPeers(member: HashedMember, selfId: bigint, fetch: PeerHashFetch): Promise<HashComparison> {
  const peers = peersToCompare(member, selfId);
  const local = await member.hashKv(0);
  const result: HashComparison = { revision: local.hashRevision, compared: [], skipped: [], mismatched: [] };
  await Promise.all(
    peers.map(async (peer) => {
      let remote: PeerHash;
      try {
        remote = await fetch(peer.address, local.hashRevision);
      } catch (error) {
        result.skipped.push({ id: peer.id, reason: error instanceof Error ? error.message : String(error) });
        return;
      }
      if (remote.compactRevision !== local.compactRevision) {
        result.skipped.push({ id: peer.id, reason: `compact revision ${remote.compactRevision} differs from ${local.compactRevision}` });
        return;
      }
      result.compared.push(peer.id);
      if (remote.hash !== local.hash) result.mismatched.push({ id: peer.id, localHash: local.hash, peerHash: remote.hash });
    }),
  );
  return result;
}

export interface InitialCheckLog {
  info(fields: object, message: string): void;
  fatal(fields: object, message: string): void;
}

/**
 * --experimental-initial-corrupt-check: before serving clients, compare HashKV with every
 * reachable peer at this member's revision. Returns false (after logging why) when a peer's
 * history differs: the caller must stop instead of serving that data, as etcd refuses to start.
 */
export async function initialCorruptCheck(member: HashedMember, selfId: bigint, fetch: PeerHashFetch, log: InitialCheckLog): Promise<boolean> {
  const result = await compareHashesWithPeers(member, selfId, fetch);
  const summary = {
    revision: result.revision,
    compared: result.compared.map((id) => id.toString(16)),
    skipped: result.skipped.map((s) => ({ id: s.id.toString(16), reason: s.reason })),
  };
  if (result.mismatched.length > 0) {
    const mismatched = result.mismatched.map((m) => ({ id: m.id.toString(16), localHash: m.localHash, peerHash: m.peerHash }));
    log.fatal({ ...summary, mismatched }, 'found data inconsistency with peers; stopping');
    return false;
  }
  log.info(summary, 'initial corruption check passed');
  return true;
}
