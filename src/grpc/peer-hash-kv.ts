// An outbound call to another member's client port: its HashKV at a revision, which the
// corruption checks compare with this member's (etcd asks its peers the same way). A channel of
// its own per call (through the member's dialer, so with its client TLS): the checks run at
// start-up and once per period, not on any hot path.

import type * as grpc from '@grpc/grpc-js';
import type { MemberDialer } from './member-dialer.js';

/** How long a peer may take to hash its store before it counts as unable to answer. */
const PEER_HASH_DEADLINE_MS = 5000;

interface HashKvStub {
  HashKV(
    request: object,
    metadata: grpc.Metadata,
    options: object,
    callback: (error: Error | null, response?: { hash: number; compactRevision: string }) => void,
  ): void;
  close(): void;
}

export type PeerHashKv = (address: string, revision: number) => Promise<{ hash: number; compactRevision: number }>;

/**
 * A peer's HashKV at `revision`, over its client port at `address` (host:port), dialled by
 * `dialer`, with `credentials()` (HashKV needs root once auth is enabled: auth-check.ts
 * memberCredentials).
 */
export function peerHashKvOver(dialer: MemberDialer, credentials: () => grpc.Metadata): PeerHashKv {
  return (address, revision) =>
    new Promise((resolve, reject) => {
      const client = dialer.once('Maintenance', address) as HashKvStub;
      client.HashKV({ revision }, credentials(), { deadline: Date.now() + PEER_HASH_DEADLINE_MS }, (error, response) => {
        client.close();
        if (error || response === undefined) reject(error ?? new Error('no answer'));
        else resolve({ hash: response.hash, compactRevision: Number(response.compactRevision) });
      });
    });
}
