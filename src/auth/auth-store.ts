// The replicated auth state: users, roles, key-range permissions, the enabled flag and the
// auth revision, changed only by applying log entries (AuthOp), with etcd 3.4's rules and
// errors (auth/store.go).
//
// Invariants:
// - Pure and deterministic: no clock, randomness or IO. Password hashes and the cluster-wide
//   token key arrive inside the ops (the proposer made them), so every member ends in the
//   same state.
// - Every successful change bumps `revision` by one; a refused op (AuthError) changes nothing.
//   Ops etcd ignores (granting a role the user already has, enabling twice) change nothing
//   either, revision included.
// - Users' role lists stay sorted, and a role's permissions stay sorted by key, as in etcd.
// - The whole state serializes to one JSON value (`toJSON`/`fromJSON`), which the server keeps
//   in the auth key space; a restart or snapshot install rebuilds exactly this state.

import { AuthError } from './errors.js';
import { covers, intervalOf, type KeyInterval } from './ranges.js';

export const ROOT = 'root';

/** authpb.Permission.Type. */
export enum PermType {
  READ = 0,
  WRITE = 1,
  READWRITE = 2,
}

export interface Permission {
  readonly permType: PermType;
  readonly key: Buffer;
  readonly rangeEnd: Buffer;
}

export interface User {
  readonly name: string;
  /** Salted slow hash made by the proposer ('' for a no-password user). */
  readonly passwordHash: string;
  readonly noPassword: boolean;
  /** Sorted role names. */
  readonly roles: readonly string[];
  /** The auth revision at which the user got its current password: older tokens die. */
  readonly epoch: number;
}

export interface Role {
  readonly name: string;
  /** Sorted by key. */
  readonly permissions: readonly Permission[];
}

export type AuthOp =
  /** `tokenKey` (hex) becomes the cluster's token key if none is set yet. */
  | { readonly op: 'enable'; readonly tokenKey: string }
  | { readonly op: 'disable' }
  | { readonly op: 'userAdd'; readonly name: string; readonly passwordHash: string; readonly noPassword: boolean }
  | { readonly op: 'userDelete'; readonly name: string }
  | { readonly op: 'userChangePassword'; readonly name: string; readonly passwordHash: string }
  | { readonly op: 'userGrantRole'; readonly user: string; readonly role: string }
  | { readonly op: 'userRevokeRole'; readonly name: string; readonly role: string }
  | { readonly op: 'roleAdd'; readonly name: string }
  | { readonly op: 'roleDelete'; readonly role: string }
  | { readonly op: 'roleGrantPermission'; readonly name: string; readonly perm: Permission }
  | { readonly op: 'roleRevokePermission'; readonly role: string; readonly key: Buffer; readonly rangeEnd: Buffer };

/** Who a request acts as: the user and the auth revision it was checked at. */
export interface AuthStamp {
  readonly username: string;
  readonly revision: number;
}

export type Access = 'read' | 'write';

interface MergedPermissions {
  read: KeyInterval[];
  write: KeyInterval[];
}

/** The serialized auth state (the auth key space's one record). */
export interface StateJSON {
  enabled: boolean;
  revision: number;
  enabledAt: number;
  tokenKey: string;
  users: Array<{ name: string; passwordHash: string; noPassword: boolean; roles: string[]; epoch: number }>;
  roles: Array<{ name: string; permissions: Array<{ permType: number; key: string; rangeEnd: string }> }>;
}

/**
 * A role's permissions with `perm` granted. etcd: at the first permission whose key is >= the
 * new key, the same (key, range_end) is updated in place, anything else is inserted there.
 */
function withPermission(permissions: readonly Permission[], perm: Permission): Permission[] {
  const out = [...permissions];
  let at = out.findIndex((p) => Buffer.compare(p.key, perm.key) >= 0);
  if (at < 0) at = out.length;
  const existing = out[at];
  if (existing?.key.equals(perm.key) && existing.rangeEnd.equals(perm.rangeEnd)) out[at] = perm;
  else out.splice(at, 0, perm);
  return out;
}

function insertSorted(list: readonly string[], item: string): string[] {
  return [...list, item].sort();
}

export class AuthStore {
  private enabledFlag = false;
  private rev = 1;
  private enabledAtRev = 0;
  private key = '';
  private readonly users = new Map<string, User>();
  private readonly roles = new Map<string, Role>();
  private readonly merged = new Map<string, MergedPermissions>();

