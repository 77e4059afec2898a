// Reading a snapshot file of either kind, told apart by content, not by name: an etcd snapshot
// (a bbolt database, whose first page is a meta page with bbolt's magic; with or without the
// SHA-256 trailer) or MetaStore's own (backup-format.ts, starting with its magic line).
//
// Both come out as the same thing: MetaStore's replicated key spaces in key order, plus a short
// summary. Everything that can be checked before writing is checked here (the trailer, bbolt's
// page structure), so a restore fails early; what only shows while decoding (a malformed
// record) surfaces as SnapshotFileError from the entry generator, and the restore discards
// what it wrote.

import { createHash } from 'node:crypto';
import { open, readFile } from 'node:fs/promises';
import { BboltFormatError, MAGIC as BBOLT_MAGIC, PAGE_HEADER_BYTES } from '../../bbolt/format.js';
import type { BboltReader } from '../../bbolt/reader.js';
import type { KeySpace } from '../../storage/backend.js';
import { crc32c } from '../../util/crc32c.js';
import { SNAPSHOT_MAGIC, SnapshotFileError, decodeSnapshotFile } from './backup-format.js';
import { etcdStateInfo, metaStoreEntries } from './etcd-import.js';
import { etcdSnapshotStatus, openEtcdSnapshot, type EtcdSnapshotStatus } from './etcd-snapshot.js';
import { SNAPSHOT_SPACES, isMemberLocal } from './maintenance-view.js';

export type SnapshotKind = 'etcd' | 'metastore';

export interface SnapshotSummary {
  kind: SnapshotKind;
  /** Highest MVCC revision in the file. */
  revision: number;
  /** -1 when never compacted. */
  compactedRevision: number;
}

export interface SnapshotEntry {
  space: KeySpace;
  key: Buffer;
  value: Buffer;
}

/** An opened, checked snapshot: its summary and its entries (member-local keys left out). */
export interface OpenedSnapshot {
  summary: SnapshotSummary;
  entries(): Iterable<SnapshotEntry>;
  close(): void;
}

/** Which kind of snapshot `path` holds, by its first bytes; anything else is refused. */
export async function snapshotKind(path: string): Promise<SnapshotKind> {
  const head = Buffer.alloc(Math.max(SNAPSHOT_MAGIC.length, PAGE_HEADER_BYTES + 4));
  const file = await openUserFile(path);
  let got: number;
  try {
    got = (await file.read(head, 0, head.length, 0)).bytesRead;
  } finally {
    await file.close();
  }
  if (got >= SNAPSHOT_MAGIC.length && head.subarray(0, SNAPSHOT_MAGIC.length).equals(SNAPSHOT_MAGIC)) return 'metastore';
  if (got >= PAGE_HEADER_BYTES + 4 && head.readUInt32LE(PAGE_HEADER_BYTES) === BBOLT_MAGIC) return 'etcd';
  throw new SnapshotFileError(`${path} is neither an etcd snapshot (bbolt database) nor a MetaStore snapshot`);
}

/** Opens either kind for a restore: checks the trailer (unless skipHashCheck) and the structure. */
export async function openSnapshotFile(path: string, options: { skipHashCheck: boolean }): Promise<OpenedSnapshot> {
  return (await snapshotKind(path)) === 'etcd' ? openEtcd(path, options) : openMetaStore(path, options);
}

async function openEtcd(path: string, options: { skipHashCheck: boolean }): Promise<OpenedSnapshot> {
  const reader = await asSnapshotError(() => openEtcdSnapshot(path, options));
  try {
    const problems = reader.check();
    if (problems.length > 0) {
      throw new SnapshotFileError(`${path}: bbolt integrity check failed (${problems.length} errors), first: ${problems[0]}`);
    }
    const info = await asSnapshotError(async () => etcdStateInfo(reader));
    const authTokenKey = await asSnapshotError(async () => importedTokenKey(reader));
    return {
      summary: { kind: 'etcd', revision: info.revision, compactedRevision: info.compactedRevision },
      entries: () => withSnapshotErrors(keepReplicated(metaStoreEntries(reader, { authTokenKey }))),
      close: () => reader.close(),
    };
  } catch (error) {
    reader.close();
    throw error;
  }
}

/**
 * etcd has no token key, and every member restored from one file (or imported from members of
 * one etcd cluster) must sign tokens alike, so the key is derived from the file: from its
 * users' bcrypt hashes (random salts, so it cannot be guessed without the file) and the auth
 * revision. Like a MetaStore snapshot, which carries its token key, the file is then what
 * grants the key: keep snapshots as secret as the cluster's root password.
 */
function importedTokenKey(reader: BboltReader): string {
  const hash = createHash('sha256').update('metastore token key from an etcd snapshot\0');
  for (const bucket of ['auth', 'authUsers']) {
    const ref = reader.bucket(bucket);
    if (ref === undefined) continue;
    for (const item of reader.items(ref)) hash.update(item.key).update('\0').update(item.value).update('\0');
  }
  return hash.digest('hex');
}

async function openMetaStore(path: string, options: { skipHashCheck: boolean }): Promise<OpenedSnapshot> {
  const { header, entries } = decodeSnapshotFile(await readFile(path), options);
  const replicated = new Set<number>(SNAPSHOT_SPACES);
  for (const entry of entries) {
    if (!replicated.has(entry.space)) throw new SnapshotFileError(`snapshot holds an entry in unknown key space ${entry.space}`);
  }
  return {
    summary: { kind: 'metastore', revision: header.revision, compactedRevision: header.compactedRevision },
    entries: () => keepReplicated(entries as SnapshotEntry[]),
    close: () => {},
  };
}

function* keepReplicated(entries: Iterable<SnapshotEntry>): Generator<SnapshotEntry> {
  for (const entry of entries) if (!isMemberLocal(entry.space, entry.key)) yield entry;
}

/** The bbolt reader's format errors are the file's fault: reported as SnapshotFileError. */
function* withSnapshotErrors<T>(inner: Iterable<T>): Generator<T> {
  try {
    yield* inner;
  } catch (error) {
    if (error instanceof BboltFormatError) throw new SnapshotFileError(`damaged etcd snapshot: ${error.message}`);
    throw error;
  }
}

async function asSnapshotError<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (error) {
    if (error instanceof BboltFormatError) throw new SnapshotFileError(`damaged etcd snapshot: ${error.message}`);
    throw error;
  }
}

/** A file named by the operator: a missing one is their mistake, reported as such. */
async function openUserFile(path: string): Promise<Awaited<ReturnType<typeof open>>> {
  try {
    return await open(path, 'r');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'EISDIR' || code === 'EACCES') throw new SnapshotFileError((error as Error).message);
    throw error;
  }
}

/** `etcdctl snapshot status` for either kind (a MetaStore file: CRC-32C over its entries). */
export async function snapshotFileStatus(path: string): Promise<EtcdSnapshotStatus> {
  if ((await snapshotKind(path)) === 'etcd') {
    const reader = await asSnapshotError(() => openEtcdSnapshot(path, { skipHashCheck: true }));
    try {
      return await asSnapshotError(async () => etcdSnapshotStatus(reader));
    } finally {
      reader.close();
    }
  }
  const file = await readFile(path);
  const { header, entries } = decodeSnapshotFile(file, { skipHashCheck: true });
  let hash = 0;
  for (const entry of entries) hash = crc32c(entry.value, crc32c(entry.key, crc32c(Buffer.from([entry.space]), hash)));
  return { hash, revision: header.revision, totalKey: entries.length, totalSize: file.length - (file.length % 512 === 32 ? 32 : 0) };
}
