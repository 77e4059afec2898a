// A MetaStore state in memory, made with MetaStore's own record encoders, for the etcd snapshot
// format tests: history (overwrites, a delete, a two-op txn), a compaction, a lease with an
// attached key, a user with a role, one member and a removed one.

import { AuthStore, PermType } from '../../src/auth/auth-store.js';
import { encodeLeaseRecord } from '../../src/lease/lessor.js';
import { encodeRecord, encodeTombstone } from '../../src/mvcc/record.js';
import { encodeRevisionKey, makeRevision } from '../../src/mvcc/revision.js';
import { KeySpace } from '../../src/storage/backend.js';
import { encodeMember } from '../../src/server/membership/membership.js';
import type { StateSource } from '../../src/server/maintenance/etcd-export.js';
import type { MetaStoreEntry } from '../../src/server/maintenance/etcd-import.js';

/** A StateSource over entries held in memory (each space sorted by key, as LevelDB keeps it). */
export class MemoryState implements StateSource {
  private readonly spaces = new Map<number, Array<[Buffer, Buffer]>>();

  constructor(entries: Iterable<MetaStoreEntry>) {
    for (const { space, key, value } of entries) {
      const list = this.spaces.get(space) ?? [];
      list.push([key, value]);
      this.spaces.set(space, list);
    }
    for (const list of this.spaces.values()) list.sort((a, b) => Buffer.compare(a[0], b[0]));
  }

  async *scan(space: KeySpace): AsyncGenerator<[Buffer, Buffer]> {
    yield* this.spaces.get(space) ?? [];
  }

  async get(space: KeySpace, key: string): Promise<Buffer | undefined> {
    return this.spaces.get(space)?.find(([k]) => k.toString('latin1') === key)?.[1];
  }

  entries(space: KeySpace): Array<[Buffer, Buffer]> {
    return this.spaces.get(space) ?? [];
  }
}

export const FIXTURE_LEASE_ID = 0x694d7fd2d7e1a00bn;
export const FIXTURE_MEMBER_ID = 0x8e9e05c52164694dn;

function u64(n: number): Buffer {
  const out = Buffer.alloc(8);
  out.writeBigUInt64BE(BigInt(n));
  return out;
}

function put(main: number, sub: number, key: string, value: string, createRevision: number, version: number, lease = 0n): MetaStoreEntry {
  const record = encodeRecord({ key: Buffer.from(key), value: Buffer.from(value), createRevision, version, lease });
  return { space: KeySpace.mvcc, key: encodeRevisionKey(makeRevision(main, sub)), value: record };
}

/**
 * Revisions: 2 put foo; 3 put foo (leased); 4 put baz; 5 delete baz; 6 put baz; 7 txn: put x,
 * put y. Compacted at 2 (foo@2 is still the latest at 2, so it stays, as etcd keeps it).
 */
export function fixtureState(): MemoryState {
  const lease = {
    space: KeySpace.lease,
    key: (() => {
      const k = Buffer.alloc(8);
      k.writeBigInt64BE(FIXTURE_LEASE_ID);
      return k;
    })(),
    value: encodeLeaseRecord({ ttlSeconds: 3600, remainingMs: 3_600_000 }),
  };
  const auth = new AuthStore();
  auth.apply({ op: 'roleAdd', name: 'reader' });
  auth.apply({ op: 'roleGrantPermission', name: 'reader', perm: { permType: PermType.READ, key: Buffer.from('foo'), rangeEnd: Buffer.from('fop') } });
  auth.apply({ op: 'userAdd', name: 'alice', passwordHash: 'scrypt$16384$8$1$c2FsdA==$aGFzaA==', noPassword: false });
  auth.apply({ op: 'userGrantRole', user: 'alice', role: 'reader' });
  const memberKey = (tag: string, id: bigint): Buffer => {
    const k = Buffer.alloc(9);
    k.write(tag, 0, 'latin1');
    k.writeBigUInt64BE(id, 1);
    return k;
  };
  return new MemoryState([
    { space: KeySpace.meta, key: Buffer.from('appliedIndex'), value: u64(42) },
    { space: KeySpace.meta, key: Buffer.from('compactedRevision'), value: u64(2) },
    put(2, 0, 'foo', 'bar1', 2, 1),
    put(3, 0, 'foo', 'bar2', 2, 2, FIXTURE_LEASE_ID),
    put(4, 0, 'baz', 'q', 4, 1),
    { space: KeySpace.mvcc, key: encodeRevisionKey(makeRevision(5, 0)), value: encodeTombstone(Buffer.from('baz')) },
    put(6, 0, 'baz', 'again', 6, 1),
    put(7, 0, 'x', '1', 7, 1),
    put(7, 1, 'y', '', 7, 1),
    lease,
    { space: KeySpace.auth, key: Buffer.from('state'), value: Buffer.from(JSON.stringify(auth.toJSON())) },
    { space: KeySpace.members, key: Buffer.from('local'), value: Buffer.from('ignored') },
    {
      space: KeySpace.members,
      key: memberKey('m', FIXTURE_MEMBER_ID),
      value: encodeMember({ id: FIXTURE_MEMBER_ID, name: 'm1', peerUrls: ['http://127.0.0.1:2380'], clientUrls: ['http://127.0.0.1:2379'], isLearner: false }),
    },
    { space: KeySpace.members, key: memberKey('r', 0x1234n), value: Buffer.alloc(0) },
  ]);
}
