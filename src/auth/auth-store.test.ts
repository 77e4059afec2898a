import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { AuthStore, PermType, type AuthOp, type AuthStamp } from './auth-store.js';
import { AuthError } from './errors.js';
import { covers, intervalOf } from './ranges.js';

const b = (s: string): Buffer => Buffer.from(s);

function codeOf(fn: () => void): string | undefined {
  try {
    fn();
    return undefined;
  } catch (error) {
    if (error instanceof AuthError) return error.etcdCode;
    throw error;
  }
}

function withRoot(): AuthStore {
  const store = new AuthStore();
  store.apply({ op: 'userAdd', name: 'root', passwordHash: 'h', noPassword: false });
  store.apply({ op: 'roleAdd', name: 'root' });
  store.apply({ op: 'userGrantRole', user: 'root', role: 'root' });
  return store;
}

describe('AuthStore', () => {
  it('enable needs user root with role root; every change bumps the revision', () => {
    const store = new AuthStore();
    expect(store.revision).toBe(1);
    expect(codeOf(() => store.apply({ op: 'enable', tokenKey: 'aa' }))).toBe('RootUserNotExist');
    store.apply({ op: 'userAdd', name: 'root', passwordHash: 'h', noPassword: false });
    expect(codeOf(() => store.apply({ op: 'enable', tokenKey: 'aa' }))).toBe('RootRoleNotExist');
    store.apply({ op: 'userGrantRole', user: 'root', role: 'root' });
    expect(store.revision).toBe(3);
    store.apply({ op: 'enable', tokenKey: 'aa' });
    expect(store.enabled).toBe(true);
    expect(store.revision).toBe(4);
    store.apply({ op: 'enable', tokenKey: 'bb' });
    expect(store.revision).toBe(4);
    expect(store.tokenKey).toBe('aa');
    expect(codeOf(() => store.apply({ op: 'userDelete', name: 'root' }))).toBe('InvalidAuthMgmt');
    expect(codeOf(() => store.apply({ op: 'userRevokeRole', name: 'root', role: 'root' }))).toBe('InvalidAuthMgmt');
    store.apply({ op: 'disable' });
    expect(store.enabled).toBe(false);
    expect(store.revision).toBe(5);
  });

  it("answers etcd's errors for users and roles", () => {
    const store = withRoot();
    expect(codeOf(() => store.apply({ op: 'userAdd', name: '', passwordHash: '', noPassword: false }))).toBe('UserEmpty');
    expect(codeOf(() => store.apply({ op: 'userAdd', name: 'root', passwordHash: '', noPassword: false }))).toBe('UserAlreadyExist');
    expect(codeOf(() => store.apply({ op: 'userDelete', name: 'x' }))).toBe('UserNotFound');
    expect(codeOf(() => store.apply({ op: 'userGrantRole', user: 'root', role: 'nope' }))).toBe('RoleNotFound');
    expect(codeOf(() => store.apply({ op: 'userGrantRole', user: 'x', role: 'root' }))).toBe('UserNotFound');
    expect(codeOf(() => store.apply({ op: 'roleAdd', name: '' }))).toBe('RoleEmpty');
    expect(codeOf(() => store.apply({ op: 'roleAdd', name: 'root' }))).toBe('RoleAlreadyExist');
    expect(codeOf(() => store.apply({ op: 'roleDelete', role: 'x' }))).toBe('RoleNotFound');
    store.apply({ op: 'roleAdd', name: 'r' });
    expect(codeOf(() => store.apply({ op: 'userRevokeRole', name: 'root', role: 'r' }))).toBe('RoleNotGranted');
    expect(codeOf(() => store.apply({ op: 'roleRevokePermission', role: 'r', key: b('a'), rangeEnd: b('') }))).toBe('PermissionNotGranted');
    const before = store.revision;
    store.apply({ op: 'userGrantRole', user: 'root', role: 'root' });
    expect(store.revision).toBe(before);
  });

  it('keeps permissions sorted, updates the same range in place, deletes a role from its users', () => {
    const store = withRoot();
    store.apply({ op: 'roleAdd', name: 'r' });
    store.apply({ op: 'roleGrantPermission', name: 'r', perm: { permType: PermType.READ, key: b('k'), rangeEnd: b('') } });
    store.apply({ op: 'roleGrantPermission', name: 'r', perm: { permType: PermType.WRITE, key: b('a'), rangeEnd: b('b') } });
    store.apply({ op: 'roleGrantPermission', name: 'r', perm: { permType: PermType.READWRITE, key: b('k'), rangeEnd: b('') } });
    expect(store.getRole('r')!.permissions.map((p) => [p.key.toString(), p.permType])).toEqual([
      ['a', PermType.WRITE],
      ['k', PermType.READWRITE],
    ]);
    store.apply({ op: 'userAdd', name: 'u', passwordHash: 'h', noPassword: false });
    store.apply({ op: 'userGrantRole', user: 'u', role: 'r' });
    store.apply({ op: 'roleDelete', role: 'r' });
    expect(store.getUser('u')!.roles).toEqual([]);
  });

  it('checks permissions only when enabled, refuses old revisions and unknown users', () => {
    const store = withRoot();
    store.apply({ op: 'userAdd', name: 'u', passwordHash: 'h', noPassword: false });
    store.apply({ op: 'roleAdd', name: 'r' });
    store.apply({ op: 'roleGrantPermission', name: 'r', perm: { permType: PermType.READWRITE, key: b('foo'), rangeEnd: b('fop') } });
    store.apply({ op: 'userGrantRole', user: 'u', role: 'r' });
    expect(codeOf(() => store.checkPermitted(undefined, b('x'), b(''), 'write'))).toBeUndefined();
    store.apply({ op: 'enable', tokenKey: '00' });
    const u: AuthStamp = { username: 'u', revision: store.revision };
    expect(codeOf(() => store.checkPermitted(undefined, b('foo1'), b(''), 'write'))).toBe('UserEmpty');
    expect(codeOf(() => store.checkPermitted(u, b('foo1'), b(''), 'write'))).toBeUndefined();
    expect(codeOf(() => store.checkPermitted(u, b('foo'), b('fop'), 'read'))).toBeUndefined();
    expect(codeOf(() => store.checkPermitted(u, b('foo'), b('\0'), 'read'))).toBe('PermissionDenied');
    expect(codeOf(() => store.checkPermitted(u, b('bar'), b(''), 'read'))).toBe('PermissionDenied');
    expect(codeOf(() => store.checkPermitted({ username: 'ghost', revision: store.revision }, b('foo'), b(''), 'read'))).toBe('PermissionDenied');
    expect(codeOf(() => store.checkPermitted({ username: 'root', revision: store.revision }, b(''), b('\0'), 'write'))).toBeUndefined();
    expect(codeOf(() => store.checkAdmin(u))).toBe('PermissionDenied');
    expect(codeOf(() => store.checkAdmin({ username: 'root', revision: 1 }))).toBeUndefined();
    store.apply({ op: 'roleAdd', name: 'other' });
    expect(codeOf(() => store.checkPermitted(u, b('foo1'), b(''), 'write'))).toBe('AuthOldRevision');
  });

  it('survives a JSON round trip', () => {
    const store = withRoot();
    store.apply({ op: 'roleAdd', name: 'r' });
    store.apply({ op: 'roleGrantPermission', name: 'r', perm: { permType: PermType.READ, key: b('\x00\xff'), rangeEnd: b('\0') } });
    store.apply({ op: 'enable', tokenKey: 'ab' });
    const copy = new AuthStore();
    copy.loadJSON(JSON.parse(JSON.stringify(store.toJSON())));
    expect(copy.toJSON()).toEqual(store.toJSON());
    expect(copy.getRole('r')!.permissions[0]!.key).toEqual(b('\x00\xff'));
  });
});

