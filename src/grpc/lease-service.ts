// etcd's Lease service over gRPC: LeaseGrant, LeaseRevoke, LeaseKeepAlive (bidi stream),
// LeaseTimeToLive and LeaseLeases, over the member's LeaseServer (src/server/member/lease-server.ts).
//
// Invariants (etcd 3.4 v3rpc/lease.go):
// - Lease IDs and TTLs are int64 on the wire: decimal strings in, decimal strings out (bigint
//   inside), never a lossy number.
// - LeaseTimeToLive of an unknown lease is not an error: TTL -1, grantedTTL 0, no keys.
// - LeaseKeepAlive answers every request with one response, in order; an unknown lease gets
//   TTL 0, not an error. Any other error ends the stream with etcd's status.
// - Every response carries a full ResponseHeader at the store revision.

import type * as grpc from '@grpc/grpc-js';
import type { KvServer } from '../server/member/kv-server.js';
import { ServerError } from '../server/apply/errors.js';
import { type Handlers, type ResponseHeaders, toStatus, unary } from './handler.js';
import { forwardToLeader, leaderAddress, relayError } from './leader-forward.js';
import type { MemberDialer } from './member-dialer.js';
import { forwardedCredentials, stampOf } from './auth-check.js';

type WireInt64 = string | number | null | undefined;
type KeepAliveCall = grpc.ServerDuplexStream<{ ID?: WireInt64 }, object>;

function int64(value: WireInt64): bigint {
  if (value === null || value === undefined || value === '') return 0n;
  return BigInt(value);
}

/** A TTL as a number; values beyond 2^53 only matter as "too large", which they still are. */
function ttl(value: WireInt64): number {
  if (value === null || value === undefined) return 0;
  return Number(value);
}

/** `dialer` reaches the leader's client port for the calls a follower relays. */
export function leaseHandlers(kv: KvServer, headers: ResponseHeaders, dialer: MemberDialer): Handlers {
  const LeaseGrant = unary<{ TTL?: WireInt64; ID?: WireInt64 }>('LeaseGrant', async (request, call) => {
    // etcd grants leases without a permission check, but a token it cannot verify fails every
    // proposal with "invalid auth token" (found by the fuzz test: it was granted here).
    stampOf(kv.auth, call);
    await kv.checkQuota(0);
    const { result, revision } = await kv.leases.grant(int64(request.ID), ttl(request.TTL));
    return { header: headers.at(revision), ID: result.id.toString(), TTL: String(result.ttlSeconds), error: '' };
  });

  /** etcd: revoking needs write access to every attached key, time-to-live read access. */
  const checkLeaseKeys = (call: Parameters<typeof stampOf>[1], id: bigint, access: 'read' | 'write'): void => {
    if (!kv.auth.enabled) return;
    const stamp = stampOf(kv.auth, call);
    for (const key of kv.leases.timeToLive(id, true).result?.keys ?? []) kv.auth.store.checkPermitted(stamp, key, Buffer.alloc(0), access);
  };

  const LeaseRevoke = unary<{ ID?: WireInt64 }>('LeaseRevoke', async (request, call) => {
    checkLeaseKeys(call, int64(request.ID), 'write');
    const { revision } = await kv.leases.revoke(int64(request.ID));
    return { header: headers.at(revision) };
  });

  const LeaseTimeToLive = unary<{ ID?: WireInt64; keys?: boolean }>('LeaseTimeToLive', async (request, call) => {
    checkLeaseKeys(call, int64(request.ID), 'read');
    // The leader knows the remaining TTL (and whether the lease was revoked meanwhile); a
    // follower asks it, as etcd's followers do.
    if (kv.raft !== undefined && !kv.raft.isLeader) {
      const answer = await forwardToLeader<{ TTL?: string; grantedTTL?: string; keys?: Buffer[] }>(kv, dialer, {
        service: 'Lease',
        method: 'LeaseTimeToLive',
        request: { ID: request.ID, keys: request.keys },
        metadata: forwardedCredentials(kv.auth, call),
      });
      return {
        header: headers.at(kv.currentRevision),
        ID: int64(request.ID).toString(),
        TTL: answer.TTL ?? '-1',
        grantedTTL: answer.grantedTTL ?? '0',
        keys: answer.keys ?? [],
      };
    }
    const id = int64(request.ID);
    const { result, revision } = kv.leases.timeToLive(id, request.keys ?? false);
    if (result === undefined) return { header: headers.at(revision), ID: id.toString(), TTL: '-1', grantedTTL: '0', keys: [] };
    return {
      header: headers.at(revision),
      ID: id.toString(),
      TTL: String(result.ttlSeconds),
      grantedTTL: String(result.grantedTtlSeconds),
      keys: result.keys,
    };
  });

  const LeaseLeases = unary<object>('LeaseLeases', () => {
    const { result, revision } = kv.leases.list();
    return { header: headers.at(revision), leases: result.map((id) => ({ ID: id.toString() })) };
  });

  return {
    LeaseGrant,
    LeaseRevoke,
    LeaseTimeToLive,
    LeaseLeases,
    LeaseKeepAlive: ((call: KeepAliveCall) => serveKeepAlives(kv, headers, dialer, call)) as unknown as grpc.UntypedHandleCall,
  };
}

/**
 * One LeaseKeepAlive stream: each request answered in order with the lease's TTL, by this
 * member when it leads, else relayed to the leader.
 */
function serveKeepAlives(kv: KvServer, headers: ResponseHeaders, dialer: MemberDialer, call: KeepAliveCall): void {
  let ended = false;
  // Only the leader keeps lease deadlines: a follower relays each keep-alive to the leader
  // over one upstream stream and answers with the leader's TTL under its own header, as
  // etcd's followers do (etcd relays over the peer port).
  let upstream: grpc.ClientDuplexStream<object, { ID?: string; TTL?: string }> | undefined;
  const fail = (error: unknown): void => {
    if (ended) return;
    ended = true;
    upstream?.cancel();
    call.emit('error', toStatus('LeaseKeepAlive', error));
  };
  const relay = (request: { ID?: WireInt64 }): void => {
    if (upstream === undefined) {
      const stub = dialer.stub('Lease', leaderAddress(kv)) as grpc.Client & {
        LeaseKeepAlive(): grpc.ClientDuplexStream<object, { ID?: string; TTL?: string }>;
      };
      upstream = stub.LeaseKeepAlive();
      upstream.on('data', (response) => {
        if (!ended) call.write({ header: headers.at(kv.currentRevision), ID: response.ID ?? '0', TTL: response.TTL ?? '0' });
      });
      upstream.on('error', (error: grpc.ServiceError) => fail(relayError(error, stub)));
      upstream.on('end', () => fail(new ServerError('LeaderChanged')));
    }
    upstream.write({ ID: request.ID });
  };
  call.on('data', (request: { ID?: WireInt64 }) => {
    if (ended) return;
    try {
      if (upstream !== undefined || (kv.raft !== undefined && !kv.raft.isLeader)) {
        relay(request);
        return;
      }
      const id = int64(request.ID);
      const { result, revision } = kv.leases.keepAlive(id);
      call.write({ header: headers.at(revision), ID: id.toString(), TTL: String(result) });
    } catch (error) {
      fail(error);
    }
  });
  call.on('end', () => {
    if (ended) return;
    ended = true;
    upstream?.end();
    call.end();
  });
  const finish = (): void => {
    ended = true;
    upstream?.cancel();
  };
  call.on('error', finish);
  call.on('close', finish);
  call.on('cancelled', finish);
}
