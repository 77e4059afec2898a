// MetaStore's replicated state -> the buckets of an etcd 3.4 backend (bbolt), as etcd itself
// would hold the same state:
//
//   alarm            AlarmMember protobuf -> empty
//   auth             authEnabled -> [1]|[0], authRevision -> u64 BE
//   authRoles        name -> authpb.Role       authUsers   name -> authpb.User
//   cluster          clusterVersion -> "3.4.0"
//   key              revision key (u64 BE main, '_', u64 BE sub; + 't' for a tombstone)
//                    -> mvccpb.KeyValue (a tombstone carries the key only, as etcd writes it)
//   lease            u64 BE id -> leasepb.Lease (RemainingTTL 0 = never checkpointed)
//   members          id in hex -> etcd's member JSON       members_removed   id in hex -> "removed"
//   meta             consistent_index -> u64 BE; scheduledCompactRev and finishedCompactRev ->
//                    revision key of the compacted revision (only once compacted)
//
// The buckets stream: each reads its key space from the source when the writer reaches it, so
// the MVCC history is never held in memory. Bucket names are listed in byte order, as bbolt
// keeps them. Password hashes go over as they are: MetaStore writes bcrypt, as etcd does (a user
// whose password was set before that has an scrypt hash, which etcd cannot check). Not carried
// over: MetaStore's auth token key, which etcd does not have.

import { decodeLeaseRecord } from '../../lease/lessor.js';
import { decodeRecord } from '../../mvcc/record.js';
import { decodeRevisionKey } from '../../mvcc/revision.js';
import { KeySpace } from '../../storage/backend.js';
import type { StateJSON } from '../../auth/auth-store.js';
import type { BboltEntry, BboltSource } from '../../bbolt/writer.js';
import { Alarms } from '../apply/alarms.js';
import { AUTH_STATE_KEY } from '../apply/auth-apply.js';
import { META_APPLIED_INDEX, META_COMPACTED_REVISION } from '../apply/applier.js';
import { decodeMember, type Member } from '../membership/membership.js';
import { encodeAlarm, encodeKeyValue, encodeLease, encodeRole, encodeUser } from './etcd-proto.js';

/** What the export reads: a pinned view of the member's state (StateView fits). */
export interface StateSource {
  scan(space: KeySpace): AsyncIterable<[Buffer, Buffer]>;
  get(space: KeySpace, key: string): Promise<Buffer | undefined>;
}

export interface EtcdExportOptions {
  /** The `cluster` bucket's clusterVersion (etcd 3.4 writes its major.minor.0). */
  clusterVersion?: string;
}

/** The 17-byte etcd revision key (18 with the tombstone mark). */
export function etcdRevisionKey(main: number, sub: number, tombstone = false): Buffer {
  const key = Buffer.alloc(tombstone ? 18 : 17);
  key.writeBigUInt64BE(BigInt(main), 0);
  key[8] = 0x5f; // '_'
  key.writeBigUInt64BE(BigInt(sub), 9);
  if (tombstone) key[17] = 0x74; // 't'
  return key;
}

function u64(value: number | bigint): Buffer {
  const out = Buffer.alloc(8);
  out.writeBigUInt64BE(BigInt(value));
  return out;
}

function entry(key: string | Buffer, value: string | Buffer): BboltEntry {
  return { key: typeof key === 'string' ? Buffer.from(key) : key, value: typeof value === 'string' ? Buffer.from(value) : value };
}

function sortedEntries(entries: BboltEntry[]): BboltEntry[] {
  return entries.sort((a, b) => Buffer.compare(a.key, b.key));
}

/** The root bucket of an etcd backend holding `state`, for writeBbolt / bboltStream. */
export async function* etcdBuckets(state: StateSource, options: EtcdExportOptions = {}): AsyncGenerator<BboltEntry> {
  const auth = await readAuth(state);
  const members = await readMembers(state);
  const bucket = (name: string, content: BboltSource): BboltEntry => ({ key: Buffer.from(name), bucket: content });
  yield bucket('alarm', await alarmEntries(state));
  yield bucket('auth', auth ? [entry('authEnabled', Buffer.from([auth.enabled ? 1 : 0])), entry('authRevision', u64(auth.revision))] : []);
  yield bucket(
    'authRoles',
    (auth?.roles ?? []).map((r) =>
      entry(
        r.name,
        encodeRole({
          name: Buffer.from(r.name),
          permissions: r.permissions.map((p) => ({ permType: p.permType, key: Buffer.from(p.key, 'base64'), rangeEnd: Buffer.from(p.rangeEnd, 'base64') })),
        }),
      ),
    ),
  );
  yield bucket(
    'authUsers',
    (auth?.users ?? []).map((u) =>
      entry(
        u.name,
        encodeUser({
          name: Buffer.from(u.name),
          password: Buffer.from(u.passwordHash),
          roles: u.roles,
          noPassword: u.noPassword,
        }),
      ),
    ),
  );
  yield bucket('cluster', [entry('clusterVersion', options.clusterVersion ?? '3.4.0')]);
  yield bucket('key', keyEntries(state));
  yield bucket('lease', leaseEntries(state));
  yield bucket('members', sortedEntries(members.live.map((m) => entry(m.id.toString(16), etcdMemberJson(m)))));
  yield bucket('members_removed', sortedEntries(members.removed.map((id) => entry(id.toString(16), 'removed'))));
  yield bucket('meta', await metaEntries(state));
}

