// Expected auth errors, raised by the auth store while applying log entries and by the server
// at the edge. Each carries the name of the etcd error it stands for (`etcdCode`); the gRPC
// edge turns that name into etcd's exact status and message.

export type AuthErrorCode =
  | 'UserEmpty'
  | 'RoleEmpty'
  | 'AuthFailed'
  | 'PermissionDenied'
  | 'InvalidAuthToken'
  | 'AuthNotEnabled'
  | 'RootUserNotExist'
  | 'RootRoleNotExist'
  | 'UserAlreadyExist'
  | 'UserNotFound'
  | 'RoleAlreadyExist'
  | 'RoleNotFound'
  | 'RoleNotGranted'
  | 'PermissionNotGranted'
  | 'InvalidAuthMgmt'
  | 'AuthOldRevision'
  // Not one of etcd's gRPC errors: etcd 3.4 answers it as code Unknown with this text.
  | 'NoPasswordUser';

export class AuthError extends Error {
  override name = 'AuthError';
  constructor(readonly etcdCode: AuthErrorCode) {
    super(`auth: ${etcdCode}`);
  }
}
