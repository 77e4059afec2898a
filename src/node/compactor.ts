// Automatic compaction (--auto-compaction-mode / --auto-compaction-retention): the schedule
// lives in server/maintenance/auto-compactor.ts; this wires it to the member on a real timer.
// A retention of 0 turns it off, as in etcd.

import type { Logger } from 'pino';
import type { Config } from '../config/schema.js';
import { CompactedError } from '../mvcc/errors.js';
import { AutoCompactor, startAutoCompactor, type CompactionSchedule } from '../server/maintenance/auto-compactor.js';

/** The member as the compactor sees it. */
export interface CompactedMember {
  readonly currentRevision: number;
  compact(revision: number, physical: boolean): Promise<unknown>;
}

export function compactionSchedule(compaction: Config['compaction']): CompactionSchedule | undefined {
  if (compaction.mode === 'revision') {
    return compaction.retentionRevisions > 0 ? { mode: 'revision', retentionRevisions: compaction.retentionRevisions } : undefined;
  }
  return compaction.retentionMs > 0 ? { mode: 'periodic', retentionMs: compaction.retentionMs } : undefined;
}

/** Starts the compactor if the configuration asks for one; the handle stops it. */
export function startCompactor(compaction: Config['compaction'], member: CompactedMember, logger: Logger): { close(): void } {
  const schedule = compactionSchedule(compaction);
  if (schedule === undefined) return { close: () => {} };
  const compactorLog = logger.child({ component: 'compactor' });
  const compactor = new AutoCompactor(
    schedule,
    {
      currentRevision: () => member.currentRevision,
      compact: async (revision) => void (await member.compact(revision, false)),
      isCompactedError: (error) => error instanceof CompactedError,
    },
    Date.now(),
    (revision, error) =>
      error ? compactorLog.warn({ revision, err: error }, 'auto compaction failed') : compactorLog.info({ revision }, 'auto compaction done'),
  );
  return { close: startAutoCompactor(compactor, schedule) };
}
