// Snapshot files round-trip: a member's state streamed as an etcd snapshot (bbolt database in
// blobs plus the SHA-256 trailer) has etcd's "checksummed" length, restores into a fresh data
// dir whose member serves every key with its revisions and versions (HashKV equal to the
// source); MetaStore's own format restores too (told apart by content); damaged, truncated or
// foreign files and occupied data dirs are refused, leaving nothing behind.

import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { Backend, KeySpace } from '../../storage/backend.js';
import { rangeRequest } from '../../mvcc/types.js';
import { SNAPSHOT_BLOB_BYTES, openSnapshot } from './backup.js';
import { SNAPSHOT_MAGIC, SnapshotFileError, decodeSnapshotFile, hasChecksum } from './backup-format.js';
import { restoreSnapshot, type RestoreOptions } from './snapshot-restore.js';
import { SNAPSHOT_FORMAT, encodeEntry, encodeHeader, encodeTail } from './backup-format.js';
import { SNAPSHOT_SPACES, StateView } from './maintenance-view.js';
import { snapshotFileStatus } from './snapshot-file.js';
import { KvServer } from '../member/kv-server.js';
import { singleVoter } from '../member/replication.js';
import { RaftLogStore } from '../../storage/raft-log-store.js';
import { WalDb } from '../../storage/wal-dir.js';
import { deriveClusterId, deriveMemberId } from '../membership/member-id.js';
import { hashKv } from './maintenance-hash.js';
import { waitFor } from '../../../test/support/wait.js';

const dirs: string[] = [];
const servers: KvServer[] = [];

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'metastore-backup-'));
  dirs.push(dir);
  return dir;
}

/** A member on the data dir (a lone voter, of ID 1 unless told), its Raft node not started yet. */
async function openUnstarted(dir: string, memberId?: bigint): Promise<KvServer> {
  const kv = await KvServer.open(await Backend.open(dir), { replication: singleVoter(memberId === undefined ? {} : { memberId }) });
  servers.push(kv);
  return kv;
}

async function open(dir: string, memberId?: bigint): Promise<KvServer> {
  const kv = await openUnstarted(dir, memberId);
  await kv.start();
  return kv;
}

/** Restores `file` into `dataDir` and starts the restored member (the one member of its cluster). */
async function restoreAndOpen(file: string, dataDir: string): Promise<KvServer> {
  const { memberId } = await restoreSnapshot(restoreOptions(file, dataDir));
  return open(dataDir, memberId);
}