  get enabled(): boolean {
    return this.enabledFlag;
  }

  get revision(): number {
    return this.rev;
  }

  /** The revision at which auth was last enabled: tokens from before a disable are dead. */
  get enabledAt(): number {
    return this.enabledAtRev;
  }

  /** The cluster-wide token key (hex), '' until auth was first enabled. */
  get tokenKey(): string {
    return this.key;
  }

  getUser(name: string): User | undefined {
    return this.users.get(name);
  }

  getRole(name: string): Role | undefined {
    return this.roles.get(name);
  }

  userNames(): string[] {
    return [...this.users.keys()].sort();
  }

  roleNames(): string[] {
    return [...this.roles.keys()].sort();
  }

  /** Applies one op; throws AuthError (nothing changed) for etcd's refusals. */
  apply(op: AuthOp): void {
    if (this.applyChange(op)) {
      this.rev += 1;
      this.merged.clear();
    }
  }

  /** Returns whether anything changed. */
  private applyChange(op: AuthOp): boolean {
    switch (op.op) {
      case 'enable':
        return this.enable(op.tokenKey);
      case 'disable':
        if (!this.enabledFlag) return false;
        this.enabledFlag = false;
        return true;
      case 'userAdd':
        if (op.name === '') throw new AuthError('UserEmpty');
        if (this.users.has(op.name)) throw new AuthError('UserAlreadyExist');
        this.users.set(op.name, {
          name: op.name,
          passwordHash: op.noPassword ? '' : op.passwordHash,
          noPassword: op.noPassword,
          roles: [],
          epoch: this.rev + 1,
        });
        return true;
      case 'userDelete':
        if (this.enabledFlag && op.name === ROOT) throw new AuthError('InvalidAuthMgmt');
        if (!this.users.delete(op.name)) throw new AuthError('UserNotFound');
        return true;
      case 'userChangePassword': {
        const user = this.users.get(op.name);
        if (user === undefined) throw new AuthError('UserNotFound');
        this.users.set(op.name, { ...user, passwordHash: op.passwordHash, epoch: this.rev + 1 });
        return true;
      }
      case 'userGrantRole': {
        const user = this.users.get(op.user);
        if (user === undefined) throw new AuthError('UserNotFound');
        if (op.role !== ROOT && !this.roles.has(op.role)) throw new AuthError('RoleNotFound');
        if (user.roles.includes(op.role)) return false;
        this.users.set(op.user, { ...user, roles: insertSorted(user.roles, op.role) });
        return true;
      }
      case 'userRevokeRole': {
        if (this.enabledFlag && op.name === ROOT && op.role === ROOT) throw new AuthError('InvalidAuthMgmt');
        const user = this.users.get(op.name);
        if (user === undefined) throw new AuthError('UserNotFound');
        if (!user.roles.includes(op.role)) throw new AuthError('RoleNotGranted');
        this.users.set(op.name, { ...user, roles: user.roles.filter((r) => r !== op.role) });
        return true;
      }
      case 'roleAdd':
        if (op.name === '') throw new AuthError('RoleEmpty');
        if (this.roles.has(op.name)) throw new AuthError('RoleAlreadyExist');
        this.roles.set(op.name, { name: op.name, permissions: [] });
        return true;
      case 'roleDelete':
        return this.roleDelete(op.role);
      case 'roleGrantPermission': {
        const role = this.roles.get(op.name);
        if (role === undefined) throw new AuthError('RoleNotFound');
        const perm: Permission = { permType: op.perm.permType, key: Buffer.from(op.perm.key), rangeEnd: Buffer.from(op.perm.rangeEnd) };
        this.roles.set(op.name, { name: op.name, permissions: withPermission(role.permissions, perm) });
        return true;
      }
      case 'roleRevokePermission': {
        const role = this.roles.get(op.role);
        if (role === undefined) throw new AuthError('RoleNotFound');
        const kept = role.permissions.filter((p) => !(p.key.equals(op.key) && p.rangeEnd.equals(op.rangeEnd)));
        if (kept.length === role.permissions.length) throw new AuthError('PermissionNotGranted');
        this.roles.set(op.role, { name: op.role, permissions: kept });
        return true;
      }
    }
  }

