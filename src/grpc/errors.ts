// The one table that turns MetaStore's expected errors into etcd's gRPC statuses.
//
// etcd clients match on the exact status code and message (clientv3's rpctypes compares the
// message text), so every entry here is etcd 3.4's code and text; errors etcd added later
// (3.5, 3.6) use the code of the release that introduced them. Modules raise typed errors
// carrying an `etcdCode` naming a row of this table; anything else that reaches the edge is a
// bug and goes out as INTERNAL after being logged.

import { status as Status, type ServiceError, Metadata } from '@grpc/grpc-js';

export const ETCD_ERRORS = {
  EmptyKey: { code: Status.INVALID_ARGUMENT, message: 'etcdserver: key is not provided' },
  KeyNotFound: { code: Status.INVALID_ARGUMENT, message: 'etcdserver: key not found' },
  ValueProvided: { code: Status.INVALID_ARGUMENT, message: 'etcdserver: value is provided' },
  LeaseProvided: { code: Status.INVALID_ARGUMENT, message: 'etcdserver: lease is provided' },
  TooManyOps: { code: Status.INVALID_ARGUMENT, message: 'etcdserver: too many operations in txn request' },
  DuplicateKey: { code: Status.INVALID_ARGUMENT, message: 'etcdserver: duplicate key given in txn request' },
  Compacted: { code: Status.OUT_OF_RANGE, message: 'etcdserver: mvcc: required revision has been compacted' },
  FutureRev: { code: Status.OUT_OF_RANGE, message: 'etcdserver: mvcc: required revision is a future revision' },
  NoSpace: { code: Status.RESOURCE_EXHAUSTED, message: 'etcdserver: mvcc: database space exceeded' },
  LeaseNotFound: { code: Status.NOT_FOUND, message: 'etcdserver: requested lease not found' },
  LeaseExist: { code: Status.FAILED_PRECONDITION, message: 'etcdserver: lease already exists' },
  LeaseTTLTooLarge: { code: Status.OUT_OF_RANGE, message: 'etcdserver: too large lease TTL' },
  WatchCanceled: { code: Status.CANCELLED, message: 'etcdserver: watch canceled' },
  MemberExist: { code: Status.FAILED_PRECONDITION, message: 'etcdserver: member ID already exist' },
  PeerURLExist: { code: Status.FAILED_PRECONDITION, message: 'etcdserver: Peer URLs already exists' },
  MemberNotEnoughStarted: { code: Status.FAILED_PRECONDITION, message: 'etcdserver: re-configuration failed due to not enough started members' },
  MemberBadURLs: { code: Status.INVALID_ARGUMENT, message: 'etcdserver: given member URLs are invalid' },
  MemberNotFound: { code: Status.NOT_FOUND, message: 'etcdserver: member not found' },
  MemberNotLearner: { code: Status.FAILED_PRECONDITION, message: 'etcdserver: can only promote a learner member' },
  LearnerNotReady: { code: Status.FAILED_PRECONDITION, message: 'etcdserver: can only promote a learner member which is in sync with leader' },
  TooManyLearners: { code: Status.FAILED_PRECONDITION, message: 'etcdserver: too many learner members in cluster' },
  RequestTooLarge: { code: Status.INVALID_ARGUMENT, message: 'etcdserver: request is too large' },
  RequestTooManyRequests: { code: Status.RESOURCE_EXHAUSTED, message: 'etcdserver: too many requests' },
  RootUserNotExist: { code: Status.FAILED_PRECONDITION, message: 'etcdserver: root user does not exist' },
  RootRoleNotExist: { code: Status.FAILED_PRECONDITION, message: 'etcdserver: root user does not have root role' },
  UserAlreadyExist: { code: Status.FAILED_PRECONDITION, message: 'etcdserver: user name already exists' },
  UserEmpty: { code: Status.INVALID_ARGUMENT, message: 'etcdserver: user name is empty' },
  UserNotFound: { code: Status.FAILED_PRECONDITION, message: 'etcdserver: user name not found' },
  RoleAlreadyExist: { code: Status.FAILED_PRECONDITION, message: 'etcdserver: role name already exists' },
  RoleNotFound: { code: Status.FAILED_PRECONDITION, message: 'etcdserver: role name not found' },
  RoleEmpty: { code: Status.INVALID_ARGUMENT, message: 'etcdserver: role name is empty' },
  AuthFailed: { code: Status.INVALID_ARGUMENT, message: 'etcdserver: authentication failed, invalid user ID or password' },
  PermissionDenied: { code: Status.PERMISSION_DENIED, message: 'etcdserver: permission denied' },
  RoleNotGranted: { code: Status.FAILED_PRECONDITION, message: 'etcdserver: role is not granted to the user' },
  PermissionNotGranted: { code: Status.FAILED_PRECONDITION, message: 'etcdserver: permission is not granted to the role' },
  AuthNotEnabled: { code: Status.FAILED_PRECONDITION, message: 'etcdserver: authentication is not enabled' },
  InvalidAuthToken: { code: Status.UNAUTHENTICATED, message: 'etcdserver: invalid auth token' },
  InvalidAuthMgmt: { code: Status.INVALID_ARGUMENT, message: 'etcdserver: invalid auth management' },
  AuthOldRevision: { code: Status.INVALID_ARGUMENT, message: 'etcdserver: revision of auth store is old' },
  NoLeader: { code: Status.UNAVAILABLE, message: 'etcdserver: no leader' },
  NotLeader: { code: Status.FAILED_PRECONDITION, message: 'etcdserver: not leader' },
  LeaderChanged: { code: Status.UNAVAILABLE, message: 'etcdserver: leader changed' },
  NotCapable: { code: Status.UNAVAILABLE, message: 'etcdserver: not capable' },
  Stopped: { code: Status.UNAVAILABLE, message: 'etcdserver: server stopped' },
  Timeout: { code: Status.UNAVAILABLE, message: 'etcdserver: request timed out' },
  TimeoutDueToLeaderFail: { code: Status.UNAVAILABLE, message: 'etcdserver: request timed out, possibly due to previous leader failure' },
  TimeoutDueToConnectionLost: { code: Status.UNAVAILABLE, message: 'etcdserver: request timed out, possibly due to connection lost' },
  TimeoutWaitAppliedIndex: { code: Status.UNAVAILABLE, message: 'etcdserver: request timed out, waiting for the applied index took too long' },
  Unhealthy: { code: Status.UNAVAILABLE, message: 'etcdserver: unhealthy cluster' },
  Corrupt: { code: Status.DATA_LOSS, message: 'etcdserver: corrupt cluster' },
  NotSupportedForLearner: { code: Status.UNAVAILABLE, message: 'etcdserver: rpc not supported for learner' },
  BadLeaderTransferee: { code: Status.FAILED_PRECONDITION, message: 'etcdserver: bad leader transferee' },
  InvalidClientAPIVersion: { code: Status.INVALID_ARGUMENT, message: 'etcdserver: invalid client api version' },
  InvalidSortOption: { code: Status.INVALID_ARGUMENT, message: 'etcdserver: invalid sort option' },
  ClusterIDMismatch: { code: Status.FAILED_PRECONDITION, message: 'etcdserver: cluster ID mismatch' },
  PermissionNotGiven: { code: Status.INVALID_ARGUMENT, message: 'etcdserver: permission not given' },
  WrongDowngradeVersionFormat: { code: Status.INVALID_ARGUMENT, message: 'etcdserver: wrong downgrade target version format' },
  InvalidDowngradeTargetVersion: { code: Status.INVALID_ARGUMENT, message: 'etcdserver: invalid downgrade target version' },
  ClusterVersionUnavailable: { code: Status.UNAVAILABLE, message: 'etcdserver: cluster version not found during downgrade' },
  DowngradeInProcess: { code: Status.FAILED_PRECONDITION, message: 'etcdserver: cluster has a downgrade job in progress' },
  NoInflightDowngrade: { code: Status.FAILED_PRECONDITION, message: 'etcdserver: no inflight downgrade job' },
  Canceled: { code: Status.CANCELLED, message: 'etcdserver: request canceled' },
  DeadlineExceeded: { code: Status.DEADLINE_EXCEEDED, message: 'etcdserver: context deadline exceeded' },
} as const satisfies Record<string, { code: Status; message: string }>;

export type EtcdErrorCode = keyof typeof ETCD_ERRORS;

/** An expected error that should reach the client as one of etcd's statuses. */
export interface EtcdCodedError {
  etcdCode: EtcdErrorCode;
}

export function isEtcdCodedError(error: unknown): error is EtcdCodedError {
  return (
    typeof error === 'object' &&
    error !== null &&
    typeof (error as { etcdCode?: unknown }).etcdCode === 'string' &&
    (error as { etcdCode: string }).etcdCode in ETCD_ERRORS
  );
}

/** A status error for the client, with etcd's code and message. */
export function etcdStatus(code: EtcdErrorCode): Partial<ServiceError> {
  const row = ETCD_ERRORS[code];
  return { code: row.code, details: row.message, metadata: new Metadata() };
}

/** A raw status for errors that etcd reports outside rpctypes (e.g. grpc's own size limit). */
export function rawStatus(code: Status, details: string): Partial<ServiceError> {
  return { code, details, metadata: new Metadata() };
}
