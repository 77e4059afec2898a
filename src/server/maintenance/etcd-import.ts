// An etcd 3.4 backend (bbolt, read by BboltReader) -> MetaStore's replicated key spaces, the
// reverse of etcd-export.ts. Entries come out in the backup file's order (meta, mvcc, lease,
// auth; each in key order), so a restore can write them as it writes a MetaStore backup's.
//
// The key bucket streams (one leaf page at a time); the small buckets are read whole. What
// cannot come over as is: etcd has no token key, so the caller passes the one the imported
// cluster will sign tokens with (none: nobody can get a token until auth is re-enabled).
// etcd's bcrypt password hashes are kept, and MetaStore checks them (auth/bcrypt.ts). The members buckets are reported (etcdStateInfo), never imported: a restored
// cluster has a new membership, as with etcd.

import { AuthStore, type StateJSON } from '../../auth/auth-store.js';
import { encodeLeaseRecord } from '../../lease/lessor.js';
import { encodeRecord, encodeTombstone } from '../../mvcc/record.js';
import { encodeRevisionKey, makeRevision } from '../../mvcc/revision.js';
import { KeySpace } from '../../storage/backend.js';
import type { BboltReader, BucketRef } from '../../bbolt/reader.js';
import { AlarmAction, Alarms, type AlarmType } from '../apply/alarms.js';
import { AUTH_STATE_KEY } from '../apply/auth-apply.js';
import { META_APPLIED_INDEX, META_COMPACTED_REVISION } from '../apply/applier.js';
import type { BatchOp } from '../../storage/backend.js';
import type { Member } from '../membership/membership.js';
import { SnapshotFileError } from './backup-format.js';
import { decodeAlarm, decodeKeyValue, decodeLease, decodeRole, decodeUser } from './etcd-proto.js';

export interface MetaStoreEntry {
  space: KeySpace;
  key: Buffer;
  value: Buffer;
}

export interface EtcdImportOptions {
  /** Hex key MetaStore signs auth tokens with; '' leaves token issuing off. */
  authTokenKey?: string;
}

/** Facts about an etcd backend, for the operator and for checks. */
export interface EtcdStateInfo {
  consistentIndex: number;
  /** finishedCompactRev; -1 when never compacted (MetaStore's count). */
  compactedRevision: number;
  /** scheduledCompactRev; above compactedRevision while a compaction was under way. */
  scheduledCompactRevision: number;
  /** Main revision of the last record in the key bucket (0 when empty). */
  revision: number;
  clusterVersion: string | undefined;
  members: Member[];
  removedMembers: bigint[];
}

function* items(reader: BboltReader, name: string): Generator<{ key: Buffer; value: Buffer }> {
  const bucket: BucketRef | undefined = reader.bucket(name);
  if (bucket === undefined) return;
  for (const item of reader.items(bucket)) {
    if (item.bucket) throw new SnapshotFileError(`etcd bucket "${name}" holds a nested bucket "${item.key.toString()}"`);
    yield item;
  }
}

function value(reader: BboltReader, bucket: string, key: string): Buffer | undefined {
  for (const item of items(reader, bucket)) if (item.key.toString('latin1') === key) return item.value;
  return undefined;
}

function u64(bytes: Buffer | undefined, what: string): number | undefined {
  if (bytes === undefined) return undefined;
  if (bytes.length < 8) throw new SnapshotFileError(`etcd ${what} is ${bytes.length} bytes, not 8`);
  const n = bytes.readBigUInt64BE(0);
  if (n > BigInt(Number.MAX_SAFE_INTEGER)) throw new SnapshotFileError(`etcd ${what} ${n} is out of range`);
  return Number(n);
}

function u64Bytes(n: number): Buffer {
  const out = Buffer.alloc(8);
  out.writeBigUInt64BE(BigInt(n));
  return out;
}

export function etcdStateInfo(reader: BboltReader): EtcdStateInfo {
  let revision = 0;
  for (const item of items(reader, 'key')) revision = Number(item.key.readBigUInt64BE(0));
  const members = [...items(reader, 'members')].map((item) => fromEtcdMemberJson(item.value));
  const removedMembers = [...items(reader, 'members_removed')].map((item) => BigInt(`0x${item.key.toString()}`));
  return {
    consistentIndex: u64(value(reader, 'meta', 'consistent_index'), 'consistent_index') ?? 0,
    compactedRevision: u64(value(reader, 'meta', 'finishedCompactRev'), 'finishedCompactRev') ?? -1,
    scheduledCompactRevision: u64(value(reader, 'meta', 'scheduledCompactRev'), 'scheduledCompactRev') ?? -1,
    revision,
    clusterVersion: value(reader, 'cluster', 'clusterVersion')?.toString(),
    members,
    removedMembers,
  };
}

/** MetaStore's key spaces (without the space byte) for the etcd backend `reader` holds. */
export function* metaStoreEntries(reader: BboltReader, options: EtcdImportOptions = {}): Generator<MetaStoreEntry> {
  yield* metaEntries(reader);
  yield* mvccEntries(reader);
  yield* leaseEntries(reader);
  const auth = authState(reader, options.authTokenKey ?? '');
  if (auth !== undefined) yield { space: KeySpace.auth, key: Buffer.from(AUTH_STATE_KEY), value: Buffer.from(JSON.stringify(auth)) };
}