// ---------------------------------------------------------------- ranges against a model

/** Keys over a tiny alphabet, so the model can enumerate every key up to a length. */
const ALPHABET = ['a', 'b', 'c'];
const MAX_LEN = 3;
const ALL_KEYS: string[] = (() => {
  const out: string[] = [''];
  let frontier = [''];
  for (let len = 1; len <= MAX_LEN; len++) {
    frontier = frontier.flatMap((p) => ALPHABET.map((c) => p + c));
    out.push(...frontier);
  }
  return out;
})();

function inRange(k: string, key: string, rangeEnd: string): boolean {
  const kb = b(k);
  if (rangeEnd === '') return k === key;
  if (Buffer.compare(kb, b(key)) < 0) return false;
  return rangeEnd === '\0' || Buffer.compare(kb, b(rangeEnd)) < 0;
}

const word = fc.array(fc.constantFrom(...ALPHABET), { maxLength: MAX_LEN }).map((cs) => cs.join(''));
const nonEmptyWord = fc.array(fc.constantFrom(...ALPHABET), { minLength: 1, maxLength: MAX_LEN }).map((cs) => cs.join(''));
const range = fc.record({ key: nonEmptyWord, rangeEnd: fc.oneof(fc.constant(''), fc.constant('\0'), word) });