async function* keyEntries(state: StateSource): AsyncGenerator<BboltEntry> {
  for await (const [revisionKey, value] of state.scan(KeySpace.mvcc)) {
    const revision = decodeRevisionKey(revisionKey);
    const record = decodeRecord(value);
    if (record.tombstone) {
      yield entry(
        etcdRevisionKey(revision.main, revision.sub, true),
        encodeKeyValue({ key: record.key, createRevision: 0, modRevision: 0, version: 0, value: Buffer.alloc(0), lease: 0n }),
      );
      continue;
    }
    const kv = {
      key: record.key,
      createRevision: record.createRevision,
      modRevision: revision.main,
      version: record.version,
      value: record.value,
      lease: record.lease,
    };
    yield entry(etcdRevisionKey(revision.main, revision.sub), encodeKeyValue(kv));
  }
}

async function* leaseEntries(state: StateSource): AsyncGenerator<BboltEntry> {
  for await (const [key, value] of state.scan(KeySpace.lease)) {
    const id = key.readBigInt64BE(0);
    const { ttlSeconds, remainingMs } = decodeLeaseRecord(value);
    // etcd's RemainingTTL 0 means "the full TTL": only a checkpointed remainder is written.
    const remainingTtlSeconds = remainingMs >= ttlSeconds * 1000 ? 0 : Math.max(1, Math.ceil(remainingMs / 1000));
    yield entry(key, encodeLease({ id, ttlSeconds, remainingTtlSeconds }));
  }
}

async function metaEntries(state: StateSource): Promise<BboltEntry[]> {
  const number = async (key: string): Promise<number | undefined> => {
    const value = await state.get(KeySpace.meta, key);
    return value === undefined ? undefined : Number(value.readBigUInt64BE(0));
  };
  const compacted = await number(META_COMPACTED_REVISION);
  const entries = [entry('consistent_index', u64((await number(META_APPLIED_INDEX)) ?? 0))];
  if (compacted !== undefined && compacted > 0) {
    entries.push(entry('finishedCompactRev', etcdRevisionKey(compacted, 0)), entry('scheduledCompactRev', etcdRevisionKey(compacted, 0)));
  }
  return entries;
}

async function alarmEntries(state: StateSource): Promise<BboltEntry[]> {
  const stored = await state.get(KeySpace.meta, 'alarms');
  const alarms = new Alarms();
  alarms.load(() => stored);
  return sortedEntries(alarms.all.map((a) => entry(encodeAlarm({ memberId: a.memberId, alarm: a.alarm }), Buffer.alloc(0))));
}

async function readAuth(state: StateSource): Promise<StateJSON | undefined> {
  const stored = await state.get(KeySpace.auth, AUTH_STATE_KEY);
  return stored === undefined ? undefined : (JSON.parse(stored.toString()) as StateJSON);
}

/** The member space: 'm' + id -> member JSON, 'r' + id -> removed (membership.ts). */
async function readMembers(state: StateSource): Promise<{ live: Member[]; removed: bigint[] }> {
  const live: Member[] = [];
  const removed: bigint[] = [];
  for await (const [key, value] of state.scan(KeySpace.members)) {
    if (key.length !== 9) continue; // 'local': this member's identity, not cluster state
    if (key[0] === 0x6d) live.push(decodeMember(value));
    else if (key[0] === 0x72) removed.push(key.readBigUInt64BE(1));
  }
  return { live, removed };
}

/** etcd's membership.Member JSON: id as a number, attributes omitted when empty. */
export function etcdMemberJson(member: Member): string {
  const fields = [`"id":${member.id.toString()}`, `"peerURLs":${JSON.stringify(member.peerUrls)}`];
  if (member.isLearner) fields.push('"isLearner":true');
  if (member.name !== '') fields.push(`"name":${JSON.stringify(member.name)}`);
  if (member.clientUrls.length > 0) fields.push(`"clientURLs":${JSON.stringify(member.clientUrls)}`);
  return `{${fields.join(',')}}`;
}
