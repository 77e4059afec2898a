// Expected MVCC errors: typed, each with a stable `code` the gRPC edge maps to etcd's status
// and full message ("etcdserver: " prefixes are added there, not here). Anything else the store
// throws is an AssertionError, i.e. a bug.

export type MvccErrorCode = 'compacted' | 'future-revision' | 'key-not-found' | 'lease-not-found';

export abstract class MvccError extends Error {
  abstract readonly code: MvccErrorCode;
}

/** The requested revision was removed by compaction (etcd mvcc.ErrCompacted). */
export class CompactedError extends MvccError {
  override name = 'CompactedError';
  readonly code = 'compacted';
  constructor() {
    super('mvcc: required revision has been compacted');
  }
}

/** The requested revision is newer than the store's current one (etcd mvcc.ErrFutureRev). */
export class FutureRevisionError extends MvccError {
  override name = 'FutureRevisionError';
  readonly code = 'future-revision';
  constructor() {
    super('mvcc: required revision is a future revision');
  }
}

/** ignore_value / ignore_lease on a key that does not exist (etcd ErrKeyNotFound). */
export class KeyNotFoundError extends MvccError {
  override name = 'KeyNotFoundError';
  readonly code = 'key-not-found';
  constructor() {
    super('key not found');
  }
}

/** A put names a lease the lessor does not know (etcd lease.ErrLeaseNotFound). */
export class LeaseNotFoundError extends MvccError {
  override name = 'LeaseNotFoundError';
  readonly code = 'lease-not-found';
  constructor() {
    super('requested lease not found');
  }
}
