// Expected errors raised by the server layer (consensus, waiting, limits). Each carries the
// name of the etcd error it stands for; the gRPC edge turns that into etcd's status and text.

export type ServerErrorCode =
  | 'Stopped'
  | 'Timeout'
  | 'TimeoutDueToLeaderFail'
  | 'NoLeader'
  | 'NotLeader'
  | 'LeaderChanged'
  | 'RequestTooLarge'
  | 'RequestTooManyRequests'
  | 'NoSpace'
  | 'Corrupt'
  | 'NotCapable'
  | 'Unhealthy'
  | 'MemberBadURLs'
  | 'PeerURLExist'
  | 'TooManyLearners'
  | 'MemberExist'
  | 'MemberNotFound'
  | 'MemberNotLearner'
  | 'LearnerNotReady'
  | 'BadLeaderTransferee'
  | 'MemberNotEnoughStarted';

export class ServerError extends Error {
  override name = 'ServerError';
  constructor(
    readonly etcdCode: ServerErrorCode,
    message: string = etcdCode,
  ) {
    super(message);
  }
}
