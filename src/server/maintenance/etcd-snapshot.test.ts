import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { KeySpace } from '../../storage/backend.js';
import { crc32c } from '../../util/crc32c.js';
import { FIXTURE_LEASE_ID, FIXTURE_MEMBER_ID, fixtureState, MemoryState } from '../../../test/support/etcd-state-fixture.js';
import { SnapshotFileError } from './backup-format.js';
import { etcdRevisionKey } from './etcd-export.js';
import { etcdStateInfo, metaStoreEntries } from './etcd-import.js';
import { decodeKeyValue, decodeLease, decodeUser, encodeKeyValue, encodeLease, encodeRole, decodeRole } from './etcd-proto.js';
import { etcdSnapshotStatus, openEtcdSnapshot, writeEtcdSnapshotFile } from './etcd-snapshot.js';
import { humanBytes } from './etcd-status-print.js';

const dir = mkdtempSync(join(tmpdir(), 'etcd-snapshot-test-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('etcd protobuf records', () => {
  it('encodes mvccpb.KeyValue as gogo does (fields in order, zeros left out) and back', () => {
    const kv = { key: Buffer.from('a'), createRevision: 2, modRevision: 300, version: 1, value: Buffer.from('v'), lease: 0n };
    // 0a 01 'a' | 10 02 | 18 ac 02 | 20 01 | 2a 01 'v'
    expect(encodeKeyValue(kv).toString('hex')).toBe('0a0161100218ac022001' + '2a0176');
    expect(decodeKeyValue(encodeKeyValue(kv))).toEqual(kv);
    const tombstone = encodeKeyValue({ key: Buffer.from('a'), createRevision: 0, modRevision: 0, version: 0, value: Buffer.alloc(0), lease: 0n });
    expect(tombstone.toString('hex')).toBe('0a0161');
  });

  it('round-trips leases with negative int64 IDs and roles with permissions', () => {
    const lease = { id: -5n, ttlSeconds: 10, remainingTtlSeconds: 0 };
    expect(encodeLease(lease)).toHaveLength(1 + 10 + 2); // ten-byte varint for a negative int64
    expect(decodeLease(encodeLease(lease))).toEqual(lease);
    const role = {
      name: Buffer.from('r'),
      permissions: [
        { permType: 0, key: Buffer.from('k'), rangeEnd: Buffer.alloc(0) },
        { permType: 2, key: Buffer.from('a'), rangeEnd: Buffer.from('b') },
      ],
    };
    expect(decodeRole(encodeRole(role))).toEqual(role);
  });

  it('refuses truncated messages with a typed error', () => {
    expect(() => decodeKeyValue(Buffer.from('0a05', 'hex'))).toThrow(SnapshotFileError);
  });

  it('sizes print as go-humanize Bytes does (SI units, ties to even above 10)', () => {
    expect([9, 10, 16_384, 2_150_000, 18_500_000, 19_500_000, 999_999].map(humanBytes)).toEqual([
      '9 B',
      '10 B',
      '16 kB',
      '2.2 MB',
      '18 MB',
      '20 MB',
      '1000 kB',
    ]);
  });

  it('crc32c is the Castagnoli CRC (check value of "123456789")', () => {
    expect(crc32c(Buffer.from('123456789'))).toBe(0xe3069283);
    expect(crc32c(Buffer.from('6789'), crc32c(Buffer.from('12345')))).toBe(0xe3069283);
  });
});

