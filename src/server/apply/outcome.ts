// What applying one committed entry produced: a value for the waiting request, or the
// expected error it answers with. Its own file so the appliers of each concern (lease, auth)
// and the applier chain share it without importing each other.

import type { AuthError } from '../../auth/errors.js';
import type { LeaseError } from '../../lease/errors.js';
import type { MvccError } from '../../mvcc/errors.js';
import type { DeleteRangeResult, PutResult, TxnResult } from '../../mvcc/types.js';
import type { AlarmMember } from './alarms.js';
import type { ServerError } from './errors.js';

export type ApplyValue =
  | { kind: 'put'; put: PutResult }
  | { kind: 'deleteRange'; deleteRange: DeleteRangeResult }
  | { kind: 'txn'; txn: TxnResult }
  | { kind: 'compact' }
  | { kind: 'leaseGrant'; id: bigint; ttlSeconds: number }
  | { kind: 'leaseRevoke' }
  | { kind: 'leaseCheckpoint' }
  | { kind: 'auth' }
  | { kind: 'alarm'; members: AlarmMember[] }
  | { kind: 'none' };

export type ApplyOutcome =
  | { ok: true; value: ApplyValue /** store revision after this entry */; revision: number }
  | { ok: false; error: MvccError | LeaseError | AuthError | ServerError };
