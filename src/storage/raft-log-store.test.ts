// Durability tests of the LevelDB Raft log store: temp dirs, close/reopen, a property test
// against MemoryStorage, and a RawNode driven through it and restarted from disk.

import { afterEach, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ClassicLevel } from 'classic-level';
import fc from 'fast-check';
import { RaftLogStore } from './raft-log-store.js';
import { Backend, KeySpace, spaceKey } from './backend.js';
import { MemoryStorage } from '../raft/storage.js';
import { RawNode } from '../raft/raw-node.js';
import { SeededRandom } from '../util/random.js';
import { EntryType, type Entry } from '../raft/types.js';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

async function openDb(dir?: string): Promise<{ db: ClassicLevel<Buffer, Buffer>; dir: string }> {
  const d = dir ?? mkdtempSync(join(tmpdir(), 'raft-log-store-'));
  if (dir === undefined) dirs.push(d);
  const db = new ClassicLevel<Buffer, Buffer>(d, { keyEncoding: 'buffer', valueEncoding: 'buffer' });
  await db.open();
  return { db, dir: d };
}

const ent = (index: number, term: number, s = `e${index}`): Entry => ({ index, term, type: EntryType.Normal, data: new TextEncoder().encode(s) });
const text = (e: Entry): string => new TextDecoder().decode(e.data);