afterEach(async () => {
  for (const kv of servers.splice(0)) await kv.close();
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

const put = (kv: KvServer, key: string, value: string | Buffer) =>
  kv.put({ key: Buffer.from(key), value: Buffer.from(value), lease: 0n, prevKv: false, ignoreValue: false, ignoreLease: false });

const rangeAll = rangeRequest(Buffer.from([0]), Buffer.from([0]));

const everything = (kv: KvServer) => kv.range(rangeAll).result.kvs.map((kv) => ({ ...kv, key: kv.key.toString(), value: kv.value.toString('hex') }));

/** What `etcdctl snapshot save` writes: every blob, then the final SHA-256 message. */
async function snapshotFile(kv: KvServer): Promise<{ file: Buffer; blobs: Buffer[]; remaining: number[] }> {
  const snapshot = await openSnapshot(kv);
  const blobs: Buffer[] = [];
  const remaining: number[] = [];
  let left = snapshot.totalBytes;
  try {
    for await (const blob of snapshot.blobs()) {
      blobs.push(Buffer.from(blob));
      left -= blob.length;
      remaining.push(left);
    }
    return { file: Buffer.concat([...blobs, snapshot.sha256()]), blobs, remaining };
  } finally {
    await snapshot.close();
  }
}

function restoreOptions(file: string, dataDir: string, overrides: Partial<RestoreOptions> = {}): RestoreOptions {
  return {
    snapshotFile: file,
    dataDir,
    name: 'n1',
    initialCluster: [{ name: 'n1', peerUrls: ['http://127.0.0.1:12380'] }],
    initialClusterToken: 'restored',
    advertisePeerUrls: ['http://127.0.0.1:12380'],
    skipHashCheck: false,
    ...overrides,
  };
}

describe('snapshot files', () => {
  it('stream in 32 KiB blobs with remaining bytes, end with a SHA-256 etcdctl accepts, and restore every key', async () => {
    const source = await open(tempDir());
    for (let i = 0; i < 300; i++) await put(source, `key-${i % 120}`, Buffer.alloc(500, i));
    await source.deleteRange({ key: Buffer.from('key-7'), rangeEnd: Buffer.alloc(0), prevKv: false });
    await source.compact(100, true);
    await put(source, 'last', 'value');

    const { file, blobs, remaining } = await snapshotFile(source);
    expect(hasChecksum(file.length)).toBe(true);
    expect(blobs.length).toBeGreaterThan(1);
    for (const blob of blobs.slice(0, -1)) expect(blob.length).toBe(SNAPSHOT_BLOB_BYTES);
    expect(remaining.at(-1)).toBe(0);
    const body = file.subarray(0, file.length - 32);
    expect(
      createHash('sha256')
        .update(body)
        .digest()
        .equals(file.subarray(file.length - 32)),
    ).toBe(true);
    expect(body.readUInt32LE(16), 'bbolt meta page magic').toBe(0xed0cdaed);

    const path = join(tempDir(), 'snap.db');
    writeFileSync(path, file);
    const target = join(tempDir(), 'restored');
    const result = await restoreSnapshot(restoreOptions(path, target));
    expect(result.summary).toEqual({ kind: 'etcd', revision: source.currentRevision, compactedRevision: 100 });

    const restored = await openUnstarted(target, result.memberId);
    // The state is the new cluster's state at index 1 (its one member): the log starts after it.
    expect(restored.appliedIndex).toBe(1);
    await restored.start();
    expect(restored.currentRevision).toBe(source.currentRevision);
    expect(restored.compactedRevision).toBe(100);
    expect(everything(restored)).toEqual(everything(source));
    expect((await hashKv(restored, 0)).hash).toBe((await hashKv(source, 0)).hash);
    // History above the compaction point survives too.
    expect((await hashKv(restored, 150)).hash).toBe((await hashKv(source, 150)).hash);
    // And it keeps serving writes from the next revision on.
    const next = await put(restored, 'after', 'restore');
    expect(next.revision).toBe(source.currentRevision + 1);
  });

  it('a MetaStore-format file (older members wrote them) is told apart by content and restores too', async () => {
    const source = await open(tempDir());
    for (let i = 0; i < 40; i++) await put(source, `m/${i % 15}`, `v${i}`);
    await source.compact(20, true);
    const view = await StateView.open(source);
    const entries: Buffer[] = [];
    for (const space of SNAPSHOT_SPACES)
      for await (const [key, value] of view.scan(space)) if (key.toString() !== 'format') entries.push(encodeEntry(space, key, value));
    await view.close();
    const head = encodeHeader({
      format: SNAPSHOT_FORMAT,
      storageFormat: 'metastore-1',
      etcdVersion: '3.4.23',
      appliedIndex: 0,
      revision: source.currentRevision,
      compactedRevision: 20,
      memberId: '1',
      clusterId: '2',
      entries: entries.length,
    });
    const bodyBytes = head.length + entries.reduce((n, e) => n + e.length, 0);
    const body = Buffer.concat([head, ...entries, encodeTail(bodyBytes)]);
    const path = join(tempDir(), 'metastore.snap');
    writeFileSync(path, Buffer.concat([body, createHash('sha256').update(body).digest()]));

    expect(await snapshotFileStatus(path)).toMatchObject({ revision: source.currentRevision, totalKey: entries.length, totalSize: body.length });
    const target = join(tempDir(), 'restored');
    const result = await restoreSnapshot(restoreOptions(path, target));
    expect(result.summary).toEqual({ kind: 'metastore', revision: source.currentRevision, compactedRevision: 20 });
    const restored = await open(target, result.memberId);
    expect(everything(restored)).toEqual(everything(source));
    expect(restored.compactedRevision).toBe(20);
  });

  it('is one point in time while writes go on: the restore equals the source read at that revision', async () => {
    const source = await open(tempDir());
    for (let i = 0; i < 50; i++) await put(source, `w/${i}`, `v${i}`);
    let writing = true;
    const writer = (async () => {
      for (let i = 0; writing; i++) await put(source, `w/${i % 60}`, `during-${i}`);
    })();
    const base = source.currentRevision;
    await waitFor(() => source.currentRevision >= base + 5, { what: 'writes under way', timeoutMs: 10_000, intervalMs: 1 });
    const { file } = await snapshotFile(source);
    writing = false;
    await writer;
    const path = join(tempDir(), 'live.db');
    writeFileSync(path, file);
    const target = join(tempDir(), 'restored');
    const result = await restoreSnapshot(restoreOptions(path, target));
    const header = result.summary;
    expect(source.currentRevision).toBeGreaterThan(header.revision);
    const restored = await open(target, result.memberId);
    expect(restored.currentRevision).toBe(header.revision);
    const at = (kv: KvServer, revision: number) =>
      kv.range({ ...rangeAll, revision }).result.kvs.map((x) => [x.key.toString(), x.value.toString(), x.modRevision, x.version]);
    expect(at(restored, 0)).toEqual(at(source, header.revision));
  });

  it("the restored state is the new cluster's state at index N: its Raft log starts after it, all N members voters", async () => {
    const source = await open(tempDir());
    await put(source, 'k', 'v');
    const path = join(tempDir(), 'three.db');
    writeFileSync(path, (await snapshotFile(source)).file);
    const target = join(tempDir(), 'restored');
    const initialCluster = ['n1', 'n2', 'n3'].map((name, i) => ({ name, peerUrls: [`http://127.0.0.1:${12380 + i}`] }));
    const result = await restoreSnapshot(restoreOptions(path, target, { initialCluster }));
    const ids = initialCluster.map((m) => deriveMemberId(m.peerUrls, 'restored'));
    expect(result.memberId).toBe(ids[0]);
    expect(result.clusterId).toBe(deriveClusterId(ids));

    const backend = await Backend.open(target);
    try {
      const log = await RaftLogStore.open(backend.level, KeySpace.raftLog);
      // A joiner that needs index 1..3 is behind the first index: it is sent the whole state.
      expect(log.firstIndex()).toBe(4);
      expect(log.lastIndex()).toBe(3);
      expect(log.snapshot().metadata).toEqual({ index: 3, term: 1, confState: { voters: [...ids].sort((a, b) => (a < b ? -1 : 1)), learners: [] } });
      expect(log.initialState().hardState).toEqual({ term: 1, vote: 0n, commit: 3 });
      expect(backend.get(KeySpace.meta, 'appliedIndex')?.readBigUInt64BE(0)).toBe(3n);
    } finally {
      await backend.close();
    }
  });

  it('with a wal dir the restored Raft log goes there and the data dir holds none', async () => {
    const source = await open(tempDir());
    await put(source, 'k', 'v');
    const path = join(tempDir(), 'wal.db');
    writeFileSync(path, (await snapshotFile(source)).file);
    const [target, walDir] = [join(tempDir(), 'restored'), join(tempDir(), 'wal')];
    await restoreSnapshot(restoreOptions(path, target, { walDir }));
    const wal = await WalDb.open(walDir);
    try {
      expect((await RaftLogStore.open(wal.level, KeySpace.raftLog, { writer: wal.raftLogWriter })).snapshot().metadata.index).toBe(1);
    } finally {
      await wal.close();
    }
    const backend = await Backend.open(target);
    try {
      expect(await backend.hasKeysIn(KeySpace.raftLog)).toBe(false);
      expect(backend.get(KeySpace.meta, 'appliedIndex')?.readBigUInt64BE(0)).toBe(1n);
    } finally {
      await backend.close();
    }
    expect(readdirSync(dirname(walDir)).filter((name) => name.includes('restoring'))).toEqual([]);
  });

  it('an empty store makes a valid, restorable snapshot', async () => {
    const source = await open(tempDir());
    const { file } = await snapshotFile(source);
    expect(hasChecksum(file.length)).toBe(true);
    const path = join(tempDir(), 'empty.db');
    writeFileSync(path, file);
    const target = join(tempDir(), 'restored');
    expect((await restoreAndOpen(path, target)).currentRevision).toBe(1);
  });

  it('refuses a damaged file, a file without checksum, a foreign file and an occupied data dir', async () => {
    const source = await open(tempDir());
    await put(source, 'k', 'v');
    const { file } = await snapshotFile(source);
    const dir = tempDir();

    const damaged = Buffer.from(file);
    damaged[100]! ^= 0xff;
    writeFileSync(join(dir, 'damaged.db'), damaged);
    await expect(restoreSnapshot(restoreOptions(join(dir, 'damaged.db'), join(dir, 'd1')))).rejects.toThrow(/expected sha256 [0-9a-f]{64}, got/);

    writeFileSync(join(dir, 'nohash.db'), file.subarray(0, file.length - 32));
    await expect(restoreSnapshot(restoreOptions(join(dir, 'nohash.db'), join(dir, 'd2')))).rejects.toThrow(/missing hash/);
    await restoreSnapshot(restoreOptions(join(dir, 'nohash.db'), join(dir, 'd2'), { skipHashCheck: true }));

    writeFileSync(join(dir, 'foreign.db'), Buffer.alloc(4096 + 32, 7));
    await expect(restoreSnapshot(restoreOptions(join(dir, 'foreign.db'), join(dir, 'd3'), { skipHashCheck: true }))).rejects.toThrow(
      /neither an etcd snapshot \(bbolt database\) nor a MetaStore snapshot/,
    );

    // Cut short: the trailer test fails; forced past it, the page structure does.
    writeFileSync(join(dir, 'short.db'), file.subarray(0, 3 * 4096 + 100));
    await expect(restoreSnapshot(restoreOptions(join(dir, 'short.db'), join(dir, 'd6')))).rejects.toThrow(/missing hash/);
    await expect(restoreSnapshot(restoreOptions(join(dir, 'short.db'), join(dir, 'd6'), { skipHashCheck: true }))).rejects.toThrow(SnapshotFileError);
    for (const refused of ['d1', 'd3', 'd6']) expect(existsSync(join(dir, refused)), refused).toBe(false);
    expect(readdirSync(dir).filter((name) => name.includes('restoring'))).toEqual([]);

    writeFileSync(join(dir, 'good.db'), file);
    mkdirSync(join(dir, 'd4'));
    writeFileSync(join(dir, 'd4', 'x'), 'occupied');
    await expect(restoreSnapshot(restoreOptions(join(dir, 'good.db'), join(dir, 'd4')))).rejects.toThrow(/exists/);

    await expect(restoreSnapshot(restoreOptions(join(dir, 'good.db'), join(dir, 'd5'), { advertisePeerUrls: ['http://127.0.0.1:9'] }))).rejects.toThrow(
      /initial-advertise-peer-urls/,
    );
  });

  it('refuses a header that is not a JSON object with a snapshot file error', () => {
    const fileWithHeader = (text: string): Buffer => {
      const header = Buffer.from(text);
      const size = Buffer.alloc(4);
      size.writeUInt32BE(header.length);
      return Buffer.concat([SNAPSHOT_MAGIC, size, header]);
    };
    for (const text of ['{"format":', 'null', '42']) {
      expect(() => decodeSnapshotFile(fileWithHeader(text), { skipHashCheck: true }), text).toThrow(/snapshot header is not (valid JSON|a JSON object)/);
    }
  });

  it('a missing snapshot file is a SnapshotFileError naming the file (the command reports it, exit 1)', async () => {
    const dir = tempDir();
    const missing = join(dir, 'missing.db');
    const failure = restoreSnapshot(restoreOptions(missing, join(dir, 'd1')));
    await expect(failure).rejects.toBeInstanceOf(SnapshotFileError);
    await expect(failure).rejects.toThrow(`ENOENT: no such file or directory, open '${missing}'`);
  });
});
