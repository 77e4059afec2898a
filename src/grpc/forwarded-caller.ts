// The caller's user on a call one member forwards to another's client port (to the leader),
// when the caller was not identified by a token (a token is forwarded as it is): a statement
// "this call is made for user U" that only a member can make.
//
// Format (metadata `metastore-forwarded-user`): `<user, base64url>.<expiry ms>.<mac>`, the MAC an
// HMAC-SHA256 under the cluster's token key (kept in the replicated auth state, so every member
// has it and no client ever sees it), over a domain prefix that no token uses. An empty user
// means "no user" (an anonymous caller stays anonymous on the leader instead of becoming whoever
// the forwarding member's own certificate names).
//
// Why not trust the forwarding connection's certificate instead: a member's client certificate
// is usually signed by the same CA as the clients', so the leader cannot tell a member from a
// client claiming a user; a MAC under the cluster's key can only come from a member. The short
// validity bounds a replay; clocks of members must agree within it (as for simple tokens).

import { createHmac, timingSafeEqual } from 'node:crypto';

export const FORWARDED_USER_METADATA = 'metastore-forwarded-user';

/** How long a statement stays valid after it was made (forwarded calls last at most ~10 s). */
export const FORWARDED_USER_VALIDITY_MS = 60_000;

const DOMAIN = 'metastore forwarded caller\n';

function mac(tokenKeyHex: string, payload: string): Buffer {
  return createHmac('sha256', Buffer.from(tokenKeyHex, 'hex')).update(DOMAIN).update(payload).digest();
}

/** The statement that a call is made for `username` ('' = no user). */
export function signForwardedUser(tokenKeyHex: string, username: string, nowMs: number): string {
  const payload = `${Buffer.from(username).toString('base64url')}.${Math.floor(nowMs + FORWARDED_USER_VALIDITY_MS)}`;
  return `${payload}.${mac(tokenKeyHex, payload).toString('base64url')}`;
}

/** The user a statement names ('' = no user), or undefined when it is forged, malformed or expired. */
export function verifyForwardedUser(tokenKeyHex: string, statement: string, nowMs: number): string | undefined {
  const parts = statement.split('.');
  if (parts.length !== 3 || tokenKeyHex === '') return undefined;
  const payload = `${parts[0]}.${parts[1]}`;
  const given = Buffer.from(parts[2]!, 'base64url');
  const expected = mac(tokenKeyHex, payload);
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) return undefined;
  const expiryMs = Number(parts[1]);
  if (!(expiryMs > nowMs)) return undefined;
  return Buffer.from(parts[0]!, 'base64url').toString();
}
