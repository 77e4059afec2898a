// etcd's v3election Election service over gRPC (Campaign, Proclaim, Leader, Observe, Resign),
// over the recipe in src/server/recipes/election.ts.
//
// Invariants:
// - Election errors ("election: not leader", "election: no leader", "\"leader\" field must
//   be provided") are plain Go errors in etcd, so they travel as codes.Unknown with that text;
//   so do etcd's own errors here (e.g. "etcdserver: requested lease not found"), because etcd
//   runs this service through an internal client (see recipeCall in lock-service.ts).
// - Campaign blocks until elected, with no request timeout (as etcd's: only the client's cancel
//   or deadline ends the wait); a cancelled campaign resigns (see the recipe).
// - Observe writes only while the stream is writable (it awaits 'drain'), so a slow observer
//   holds the recipe back instead of buffering; it ends with the client's cancel. If the
//   recipe fails (e.g. its watch start was compacted) the stream ends with OK, as etcd's does
//   when its observe channel closes.
// - LeaderKey.rev goes out as a number, LeaderKey.lease as a decimal string (int64).

import * as grpc from '@grpc/grpc-js';
import type { KeyValue } from '../mvcc/types.js';
import { MvccError } from '../mvcc/errors.js';
import { ElectionError, campaign, leader, observe, proclaim, resign, type LeaderKey } from '../server/recipes/election.js';
import type { KvServer } from '../server/member/kv-server.js';
import { AbortedError } from '../server/recipes/lock-wait.js';
import { type Handlers, type ResponseHeaders, StatusError, toStatus, unary } from './handler.js';
import { RequestError, toWireKeyValue } from './kv-convert.js';
import { bytes, callSignal, int64, recipeCall, type WireInt64 } from './lock-service.js';
import { recipeStoreFor } from './auth-check.js';

interface WireLeaderKey {
  name?: Buffer | null;
  key?: Buffer | null;
  rev?: WireInt64;
  lease?: WireInt64;
}

function revision(value: WireInt64): number {
  if (value === null || value === undefined) return 0;
  const n = Number(value);
  return Number.isSafeInteger(n) ? n : n > 0 ? Number.MAX_SAFE_INTEGER : Number.MIN_SAFE_INTEGER;
}

/** The request's LeaderKey; its key goes into a txn op, which etcd validates as non-empty. */
function leaderKey(wire: WireLeaderKey | null | undefined): LeaderKey {
  if (wire === null || wire === undefined) throw new ElectionError('missing-leader-key');
  const key = bytes(wire.key);
  if (key.length === 0) throw new RequestError('EmptyKey');
  return { name: bytes(wire.name), key, rev: revision(wire.rev), lease: int64(wire.lease) };
}

function wireLeaderKey(key: LeaderKey): object {
  return { name: key.name, key: key.key, rev: key.rev, lease: key.lease.toString() };
}

/** Runs a recipe with etcd's error shapes (see recipeCall); election errors keep their text. */
function electionCall<T>(method: string, body: () => Promise<T>): Promise<T> {
  return recipeCall(method, async () => {
    try {
      return await body();
    } catch (error) {
      if (error instanceof ElectionError) throw new StatusError(grpc.status.UNKNOWN, error.message);
      throw error;
    }
  });
}

export function electionHandlers(kv: KvServer, headers: ResponseHeaders): Handlers {
  const Observe = (call: grpc.ServerWritableStream<{ name?: Buffer | null }, object>): void => {
    const signal = callSignal(call);
    const send = async (value: KeyValue, at: number): Promise<void> => {
      if (signal.aborted) return;
      if (call.write({ header: headers.at(at), kv: toWireKeyValue(value) })) return;
      await new Promise<void>((resolve) => {
        const done = (): void => {
          call.off('drain', done);
          signal.removeEventListener('abort', done);
          resolve();
        };
        call.on('drain', done);
        signal.addEventListener('abort', done);
      });
    };
    // As the caller: its reads of the election's keys are checked (auth-check.ts).
    Promise.resolve()
      .then(() => observe(recipeStoreFor(kv, call), bytes(call.request.name), signal, send))
      .catch((error: unknown) => {
        if (error instanceof AbortedError || signal.aborted) return;
        if (error instanceof MvccError) call.end();
        else call.emit('error', toStatus('Observe', error));
      });
  };

  return {
    Campaign: unary<{ name?: Buffer | null; lease?: WireInt64; value?: Buffer | null }>(
      'Campaign',
      (request, call) =>
        electionCall('Campaign', async () => {
          const name = bytes(request.name);
          const won = await campaign(recipeStoreFor(kv, call), name, int64(request.lease), bytes(request.value), callSignal(call));
          return { header: headers.at(won.revision), leader: wireLeaderKey(won.leader) };
        }),
      { waits: true },
    ),

    Proclaim: unary<{ leader?: WireLeaderKey | null; value?: Buffer | null }>('Proclaim', (request, call) =>
      electionCall('Proclaim', async () => {
        const at = await proclaim(recipeStoreFor(kv, call), leaderKey(request.leader), bytes(request.value));
        return { header: headers.at(at) };
      }),
    ),

    Leader: unary<{ name?: Buffer | null }>('Leader', (request, call) =>
      electionCall('Leader', async () => {
        const current = await leader(recipeStoreFor(kv, call), bytes(request.name));
        return { header: headers.at(current.revision), kv: toWireKeyValue(current.kv) };
      }),
    ),

    Resign: unary<{ leader?: WireLeaderKey | null }>('Resign', (request, call) =>
      electionCall('Resign', async () => {
        const at = await resign(recipeStoreFor(kv, call), leaderKey(request.leader));
        return { header: headers.at(at) };
      }),
    ),

    Observe: Observe as unknown as grpc.UntypedHandleCall,
  };
}
