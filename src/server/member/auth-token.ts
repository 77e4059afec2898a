// Auth tokens: what Authenticate hands out and what every later request presents.
//
// - simple (default): `<user>.<enabledAt>.<epoch>.<expiryMs>.<mac>`, the MAC an HMAC-SHA256
//   under the cluster's token key, which lives in the replicated auth state. Any member can
//   verify a token any member issued (etcd's simple tokens are local to the issuing member).
//   A token dies when it expires (--auth-token-ttl after issue), when auth is disabled
//   (enabledAt changes on the next enable), or when its user's password changes or the user
//   is deleted and re-added (epoch).
// - jwt: etcd's format: claims {username, revision, exp}, signed with the configured key
//   (RS*, PS*, ES*, EdDSA). Like etcd, the token carries the auth revision it was issued at,
//   so after any auth change requests with it fail with "revision of auth store is old".
// Tokens are secrets: nothing here logs them.

import { createHmac, createPrivateKey, createPublicKey, sign, timingSafeEqual, verify, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { AuthStamp, AuthStore } from '../../auth/auth-store.js';

export interface TokenProvider {
  readonly kind: 'simple' | 'jwt';
  issue(store: AuthStore, username: string, nowMs: number): string;
  /** The stamp a token stands for, or undefined when it is not (or no longer) valid. */
  verify(store: AuthStore, token: string, nowMs: number): AuthStamp | undefined;
}

const b64url = (data: Buffer | string): string => Buffer.from(data).toString('base64url');

export class SimpleTokens implements TokenProvider {
  readonly kind = 'simple';
  constructor(private readonly ttlMs: number) {}

  private mac(store: AuthStore, payload: string): Buffer {
    return createHmac('sha256', Buffer.from(store.tokenKey, 'hex')).update(payload).digest();
  }

  issue(store: AuthStore, username: string, nowMs: number): string {
    const user = store.getUser(username);
    const payload = `${b64url(username)}.${store.enabledAt}.${user?.epoch ?? 0}.${Math.floor(nowMs + this.ttlMs)}`;
    return `${payload}.${b64url(this.mac(store, payload))}`;
  }

  verify(store: AuthStore, token: string, nowMs: number): AuthStamp | undefined {
    const parts = token.split('.');
    if (parts.length !== 5 || store.tokenKey === '') return undefined;
    const payload = parts.slice(0, 4).join('.');
    const given = Buffer.from(parts[4]!, 'base64url');
    const expected = this.mac(store, payload);
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) return undefined;
    const username = Buffer.from(parts[0]!, 'base64url').toString();
    const [enabledAt, epoch, expiry] = parts.slice(1, 4).map(Number) as [number, number, number];
    const user = store.getUser(username);
    if (user === undefined || user.epoch !== epoch || enabledAt !== store.enabledAt || !(expiry > nowMs)) return undefined;
    return { username, revision: store.revision };
  }
}

interface JwtAlgorithm {
  hash: string | null;
  options: { padding?: number; saltLength?: number; dsaEncoding?: 'ieee-p1363' };
}

function jwtAlgorithm(method: string): JwtAlgorithm {
  const bits = method.slice(2);
  const hash = `sha${bits}`;
  if (/^RS(256|384|512)$/.test(method)) return { hash, options: {} };
  if (/^PS(256|384|512)$/.test(method)) return { hash, options: { padding: 6, saltLength: Number(bits) / 8 } };
  if (/^ES(256|384|512)$/.test(method)) return { hash, options: { dsaEncoding: 'ieee-p1363' } };
  if (method === 'EdDSA') return { hash: null, options: {} };
  throw new Error(`--auth-token jwt: unsupported sign-method ${JSON.stringify(method)} (RS*, PS*, ES*, EdDSA)`);
}

export class JwtTokens implements TokenProvider {
  readonly kind = 'jwt';
  private readonly algorithm: JwtAlgorithm;

  constructor(
    private readonly method: string,
    private readonly publicKey: KeyObject,
    private readonly privateKey: KeyObject | undefined,
    private readonly ttlMs: number,
  ) {
    this.algorithm = jwtAlgorithm(method);
  }

  issue(store: AuthStore, username: string, nowMs: number): string {
    if (this.privateKey === undefined) throw new Error('jwt: no private key to sign tokens with');
    const header = b64url(JSON.stringify({ alg: this.method, typ: 'JWT' }));
    const claims = b64url(JSON.stringify({ exp: Math.floor((nowMs + this.ttlMs) / 1000), revision: store.revision, username }));
    const input = `${header}.${claims}`;
    const signature = sign(this.algorithm.hash, Buffer.from(input), { key: this.privateKey, ...this.algorithm.options });
    return `${input}.${b64url(signature)}`;
  }

  verify(store: AuthStore, token: string, nowMs: number): AuthStamp | undefined {
    const parts = token.split('.');
    if (parts.length !== 3) return undefined;
    try {
      const header = JSON.parse(Buffer.from(parts[0]!, 'base64url').toString()) as { alg?: unknown };
      if (header.alg !== this.method) return undefined;
      const ok = verify(
        this.algorithm.hash,
        Buffer.from(`${parts[0]}.${parts[1]}`),
        { key: this.publicKey, ...this.algorithm.options },
        Buffer.from(parts[2]!, 'base64url'),
      );
      if (!ok) return undefined;
      const claims = JSON.parse(Buffer.from(parts[1]!, 'base64url').toString()) as { exp?: unknown; revision?: unknown; username?: unknown };
      if (typeof claims.username !== 'string' || typeof claims.revision !== 'number' || typeof claims.exp !== 'number') return undefined;
      if (claims.exp * 1000 <= nowMs) return undefined;
      if (store.getUser(claims.username) === undefined) return undefined;
      return { username: claims.username, revision: claims.revision };
    } catch {
      return undefined;
    }
  }
}

/** Parses `--auth-token` ("simple" or "jwt,pub-key=...,priv-key=...,sign-method=...,ttl=..."). */
export function tokenProvider(spec: string, ttlMs: number): TokenProvider {
  if (spec === '' || spec === 'simple') return new SimpleTokens(ttlMs);
  const [kind, ...rest] = spec.split(',');
  if (kind !== 'jwt') throw new Error(`--auth-token: unknown token type ${JSON.stringify(kind)}`);
  const params = new Map(rest.map((kv) => kv.split('=', 2) as [string, string]));
  const pub = params.get('pub-key');
  const priv = params.get('priv-key');
  const method = params.get('sign-method');
  if (pub === undefined || method === undefined) throw new Error('--auth-token jwt needs pub-key and sign-method');
  const ttl = params.get('ttl');
  const jwtTtlMs = ttl === undefined ? 5 * 60_000 : parseDurationMs(ttl);
  const privateKey = priv === undefined ? undefined : createPrivateKey(readFileSync(priv));
  return new JwtTokens(method, createPublicKey(readFileSync(pub)), privateKey, jwtTtlMs);
}

function parseDurationMs(text: string): number {
  let total = 0;
  const re = /(\d+(?:\.\d+)?)(ms|s|m|h)/g;
  let matched = '';
  for (const m of text.matchAll(re)) {
    matched += m[0];
    total += Number(m[1]) * { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[m[2] as 'ms' | 's' | 'm' | 'h'];
  }
  if (matched !== text || total <= 0) throw new Error(`--auth-token jwt: bad ttl ${JSON.stringify(text)}`);
  return total;
}
