// The watch checks on hand-made watcher records: a clean record with a reconnect passes; a
// reordered, duplicated, split (non-atomic), gapped or wrongly resumed record is reported.

import { describe, expect, it } from 'vitest';
import type { Operation } from './history.js';
import { checkAcknowledgedWrites, checkWatcher, eventLog, type WatchEvent, type WatchSegment } from './watch-checker.js';

const put = (revision: number, key: string, value = `${key}${revision}`): WatchEvent => ({ type: 'PUT', key, value, revision });
const segment = (startRevision: number, ...responses: WatchEvent[][]): WatchSegment => ({ member: 0, startRevision, responses });

// Revisions 5..8 under the prefix; revision 6 is a two-key transaction.
const reference = eventLog({ segments: [segment(5, [put(5, 'p/a')], [put(6, 'p/a'), put(6, 'p/b')], [put(7, 'p/c')], [put(8, 'p/a')])] });

describe('watch checks', () => {
  it('accept a watcher that reconnected at last + 1 and saw everything', () => {
    const watcher = { segments: [segment(5, [put(5, 'p/a')], [put(6, 'p/a'), put(6, 'p/b')]), segment(7, [put(7, 'p/c'), put(8, 'p/a')])] };
    expect(checkWatcher('w', watcher, reference)).toEqual([]);
  });

  it('report a missed revision, a duplicate, a split revision, an out-of-order event and a wrong resume point', () => {
    const missed = { segments: [segment(5, [put(5, 'p/a')], [put(7, 'p/c')])] };
    expect(checkWatcher('w', missed, reference)).toEqual(['w: missed revisions 6']);
    const duplicated = { segments: [segment(5, [put(5, 'p/a')]), segment(5, [put(5, 'p/a')])] };
    expect(checkWatcher('w', duplicated, reference).join('\n')).toMatch(/event 5\/p\/a delivered twice/);
    const split = { segments: [segment(5, [put(5, 'p/a')], [put(6, 'p/a')], [put(6, 'p/b')])] };
    expect(checkWatcher('w', split, reference).join('\n')).toMatch(/revision 6 delivered as/);
    const reordered = { segments: [segment(5, [put(5, 'p/a')], [put(7, 'p/c')], [put(6, 'p/a'), put(6, 'p/b')])] };
    expect(checkWatcher('w', reordered, reference).join('\n')).toMatch(/revision 6 delivered after 7/);
    const resumedLate = { segments: [segment(5, [put(5, 'p/a')]), segment(7, [put(7, 'p/c')])] };
    expect(checkWatcher('w', resumedLate, reference).join('\n')).toMatch(/resumed at 7, not at last seen \+ 1 = 6/);
  });

  it('report an acknowledged write missing from the event log', () => {
    const ack = (key: string, value: string, revision: number): Operation => ({
      id: revision,
      client: 0,
      member: 0,
      key,
      op: { kind: 'put', value },
      invokedMs: 0,
      completedMs: 1,
      outcome: { status: 'ok', revision },
    });
    expect(checkAcknowledgedWrites(reference, [ack('a', 'p/a5', 5), ack('c', 'p/c7', 7)], 'p/')).toEqual([]);
    expect(checkAcknowledgedWrites(reference, [ack('a', 'lost', 9)], 'p/')).toEqual([
      'acknowledged write #9 a=lost at revision 9 is not in the event log (it holds nothing there)',
    ]);
  });
});
