import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { DEFAULTS } from '../config/schema.js';
import { openStorage, type Identity, type NodeStorage } from './storage.js';

const dirs: string[] = [];
const opened: NodeStorage[] = [];

afterEach(async () => {
  for (const storage of opened.splice(0)) await storage.close();
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

async function open(dataDir: string, derived: Identity): Promise<NodeStorage> {
  const storage = await openStorage({ dataDir, storage: DEFAULTS.storage, derived, onWrite: () => {} });
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
    const storage = await openStorage({ dataDir: tempDir(), storage: DEFAULTS.storage, derived: { memberId: 1n, clusterId: 2n }, onWrite: (_s, synced) => writes.push(synced) });
    opened.push(storage);
    // The first start's identity write is synced.
    expect(writes).toContain(true);
  });
});
