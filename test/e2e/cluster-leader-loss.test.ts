// Availability right after the leader dies. A client pinned to a surviving follower runs
// put, linearizable get and lease time-to-live (forwarded to the leader) back to back, each
// with a 10 s deadline, while the leader of a 3-member cluster is killed with SIGKILL. The
// longest gap between two successful operations must stay within the election timeout plus a
// margin (etcd 3.4.23 in the same setup: 1.2-1.5 s; MetaStore before pending requests were
// re-asked: 7 s), and every failure in between must be one of etcd's errors, never grpc-js's
// connection text leaking through the leader forwarding.

import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { clients } from '../../src/grpc/proto.js';
import { leaderIndex } from '../support/cluster-status.js';
import { startMetaStoreCluster, type MetaStoreCluster } from '../support/servers.js';
import { waitFor } from '../support/wait.js';

/** Default election timeout (1 s) + the bound the issue allows (1 s), with room for a slow CI. */
const MAX_FAILURE_WINDOW_MS = 5000;
const SUCCESSES_AFTER_KILL = 30;

let cluster: MetaStoreCluster;

beforeAll(async () => {
  cluster = await startMetaStoreCluster(3);
}, 60_000);

afterAll(async () => {
  await cluster?.destroy();
});

type Stub = Record<string, (request: object, metadata: grpc.Metadata, options: grpc.CallOptions, callback: (error: grpc.ServiceError | null) => void) => void>;

function call(stub: Stub, method: string, request: object): Promise<grpc.ServiceError | null> {
  return new Promise((resolve) => stub[method]!(request, new grpc.Metadata(), { deadline: Date.now() + 10_000 }, resolve));
}

describe('a follower after its leader is killed', () => {
  it('serves puts, linearizable gets and forwarded lease calls again within the election timeout + 1 s', async () => {
    const leader = await leaderIndex(cluster);
    const follower = cluster.members[(leader + 1) % 3]!;
    const address = follower.endpoint.replace('http://', '');
    const kv = new clients.KV(address, grpc.credentials.createInsecure()) as unknown as Stub & grpc.Client;
    const lease = new clients.Lease(address, grpc.credentials.createInsecure()) as unknown as Stub & grpc.Client;
    const granted = await new Promise<{ ID: string }>((resolve, reject) =>
      (lease as any).LeaseGrant({ TTL: 600 }, (error: Error | null, answer: { ID: string }) => (error ? reject(error) : resolve(answer))),
    );

    const successes: number[] = [];
    const failures: string[] = [];
    let killedAt = 0;
    let stop = false;
    const client = (async () => {
      for (let seq = 0; !stop; seq++) {
        const operations: Array<[Stub, string, object]> = [
          [kv, 'Put', { key: Buffer.from(`k${seq % 10}`), value: Buffer.from(String(seq)) }],
          [kv, 'Range', { key: Buffer.from(`k${seq % 10}`) }],
          [lease, 'LeaseTimeToLive', { ID: granted.ID }],
        ];
        for (const [stub, method, request] of operations) {
          const error = await call(stub, method, request);
          if (error === null) successes.push(Date.now());
          else if (killedAt > 0) failures.push(`${method}: ${error.details}`);
        }
      }
    })();

    await waitFor(() => successes.length, { what: 'the client loop running', until: (n) => n >= 10 });
    killedAt = Date.now();
    await cluster.members[leader]!.kill9();
    await waitFor(() => successes.filter((t) => t > killedAt).length, {
      what: `${SUCCESSES_AFTER_KILL} successes after the kill`,
      until: (n) => n >= SUCCESSES_AFTER_KILL,
      timeoutMs: 30_000,
    });
    stop = true;
    await client;
    kv.close();
    lease.close();

    const firstAfterKill = successes.find((t) => t > killedAt)! - killedAt;
    let longestGap = 0;
    for (let i = 1; i < successes.length; i++) longestGap = Math.max(longestGap, successes[i]! - successes[i - 1]!);
    console.log(
      `leader kill -9: first success after ${firstAfterKill} ms; longest gap between successes ${longestGap} ms; failures: ${JSON.stringify(failures)}`,
    );
    expect(longestGap).toBeLessThan(MAX_FAILURE_WINDOW_MS);
    for (const failure of failures) expect(failure).toMatch(/^\w+: etcdserver: /);
  }, 90_000);
});
