// The initial corruption check (etcd's --experimental-initial-corrupt-check): before a member
// serves clients, it compares its HashKV with every reachable peer's at its own revision. A
// member whose history differs from a peer's at the same revision (and the same compaction
// point) holds corrupt data and must not serve it: the caller stops the member.
//
// Peers that are behind (future revision for them), compacted past that revision, or at
// another compaction point cannot be compared and are skipped, as etcd skips them.

import { hashKv, type HashSource } from './maintenance-hash.js';

export interface PeerHash {
  hash: number;
  compactRevision: number;
}

export interface InitialCheckOptions {
  local: HashSource;
  peers: ReadonlyArray<{ id: bigint; address: string }>;
  /** HashKV of a peer at a revision; rejects when the peer can't answer (unreachable, behind). */
  fetch(address: string, revision: number): Promise<PeerHash>;
}

export interface InitialCheckResult {
  revision: number;
  compared: bigint[];
  skipped: Array<{ id: bigint; reason: string }>;
  mismatched: Array<{ id: bigint; localHash: number; peerHash: number }>;
}

export async function checkInitialHashes(options: InitialCheckOptions): Promise<InitialCheckResult> {
  const local = await hashKv(options.local, 0);
  const result: InitialCheckResult = { revision: local.hashRevision, compared: [], skipped: [], mismatched: [] };
  await Promise.all(
    options.peers.map(async (peer) => {
      let remote: PeerHash;
      try {
        remote = await options.fetch(peer.address, local.hashRevision);
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
