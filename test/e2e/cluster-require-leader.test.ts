// etcd's "hasleader" metadata (clientv3.WithRequireLeader) on a member that lost its leader:
// a 3-member MetaStore cluster loses its leader and one more member (SIGKILL), so the survivor
// has no quorum and, once its election timeout passes, no leader. Then, as in etcd 3.4:
// - a unary Range carrying the metadata fails at once: UNAVAILABLE "etcdserver: no leader";
//   without it, a serializable Range is still served;
// - a watch stream opened with the metadata ends with that status within etcd's interval
//   (3 leaderless checks, one per election timeout); one opened without it stays open and
//   keeps answering;
// - a new watch stream with the metadata is refused at once with the same status.
// The moment the survivor loses its leader has no event to await: it is polled through the
// very Range the test checks.

import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { clients } from '../../src/grpc/proto.js';
import { MAX_LEADERLESS_CHECKS } from '../../src/grpc/require-leader.js';
import { leaderIndex } from '../support/cluster-status.js';
import { grpcTarget, RawWatch, requireLeaderMetadata, type Msg, type StreamEnd } from '../support/raw-watch.js';
import { startMetaStoreCluster, type MetaStoreCluster } from '../support/servers.js';
import { waitFor, within } from '../support/wait.js';

/** The cluster's election timeout (etcd's default; the harness passes no --election-timeout). */
const ELECTION_TIMEOUT_MS = 1000;
/** etcd ends such streams after 3 to 4 election timeouts without a leader; plus scheduling slack. */
const STREAM_END_BOUND_MS = (MAX_LEADERLESS_CHECKS + 1) * ELECTION_TIMEOUT_MS + 3000;
const NO_LEADER: StreamEnd = { code: grpc.status.UNAVAILABLE, details: 'etcdserver: no leader' };

let cluster: MetaStoreCluster;

beforeAll(async () => {
  cluster = await startMetaStoreCluster(3);
}, 60_000);

afterAll(async () => {
  await cluster?.destroy();
});

function range(kv: grpc.Client, request: object, metadata = new grpc.Metadata()): Promise<Msg | StreamEnd> {
  return new Promise((resolve) =>
    (kv as any).range(request, metadata, { deadline: Date.now() + 3000 }, (error: grpc.ServiceError | null, response: Msg) =>
      resolve(error ? { code: error.code, details: error.details } : response),
    ),
  );
}

describe('hasleader metadata on a member without a leader', () => {
  it('fails unary calls and ends watch streams that asked for a leader; serves the others', async () => {
    const leader = await leaderIndex(cluster);
    const [survivor, other] = [0, 1, 2].filter((i) => i !== leader) as [number, number];
    const endpoint = cluster.members[survivor]!.endpoint;
    const kv = new clients.KV(grpcTarget(endpoint), grpc.credentials.createInsecure());
    const key = Buffer.from('k');
    const asking = new RawWatch(endpoint, requireLeaderMetadata());
    const plain = new RawWatch(endpoint);
    let late: RawWatch | undefined;
    try {
      // With a leader, the metadata changes nothing.
      expect(await range(kv, { key }, requireLeaderMetadata())).toMatchObject({ count: '0' });
      asking.send({ createRequest: { key } });
      plain.send({ createRequest: { key } });
      expect(await asking.next(1)).toMatchObject([{ created: true }]);
      expect(await plain.next(1)).toMatchObject([{ created: true }]);

      await Promise.all([cluster.members[leader]!.kill9(), cluster.members[other]!.kill9()]);
      const refused = await waitFor(() => range(kv, { key, serializable: true }, requireLeaderMetadata()), {
        what: 'the survivor to refuse a Range that requires a leader',
        until: (result) => 'code' in result && result.code !== grpc.status.DEADLINE_EXCEEDED,
      });
      expect(refused).toEqual(NO_LEADER);
      expect(await range(kv, { key, serializable: true })).toMatchObject({ count: '0' });

      expect(await within(asking.ended, { what: 'the watch asking for a leader to end', timeoutMs: STREAM_END_BOUND_MS })).toEqual(NO_LEADER);
      expect(plain.hasEnded).toBe(false);
      plain.send({ progressRequest: {} });
      expect(await plain.next(1)).toMatchObject([{ watchId: '-1', created: false, canceled: false }]);

      late = new RawWatch(endpoint, requireLeaderMetadata());
      late.send({ createRequest: { key } });
      expect(await within(late.ended, { what: 'a new watch asking for a leader to be refused', timeoutMs: 10_000 })).toEqual(NO_LEADER);
      expect(late.received).toEqual([]);
    } finally {
      for (const w of [asking, plain, late]) w?.close();
      kv.close();
    }
  }, 120_000);
});
