// The member's state machine reads values back from storage (the MVCC store keeps none in
// memory): an apply batch whose entries touch the same key must see its own earlier records
// before they reach the backend.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { rangeRequest } from '../../mvcc/types.js';
import { Backend } from '../../storage/backend.js';
import { encodeInternalRequest, type InternalRequest } from '../apply/internal-request.js';
import { restoreMemberState } from './member-state.js';

const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

const put = (key: string, value: string): InternalRequest => ({
  kind: 'put',
  put: { key: Buffer.from(key), value: Buffer.from(value), lease: 0n, prevKv: true, ignoreValue: false, ignoreLease: false },
});

describe('member state', () => {
  it('a batch of entries reads the records its earlier entries wrote (prevKv, events)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'metastore-state-'));
    dirs.push(dir);
    const backend = await Backend.open(dir);
    const state = await restoreMemberState(backend, { electionTimeoutMs: 1000, leaseNow: () => 0 });
    const events: string[] = [];
    state.applier.addListener({
      onEvents: (batch) => events.push(...batch.map((e) => `${e.kv.value}<-${e.prevKv?.value ?? '-'}`)),
      wantsPrevKv: (keyText) => keyText === 'k',
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
