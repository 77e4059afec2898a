import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { AuthStore } from '../../auth/auth-store.js';
import { JwtTokens, SimpleTokens, tokenProvider } from './auth-token.js';

function storeWithUsers(): AuthStore {
  const store = new AuthStore();
  store.apply({ op: 'userAdd', name: 'root', passwordHash: 'h', noPassword: false });
  store.apply({ op: 'userGrantRole', user: 'root', role: 'root' });
  store.apply({ op: 'userAdd', name: 'u', passwordHash: 'h', noPassword: false });
  store.apply({ op: 'enable', tokenKey: 'ab'.repeat(32) });
  return store;
}

describe('simple tokens', () => {
  it('verify on any store holding the same replicated state, until they expire', () => {
    const store = storeWithUsers();
    const tokens = new SimpleTokens(1000);
    const token = tokens.issue(store, 'u', 5000);
    const replica = new AuthStore();
    replica.loadJSON(JSON.parse(JSON.stringify(store.toJSON())));
    expect(new SimpleTokens(1).verify(replica, token, 5999)).toEqual({ username: 'u', revision: store.revision });
    expect(tokens.verify(store, token, 6000)).toBeUndefined();
    expect(tokens.verify(store, `${token.slice(0, -2)}AA`, 5000)).toBeUndefined();
  });

  it('die with a password change, a re-created user, or a disable/enable', () => {
    const tokens = new SimpleTokens(60_000);
    const store = storeWithUsers();
    const first = tokens.issue(store, 'u', 0);
    store.apply({ op: 'roleAdd', name: 'unrelated' });
    expect(tokens.verify(store, first, 1)?.username).toBe('u');
    store.apply({ op: 'userChangePassword', name: 'u', passwordHash: 'h2' });
    expect(tokens.verify(store, first, 1)).toBeUndefined();
    const second = tokens.issue(store, 'u', 0);
    store.apply({ op: 'disable' });
    store.apply({ op: 'enable', tokenKey: 'cd'.repeat(32) });
    expect(store.tokenKey).toBe('ab'.repeat(32));
    expect(tokens.verify(store, second, 1)).toBeUndefined();
    const third = tokens.issue(store, 'u', 0);
    store.apply({ op: 'userDelete', name: 'u' });
    store.apply({ op: 'userAdd', name: 'u', passwordHash: 'h', noPassword: false });
    expect(tokens.verify(store, third, 1)).toBeUndefined();
  });
});

describe('JWT tokens', () => {
  const cases = [
    { method: 'RS256', keys: () => generateKeyPairSync('rsa', { modulusLength: 2048 }) },
    { method: 'PS384', keys: () => generateKeyPairSync('rsa', { modulusLength: 2048 }) },
    { method: 'ES256', keys: () => generateKeyPairSync('ec', { namedCurve: 'prime256v1' }) },
    { method: 'ES384', keys: () => generateKeyPairSync('ec', { namedCurve: 'secp384r1' }) },
    { method: 'EdDSA', keys: () => generateKeyPairSync('ed25519') },
  ];
  for (const { method, keys } of cases) {
    it(`${method}: carries user and auth revision; refuses expired, tampered and foreign tokens`, () => {
      const store = storeWithUsers();
      const { publicKey, privateKey } = keys();
      const tokens = new JwtTokens(method, publicKey, privateKey, 10_000);
      const token = tokens.issue(store, 'u', 1_000_000);
      expect(tokens.verify(store, token, 1_000_000)).toEqual({ username: 'u', revision: store.revision });
      expect(tokens.verify(store, token, 1_011_000)).toBeUndefined();
      const [h, c, s] = token.split('.') as [string, string, string];
      const claims = JSON.parse(Buffer.from(c, 'base64url').toString());
      const tampered = Buffer.from(JSON.stringify({ ...claims, username: 'root' })).toString('base64url');
      expect(tokens.verify(store, `${h}.${tampered}.${s}`, 1_000_000)).toBeUndefined();
      const other = keys();
      expect(new JwtTokens(method, other.publicKey, other.privateKey, 10_000).verify(store, token, 1_000_000)).toBeUndefined();
      const none = Buffer.from(JSON.stringify({ alg: 'none', typ: 'JWT' })).toString('base64url');
      expect(tokens.verify(store, `${none}.${c}.`, 1_000_000)).toBeUndefined();
    });
  }

  it('reads --auth-token jwt,... with key files and ttl', () => {
    const dir = mkdtempSync(join(tmpdir(), 'metastore-jwt-unit-'));
    try {
      const { publicKey, privateKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
      writeFileSync(join(dir, 'pub.pem'), publicKey.export({ type: 'spki', format: 'pem' }));
      writeFileSync(join(dir, 'priv.pem'), privateKey.export({ type: 'pkcs8', format: 'pem' }));
      const provider = tokenProvider(`jwt,pub-key=${join(dir, 'pub.pem')},priv-key=${join(dir, 'priv.pem')},sign-method=ES256,ttl=1m30s`, 1);
      const store = storeWithUsers();
      const token = provider.issue(store, 'u', 0);
      expect(provider.verify(store, token, 89_000)?.username).toBe('u');
      expect(provider.verify(store, token, 90_000)).toBeUndefined();
      expect(tokenProvider('simple', 5).kind).toBe('simple');
      expect(() => tokenProvider(`jwt,pub-key=${join(dir, 'pub.pem')},sign-method=XX999`, 1)).toThrow(/sign-method/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