function* metaEntries(reader: BboltReader): Generator<MetaStoreEntry> {
  const meta = (key: string, value: Buffer): MetaStoreEntry => ({ space: KeySpace.meta, key: Buffer.from(key), value });
  const alarms = new Alarms();
  const ops: BatchOp[] = [];
  for (const item of items(reader, 'alarm')) {
    const alarm = decodeAlarm(item.key);
    alarms.apply(AlarmAction.ACTIVATE, alarm.memberId, alarm.alarm as AlarmType, ops);
  }
  const stored = ops.at(-1);
  // Key order: alarms < appliedIndex < compactedRevision.
  if (stored?.type === 'put') yield meta('alarms', stored.value);
  yield meta(META_APPLIED_INDEX, u64Bytes(u64(value(reader, 'meta', 'consistent_index'), 'consistent_index') ?? 0));
  // finishedCompactRev: a compaction still scheduled left its old records in place.
  const compacted = u64(value(reader, 'meta', 'finishedCompactRev'), 'finishedCompactRev');
  if (compacted !== undefined && compacted > 0) yield meta(META_COMPACTED_REVISION, u64Bytes(compacted));
}

function* mvccEntries(reader: BboltReader): Generator<MetaStoreEntry> {
  for (const item of items(reader, 'key')) {
    const tombstone = item.key.length === 18 && item.key[17] === 0x74;
    if ((item.key.length !== 17 && !tombstone) || item.key[8] !== 0x5f) {
      throw new SnapshotFileError(`etcd key bucket holds a malformed revision key ${item.key.toString('hex')}`);
    }
    const main = Number(item.key.readBigUInt64BE(0));
    const sub = Number(item.key.readBigUInt64BE(9));
    const kv = decodeKeyValue(item.value);
    if (!tombstone && kv.modRevision !== main) {
      throw new SnapshotFileError(`etcd record at revision ${main}_${sub} says mod_revision ${kv.modRevision}`);
    }
    const record = tombstone
      ? encodeTombstone(kv.key)
      : encodeRecord({ key: kv.key, value: kv.value, createRevision: kv.createRevision, version: kv.version, lease: kv.lease });
    yield { space: KeySpace.mvcc, key: encodeRevisionKey(makeRevision(main, sub)), value: record };
  }
}

function* leaseEntries(reader: BboltReader): Generator<MetaStoreEntry> {
  for (const item of items(reader, 'lease')) {
    const lease = decodeLease(item.value);
    if (item.key.length !== 8 || item.key.readBigInt64BE(0) !== lease.id) {
      throw new SnapshotFileError(`etcd lease bucket key ${item.key.toString('hex')} does not match lease ${lease.id}`);
    }
    const remainingSeconds = lease.remainingTtlSeconds > 0 ? lease.remainingTtlSeconds : lease.ttlSeconds;
    yield { space: KeySpace.lease, key: item.key, value: encodeLeaseRecord({ ttlSeconds: lease.ttlSeconds, remainingMs: remainingSeconds * 1000 }) };
  }
}

function authState(reader: BboltReader, tokenKey: string): StateJSON | undefined {
  const revision = u64(value(reader, 'auth', 'authRevision'), 'authRevision');
  if (revision === undefined) return undefined;
  const enabled = value(reader, 'auth', 'authEnabled')?.[0] === 1;
  const users = [...items(reader, 'authUsers')].map(({ value: v }) => {
    const user = decodeUser(v);
    return { name: user.name.toString(), passwordHash: user.password.toString('latin1'), noPassword: user.noPassword, roles: [...user.roles].sort(), epoch: 0 };
  });
  const roles = [...items(reader, 'authRoles')].map(({ value: v }) => {
    const role = decodeRole(v);
    const permissions = role.permissions.map((p) => ({ permType: p.permType, key: p.key.toString('base64'), rangeEnd: p.rangeEnd.toString('base64') }));
    return { name: role.name.toString(), permissions };
  });
  // Through the auth store, so its own ordering rules hold for what it will load.
  const store = new AuthStore();
  store.loadJSON({ enabled, revision, enabledAt: enabled ? revision : 0, tokenKey: enabled ? tokenKey : '', users, roles });
  return store.toJSON();
}

/** etcd's member JSON (id a number that may exceed 2^53: read from the text, not a double). */
export function fromEtcdMemberJson(json: Buffer): Member {
  const text = json.toString();
  const id = /"id":\s*(\d+)/.exec(text)?.[1];
  if (id === undefined) throw new SnapshotFileError(`etcd member record without an id: ${text}`);
  const raw = JSON.parse(text) as { peerURLs?: string[]; name?: string; clientURLs?: string[]; isLearner?: boolean };
  return { id: BigInt(id), name: raw.name ?? '', peerUrls: raw.peerURLs ?? [], clientUrls: raw.clientURLs ?? [], isLearner: raw.isLearner === true };
}