  private enable(tokenKey: string): boolean {
    if (this.enabledFlag) return false;
    const root = this.users.get(ROOT);
    if (root === undefined) throw new AuthError('RootUserNotExist');
    if (!root.roles.includes(ROOT)) throw new AuthError('RootRoleNotExist');
    this.enabledFlag = true;
    this.enabledAtRev = this.rev + 1;
    if (this.key === '') this.key = tokenKey;
    return true;
  }

  /** Deletes a role and takes it away from every user who had it. */
  private roleDelete(name: string): boolean {
    if (this.enabledFlag && name === ROOT) throw new AuthError('InvalidAuthMgmt');
    if (!this.roles.delete(name)) throw new AuthError('RoleNotFound');
    for (const user of this.users.values()) {
      if (user.roles.includes(name)) this.users.set(user.name, { ...user, roles: user.roles.filter((r) => r !== name) });
    }
    return true;
  }

  hasRootRole(username: string): boolean {
    return this.users.get(username)?.roles.includes(ROOT) ?? false;
  }

  /** etcd's IsAdminPermitted: throws unless auth is off or the stamp's user has the root role. */
  checkAdmin(stamp: AuthStamp | undefined): void {
    if (!this.enabledFlag) return;
    if (stamp === undefined || stamp.username === '') throw new AuthError('UserEmpty');
    const user = this.users.get(stamp.username);
    if (user === undefined) throw new AuthError('UserNotFound');
    if (!user.roles.includes(ROOT)) throw new AuthError('PermissionDenied');
  }

  /** etcd's isOpPermitted: throws unless auth is off or the stamp may access the range. */
  checkPermitted(stamp: AuthStamp | undefined, key: Uint8Array, rangeEnd: Uint8Array, access: Access): void {
    if (!this.enabledFlag) return;
    if (stamp === undefined || stamp.username === '' || stamp.revision === 0) throw new AuthError('UserEmpty');
    if (stamp.revision < this.rev) throw new AuthError('AuthOldRevision');
    if (!this.users.has(stamp.username)) throw new AuthError('PermissionDenied');
    if (this.hasRootRole(stamp.username)) return;
    const merged = this.mergedFor(stamp.username);
    if (!covers(merged[access], intervalOf(key, rangeEnd))) throw new AuthError('PermissionDenied');
  }

  private mergedFor(username: string): MergedPermissions {
    let merged = this.merged.get(username);
    if (merged === undefined) {
      merged = { read: [], write: [] };
      for (const roleName of this.users.get(username)?.roles ?? []) {
        for (const perm of this.roles.get(roleName)?.permissions ?? []) {
          const interval = intervalOf(perm.key, perm.rangeEnd);
          if (perm.permType !== PermType.WRITE) merged.read.push(interval);
          if (perm.permType !== PermType.READ) merged.write.push(interval);
        }
      }
      this.merged.set(username, merged);
    }
    return merged;
  }

  toJSON(): StateJSON {
    const users = this.userNames().map((name) => {
      const u = this.users.get(name)!;
      return { name, passwordHash: u.passwordHash, noPassword: u.noPassword, roles: [...u.roles], epoch: u.epoch };
    });
    const roles = this.roleNames().map((name) => ({
      name,
      permissions: this.roles.get(name)!.permissions.map((p) => ({
        permType: p.permType as number,
        key: p.key.toString('base64'),
        rangeEnd: p.rangeEnd.toString('base64'),
      })),
    }));
    return { enabled: this.enabledFlag, revision: this.rev, enabledAt: this.enabledAtRev, tokenKey: this.key, users, roles };
  }

  /** Replaces this store's state with a serialized one (restart, snapshot install). */
  loadJSON(state: StateJSON): void {
    this.enabledFlag = state.enabled;
    this.rev = state.revision;
    this.enabledAtRev = state.enabledAt;
    this.key = state.tokenKey;
    this.users.clear();
    this.roles.clear();
    this.merged.clear();
    for (const u of state.users) this.users.set(u.name, { ...u, roles: [...u.roles] });
    for (const r of state.roles) {
      this.roles.set(r.name, {
        name: r.name,
        permissions: r.permissions.map((p) => ({ permType: p.permType, key: Buffer.from(p.key, 'base64'), rangeEnd: Buffer.from(p.rangeEnd, 'base64') })),
      });
    }
  }

  /** A fresh store (auth off, revision 1, no users or roles). */
  reset(): void {
    this.loadJSON({ enabled: false, revision: 1, enabledAt: 0, tokenKey: '', users: [], roles: [] });
  }
}
