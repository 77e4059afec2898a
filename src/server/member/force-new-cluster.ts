// --force-new-cluster, as etcd 3.4 does it (restartAsStandaloneNode): a member that lost its
// quorum for good restarts as a one-member cluster keeping its data. Before the Raft core
// starts, its log is rewritten: entries past the commit index (the stored one, or the state
// machine's applied index where that is higher; never committed, so never acknowledged) are
// discarded, and conf changes removing every other member of the
// configuration are appended and marked committed. Replaying them leaves this member the only
// voter (it elects itself) and the member list with only itself; the flag is meant to be
// dropped afterwards, and a second forced start finds nobody left to remove.

import { ConfChangeType, EntryType, decodeConfChange, encodeConfChange, type Entry } from '../../raft/types.js';
import { StorageFormatError } from '../../storage/backend.js';
import type { RaftLogStore } from '../../storage/raft-log-store.js';

export interface ForcedRestart {
  /** Members removed from the configuration (every one but this member). */
  removed: bigint[];
  /** Uncommitted entries thrown away. */
  discarded: number;
  /** The commit index after the appended conf changes. */
  commit: number;
}

/**
 * Rewrites the log so that the member restarts alone; see the file header. `appliedIndex` (the
 * state machine's) is committed too: the stored commit index may lag it, since a Ready that
 * carries only a new commit index is not written (RaftNode.writesNothing).
 */
export async function restartAsStandalone(log: RaftLogStore, selfId: bigint, appliedIndex = 0): Promise<ForcedRestart> {
  const { hardState } = log.initialState();
  const snapshotIndex = log.snapshot().metadata.index;
  const committed = Math.min(log.lastIndex(), Math.max(hardState.commit, snapshotIndex, appliedIndex));
  const discarded = Math.max(0, log.lastIndex() - committed);
  await log.discardAfter(committed);
  const members = configurationAt(log, committed);
  if (!members.has(selfId)) {
    throw new StorageFormatError(
      `--force-new-cluster: member ${selfId.toString(16)} is not in its own cluster's configuration (it was removed); it cannot restart alone`,
    );
  }
  const removed = [...members].filter((id) => id !== selfId).sort((a, b) => (a < b ? -1 : 1));
  const entries: Entry[] = removed.map((nodeId, i) => ({
    term: hardState.term,
    index: committed + 1 + i,
    type: EntryType.ConfChange,
    data: encodeConfChange({ type: ConfChangeType.RemoveNode, nodeId }),
  }));
  const commit = committed + entries.length;
  await log.save({ ...hardState, commit }, entries, undefined, { sync: true });
  return { removed, discarded, commit };
}

/** Voters and learners at `index`: the snapshot's configuration, then the conf changes after it. */
function configurationAt(log: RaftLogStore, index: number): Set<bigint> {
  const { metadata } = log.snapshot();
  const members = new Set([...metadata.confState.voters, ...metadata.confState.learners]);
  if (index <= metadata.index) return members;
  for (const entry of log.entries(metadata.index + 1, index + 1, Number.POSITIVE_INFINITY)) {
    if (entry.type !== EntryType.ConfChange) continue;
    const change = decodeConfChange(entry.data);
    if (change.type === ConfChangeType.RemoveNode) members.delete(change.nodeId);
    else if (change.type !== ConfChangeType.UpdateNode) members.add(change.nodeId);
  }
  return members;
}
