// etcd's snapshot format against the real tools (Debian etcd 3.4.23): our reader decodes what
// `etcdctl snapshot save` writes, and what our writer produces passes `etcdctl snapshot status`
// and `etcdctl snapshot restore`, after which a real etcd serves the same keys, revisions,
// versions and lease.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { BboltEntry } from '../../src/bbolt/writer.js';
import { decodeRecord } from '../../src/mvcc/record.js';
import { decodeRevisionKey } from '../../src/mvcc/revision.js';
import { KeySpace } from '../../src/storage/backend.js';
import { etcdBuckets } from '../../src/server/maintenance/etcd-export.js';
import { etcdStateInfo, metaStoreEntries } from '../../src/server/maintenance/etcd-import.js';
import { etcdSnapshotStatus, openEtcdSnapshot, writeEtcdSnapshotFile } from '../../src/server/maintenance/etcd-snapshot.js';
import { formatSnapshotStatus, type StatusFormat } from '../../src/server/maintenance/etcd-status-print.js';
import { encodeRecord } from '../../src/mvcc/record.js';
import { encodeRevisionKey, makeRevision } from '../../src/mvcc/revision.js';
import { FIXTURE_LEASE_ID, fixtureState, MemoryState } from '../support/etcd-state-fixture.js';
import { freePort } from '../support/ports.js';
import { startEtcd } from '../support/servers.js';
import { etcdctl } from '../support/tools.js';

