import * as grpc from '@grpc/grpc-js';
import { describe, expect, it } from 'vitest';
import { AuthStore } from '../auth/auth-store.js';
import { AuthServer } from '../server/member/auth-server.js';
import { forwardedCredentials, memberCredentials, stampOf } from './auth-check.js';
import { FORWARDED_USER_METADATA, FORWARDED_USER_VALIDITY_MS, signForwardedUser, verifyForwardedUser } from './forwarded-caller.js';

const KEY = 'aa'.repeat(32);
const OTHER_KEY = 'bb'.repeat(32);

describe('forwarded caller statements', () => {
  it('name the user they were made for, until they expire', () => {
    const statement = signForwardedUser(KEY, 'alice', 1000);
    expect(verifyForwardedUser(KEY, statement, 1000)).toBe('alice');
    expect(verifyForwardedUser(KEY, signForwardedUser(KEY, '', 1000), 1000)).toBe('');
    expect(verifyForwardedUser(KEY, statement, 1000 + FORWARDED_USER_VALIDITY_MS)).toBeUndefined();
  });

  it('cannot be made without the cluster key, nor altered', () => {
    const statement = signForwardedUser(KEY, 'alice', 1000);
    expect(verifyForwardedUser(OTHER_KEY, statement, 1000)).toBeUndefined();
    expect(verifyForwardedUser('', statement, 1000)).toBeUndefined();
    const [, expiry, mac] = statement.split('.');
    expect(verifyForwardedUser(KEY, `${Buffer.from('root').toString('base64url')}.${expiry}.${mac}`, 1000)).toBeUndefined();
    expect(verifyForwardedUser(KEY, `${statement.split('.')[0]}.${Number(expiry) + 1}.${mac}`, 1000)).toBeUndefined();
    expect(verifyForwardedUser(KEY, 'garbage', 1000)).toBeUndefined();
  });
});

/** An auth server over a store with root and alice, auth enabled with `KEY` as the token key. */
function enabledAuth(): AuthServer {
  const store = new AuthStore();
  store.apply({ op: 'userAdd', name: 'root', passwordHash: '', noPassword: true });
  store.apply({ op: 'userGrantRole', user: 'root', role: 'root' });
  store.apply({ op: 'userAdd', name: 'alice', passwordHash: '', noPassword: true });
  store.apply({ op: 'enable', tokenKey: KEY });
  return new AuthServer(store, { propose: async () => ({ outcome: { ok: true } as never }), readBarrier: () => undefined }, { clientCertAuth: true });
}

/** A call as grpc-js hands it to a handler: metadata and, with TLS, the client certificate's CN. */
function callFrom(cn: string | undefined, metadata = new grpc.Metadata()) {
  return { metadata, getAuthContext: () => (cn === undefined ? {} : { sslPeerCertificate: { subject: { CN: cn } } }) };
}

describe('identity of forwarded calls', () => {
  it("a certificate user stays that user on the leader, not the forwarding member's certificate", () => {
    const auth = enabledAuth();
    const onFollower = callFrom('alice');
    const forwarded = forwardedCredentials(auth, onFollower);
    expect(forwarded.get('token')).toEqual([]);
    // The leader sees the forwarding member's own certificate (CN root here, the worst case).
    expect(stampOf(auth, callFrom('root', forwarded))?.username).toBe('alice');
  });

  it('an anonymous caller stays anonymous; a token is forwarded as it is', () => {
    const auth = enabledAuth();
    expect(stampOf(auth, callFrom('root', forwardedCredentials(auth, callFrom(undefined))))).toBeUndefined();
    const withToken = new grpc.Metadata();
    withToken.set('authorization', 'Bearer tok');
    const forwarded = forwardedCredentials(auth, callFrom('alice', withToken));
    expect(forwarded.get('token')).toEqual(['tok']);
    expect(forwarded.get(FORWARDED_USER_METADATA)).toEqual([]);
  });

  it("a member's own call that needs root (HashKV) is made as root, whatever its certificate names", () => {
    const auth = enabledAuth();
    expect(stampOf(auth, callFrom('m1', memberCredentials(auth)))?.username).toBe('root');
  });

  it('a statement made without the cluster key is refused as an invalid token', () => {
    const auth = enabledAuth();
    const forged = new grpc.Metadata();
    forged.set(FORWARDED_USER_METADATA, signForwardedUser(OTHER_KEY, 'root', Date.now()));
    expect(() => stampOf(auth, callFrom(undefined, forged))).toThrow(expect.objectContaining({ etcdCode: 'InvalidAuthToken' }));
  });
});
