// The member's auth front: proposes auth changes through the log (hashing passwords first),
// answers the read-only auth calls from the local replicated state, logs users in, and turns a
// token into the {user, auth revision} stamp requests carry.
//
// - Password hashes are made here, before proposing (bcrypt at etcd's default cost 10 with a
//   random salt, as etcd stores them, so users keep their passwords across a migration either
//   way; slow on purpose), never while applying: the log entry carries the hash, never the
//   password. Older scrypt hashes still check.
// - Failed logins are rate-limited per user name: from the third failure in a row on, the user
//   is locked out for a delay that doubles with each further failure (capped); a locked-out
//   attempt fails at once without checking the password. Each failure is reported to `onLoginFailed` (for the log);
//   tokens and passwords are never reported.

import { randomBytes, scrypt, timingSafeEqual } from 'node:crypto';
import { bcryptHash, bcryptVerify, isBcryptHash } from '../../auth/bcrypt.js';
import { type AuthStore, ROOT, type AuthOp, type AuthStamp, type Permission, type Role, type User } from '../../auth/auth-store.js';
import { AuthError } from '../../auth/errors.js';
import type { ApplyOutcome } from '../apply/outcome.js';
import type { InternalRequest } from '../apply/internal-request.js';
import { SimpleTokens, type TokenProvider } from './auth-token.js';

const FREE_FAILURES = 2;
const LOCKOUT_BASE_MS = 200;
const LOCKOUT_MAX_MS = 30_000;

function scryptAsync(password: string, salt: Buffer, N: number, r: number, p: number, keyLength: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    scrypt(password, salt, keyLength, { N, r, p, maxmem: 256 * N * r }, (error, key) => (error ? reject(error) : resolve(key)));
  });
}

/** etcd's --bcrypt-cost default (Go's bcrypt.DefaultCost). */
const BCRYPT_COST = 10;
/** bcrypt runs on the event loop: it gives other work a turn every few rounds. */
const nextTurn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/** `$2a$10$...`, as etcd writes it. */
export function hashPassword(password: string): Promise<string> {
  return bcryptHash(password, randomBytes(16), BCRYPT_COST, nextTurn);
}

/** Checks a bcrypt hash (etcd's and ours) or an scrypt one (`scrypt$N$r$p$salt$hash`, written before bcrypt). */
export async function checkPassword(password: string, encoded: string): Promise<boolean> {
  if (isBcryptHash(encoded)) return bcryptVerify(password, encoded, nextTurn);
  const parts = encoded.split('$');
  if (parts.length !== 6 || parts[0] !== 'scrypt') return false;
  const [N, r, p] = parts.slice(1, 4).map(Number) as [number, number, number];
  const expected = Buffer.from(parts[5]!, 'base64');
  const key = await scryptAsync(password, Buffer.from(parts[4]!, 'base64'), N, r, p, expected.length);
  return timingSafeEqual(key, expected);
}

export interface AuthServerDeps {
  propose(request: InternalRequest): Promise<{ outcome: ApplyOutcome }>;
  /** Waits until this member has applied everything committed (linearizable reads). */
  readBarrier(): Promise<void> | undefined;
}

export interface AuthServerOptions {
  tokens?: TokenProvider;
  /** --client-cert-auth: a verified client certificate's CN names the user (no token needed). */
  clientCertAuth?: boolean;
  /** Wall clock for token expiry and login lockouts (default Date.now). */
  nowMs?: () => number;
  onLoginFailed?: (user: string, reason: string) => void;
}

export class AuthServer {
  readonly tokens: TokenProvider;
  readonly clientCertAuth: boolean;
  private readonly nowMs: () => number;
  private readonly failures = new Map<string, { count: number; lockedUntilMs: number }>();

  constructor(
    readonly store: AuthStore,
    private readonly deps: AuthServerDeps,
    private readonly options: AuthServerOptions = {},
  ) {
    this.tokens = options.tokens ?? new SimpleTokens(300_000);
    this.clientCertAuth = options.clientCertAuth ?? false;
    this.nowMs = options.nowMs ?? (() => Date.now());
  }

  get enabled(): boolean {
    return this.store.enabled;
  }

  /** The stamp a token stands for; InvalidAuthToken when it stands for nothing. */
  verifyToken(token: string): AuthStamp {
    const stamp = this.tokens.verify(this.store, token, this.nowMs());
    if (stamp === undefined) throw new AuthError('InvalidAuthToken');
    return stamp;
  }

  /** The stamp of a user known by other means (a client certificate's CN). */
  stampForUser(username: string): AuthStamp {
    return { username, revision: this.store.revision };
  }

  async authenticate(name: string, password: string): Promise<{ token: string }> {
    await this.deps.readBarrier();
    if (!this.store.enabled) throw new AuthError('AuthNotEnabled');
    const now = this.nowMs();
    const failed = this.failures.get(name);
    if (failed !== undefined && now < failed.lockedUntilMs) {
      this.options.onLoginFailed?.(name, 'too many failed attempts; locked out');
      throw new AuthError('AuthFailed');
    }
    const user = this.store.getUser(name);
    const ok = user !== undefined && !user.noPassword && (await checkPassword(password, user.passwordHash));
    if (!ok) {
      const noPassword = user?.noPassword === true;
      const count = (failed?.count ?? 0) + 1;
      this.failures.set(name, {
        count,
        lockedUntilMs: count <= FREE_FAILURES ? 0 : this.nowMs() + Math.min(LOCKOUT_MAX_MS, LOCKOUT_BASE_MS * 2 ** (count - FREE_FAILURES - 1)),
      });
      this.options.onLoginFailed?.(name, user === undefined ? 'no such user' : user.noPassword ? 'user has no password' : 'wrong password');
      throw new AuthError(noPassword ? 'NoPasswordUser' : 'AuthFailed');
    }
    this.failures.delete(name);
    return { token: this.tokens.issue(this.store, name, this.nowMs()) };
  }

