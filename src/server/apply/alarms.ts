// The cluster's alarms (etcd's AlarmMember list): raised and disarmed only by applying
// committed log entries, so every member holds the same list.
//
// NOSPACE: raised when a write would take the backend past --quota-backend-bytes; while it is
// active every member refuses Put, writing Txn and LeaseGrant with "mvcc: database space
// exceeded" (reads, deletes and compaction still work); an operator compacts, defragments and
// disarms it (`etcdctl alarm disarm`), as with etcd.
// CORRUPT: raised when members disagree on the data; while active every request is refused.
//
// Persisted under meta/'alarms' in the same batch as the applied index.

import type { BatchOp } from '../../storage/backend.js';
import { KeySpace, spaceKey } from '../../storage/backend.js';

export const AlarmType = { NONE: 0, NOSPACE: 1, CORRUPT: 2 } as const;
export type AlarmType = (typeof AlarmType)[keyof typeof AlarmType];
export const AlarmAction = { GET: 0, ACTIVATE: 1, DEACTIVATE: 2 } as const;

export interface AlarmMember {
  memberId: bigint;
  alarm: AlarmType;
}

const ALARMS_KEY = 'alarms';

/** etcd's names, as in Status errors ("memberID:N alarm:NOSPACE ") and /health reasons. */
export function alarmName(alarm: AlarmType): string {
  return alarm === AlarmType.NOSPACE ? 'NOSPACE' : alarm === AlarmType.CORRUPT ? 'CORRUPT' : 'NONE';
}

export class Alarms {
  private list: AlarmMember[] = [];

  /** Loads the persisted list (a missing key is no alarm). */
  load(read: (space: KeySpace, key: string) => Buffer | undefined): void {
    const stored = read(KeySpace.meta, ALARMS_KEY);
    this.list =
      stored === undefined
        ? []
        : (JSON.parse(stored.toString()) as Array<{ memberId: string; alarm: AlarmType }>).map((a) => ({ memberId: BigInt(a.memberId), alarm: a.alarm }));
  }

  get all(): readonly AlarmMember[] {
    return this.list;
  }

  has(alarm: AlarmType): boolean {
    return this.list.some((a) => a.alarm === alarm);
  }

  /**
   * Applies an activate/deactivate; returns the affected entries (etcd answers with them) and
   * queues the new list's write. memberId 0 on deactivate matches every member, as in etcd.
   */
  apply(action: number, memberId: bigint, alarm: AlarmType, ops: BatchOp[]): AlarmMember[] {
    if (alarm === AlarmType.NONE) return [];
    if (action === AlarmAction.ACTIVATE) {
      const entry = { memberId, alarm };
      if (!this.list.some((a) => a.memberId === memberId && a.alarm === alarm)) this.list = [...this.list, entry];
      ops.push(this.persist());
      return [entry];
    }
    if (action === AlarmAction.DEACTIVATE) {
      const removed = this.list.filter((a) => a.alarm === alarm && (memberId === 0n || a.memberId === memberId));
      this.list = this.list.filter((a) => !removed.includes(a));
      ops.push(this.persist());
      return removed;
    }
    return [];
  }

  private persist(): BatchOp {
    const value = Buffer.from(JSON.stringify(this.list.map((a) => ({ memberId: a.memberId.toString(), alarm: a.alarm }))));
    return { type: 'put', key: spaceKey(KeySpace.meta, ALARMS_KEY), value };
  }
}
