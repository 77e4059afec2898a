// etcd's v3lock Lock service over gRPC (Lock, Unlock), over the recipe in src/server/recipes/lock.ts.
//
// Invariants:
// - Lock blocks until the lock is held, with no request timeout (as in etcd, only the client
//   ends the wait); a client that cancels (or disconnects) aborts the wait, and the recipe
//   removes the queue key it created. The cancelled call's answer goes
//   nowhere, so it is reported as CANCELLED without being logged as a bug.
// - etcd runs these services through an internal clientv3 client, which turns every etcd
//   error into a plain Go error, so its gRPC server sends them as codes.Unknown with etcd's
//   usual text (e.g. Unknown "etcdserver: requested lease not found", Unknown "etcdserver:
//   key is not provided" for Unlock of an empty key). recipeCall does the same; bugs stay
//   INTERNAL (and are logged).
// - Lease IDs are int64 on the wire (decimal strings in, bigint inside).

import * as grpc from '@grpc/grpc-js';
import type { KvServer } from '../server/member/kv-server.js';
import { AbortedError } from '../server/recipes/lock-wait.js';
import { lock, unlock } from '../server/recipes/lock.js';
import { type Handlers, type ResponseHeaders, StatusError, toStatus, unary } from './handler.js';
import { RequestError } from './kv-convert.js';
import { recipeStoreFor } from './auth-check.js';

export type WireInt64 = string | number | null | undefined;

export function int64(value: WireInt64): bigint {
  if (value === null || value === undefined || value === '') return 0n;
  return BigInt(value);
}

export function bytes(value: Buffer | null | undefined): Buffer {
  return value ?? Buffer.alloc(0);
}

/** An AbortSignal that fires when the client cancels the call or goes away. */
export function callSignal(call: { cancelled: boolean; on(event: 'cancelled', listener: () => void): unknown }): AbortSignal {
  const controller = new AbortController();
  if (call.cancelled) controller.abort();
  else call.on('cancelled', () => controller.abort());
  return controller.signal;
}

/** Runs a recipe with etcd's error shapes: cancellation as CANCELLED, every expected error
 * as codes.Unknown with its etcd text, bugs as INTERNAL. */
export async function recipeCall<T>(method: string, body: () => Promise<T>): Promise<T> {
  try {
    return await body();
  } catch (error) {
    if (error instanceof AbortedError) throw new StatusError(grpc.status.CANCELLED, error.message);
    const status = toStatus(method, error);
    const details = status.details ?? String(error);
    throw new StatusError(status.code === grpc.status.INTERNAL ? grpc.status.INTERNAL : grpc.status.UNKNOWN, details);
  }
}

export function lockHandlers(kv: KvServer, headers: ResponseHeaders): Handlers {
  return {
    Lock: unary<{ name?: Buffer | null; lease?: WireInt64 }>(
      'Lock',
      (request, call) =>
        recipeCall('Lock', async () => {
          const { key, revision } = await lock(recipeStoreFor(kv, call), bytes(request.name), int64(request.lease), callSignal(call));
          return { header: headers.at(revision), key };
        }),
      { waits: true },
    ),

    Unlock: unary<{ key?: Buffer | null }>('Unlock', (request, call) =>
      recipeCall('Unlock', async () => {
        const key = bytes(request.key);
        if (key.length === 0) throw new RequestError('EmptyKey');
        const revision = await unlock(recipeStoreFor(kv, call), key);
        return { header: headers.at(revision) };
      }),
    ),
  };
}