const dir = mkdtempSync(join(tmpdir(), 'etcd-snapshot-format-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function ok(endpoint: string, args: string[]): Promise<string> {
  const result = await etcdctl(endpoint, args);
  expect(result.code, `etcdctl ${args.join(' ')}: ${result.stderr}`).toBe(0);
  return result.stdout;
}

/** The entries of one bucket of a writer source (arrays and async generators alike). */
async function bucketEntries(root: AsyncIterable<BboltEntry>, name: string): Promise<Array<[string, string]>> {
  for await (const entry of root) {
    if (entry.key.toString() !== name || !('bucket' in entry)) continue;
    const out: Array<[string, string]> = [];
    for await (const item of entry.bucket) if ('value' in item) out.push([item.key.toString('hex'), item.value.toString('hex')]);
    return out;
  }
  throw new Error(`no bucket ${name}`);
}

describe('etcd snapshot format against etcd 3.4.23', () => {
  it('reads the snapshot real etcd saves: keys, revisions, tombstone, compaction, lease, user, role', async () => {
    const etcd = await startEtcd();
    const e = etcd.endpoint;
    await ok(e, ['put', 'a', '1']); // rev 2
    await ok(e, ['put', 'b', '1']); // rev 3
    await ok(e, ['put', 'a', '2']); // rev 4
    await ok(e, ['del', 'b']); // rev 5
    await ok(e, ['put', 'c', '3']); // rev 6
    await ok(e, ['compact', '4', '--physical']); // drops a@2; keeps b@3 (b's latest at 4)
    const leaseHex = /lease ([0-9a-f]+) granted/.exec(await ok(e, ['lease', 'grant', '600']))![1]!;
    const leaseId = BigInt(`0x${leaseHex}`).toString(16); // etcdctl pads to 16 digits
    await ok(e, ['put', 'd', '4', `--lease=${leaseHex}`]); // rev 7
    await ok(e, ['user', 'add', 'alice:secret', '--interactive=false']);
    await ok(e, ['role', 'add', 'r1']);
    await ok(e, ['role', 'grant-permission', 'r1', 'readwrite', '/foo']);
    await ok(e, ['user', 'grant-role', 'alice', 'r1']);
    const file = join(dir, 'etcd-saved.db');
    await ok(e, ['snapshot', 'save', file]);
    await etcd.stop();

    const reader = await openEtcdSnapshot(file, { skipHashCheck: false }); // etcd's own trailer checks out
    const info = etcdStateInfo(reader);
    expect(info).toMatchObject({ revision: 7, compactedRevision: 4, scheduledCompactRevision: 4, clusterVersion: '3.4.0' });
    expect(info.members.map((m) => m.name)).toEqual(['default']);

    const entries = [...metaStoreEntries(reader)];
    const mvcc = entries
      .filter((x) => x.space === KeySpace.mvcc)
      .map((x) => {
        const rev = decodeRevisionKey(x.key);
        const r = decodeRecord(x.value);
        return [rev.main, rev.sub, r.key.toString(), r.tombstone ? 'deleted' : r.value.toString(), r.createRevision, r.version, r.lease.toString(16)];
      });
    expect(mvcc).toEqual([
      [3, 0, 'b', '1', 3, 1, '0'],
      [4, 0, 'a', '2', 2, 2, '0'],
      [5, 0, 'b', 'deleted', 0, 0, '0'],
      [6, 0, 'c', '3', 6, 1, '0'],
      [7, 0, 'd', '4', 7, 1, leaseId],
    ]);
    const leases = entries.filter((x) => x.space === KeySpace.lease);
    expect(leases.map((x) => x.key.readBigInt64BE(0).toString(16))).toEqual([leaseId]);
    const auth = JSON.parse(entries.find((x) => x.space === KeySpace.auth)!.value.toString()) as {
      users: Array<{ name: string; roles: string[]; passwordHash: string }>;
      roles: Array<{ name: string; permissions: Array<{ permType: number; key: string }> }>;
    };
    expect(auth.users.map((u) => [u.name, u.roles, u.passwordHash.slice(0, 4)])).toEqual([['alice', ['r1'], '$2a$']]);
    expect(auth.roles).toEqual([{ name: 'r1', permissions: [{ permType: 2, key: Buffer.from('/foo').toString('base64'), rangeEnd: '' }] }]);

    // Our status is etcdctl's, hash included.
    const theirs = JSON.parse(await ok(e, ['snapshot', 'status', file, '-w', 'json'])) as unknown;
    expect(etcdSnapshotStatus(reader)).toEqual(theirs);

    // etcd -> MetaStore -> etcd gives etcd's own bytes back for the key and lease buckets.
    const state = new MemoryState(entries);
    for (const name of ['key', 'lease']) {
      const original = [...reader.items(reader.bucket(name)!)].map((i) => [i.key.toString('hex'), i.value.toString('hex')]);
      expect(await bucketEntries(etcdBuckets(state), name), name).toEqual(original);
    }
    reader.close();
  });

  it('writes a snapshot etcdctl reads and restores, and etcd serves it with the same revisions and lease', async () => {
    const file = join(dir, 'ours.db');
    await writeEtcdSnapshotFile(file, fixtureState());
    const reader = await openEtcdSnapshot(file, { skipHashCheck: false });
    const ours = etcdSnapshotStatus(reader);
    reader.close();
    const status = JSON.parse(await ok('http://127.0.0.1:1', ['snapshot', 'status', file, '-w', 'json'])) as typeof ours;
    expect(status).toEqual(ours);
    expect(status).toMatchObject({ revision: 7, totalKey: 18 });

    const restored = join(dir, 'restored');
    const peer = `http://127.0.0.1:${await freePort()}`;
    await ok('http://127.0.0.1:1', [
      'snapshot',
      'restore',
      file,
      '--name',
      'default',
      '--data-dir',
      restored,
      '--initial-cluster',
      `default=${peer}`,
      '--initial-advertise-peer-urls',
      peer,
    ]);
    const etcd = await startEtcd({ extraArgs: ['--data-dir', restored] });
    const e = etcd.endpoint;
    const got = await ok(e, ['get', '', '--prefix', '-w', 'json']);
    const parsed = JSON.parse(got) as {
      header: { revision: number };
      kvs: Array<{ key: string; value?: string; create_revision: number; mod_revision: number; version: number }>;
    };
    expect(parsed.header.revision).toBe(7);
    expect(
      parsed.kvs.map((kv) => [
        Buffer.from(kv.key, 'base64').toString(),
        Buffer.from(kv.value ?? '', 'base64').toString(),
        kv.create_revision,
        kv.mod_revision,
        kv.version,
      ]),
    ).toEqual([
      ['baz', 'again', 6, 6, 1],
      ['foo', 'bar2', 2, 3, 2],
      ['x', '1', 7, 7, 1],
      ['y', '', 7, 7, 1],
    ]);
    // The lease is a 64-bit ID: read it from the text, not through a double.
    expect(/"key":"Zm9v"[^}]*"lease":(\d+)/.exec(got)?.[1]).toBe(FIXTURE_LEASE_ID.toString());
    expect(await ok(e, ['get', 'foo', '--rev=2', '--print-value-only'])).toBe('bar1\n'); // kept by the compaction at 2
    const compacted = await etcdctl(e, ['get', 'foo', '--rev=1']);
    expect(compacted.stderr).toContain('required revision has been compacted');
    expect(await ok(e, ['lease', 'list'])).toContain(FIXTURE_LEASE_ID.toString(16));
    const ttl = await ok(e, ['lease', 'timetolive', FIXTURE_LEASE_ID.toString(16), '--keys']);
    expect(ttl).toMatch(/granted with TTL\(3600s\).*attached keys\(\[foo\]\)/);
    expect(await ok(e, ['user', 'get', 'alice'])).toContain('Roles: reader');
    expect(await ok(e, ['role', 'get', 'reader'])).toMatch(/Read:\s*\[foo, fop\)/);
    await etcd.stop();
  });

  it('prints snapshot status as etcdctl does, in its simple, table and json formats (values past a page included)', async () => {
    for (const [name, keys, valueBytes] of [
      ['small', 3, 10],
      ['medium', 2000, 500],
      ['large', 1500, 9000],
    ] as const) {
      const entries = Array.from({ length: keys }, (_, i) => ({
        space: KeySpace.mvcc,
        key: encodeRevisionKey(makeRevision(i + 2, 0)),
        value: encodeRecord({ key: Buffer.from(`k${i}`), value: Buffer.alloc(valueBytes, i), createRevision: i + 2, version: 1, lease: 0n }),
      }));
      const file = join(dir, `status-${name}.db`);
      await writeEtcdSnapshotFile(file, new MemoryState(entries));
      const reader = await openEtcdSnapshot(file, { skipHashCheck: false });
      const status = etcdSnapshotStatus(reader);
      reader.close();
      for (const format of ['simple', 'table', 'json'] as StatusFormat[]) {
        expect(formatSnapshotStatus(status, format), `${name} ${format}`).toBe(await ok('http://127.0.0.1:1', ['snapshot', 'status', file, '-w', format]));
      }
    }
  });
});