describe('etcd snapshot file from MetaStore state', () => {
  it('writes the buckets etcd holds and reads them back into the same MetaStore entries', async () => {
    const state = fixtureState();
    const path = join(dir, 'fixture.db');
    const written = await writeEtcdSnapshotFile(path, state);
    const file = readFileSync(path);
    expect(file.length).toBe(written.databaseBytes + 32);
    expect(file.length % 512).toBe(32);

    const reader = await openEtcdSnapshot(path, { skipHashCheck: false });
    const names = [...reader.items(reader.root)].map((b) => b.key.toString());
    expect(names).toEqual(['alarm', 'auth', 'authRoles', 'authUsers', 'cluster', 'key', 'lease', 'members', 'members_removed', 'meta']);

    const keyBucket = [...reader.items(reader.bucket('key')!)];
    expect(keyBucket.map((i) => i.key)).toEqual([
      etcdRevisionKey(2, 0),
      etcdRevisionKey(3, 0),
      etcdRevisionKey(4, 0),
      etcdRevisionKey(5, 0, true),
      etcdRevisionKey(6, 0),
      etcdRevisionKey(7, 0),
      etcdRevisionKey(7, 1),
    ]);
    expect(decodeKeyValue(keyBucket[1]!.value)).toEqual({
      key: Buffer.from('foo'),
      createRevision: 2,
      modRevision: 3,
      version: 2,
      value: Buffer.from('bar2'),
      lease: FIXTURE_LEASE_ID,
    });
    expect(keyBucket[3]!.value.toString('hex')).toBe('0a0362617a'); // tombstone: the key only
    const [lease] = [...reader.items(reader.bucket('lease')!)];
    expect(decodeLease(lease!.value)).toEqual({ id: FIXTURE_LEASE_ID, ttlSeconds: 3600, remainingTtlSeconds: 0 });
    const [user] = [...reader.items(reader.bucket('authUsers')!)];
    expect(decodeUser(user!.value)).toMatchObject({ name: Buffer.from('alice'), roles: ['reader'], noPassword: false });

    const info = etcdStateInfo(reader);
    expect(info).toMatchObject({
      consistentIndex: 42,
      compactedRevision: 2,
      scheduledCompactRevision: 2,
      revision: 7,
      clusterVersion: '3.4.0',
      removedMembers: [0x1234n],
    });
    expect(info.members).toEqual([
      { id: FIXTURE_MEMBER_ID, name: 'm1', peerUrls: ['http://127.0.0.1:2380'], clientUrls: ['http://127.0.0.1:2379'], isLearner: false },
    ]);

    // Back to MetaStore: every replicated space the same bytes (members are not imported).
    const back = new MemoryState(metaStoreEntries(reader));
    for (const space of [KeySpace.meta, KeySpace.mvcc, KeySpace.lease]) {
      expect(back.entries(space), `space ${space}`).toEqual(state.entries(space));
    }
    // Auth too, except the users' token epochs, which etcd does not keep (0: any token counts).
    const authState = (s: MemoryState): unknown => {
      const json = JSON.parse(s.entries(KeySpace.auth)[0]![1].toString()) as { users: Array<{ epoch: number }> };
      return { ...json, users: json.users.map((u) => ({ ...u, epoch: 0 })) };
    };
    expect(authState(back)).toEqual(authState(state));
    const status = etcdSnapshotStatus(reader);
    expect(status).toMatchObject({ revision: 7, totalSize: written.databaseBytes });
    // alarm 0, auth 2, authRoles 1, authUsers 1, cluster 1, key 7, lease 1, members 1, members_removed 1, meta 3
    expect(status.totalKey).toBe(18);
    reader.close();
  });

  it('checks the SHA-256 trailer as etcd restore does', async () => {
    const path = join(dir, 'trailer.db');
    await writeEtcdSnapshotFile(path, fixtureState());
    const file = readFileSync(path);
    const damaged = Buffer.from(file);
    damaged.writeUInt8(damaged.readUInt8(5000) ^ 1, 5000);
    writeFileSync(path, damaged);
    await expect(openEtcdSnapshot(path, { skipHashCheck: false })).rejects.toThrow(/expected sha256/);
    writeFileSync(path, file.subarray(0, file.length - 32));
    await expect(openEtcdSnapshot(path, { skipHashCheck: false })).rejects.toThrow('snapshot missing hash but --skip-hash-check=false');
    const bare = await openEtcdSnapshot(path, { skipHashCheck: true });
    expect(etcdStateInfo(bare).revision).toBe(7);
    bare.close();
  });
});