describe('permission ranges', () => {
  it('covers() agrees with a key-by-key model (within the enumerated key space)', () => {
    fc.assert(
      fc.property(fc.array(range, { maxLength: 5 }), range, (granted, wanted) => {
        // The model can only enumerate bounded keys: skip requests reaching beyond them.
        fc.pre(wanted.rangeEnd !== '\0');
        const keys = ALL_KEYS.filter((k) => inRange(k, wanted.key, wanted.rangeEnd));
        const model = keys.every((k) => granted.some((g) => inRange(k, g.key, g.rangeEnd)));
        const actual = covers(
          granted.map((g) => intervalOf(b(g.key), b(g.rangeEnd))),
          intervalOf(b(wanted.key), b(wanted.rangeEnd)),
        );
        // Keys longer than MAX_LEN exist between enumerated ones, so only a "covered" verdict
        // is checked against the model's; a "not covered" must have a witness or a gap beyond.
        if (actual) expect(model).toBe(true);
        if (!model) expect(actual).toBe(false);
      }),
      { numRuns: 2000 },
    );
  });

  it('the store grants exactly what the merged roles cover', () => {
    const opArb = fc.record({ role: fc.constantFrom('r1', 'r2'), permType: fc.constantFrom(PermType.READ, PermType.WRITE, PermType.READWRITE), r: range });
    fc.assert(
      fc.property(
        fc.array(opArb, { maxLength: 6 }),
        fc.constantFrom('a', 'ab', 'b', 'c', 'cc'),
        fc.constantFrom<'read' | 'write'>('read', 'write'),
        (grants, key, access) => {
          const store = withRoot();
          store.apply({ op: 'userAdd', name: 'u', passwordHash: 'h', noPassword: false });
          for (const role of ['r1', 'r2']) {
            store.apply({ op: 'roleAdd', name: role });
            store.apply({ op: 'userGrantRole', user: 'u', role });
          }
          const ops: AuthOp[] = grants.map((g) => ({
            op: 'roleGrantPermission',
            name: g.role,
            perm: { permType: g.permType, key: b(g.r.key), rangeEnd: b(g.r.rangeEnd) },
          }));
          for (const op of ops) store.apply(op);
          store.apply({ op: 'enable', tokenKey: '00' });
          // Effective grants: the last grant of each (role, key, range_end) wins.
          const effective = new Map<string, (typeof grants)[number]>();
          for (const g of grants) effective.set(`${g.role}|${g.r.key}|${g.r.rangeEnd}`, g);
          const model = [...effective.values()].some(
            (g) => inRange(key, g.r.key, g.r.rangeEnd) && (g.permType === PermType.READWRITE || (access === 'read') === (g.permType === PermType.READ)),
          );
          const allowed = codeOf(() => store.checkPermitted({ username: 'u', revision: store.revision }, b(key), b(''), access)) === undefined;
          expect(allowed).toBe(model);
        },
      ),
      { numRuns: 500 },
    );
  });
});
