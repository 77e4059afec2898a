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

describe('member state', () => {
  it('a snapshot installed under a synced watcher: the watcher gets every revision the snapshot skipped, once, in order', async () => {
    const leader = await openState();
    const follower = await openState();
    const hub = new WatchHub({ mvcc: follower.state.mvcc, backend: follower.backend });
    follower.state.applier.addListener(hub);
    const entries = (from: number, values: string[]) => values.map((v, i) => ({ index: from + i, data: encodeInternalRequest(put('k', v)) }));
    // Both apply entries 1-2; only the leader applies 3-6, which the follower gets as a snapshot.
    await leader.state.applier.applyEntries(entries(1, ['1', '2', '3', '4', '5', '6'])).written;
    await follower.state.applier.applyEntries(entries(1, ['1', '2'])).written;
    const stream = new WatchStream(hub);
    stream.create({
      watchId: 0,
      key: Buffer.from('k'),
      rangeEnd: Buffer.alloc(0),
      startRevision: 0,
      progressNotify: false,
      noPut: false,
      noDelete: false,
      prevKv: false,
      fragment: false,
    });
    expect(hub.counts).toEqual({ synced: 1, unsynced: 0 });
    const { data } = await dumpState(leader.backend, leader.state);
    expect(await installState(follower.backend, follower.state, data)).toBe(6);
    await follower.state.applier.applyEntries(entries(7, ['7'])).written;
    const got: StreamResponse[] = [];
    const values = (): string[] => got.flatMap((r) => r.events.map((e) => `${e.kv.value}@${e.kv.modRevision}`));
    await waitFor(
      () => {
        for (let r = stream.pull(); r !== undefined; r = stream.pull()) got.push(r);
        return values();
      },
      { what: 'the revisions of the snapshot and the one after it', until: (v) => v.length >= 5, intervalMs: 0 },
    );
    expect(values()).toEqual(['3@4', '4@5', '5@6', '6@7', '7@8']);
    stream.close();
    hub.close();
    await leader.backend.close();
    await follower.backend.close();
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