  private async change(stamp: AuthStamp | undefined, op: AuthOp): Promise<void> {
    // Refuse early on this member; apply checks again against the state at its log position.
    this.store.checkAdmin(stamp);
    const { outcome } = await this.deps.propose(stamp === undefined ? { kind: 'auth', op } : { kind: 'auth', op, stamp });
    if (!outcome.ok) throw outcome.error;
  }

  enable(stamp: AuthStamp | undefined): Promise<void> {
    return this.change(stamp, { op: 'enable', tokenKey: randomBytes(32).toString('hex') });
  }

  disable(stamp: AuthStamp | undefined): Promise<void> {
    return this.change(stamp, { op: 'disable' });
  }

  async userAdd(stamp: AuthStamp | undefined, name: string, password: string, noPassword: boolean): Promise<void> {
    this.store.checkAdmin(stamp);
    if (name === '') throw new AuthError('UserEmpty');
    const passwordHash = noPassword ? '' : await hashPassword(password);
    await this.change(stamp, { op: 'userAdd', name, passwordHash, noPassword });
  }

  userDelete(stamp: AuthStamp | undefined, name: string): Promise<void> {
    return this.change(stamp, { op: 'userDelete', name });
  }

  async userChangePassword(stamp: AuthStamp | undefined, name: string, password: string): Promise<void> {
    this.store.checkAdmin(stamp);
    if (this.store.getUser(name) === undefined) throw new AuthError('UserNotFound');
    await this.change(stamp, { op: 'userChangePassword', name, passwordHash: await hashPassword(password) });
  }

  userGrantRole(stamp: AuthStamp | undefined, user: string, role: string): Promise<void> {
    return this.change(stamp, { op: 'userGrantRole', user, role });
  }

  userRevokeRole(stamp: AuthStamp | undefined, name: string, role: string): Promise<void> {
    return this.change(stamp, { op: 'userRevokeRole', name, role });
  }

  roleAdd(stamp: AuthStamp | undefined, name: string): Promise<void> {
    return this.change(stamp, { op: 'roleAdd', name });
  }

  roleDelete(stamp: AuthStamp | undefined, role: string): Promise<void> {
    return this.change(stamp, { op: 'roleDelete', role });
  }

  roleGrantPermission(stamp: AuthStamp | undefined, name: string, perm: Permission): Promise<void> {
    return this.change(stamp, { op: 'roleGrantPermission', name, perm });
  }

  roleRevokePermission(stamp: AuthStamp | undefined, role: string, key: Buffer, rangeEnd: Buffer): Promise<void> {
    return this.change(stamp, { op: 'roleRevokePermission', role, key, rangeEnd });
  }

  // ---- reads (linearizable: after a read barrier, from the local state) ---------------------

  async userGet(stamp: AuthStamp | undefined, name: string): Promise<User> {
    await this.deps.readBarrier();
    // etcd lets a user read its own entry.
    if (stamp?.username !== name) this.store.checkAdmin(stamp);
    const user = this.store.getUser(name);
    if (user === undefined) throw new AuthError('UserNotFound');
    return user;
  }

  async roleGet(stamp: AuthStamp | undefined, name: string): Promise<Role> {
    await this.deps.readBarrier();
    // etcd lets a user read the roles it has.
    const hasRole = stamp !== undefined && (this.store.getUser(stamp.username)?.roles.includes(name) ?? false);
    if (!hasRole) this.store.checkAdmin(stamp);
    const role = this.store.getRole(name);
    if (role === undefined) throw new AuthError('RoleNotFound');
    return role;
  }

  async userList(stamp: AuthStamp | undefined): Promise<string[]> {
    await this.deps.readBarrier();
    this.store.checkAdmin(stamp);
    return this.store.userNames();
  }

  async roleList(stamp: AuthStamp | undefined): Promise<string[]> {
    await this.deps.readBarrier();
    this.store.checkAdmin(stamp);
    return this.store.roleNames();
  }

  /**
   * `auth.root_password` in the YAML: creates user root (with role root) when it is missing.
   * Runs through the log like any other change; a no-op once root exists.
   */
  async bootstrapRoot(password: string): Promise<void> {
    if (this.store.getUser(ROOT) === undefined) await this.userAdd(undefined, ROOT, password, false).catch(ignore('UserAlreadyExist'));
    if (this.store.getRole(ROOT) === undefined) await this.roleAdd(undefined, ROOT).catch(ignore('RoleAlreadyExist'));
    if (!this.store.hasRootRole(ROOT)) await this.userGrantRole(undefined, ROOT, ROOT);
  }
}

function ignore(code: string): (error: unknown) => void {
  return (error) => {
    if (!(error instanceof AuthError && error.etcdCode === code)) throw error;
  };
}
