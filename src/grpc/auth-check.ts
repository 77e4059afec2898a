// Who is calling, and may they: the edge half of auth enforcement (the apply half is in
// server/auth-apply.ts).
//
// While auth is enabled, a call is identified by its token (metadata "token", or
// "authorization" with an optional "Bearer " prefix); without a token and with
// --client-cert-auth, by the CN of its verified client certificate, as etcd does. A call with
// neither has no user: checks then fail with "user name is empty" (etcd's observed answer),
// and a token that does not verify fails with "invalid auth token" at once.
// A call another member forwarded (to the leader) names its caller's user in a statement only a
// member can make (forwarded-caller.ts); it is used instead of the forwarding connection's
// certificate, and a statement that does not verify fails like a bad token.
// While auth is disabled nothing is checked and no stamp is made.

import * as grpc from '@grpc/grpc-js';
import { ROOT, type Access, type AuthStamp } from '../auth/auth-store.js';
import { AuthError } from '../auth/errors.js';
import type { AuthServer } from '../server/member/auth-server.js';
import { checkTxn } from '../server/apply/auth-apply.js';
import type { TxnRequest } from '../mvcc/types.js';
import type { KvServer } from '../server/member/kv-server.js';
import type { RecipeStore } from '../server/recipes/lock-wait.js';
import { FORWARDED_USER_METADATA, signForwardedUser, verifyForwardedUser } from './forwarded-caller.js';

interface CallLike {
  metadata: grpc.Metadata;
  getAuthContext?: () => { sslPeerCertificate?: { subject?: Record<string, unknown> } };
}

function tokenOf(call: CallLike): string | undefined {
  const token = call.metadata.get('token')[0] ?? call.metadata.get('authorization')[0];
  if (token === undefined) return undefined;
  const text = token.toString();
  return text.startsWith('Bearer ') ? text.slice('Bearer '.length) : text;
}

/** CN of the verified client certificate (the last CN when there are several, as Go reads it). */
function certificateUser(call: CallLike): string | undefined {
  let cn: unknown;
  try {
    cn = call.getAuthContext?.().sslPeerCertificate?.subject?.CN;
  } catch (error) {
    // Once a TLS socket is closed Node's getPeerCertificate() returns null, and grpc-js reads
    // `.raw` from it: a call whose connection is gone has no certificate user.
    if (!(error instanceof TypeError)) throw error;
    return undefined;
  }
  if (typeof cn === 'string') return cn;
  if (Array.isArray(cn) && typeof cn[cn.length - 1] === 'string') return cn[cn.length - 1] as string;
  return undefined;
}

/** The caller's stamp while auth is enabled (undefined: auth off, or no user given). */
export function stampOf(auth: AuthServer, call: CallLike): AuthStamp | undefined {
  if (!auth.enabled) return undefined;
  const token = tokenOf(call);
  if (token !== undefined && token !== '') return auth.verifyToken(token);
  const forwarded = call.metadata.get(FORWARDED_USER_METADATA)[0];
  if (forwarded !== undefined) {
    const username = verifyForwardedUser(auth.store.tokenKey, forwarded.toString(), Date.now());
    if (username === undefined) throw new AuthError('InvalidAuthToken');
    return username === '' ? undefined : auth.stampForUser(username);
  }
  if (auth.clientCertAuth) {
    const cn = certificateUser(call);
    if (cn !== undefined && cn !== '') return auth.stampForUser(cn);
  }
  return undefined;
}

/** Throws unless the caller may access [key, rangeEnd); returns the stamp for the proposal. */
export function checkRange(auth: AuthServer, call: CallLike, key: Uint8Array, rangeEnd: Uint8Array, access: Access): AuthStamp | undefined {
  const stamp = stampOf(auth, call);
  auth.store.checkPermitted(stamp, key, rangeEnd, access);
  return stamp;
}

/** Throws unless every compare and op of the txn is permitted (etcd's checkTxnAuth). */
export function checkTxnAccess(auth: AuthServer, call: CallLike, txn: TxnRequest): AuthStamp | undefined {
  const stamp = stampOf(auth, call);
  checkTxn(auth.store, stamp, txn);
  return stamp;
}

/** Throws unless the caller has the root role (root-only admin RPCs; admits all while auth is off). */
export function requireRoot(auth: AuthServer, call: CallLike): AuthStamp | undefined {
  const stamp = stampOf(auth, call);
  auth.store.checkAdmin(stamp);
  return stamp;
}

/** The caller's stamp, failing with "user name is empty" when auth is on and no user was given. */
export function requireUser(auth: AuthServer, call: CallLike): AuthStamp | undefined {
  const stamp = stampOf(auth, call);
  if (auth.enabled && stamp === undefined) auth.store.checkAdmin(undefined);
  return stamp;
}

/**
 * The caller's identity to pass along when a call is forwarded to the leader: its token as it
 * is, else (once the cluster has a token key, i.e. auth was ever enabled) a member's statement
 * naming the user this member identified (by certificate CN or an earlier forward), or no user.
 */
export function forwardedCredentials(auth: AuthServer, call: CallLike): grpc.Metadata {
  const metadata = new grpc.Metadata();
  const token = tokenOf(call);
  if (token !== undefined && token !== '') {
    metadata.set('token', token);
    return metadata;
  }
  const tokenKey = auth.store.tokenKey;
  if (tokenKey !== '') metadata.set(FORWARDED_USER_METADATA, signForwardedUser(tokenKey, stampOf(auth, call)?.username ?? '', Date.now()));
  return metadata;
}

/**
 * Credentials for a member's own call to another member that needs the root role: the
 * corruption checks' HashKV. etcd asks for that hash on its peer port, outside auth; here the
 * call goes to the client port, so the member states it is made as root (a statement only a
 * member can make; no password or token involved). Empty while auth was never enabled.
 */
export function memberCredentials(auth: AuthServer): grpc.Metadata {
  const metadata = new grpc.Metadata();
  const tokenKey = auth.store.tokenKey;
  if (tokenKey !== '') metadata.set(FORWARDED_USER_METADATA, signForwardedUser(tokenKey, ROOT, Date.now()));
  return metadata;
}

/**
 * The store a lock or election recipe works on for this caller: with auth enabled, every read
 * and write it makes is checked and stamped as the caller's own (etcd's recipes run as a
 * client with the caller's token).
 */
export function recipeStoreFor(kv: KvServer, call: CallLike): RecipeStore {
  const stamp = stampOf(kv.auth, call);
  if (!kv.auth.enabled) return kv;
  const store = kv.auth.store;
  return {
    watchHub: kv.watchHub,
    leases: kv.leases,
    range: (request) => {
      store.checkPermitted(stamp, request.key, request.rangeEnd, 'read');
      return kv.range(request);
    },
    txn: async (request) => {
      checkTxn(store, stamp, request);
      return kv.txn(request, stamp);
    },
    deleteRange: async (request) => {
      store.checkPermitted(stamp, request.key, request.rangeEnd, 'write');
      return kv.deleteRange(request, stamp);
    },
    readBarrier: () => kv.readBarrier(),
  };
}
