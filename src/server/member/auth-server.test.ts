import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { AuthStore, PermType } from '../../auth/auth-store.js';
import { AuthError } from '../../auth/errors.js';
import { Backend } from '../../storage/backend.js';
import { AuthApplier } from '../apply/auth-apply.js';
import { AuthServer, checkPassword, hashPassword } from './auth-server.js';
import { decodeInternalRequest, encodeInternalRequest, type InternalRequest } from '../apply/internal-request.js';
import { KvServer } from './kv-server.js';

const b = (s: string): Buffer => Buffer.from(s);
const dirs: string[] = [];

afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

async function openServer(dir?: string): Promise<{ kv: KvServer; dir: string }> {
  const path = dir ?? mkdtempSync(join(tmpdir(), 'metastore-auth-'));
  if (dir === undefined) dirs.push(path);
  const kv = await KvServer.open(await Backend.open(path));
  await kv.start();
  return { kv, dir: path };
}

describe('auth log entries', () => {
  it('round-trip auth ops and stamps; unstamped entries encode as before', () => {
    const requests: InternalRequest[] = [
      { kind: 'auth', op: { op: 'roleGrantPermission', name: 'r', perm: { permType: PermType.READ, key: b('\x00k\xff'), rangeEnd: b('\0') } } },
      { kind: 'auth', op: { op: 'userAdd', name: 'u', passwordHash: 'scrypt$x', noPassword: false }, stamp: { username: 'root', revision: 7 } },
      {
        kind: 'put',
        put: { key: b('k'), value: b('v'), lease: 0n, prevKv: false, ignoreValue: false, ignoreLease: false },
        stamp: { username: 'ü', revision: 3 },
      },
    ];
    for (const request of requests) expect(decodeInternalRequest(encodeInternalRequest(request))).toEqual(request);
    const plain: InternalRequest = { kind: 'compact', revision: 5, physical: false };
    expect(encodeInternalRequest(plain)[1]).toBe(5);
  });
});

describe('passwords', () => {
  it("are stored as salted bcrypt hashes at etcd's cost 10, and older scrypt hashes still check", async () => {
    const one = await hashPassword('secret');
    const two = await hashPassword('secret');
    expect(one).toMatch(/^\$2a\$10\$/);
    expect(one).not.toBe(two);
    expect(one).not.toContain('secret');
    expect(await checkPassword('secret', one)).toBe(true);
    expect(await checkPassword('Secret', one)).toBe(false);
    // scrypt$N$r$p$salt$key as members before bcrypt wrote it (N=16, salt "salt", key of "pw").
    const { scryptSync } = await import('node:crypto');
    const key = scryptSync('pw', 'salt', 32, { N: 16, r: 8, p: 1 });
    const legacy = `scrypt$16$8$1$${Buffer.from('salt').toString('base64')}$${key.toString('base64')}`;
    expect(await checkPassword('pw', legacy)).toBe(true);
    expect(await checkPassword('px', legacy)).toBe(false);
  });
});

describe('AuthServer', () => {
  it('locks a user out after repeated failures, without checking the password meanwhile', async () => {
    let now = 1_000_000;
    const store = new AuthStore();
    const failures: string[] = [];
    const applier = new AuthApplier(store, () => []);
    const server = new AuthServer(
      store,
      {
        propose: async (request) => {
          if (request.kind === 'auth') applier.apply(request, []);
          return { outcome: { ok: true, value: { kind: 'auth' }, revision: 1 } };
        },
        readBarrier: () => undefined,
      },
      { nowMs: () => now, onLoginFailed: (user, reason) => failures.push(`${user}: ${reason}`) },
    );
    await server.bootstrapRoot('pw');
    await server.enable(undefined);
    const attempt = (password: string) =>
      server.authenticate('root', password).then(
        () => 'ok',
        (error: unknown) => (error instanceof AuthError ? error.etcdCode : 'bug'),
      );
    expect(await attempt('x')).toBe('AuthFailed');
    expect(await attempt('x')).toBe('AuthFailed');
    expect(await attempt('pw')).toBe('ok');
    for (let i = 0; i < 3; i++) expect(await attempt('x')).toBe('AuthFailed');
    expect(await attempt('pw')).toBe('AuthFailed');
    now += 60_000;
    expect(await attempt('pw')).toBe('ok');
    expect(failures.filter((f) => f.includes('locked out'))).toHaveLength(1);
    expect(failures.join('\n')).not.toContain('pw');
  });
});

describe('auth through the log (KvServer)', () => {
  it('checks writes at apply with the stamped revision, and survives a restart', async () => {
    const { kv, dir } = await openServer();
    await kv.auth.bootstrapRoot('rootpw');
    await kv.auth.userAdd(undefined, 'u', 'upw', false);
    await kv.auth.roleAdd(undefined, 'r');
    await kv.auth.roleGrantPermission(undefined, 'r', { permType: PermType.READWRITE, key: b('a'), rangeEnd: b('b') });
    await kv.auth.userGrantRole(undefined, 'u', 'r');
    await kv.auth.enable(undefined);
    const root = { username: 'root', revision: kv.auth.store.revision };
    const put = (key: string) => ({ key: b(key), value: b('v'), lease: 0n, prevKv: false, ignoreValue: false, ignoreLease: false });
    const stale = { username: 'u', revision: kv.auth.store.revision };
    await kv.put(put('a1'), stale);
    await expect(kv.put(put('z'), stale)).rejects.toMatchObject({ etcdCode: 'PermissionDenied' });
    await expect(kv.put(put('a2'))).rejects.toMatchObject({ etcdCode: 'UserEmpty' });
    await kv.auth.roleAdd(root, 'other');
    // Stamped before the change: refused at apply, as etcd does.
    await expect(kv.put(put('a3'), stale)).rejects.toMatchObject({ etcdCode: 'AuthOldRevision' });
    const token = (await kv.auth.authenticate('u', 'upw')).token;
    const revision = kv.auth.store.revision;
    await kv.close();

    const reopened = (await openServer(dir)).kv;
    try {
      expect(reopened.auth.enabled).toBe(true);
      expect(reopened.auth.store.revision).toBe(revision);
      expect(reopened.auth.store.roleNames()).toEqual(['other', 'r', 'root']);
      // The token key is replicated state: a token issued before the restart still verifies.
      expect(reopened.auth.verifyToken(token)).toEqual({ username: 'u', revision });
      expect((await reopened.auth.authenticate('u', 'upw')).token).toBeTruthy();
    } finally {
      await reopened.close();
    }
  });

  it('the applier refuses unstamped writes only while auth is enabled', () => {
    const store = new AuthStore();
    const applier = new AuthApplier(store, () => [b('k')]);
    const write: InternalRequest = { kind: 'deleteRange', deleteRange: { key: b('k'), rangeEnd: b(''), prevKv: false } };
    expect(() => applier.check(write)).not.toThrow();
    for (const op of [
      { op: 'userAdd', name: 'root', passwordHash: 'h', noPassword: false },
      { op: 'userGrantRole', user: 'root', role: 'root' },
      { op: 'enable', tokenKey: 'aa' },
    ] as const)
      store.apply(op);
    expect(() => applier.check(write)).toThrow(AuthError);
    // The lessor's own expiry revokes carry no stamp and must go through.
    expect(() => applier.check({ kind: 'leaseRevoke', id: 1n })).not.toThrow();
    expect(() => applier.check({ kind: 'leaseRevoke', id: 1n, stamp: { username: 'nobody', revision: store.revision } })).toThrow(AuthError);
  });
});
