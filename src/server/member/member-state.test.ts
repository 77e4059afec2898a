// The member's state machine reads values back from storage (the MVCC store keeps none in
// memory): an apply batch whose entries touch the same key must see its own earlier records
// before they reach the backend. A snapshot installed under a watcher brings it the revisions
// the snapshot carried.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { rangeRequest } from '../../mvcc/types.js';
import { Backend } from '../../storage/backend.js';
import { encodeInternalRequest, type InternalRequest } from '../apply/internal-request.js';
import { WatchHub } from '../watch/watch-hub.js';
import { WatchStream, type StreamResponse } from '../watch/watch-stream.js';
import { waitFor } from '../../../test/support/wait.js';
import { dumpState, installState, restoreMemberState } from './member-state.js';

const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

const put = (key: string, value: string): InternalRequest => ({
  kind: 'put',
  put: { key: Buffer.from(key), value: Buffer.from(value), lease: 0n, prevKv: true, ignoreValue: false, ignoreLease: false },
});

async function openState(): Promise<{ backend: Backend; state: Awaited<ReturnType<typeof restoreMemberState>> }> {
  const dir = mkdtempSync(join(tmpdir(), 'metastore-state-'));
  dirs.push(dir);
  const backend = await Backend.open(dir);
  return { backend, state: await restoreMemberState(backend, { electionTimeoutMs: 1000, leaseNow: () => 0 }) };
}

const entries = (from: number, values: string[]) => values.map((v, i) => ({ index: from + i, data: encodeInternalRequest(put('k', v)) }));

/** A stream watching key k from `startRevision` (0: from the next revision). */
function watchK(hub: WatchHub, startRevision: number): WatchStream {
  const stream = new WatchStream(hub);
  stream.create({
    watchId: 0,
    key: Buffer.from('k'),
    rangeEnd: Buffer.alloc(0),
    startRevision,
    progressNotify: false,
    noPut: false,
    noDelete: false,
    prevKv: false,
    fragment: false,
  });
  return stream;
}

/** The stream's next `count` events as value@revision, pulled as catch-ups land. */
async function collect(stream: WatchStream, count: number): Promise<string[]> {
  const got: StreamResponse[] = [];
  const values = (): string[] => got.flatMap((r) => r.events.map((e) => `${e.kv.value}@${e.kv.modRevision}`));
  return waitFor(
    () => {
      for (let r = stream.pull(); r !== undefined; r = stream.pull()) got.push(r);
      return values();
    },
    { what: `${count} events`, until: (v) => v.length >= count, intervalMs: 0, timeoutMs: 5000 },
  );
}

describe('member state', () => {
  it('a snapshot installed under watchers: a synced one and one created right after get every revision once, in order', async () => {
    const leader = await openState();
    const follower = await openState();
    const hub = new WatchHub({ mvcc: follower.state.mvcc, backend: follower.backend });
    follower.state.applier.addListener(hub);
    // Both apply entries 1-2; only the leader applies 3-6, which the follower gets as a snapshot.
    await leader.state.applier.applyEntries(entries(1, ['1', '2', '3', '4', '5', '6'])).written;
    await follower.state.applier.applyEntries(entries(1, ['1', '2'])).written;
    const synced = watchK(hub, 0);
    expect(hub.counts).toEqual({ synced: 1, unsynced: 0 });
    const { data } = await dumpState(leader.backend, leader.state);
    expect(await installState(follower.backend, follower.state, data)).toBe(6);
    // Created before anything is applied after the install: its catch-up crosses the snapshot.
    const late = watchK(hub, 2);
    expect(await collect(late, 6)).toEqual(['1@2', '2@3', '3@4', '4@5', '5@6', '6@7']);
    await follower.state.applier.applyEntries(entries(7, ['7'])).written;
    expect(await collect(synced, 5)).toEqual(['3@4', '4@5', '5@6', '6@7', '7@8']);
    expect(await collect(late, 1)).toEqual(['7@8']);
    for (const stream of [synced, late]) stream.close();
    hub.close();
    await leader.backend.close();
    await follower.backend.close();
  });

  it('revisions that reach the store without passing the watch hub are re-read from storage, not skipped', async () => {
    const { backend, state } = await openState();
    await state.applier.applyEntries(entries(1, ['1', '2'])).written;
    // The hub hears of nothing until entry 7: revisions 4-7 reach it only as a gap.
    const hub = new WatchHub({ mvcc: state.mvcc, backend });
    const synced = watchK(hub, 0);
    await state.applier.applyEntries(entries(3, ['3', '4', '5', '6'])).written;
    state.applier.addListener(hub);
    await state.applier.applyEntries(entries(7, ['7'])).written;
    expect(await collect(synced, 5)).toEqual(['3@4', '4@5', '5@6', '6@7', '7@8']);
    synced.close();
    hub.close();
    await backend.close();
  });

  it('a batch of entries reads the records its earlier entries wrote (prevKv, events)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'metastore-state-'));
    dirs.push(dir);
    const backend = await Backend.open(dir);
    const state = await restoreMemberState(backend, { electionTimeoutMs: 1000, leaseNow: () => 0 });
    const events: string[] = [];
    state.applier.addListener({
      onEvents: (batch) => events.push(...batch.map((e) => `${e.kv.value}<-${e.prevKv?.value ?? '-'}`)),
      wantsPrevKv: (keyText) => keyText === 'k',
      onRestored: () => {},
    });
    const requests = [put('k', '1'), put('k', '2'), put('other', 'x'), put('k', '3')];
    const { outcomes, written } = state.applier.applyEntries(requests.map((r, i) => ({ index: i + 1, data: encodeInternalRequest(r) })));
    const prevValues = outcomes.map((o) => (o.ok && o.value.kind === 'put' ? (o.value.put.prevKv?.value.toString() ?? '-') : 'error'));
    expect(prevValues).toEqual(['-', '1', '-', '2']);
    expect(events).toEqual(['1<--', '2<-1', 'x<--', '3<-2']);
    await written;
    expect(state.mvcc.range(rangeRequest(Buffer.from('k'))).kvs.map((kv) => `${kv.value}@${kv.modRevision}`)).toEqual(['3@5']);
    await backend.close();
  });
});
