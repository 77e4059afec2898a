// etcd's Auth service over the member's AuthServer (server/auth-server.ts): enabling and
// disabling auth, Authenticate, and user/role management. Every call but Authenticate needs
// the root role once auth is enabled (UserGet of oneself and RoleGet of one's own roles
// excepted, as in etcd). Changes go through the log; reads are served after a read barrier.

import type { AuthServer } from '../server/member/auth-server.js';
import type { KvServer } from '../server/member/kv-server.js';
import { type AuthStamp, PermType } from '../auth/auth-store.js';
import * as grpc from '@grpc/grpc-js';
import { AuthError } from '../auth/errors.js';
import { type Handlers, type ResponseHeaders, StatusError, unary } from './handler.js';
import { stampOf } from './auth-check.js';
import { RequestError } from './kv-convert.js';

interface WirePermission {
  permType?: number;
  key?: Buffer;
  rangeEnd?: Buffer;
}

const EMPTY = Buffer.alloc(0);

export function authHandlers(kv: KvServer, headers: ResponseHeaders): Handlers {
  const auth = kv.auth;
  const context: AuthCallContext = {
    kv,
    auth,
    header: () => ({ header: headers.at(kv.currentRevision) }),
    stamp: (call: unknown) => stampOf(auth, call as Parameters<typeof stampOf>[1]),
  };
  return { ...authStateHandlers(context), ...userHandlers(context), ...roleHandlers(context) };
}

/** What every Auth handler needs: the member, its auth front end, a fresh header, the caller's stamp. */
interface AuthCallContext {
  kv: KvServer;
  auth: AuthServer;
  header: () => { header: ReturnType<ResponseHeaders['at']> };
  stamp: (call: unknown) => AuthStamp | undefined;
}

/** Enabling, disabling and reading the auth state, and logging in. */
function authStateHandlers({ kv, auth, header, stamp }: AuthCallContext): Handlers {
  return {
    AuthEnable: unary('AuthEnable', async (_request: object, call) => {
      await auth.enable(stamp(call));
      return header();
    }),
    AuthDisable: unary('AuthDisable', async (_request: object, call) => {
      await auth.disable(stamp(call));
      return header();
    }),
    AuthStatus: unary('AuthStatus', async (_request: object, call) => {
      await kv.readBarrier();
      auth.store.checkAdmin(stamp(call));
      return { ...header(), enabled: auth.enabled, authRevision: String(auth.store.revision) };
    }),
    Authenticate: unary('Authenticate', async (request: { name?: string; password?: string }) => {
      const { token } = await auth.authenticate(request.name ?? '', request.password ?? '').catch((error: unknown) => {
        if (error instanceof AuthError && error.etcdCode === 'NoPasswordUser') {
          throw new StatusError(grpc.status.UNKNOWN, 'auth: authentication failed, password was given for no password user');
        }
        throw error;
      });
      return { ...header(), token };
    }),
  };
}

function userHandlers({ auth, header, stamp }: AuthCallContext): Handlers {
  return {
    UserAdd: unary('UserAdd', async (request: { name?: string; password?: string; options?: { noPassword?: boolean } | null }, call) => {
      await auth.userAdd(stamp(call), request.name ?? '', request.password ?? '', request.options?.noPassword ?? false);
      return header();
    }),
    UserGet: unary('UserGet', async (request: { name?: string }, call) => {
      const user = await auth.userGet(stamp(call), request.name ?? '');
      return { ...header(), roles: [...user.roles] };
    }),
    UserList: unary('UserList', async (_request: object, call) => {
      const users = await auth.userList(stamp(call));
      return { ...header(), users };
    }),
    UserDelete: unary('UserDelete', async (request: { name?: string }, call) => {
      await auth.userDelete(stamp(call), request.name ?? '');
      return header();
    }),
    UserChangePassword: unary('UserChangePassword', async (request: { name?: string; password?: string }, call) => {
      await auth.userChangePassword(stamp(call), request.name ?? '', request.password ?? '');
      return header();
    }),
    UserGrantRole: unary('UserGrantRole', async (request: { user?: string; role?: string }, call) => {
      await auth.userGrantRole(stamp(call), request.user ?? '', request.role ?? '');
      return header();
    }),
    UserRevokeRole: unary('UserRevokeRole', async (request: { name?: string; role?: string }, call) => {
      await auth.userRevokeRole(stamp(call), request.name ?? '', request.role ?? '');
      return header();
    }),
  };
}

function roleHandlers({ auth, header, stamp }: AuthCallContext): Handlers {
  return {
    RoleAdd: unary('RoleAdd', async (request: { name?: string }, call) => {
      await auth.roleAdd(stamp(call), request.name ?? '');
      return header();
    }),
    RoleGet: unary('RoleGet', async (request: { role?: string }, call) => {
      const role = await auth.roleGet(stamp(call), request.role ?? '');
      return { ...header(), perm: role.permissions.map((p) => ({ permType: p.permType, key: p.key, rangeEnd: p.rangeEnd })) };
    }),
    RoleList: unary('RoleList', async (_request: object, call) => {
      const roles = await auth.roleList(stamp(call));
      return { ...header(), roles };
    }),
    RoleDelete: unary('RoleDelete', async (request: { role?: string }, call) => {
      await auth.roleDelete(stamp(call), request.role ?? '');
      return header();
    }),
    RoleGrantPermission: unary('RoleGrantPermission', async (request: { name?: string; perm?: WirePermission | null }, call) => {
      const perm = request.perm;
      // etcd 3.4 dereferences perm without a check; an absent one is bad input here.
      if (perm === undefined || perm === null) throw new RequestError('PermissionNotGiven');
      const permType = perm.permType ?? PermType.READ;
      if (!(permType in PermType)) throw new RequestError('PermissionNotGiven');
      await auth.roleGrantPermission(stamp(call), request.name ?? '', { permType, key: perm.key ?? EMPTY, rangeEnd: perm.rangeEnd ?? EMPTY });
      return header();
    }),
    RoleRevokePermission: unary('RoleRevokePermission', async (request: { role?: string; key?: Buffer; rangeEnd?: Buffer }, call) => {
      await auth.roleRevokePermission(stamp(call), request.role ?? '', request.key ?? EMPTY, request.rangeEnd ?? EMPTY);
      return header();
    }),
  };
}
