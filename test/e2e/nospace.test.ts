// --quota-backend-bytes and the NOSPACE alarm, as etcd does them: a write that would take the
// database past the quota is refused with "database space exceeded" and raises NOSPACE
// through Raft; while it is active writes are refused and reads, deletes and compaction work;
// compact + defrag + `etcdctl alarm disarm` bring writes back.

import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { waitFor } from '../support/wait.js';
import { startMetaStore, type MetaStoreHandle } from '../support/servers.js';
import { etcdctl } from '../support/tools.js';

let server: MetaStoreHandle;
let endpoint: string;

beforeAll(async () => {
  server = await startMetaStore({ extraArgs: ['--quota-backend-bytes', String(2 * 1024 * 1024)] });
  endpoint = server.endpoint.replace('http://', '');
}, 60_000);

afterAll(async () => {
  await server?.destroy();
});

it('NOSPACE: refused writes, alarm list, reads still work, disarm after compact + defrag', async () => {
  // Incompressible values, so the files on disk grow as the data does.
  const value = randomBytes(48 * 1024).toString('base64');
  let refused: Awaited<ReturnType<typeof etcdctl>> | undefined;
  for (let i = 0; i < 200 && refused === undefined; i++) {
    const put = await etcdctl(endpoint, ['put', `big/${i}`, value]);
    if (put.code !== 0) refused = put;
  }
  expect(refused, 'the quota was never reached').toBeDefined();
  expect(refused!.stderr).toContain('etcdserver: mvcc: database space exceeded');

  // The alarm is raised through the log: it shows in alarm list and endpoint status.
  const alarms = await waitFor(() => etcdctl(endpoint, ['alarm', 'list']), {
    what: 'the NOSPACE alarm',
    until: (r) => r.stdout.includes('alarm:NOSPACE'),
  });
  expect(alarms.stdout).toMatch(/^memberID:\d+ alarm:NOSPACE/m);
  const status = await etcdctl(endpoint, ['endpoint', 'status', '-w', 'json']);
  expect(status.stdout).toContain('alarm:NOSPACE');

  // Writes are refused even when small; reads and deletes work.
  const small = await etcdctl(endpoint, ['put', 'small', 'v']);
  expect(small.code).toBe(1);
  expect(small.stderr).toContain('database space exceeded');
  expect((await etcdctl(endpoint, ['get', 'big/0', '--keys-only'])).stdout.trim()).toBe('big/0');
  const del = await etcdctl(endpoint, ['del', 'big/', '--prefix', '-w', 'json']);
  expect(del.code, del.stderr).toBe(0);
  const revision = JSON.parse(del.stdout).header.revision as number;

  // Recovery as etcd documents it: compact, defragment, disarm.
  expect((await etcdctl(endpoint, ['compaction', String(revision), '--physical'])).code).toBe(0);
  expect((await etcdctl(endpoint, ['defrag'])).code).toBe(0);
  const disarm = await etcdctl(endpoint, ['alarm', 'disarm']);
  expect(disarm.code, disarm.stderr).toBe(0);
  expect(disarm.stdout).toMatch(/alarm:NOSPACE/);
  expect((await etcdctl(endpoint, ['alarm', 'list'])).stdout.trim()).toBe('');
  // The size estimate is refreshed once a second: writes come back once it sees the space.
  const after = await waitFor(() => etcdctl(endpoint, ['put', 'small', 'v']), {
    what: 'writes to be accepted again',
    until: (r) => r.code === 0,
    timeoutMs: 10_000,
  });
  expect(after.code).toBe(0);
});
