// Expected lease errors, raised by the lessor while applying log entries and by the server
// before proposing. Each carries the name of the etcd error it stands for (`etcdCode`); the
// gRPC edge turns that name into etcd's exact status and message.

export type LeaseErrorCode = 'LeaseNotFound' | 'LeaseExist' | 'LeaseTTLTooLarge';

const MESSAGES: Record<LeaseErrorCode, string> = {
  LeaseNotFound: 'lease not found',
  LeaseExist: 'lease already exists',
  LeaseTTLTooLarge: 'too large lease TTL',
};

export class LeaseError extends Error {
  override name = 'LeaseError';
  constructor(readonly etcdCode: LeaseErrorCode) {
    super(MESSAGES[etcdCode]);
  }
}