describe('RaftLogStore', () => {
  it('persists hard state and entries across close/reopen', async () => {
    const { db, dir } = await openDb();
    const s = await RaftLogStore.open(db, 0x03);
    await s.save({ term: 2, vote: 7n, commit: 3 }, [ent(1, 1), ent(2, 1), ent(3, 2)], undefined, { sync: true });
    await db.close();
    const again = await openDb(dir);
    const s2 = await RaftLogStore.open(again.db, 0x03);
    expect(s2.initialState().hardState).toEqual({ term: 2, vote: 7n, commit: 3 });
    expect(s2.firstIndex()).toBe(1);
    expect(s2.lastIndex()).toBe(3);
    expect(s2.term(3)).toBe(2);
    expect(s2.entries(1, 4, 1e9).map(text)).toEqual(['e1', 'e2', 'e3']);
    await again.db.close();
  });

  it('saves called while one is in flight land after it, in call order, together in one synced write', async () => {
    const { db, dir } = await openDb();
    const writes: boolean[] = [];
    const s = await RaftLogStore.open(db, 0x03, { onWrite: (_seconds, synced) => writes.push(synced) });
    const first = s.save({ term: 2, vote: 0n, commit: 0 }, [ent(1, 1), ent(2, 2), ent(3, 2), ent(4, 2)], undefined, { sync: true });
    // Queued behind the first: the second overwrites entries 3-4, the third adds one after.
    const second = s.save({ term: 3, vote: 0n, commit: 2 }, [ent(3, 3, 'x3'), ent(4, 3, 'x4')], undefined, { sync: false });
    const third = s.save({ term: 3, vote: 0n, commit: 4 }, [ent(5, 3)], undefined, { sync: true });
    await Promise.all([first, second, third]);
    expect(writes).toEqual([true, true]);
    await db.close();
    const again = await openDb(dir);
    const reopened = await RaftLogStore.open(again.db, 0x03);
    expect(reopened.initialState().hardState).toEqual({ term: 3, vote: 0n, commit: 4 });
    expect(reopened.entries(1, 6, 1e9).map((e) => `${text(e)}@${e.term}`)).toEqual(['e1@1', 'e2@2', 'x3@3', 'x4@3', 'e5@3']);
    await again.db.close();
  });

  it("through the backend's queue, the apply batch waiting there rides on the next save: one LevelDB write per save", async () => {
    const dir = mkdtempSync(join(tmpdir(), 'raft-log-store-'));
    dirs.push(dir);
    const writes: boolean[] = [];
    const backend = await Backend.open(dir, { onWrite: (_seconds, synced) => writes.push(synced) });
    const s = await RaftLogStore.open(backend.level, KeySpace.raftLog, {
      writer: (ops, sync, _journal, landed) => backend.write(ops, { sync, prompt: true, landed }),
    });
    await s.save({ term: 1, vote: 0n, commit: 0 }, [ent(1, 1), ent(2, 1), ent(3, 1)], undefined, { sync: true });
    writes.length = 0;
    // A lone put's turn: its apply batch waits in the backend (unsynced); the next put's entry
    // (synced, overwriting entry 3) carries it.
    const apply = backend.write([{ type: 'put', key: spaceKey(KeySpace.mvcc, 'k'), value: Buffer.from('v') }], { sync: false });
    await s.save({ term: 2, vote: 0n, commit: 2 }, [ent(3, 2, 'x3')], undefined, { sync: true });
    await apply;
    expect(writes).toEqual([true]);
    // An unsynced save (the commit index alone) does not wait for a synced one: it starts at once.
    const applyAgain = backend.write([{ type: 'put', key: spaceKey(KeySpace.mvcc, 'k'), value: Buffer.from('w') }], { sync: false });
    await s.save({ term: 2, vote: 0n, commit: 3 }, [], undefined, { sync: false });
    await applyAgain;
    expect(writes).toEqual([true, false]);
    expect(s.entries(1, 4, 1e9).map((e) => `${text(e)}@${e.term}`)).toEqual(['e1@1', 'e2@1', 'x3@2']);
    await backend.close();
    const again = await openDb(join(dir, 'db'));
    const reopened = await RaftLogStore.open(again.db, KeySpace.raftLog);
    expect(reopened.initialState().hardState).toEqual({ term: 2, vote: 0n, commit: 3 });
    expect(reopened.entries(1, 4, 1e9).map((e) => `${text(e)}@${e.term}`)).toEqual(['e1@1', 'e2@1', 'x3@2']);
    expect((await again.db.get(spaceKey(KeySpace.mvcc, 'k')))?.toString()).toBe('w');
    await again.db.close();
  });

  it('keeps entries whose write is still in flight cached, whatever cacheBytes says', async () => {
    const { db } = await openDb();
    const s = await RaftLogStore.open(db, 0x03, { cacheBytes: 1000 });
    const big = (index: number) => ({ index, term: 1, type: EntryType.Normal, data: new Uint8Array(1000).fill(index) });
    const first = s.save({ term: 1, vote: 0n, commit: 0 }, [big(1), big(2)], undefined, { sync: false });
    const second = s.save({ term: 1, vote: 0n, commit: 0 }, [big(3), big(4)], undefined, { sync: false });
    await first;
    // The first write landed and trimmed the cache, but only down to what is in the db.
    expect(s.entries(1, 5, 1e9).map((e) => e.data[0])).toEqual([1, 2, 3, 4]);
    expect(s.cachedEntries).toBeGreaterThanOrEqual(2);
    await second;
    expect(s.cachedEntries).toBe(1);
    expect(s.entries(1, 5, 1e9).map((e) => e.data[0])).toEqual([1, 2, 3, 4]);
    await db.close();
  });

  it('keeps at most cacheBytes of entry data in memory once written; older entries read back from the db', async () => {
    const { db } = await openDb();
    const s = await RaftLogStore.open(db, 0x03, { cacheBytes: 10_000 });
    const big = (index: number) => ({ index, term: 1, type: EntryType.Normal, data: new Uint8Array(1000).fill(index) });
    for (let i = 1; i <= 100; i += 5) {
      await s.save({ term: 1, vote: 0n, commit: 0 }, [big(i), big(i + 1), big(i + 2), big(i + 3), big(i + 4)], undefined, { sync: false });
      expect(s.cachedBytes).toBeLessThanOrEqual(10_000);
    }
    expect(s.cachedEntries).toBe(10);
    const all = s.entries(1, 101, 1e9);
    expect(all.map((e) => e.index)).toEqual(Array.from({ length: 100 }, (_, i) => i + 1));
    expect(all.every((e) => e.data.length === 1000 && e.data[0] === e.index)).toBe(true);
    await db.close();
  });

  it('caches a copy of entry data that keeps no buffer of the caller alive', async () => {
    const { db } = await openDb();
    const s = await RaftLogStore.open(db, 0x03);
    // As a proposal's data would be: a small view into a large shared buffer.
    const shared = new Uint8Array(8192).fill(5);
    await s.save({ term: 1, vote: 0n, commit: 0 }, [{ index: 1, term: 1, type: EntryType.Normal, data: shared.subarray(100, 400) }], undefined, {
      sync: false,
    });
    shared.fill(0);
    const [cached] = s.entries(1, 2, 1e9);
    expect(cached!.data.buffer).not.toBe(shared.buffer);
    expect(cached!.data.length).toBe(300);
    expect(cached!.data.every((byte) => byte === 5)).toBe(true);
    await db.close();
  });

  it('keeps its key space: other prefixes are untouched', async () => {
    const { db } = await openDb();
    await db.put(Buffer.from([0x04, 0x65, 0, 0, 0, 0, 0, 0, 0, 1]), Buffer.from('other'));
    const s = await RaftLogStore.open(db, 0x03);
    expect(s.lastIndex()).toBe(0);
    await s.save(undefined, [ent(1, 1)], undefined, { sync: false });
    expect((await db.get(Buffer.from([0x04, 0x65, 0, 0, 0, 0, 0, 0, 0, 1])))?.toString()).toBe('other');
    await db.close();
  });

  it('replaces a conflicting suffix (also on disk)', async () => {
    const { db, dir } = await openDb();
    const s = await RaftLogStore.open(db, 0x03);
    await s.save(
      undefined,
      [1, 2, 3, 4, 5].map((i) => ent(i, 1)),
      undefined,
      { sync: true },
    );
    await s.save({ term: 2, vote: 0n, commit: 2 }, [ent(3, 2, 'x3')], undefined, { sync: true });
    expect(s.lastIndex()).toBe(3);
    expect(s.entries(1, 4, 1e9).map(text)).toEqual(['e1', 'e2', 'x3']);
    await db.close();
    const again = await openDb(dir);
    const s2 = await RaftLogStore.open(again.db, 0x03);
    expect(s2.lastIndex()).toBe(3);
    expect(s2.entries(3, 4, 1e9).map(text)).toEqual(['x3']);
    await again.db.close();
  });

  it('compacts behind a snapshot and survives reopen', async () => {
    const { db, dir } = await openDb();
    const s = await RaftLogStore.open(db, 0x03);
    await s.save(
      undefined,
      [1, 2, 3, 4, 5, 6].map((i) => ent(i, 1)),
      undefined,
      { sync: true },
    );
    await s.createSnapshot(4, { voters: [1n, 2n], learners: [3n] }, new TextEncoder().encode('state'));
    await s.compact(4);
    expect(s.firstIndex()).toBe(5);
    expect(s.term(4)).toBe(1);
    expect(() => s.term(3)).toThrow();
    expect(() => s.entries(4, 6, 1e9)).toThrow();
    await db.close();
    const again = await openDb(dir);
    const s2 = await RaftLogStore.open(again.db, 0x03);
    expect(s2.firstIndex()).toBe(5);
    expect(s2.lastIndex()).toBe(6);
    expect(s2.snapshot().metadata).toEqual({ index: 4, term: 1, confState: { voters: [1n, 2n], learners: [3n] } });
    expect(new TextDecoder().decode(s2.snapshot().data)).toBe('state');
    expect(s2.initialState().confState.voters).toEqual([1n, 2n]);
    await again.db.close();
  });

  it("reports a commit index at least its snapshot's: a commit-only hard state is not always written", async () => {
    const { db, dir } = await openDb();
    const s = await RaftLogStore.open(db, 0x03);
    await s.save(
      { term: 1, vote: 0n, commit: 1 },
      [1, 2, 3, 4, 5].map((i) => ent(i, 1)),
      undefined,
      { sync: true },
    );
    // Entries up to 4 were committed and applied, but no hard state said so before the snapshot.
    await s.createSnapshot(4, { voters: [1n], learners: [] }, new TextEncoder().encode('state'));
    await db.close();
    const again = await openDb(dir);
    const reopened = await RaftLogStore.open(again.db, 0x03);
    expect(reopened.initialState().hardState).toEqual({ term: 1, vote: 0n, commit: 4 });
    await again.db.close();
  });

  it('installs a snapshot from the leader, replacing the log', async () => {
    const { db } = await openDb();
    const s = await RaftLogStore.open(db, 0x03);
    await s.save(
      undefined,
      [1, 2, 3].map((i) => ent(i, 1)),
      undefined,
      { sync: true },
    );
    await s.save(
      { term: 3, vote: 0n, commit: 10 },
      [],
      { metadata: { index: 10, term: 3, confState: { voters: [1n], learners: [] } }, data: new Uint8Array([1]) },
      { sync: true },
    );
    expect(s.firstIndex()).toBe(11);
    expect(s.lastIndex()).toBe(10);
    expect(s.term(10)).toBe(3);
    await s.save(undefined, [ent(11, 3)], undefined, { sync: true });
    expect(s.entries(11, 12, 1e9).map(text)).toEqual(['e11']);
    await db.close();
  });

  it('serves reads beyond the cache from the db (getSync)', async () => {
    const { db, dir } = await openDb();
    const s = await RaftLogStore.open(db, 0x03, { cacheEntries: 4 });
    for (let i = 1; i <= 40; i++) await s.save(undefined, [ent(i, 1)], undefined, { sync: false });
    expect(s.cachedEntries).toBeLessThanOrEqual(8);
    expect(s.entries(1, 41, 1e9).map(text)).toEqual(Array.from({ length: 40 }, (_, i) => `e${i + 1}`));
    expect(s.entries(1, 41, 30).length).toBe(1); // size limit, at least one
    await db.close();
    const again = await openDb(dir);
    const s2 = await RaftLogStore.open(again.db, 0x03, { cacheEntries: 4 });
    expect(s2.cachedEntries).toBe(4);
    expect(s2.term(2)).toBe(1);
    expect(text(s2.entries(2, 3, 1e9)[0] as Entry)).toBe('e2');
    await again.db.close();
  });

  it('retainFrom lets the cache drop what nobody will read, down to its floor; those entries read back from the db', async () => {
    const { db } = await openDb();
    const s = await RaftLogStore.open(db, 0x03, { cacheFloorEntries: 4 });
    for (let i = 1; i <= 40; i++) await s.save(undefined, [ent(i, 1)], undefined, { sync: false });
    // Nobody said what it needs: the count cap (8,192) is all that applies.
    expect(s.cachedEntries).toBe(40);
    // A follower still needs entry 10 onwards: kept, what is below it may go.
    s.retainFrom(10);
    expect(s.cachedEntries).toBe(31);
    // Everything is applied and acknowledged: the floor of latest entries stays (to twice it).
    s.retainFrom(41);
    expect(s.cachedEntries).toBe(4);
    for (let i = 41; i <= 46; i++) await s.save(undefined, [ent(i, 1)], undefined, { sync: false });
    s.retainFrom(47);
    expect(s.cachedEntries).toBeGreaterThanOrEqual(4);
    expect(s.cachedEntries).toBeLessThan(8);
    expect(s.entries(1, 47, 1e9).map(text)).toEqual(Array.from({ length: 46 }, (_, i) => `e${i + 1}`));
    expect(s.term(3)).toBe(1);
    await db.close();
  });

  it('retainFrom never drops an entry whose write is still in flight', async () => {
    const { db } = await openDb();
    const s = await RaftLogStore.open(db, 0x03, { cacheFloorEntries: 1 });
    await s.save(undefined, [ent(1, 1), ent(2, 1)], undefined, { sync: false });
    const inFlight = s.save(undefined, [ent(3, 1), ent(4, 1), ent(5, 1), ent(6, 1)], undefined, { sync: false });
    s.retainFrom(7);
    // Only the landed entries (1-2) could go; getSync would not see 3-6 yet.
    expect(s.cachedEntries).toBe(4);
    expect(s.entries(3, 7, 1e9).map(text)).toEqual(['e3', 'e4', 'e5', 'e6']);
    await inFlight;
    // Landed now: trimmed to the floor as the write landed.
    expect(s.cachedEntries).toBe(1);
    expect(s.entries(1, 7, 1e9).map(text)).toEqual(['e1', 'e2', 'e3', 'e4', 'e5', 'e6']);
    await db.close();
  });

  it('behaves like MemoryStorage under random appends, overwrites and compactions', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(fc.tuple(fc.nat(6), fc.integer({ min: 1, max: 5 }), fc.boolean()), { minLength: 1, maxLength: 25 }), async (steps) => {
        const { db, dir } = await openDb();
        const s = await RaftLogStore.open(db, 0x03, { cacheEntries: 3 });
        const m = new MemoryStorage();
        let term = 1;
        for (const [back, n, compact] of steps) {
          if (compact && m.lastIndex() > m.firstIndex() + 1) {
            const idx = m.firstIndex() + 1;
            m.createSnapshot(idx, { voters: [1n], learners: [] }, new Uint8Array(0));
            m.compact(idx);
            await s.createSnapshot(idx, { voters: [1n], learners: [] }, new Uint8Array(0), { sync: false });
            await s.compact(idx);
            continue;
          }
          term++;
          const from = Math.max(m.firstIndex(), m.lastIndex() + 1 - back);
          const ents = Array.from({ length: n }, (_, i) => ent(from + i, term, `t${term}-${from + i}`));
          m.append(ents);
          await s.save({ term, vote: 0n, commit: 0 }, ents, undefined, { sync: false });
        }
        await db.close();
        const again = await openDb(dir);
        const r = await RaftLogStore.open(again.db, 0x03, { cacheEntries: 3 });
        expect(r.firstIndex()).toBe(m.firstIndex());
        expect(r.lastIndex()).toBe(m.lastIndex());
        for (let i = m.firstIndex() - 1; i <= m.lastIndex(); i++) expect(r.term(i)).toBe(m.term(i));
        if (m.lastIndex() >= m.firstIndex()) {
          expect(r.entries(m.firstIndex(), m.lastIndex() + 1, 1e9).map(text)).toEqual(m.entries(m.firstIndex(), m.lastIndex() + 1, 1e9).map(text));
        }
        await again.db.close();
      }),
      { numRuns: 25 },
    );
  });

  it('reads the same as MemoryStorage whatever retainFrom says, with writes in flight and overwrites', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.tuple(fc.nat(4), fc.integer({ min: 1, max: 4 }), fc.nat(30), fc.boolean()), { minLength: 1, maxLength: 30 }),
        async (steps) => {
          const { db } = await openDb();
          const s = await RaftLogStore.open(db, 0x03, { cacheEntries: 3, cacheFloorEntries: 1 });
          const m = new MemoryStorage();
          const inFlight: Array<Promise<void>> = [];
          let term = 1;
          for (const [back, n, retain, wait] of steps) {
            term++;
            const from = Math.max(m.firstIndex(), m.lastIndex() + 1 - back);
            const ents = Array.from({ length: n }, (_, i) => ent(from + i, term, `t${term}-${from + i}`));
            m.append(ents);
            inFlight.push(s.save({ term, vote: 0n, commit: 0 }, ents, undefined, { sync: false }));
            if (wait) await Promise.all(inFlight.splice(0));
            s.retainFrom(retain);
            expect(s.entries(1, m.lastIndex() + 1, 1e9).map(text)).toEqual(m.entries(1, m.lastIndex() + 1, 1e9).map(text));
            for (let i = 1; i <= m.lastIndex(); i++) expect(s.term(i)).toBe(m.term(i));
          }
          await Promise.all(inFlight);
          expect(s.entries(1, m.lastIndex() + 1, 1e9).map(text)).toEqual(m.entries(1, m.lastIndex() + 1, 1e9).map(text));
          await db.close();
        },
      ),
      { numRuns: 40 },
    );
  });

  it('drives a single-node RawNode and restarts from disk', async () => {
    const { db, dir } = await openDb();
    const store = await RaftLogStore.open(db, 0x03);
    const mk = (applied?: number): RawNode =>
      new RawNode({
        id: 1n,
        electionTick: 10,
        heartbeatTick: 1,
        storage: store,
        random: new SeededRandom(1),
        peers: [1n],
        ...(applied === undefined ? {} : { applied }),
      });
    let node = mk();
    const applied: string[] = [];
    const drain = async (): Promise<void> => {
      while (node.hasReady()) {
        const rd = node.ready();
        await store.save(rd.hardState, rd.entries, rd.snapshot, { sync: rd.mustSync });
        for (const e of rd.committedEntries) if (e.type === EntryType.Normal && e.data.length > 0) applied.push(text(e));
        node.advance();
      }
    };
    await drain();
    node.campaign();
    await drain();
    for (let i = 0; i < 5; i++) node.propose(new TextEncoder().encode(`p${i}`));
    await drain();
    expect(applied).toEqual(['p0', 'p1', 'p2', 'p3', 'p4']);
    const { commit, term } = store.initialState().hardState;
    await db.close();
    const again = await openDb(dir);
    const store2 = await RaftLogStore.open(again.db, 0x03);
    node = new RawNode({ id: 1n, electionTick: 10, heartbeatTick: 1, storage: store2, random: new SeededRandom(1), peers: [1n], applied: commit });
    expect(node.raft.term).toBe(term);
    expect(node.raft.raftLog.committed).toBe(commit);
    expect(node.raft.raftLog.lastIndex()).toBe(commit);
    await again.db.close();
  });
});
