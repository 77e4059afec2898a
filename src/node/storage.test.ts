import { existsSync, mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { DEFAULTS } from '../config/schema.js';
import { KeySpace, spaceKey } from '../storage/backend.js';
import { DEFAULT_JOURNAL_BYTES, JOURNAL_FILE } from '../storage/sync-journal.js';
import { WalDirMismatchError } from '../storage/wal-dir.js';
import { openStorage, type Identity, type NodeStorage } from './storage.js';

const dirs: string[] = [];
const opened: NodeStorage[] = [];

afterEach(async () => {
  for (const storage of opened.splice(0)) await storage.close();
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

async function open(dataDir: string, derived: Identity, walDir = ''): Promise<NodeStorage> {
  const storage = await openStorage({ dataDir, walDir, storage: DEFAULTS.storage, firstStart: async () => derived, onWrite: () => {}, onFailure: () => {} });
  opened.push(storage);
  return storage;
}

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'metastore-node-storage-'));
  dirs.push(dir);
  return dir;
}

describe('node storage: the identity is fixed at first start', () => {
  it('stores the derived identity at first start and reads it back on restart, whatever is derived then', async () => {
    const dataDir = tempDir();
    const first = await open(dataDir, { memberId: 0xaan, clusterId: 0xccn });
    expect([first.identity, first.identityWasStored]).toEqual([{ memberId: 0xaan, clusterId: 0xccn }, false]);
    await first.close();
    // Flags changed between starts: the stored identity wins.
    const again = await open(dataDir, { memberId: 0xbbn, clusterId: 0xddn });
    expect([again.identity, again.identityWasStored]).toEqual([{ memberId: 0xaan, clusterId: 0xccn }, true]);
  });

  it('asks for the first start identity only when none is stored; a failed ask stores nothing', async () => {
    const dataDir = tempDir();
    const asked: string[] = [];
    const opening = (firstStart: () => Promise<Identity>) =>
      openStorage({ dataDir, walDir: '', storage: DEFAULTS.storage, firstStart, onWrite: () => {}, onFailure: () => {} });
    class NoPeerAnswered extends Error {}
    await expect(
      opening(async () => {
        asked.push('failing');
        throw new NoPeerAnswered('no peer answered');
      }),
    ).rejects.toThrow(NoPeerAnswered);
    const joined = await opening(async () => {
      asked.push('joining');
      return { memberId: 0x5an, clusterId: 0xc1n };
    });
    expect(joined.identityWasStored).toBe(false);
    await joined.close();
    const restarted = await opening(async () => {
      asked.push('restart');
      return { memberId: 0xbadn, clusterId: 0xbadn };
    });
    opened.push(restarted);
    expect(restarted.identity).toEqual({ memberId: 0x5an, clusterId: 0xc1n });
    expect(asked).toEqual(['failing', 'joining']);
  });

  it('a cluster ID learnt from the peers is kept, in the shared identity and across restarts', async () => {
    const dataDir = tempDir();
    const joining = await open(dataDir, { memberId: 0x1n, clusterId: 0n });
    const identity = joining.identity;
    await joining.adoptClusterId(0x77n);
    expect(identity.clusterId).toBe(0x77n);
    await joining.close();
    expect((await open(dataDir, { memberId: 0x1n, clusterId: 0n })).identity).toEqual({ memberId: 0x1n, clusterId: 0x77n });
  });

  it('reports every backend write to onWrite', async () => {
    const writes: boolean[] = [];
    const storage = await openStorage({
      dataDir: tempDir(),
      walDir: '',
      storage: DEFAULTS.storage,
      firstStart: async () => ({ memberId: 1n, clusterId: 2n }),
      onWrite: (_s, synced) => writes.push(synced),
      onFailure: () => {},
    });
    opened.push(storage);
    // The first start's identity write is synced.
    expect(writes).toContain(true);
  });
});

describe('node storage: the Raft log in its own database with a wal dir', () => {
  const ids = { memberId: 1n, clusterId: 2n };
  const markApplied = (storage: NodeStorage) =>
    storage.backend.write([{ type: 'put', key: spaceKey(KeySpace.meta, 'appliedIndex'), value: Buffer.from([0, 0, 0, 0, 0, 0, 0, 5]) }], { sync: true });

  it('opens the wal dir as its own database, and only that', async () => {
    const [dataDir, walDir] = [tempDir(), join(tempDir(), 'wal')];
    const storage = await open(dataDir, ids, walDir);
    expect(storage.raftLogDb).toBeDefined();
    expect(storage.raftLogDb).not.toBe(storage.backend.level);
    expect(readdirSync(walDir)).toContain('CURRENT');
    expect((await open(tempDir(), ids)).raftLogDb, 'no wal dir: the log stays in the backend').toBeUndefined();
  });

  it("creates the log's sync journal at start where the log lives, and only there", async () => {
    const journalsIn = (dir: string) => readdirSync(dir, { recursive: true }).filter((name) => String(name).endsWith(JOURNAL_FILE));
    const inside = tempDir();
    await open(inside, ids);
    expect(journalsIn(inside), 'no wal dir: the journal is in the data dir before any write').toHaveLength(1);
    expect(statSync(join(inside, String(journalsIn(inside)[0]))).size).toBe(DEFAULT_JOURNAL_BYTES);

    const [dataDir, walDir] = [tempDir(), join(tempDir(), 'wal')];
    await open(dataDir, ids, walDir);
    expect(journalsIn(walDir)).toEqual([JOURNAL_FILE]);
    expect(journalsIn(dataDir), 'the data dir holds no log, so no journal').toEqual([]);
  });

  it('refuses a data dir with history whose wal dir is missing, and a wal dir whose data dir is new', async () => {
    const [dataDir, walDir] = [tempDir(), join(tempDir(), 'wal')];
    await (await open(dataDir, ids, walDir)).close();
    rmSync(walDir, { recursive: true });
    await expect(open(dataDir, ids, walDir)).rejects.toThrow(
      new WalDirMismatchError(`wal dir ${walDir} is missing or empty but data dir ${dataDir} has history; refusing to start without its Raft log`),
    );
    expect(existsSync(walDir), 'nothing created on refusal').toBe(false);

    const walOnly = join(tempDir(), 'wal');
    await (await open(tempDir(), ids, walOnly)).close();
    const freshDataDir = join(tempDir(), 'data');
    await expect(open(freshDataDir, ids, walOnly)).rejects.toThrow(/holds a Raft log but data dir .* has no history/);
  });

  it('refuses to move a log kept inside the data dir, and a data dir whose log was in a wal dir', async () => {
    const inside = tempDir();
    const storage = await open(inside, ids);
    await storage.backend.write([{ type: 'put', key: spaceKey(KeySpace.raftLog, 'h'), value: Buffer.alloc(24) }], { sync: true });
    await storage.close();
    await expect(open(inside, ids, join(tempDir(), 'wal'))).rejects.toThrow(/keeps its Raft log inside; refusing --wal-dir/);

    const [dataDir, walDir] = [tempDir(), join(tempDir(), 'wal')];
    const withWal = await open(dataDir, ids, walDir);
    await markApplied(withWal);
    await withWal.close();
    await expect(open(dataDir, ids)).rejects.toThrow(/has applied entries but no Raft log in it: it was used with a --wal-dir/);
  });
});
