import { describe, expect, it } from 'vitest';
import { initialMembership } from './cluster-members.js';
import { assignRemoteIds, JoinMismatchError } from './join-match.js';
import { decodeClusterListing, encodeClusterListing, MemberListDecodeError, type ClusterListing } from './member-list-json.js';

// The joiner's view: `member add m4` answered ETCD_INITIAL_CLUSTER="m1=...,m2=...,m4=...".
const local = initialMembership({
  name: 'm4',
  token: 'etcd-cluster',
  initialCluster: [
    { name: 'm1', peerUrls: ['http://127.0.0.1:2380'] },
    { name: 'm2', peerUrls: ['http://127.0.0.1:2381'] },
    { name: 'm4', peerUrls: ['http://127.0.0.1:2383'] },
  ],
  advertisePeerUrls: ['http://127.0.0.1:2383'],
  reachablePeerUrls: [],
  peers: [],
  memberId: 0n,
  clusterId: 0n,
});

// The running cluster's list: m4 added (not started: no name, no client URLs).
const remote: ClusterListing = {
  clusterId: 0xc1c1n,
  members: [
    { id: 0x11n, name: 'm1', peerUrls: ['http://127.0.0.1:2380'], clientUrls: ['http://127.0.0.1:2379'], isLearner: false },
    { id: 0x22n, name: 'm2', peerUrls: ['http://127.0.0.1:2381'], clientUrls: ['http://127.0.0.1:3379'], isLearner: false },
    { id: 0x5a39f92b3f923dccn, name: '', peerUrls: ['http://127.0.0.1:2383'], clientUrls: [], isLearner: true },
  ],
};

describe('a joiner takes its IDs from the running cluster (etcd ValidateClusterAndAssignIDs)', () => {
  it('matches members by peer URLs and takes the remote IDs and cluster ID, keeping the local names', () => {
    const learnt = assignRemoteIds(local, remote);
    expect(learnt.selfId).toBe(0x5a39f92b3f923dccn);
    expect(learnt.clusterId).toBe(0xc1c1n);
    expect(learnt.members.map((m) => [m.name, m.id, m.peerAddress])).toEqual([
      ['m1', 0x11n, '127.0.0.1:2380'],
      ['m2', 0x22n, '127.0.0.1:2381'],
      ['m4', 0x5a39f92b3f923dccn, '127.0.0.1:2383'],
    ]);
  });

  it("refuses a local cluster of another size with etcd's message", () => {
    const fewer = { ...remote, members: remote.members.slice(0, 2) };
    expect(() => assignRemoteIds(local, fewer)).toThrow(
      new JoinMismatchError(
        'error validating peerURLs {ClusterID:c1c1 Members:[' +
          '&{ID:11 RaftAttributes:{PeerURLs:[http://127.0.0.1:2380] IsLearner:false} Attributes:{Name:m1 ClientURLs:[http://127.0.0.1:2379]}} ' +
          '&{ID:22 RaftAttributes:{PeerURLs:[http://127.0.0.1:2381] IsLearner:false} Attributes:{Name:m2 ClientURLs:[http://127.0.0.1:3379]}}' +
          '] RemovedMemberIDs:[]}: member count is unequal',
      ),
    );
  });

  it('refuses a remote member whose peer URLs no local member has, naming it as etcd does', () => {
    const moved = { ...remote, members: remote.members.map((m) => (m.id === 0x22n ? { ...m, peerUrls: ['http://127.0.0.1:9999'] } : m)) };
    let error: unknown;
    try {
      assignRemoteIds(local, moved);
    } catch (caught) {
      error = caught;
    }
    expect(error).toBeInstanceOf(JoinMismatchError);
    expect((error as Error).message).toMatch(/^error validating peerURLs \{ClusterID:c1c1 Members:\[&\{ID:11 .*\] RemovedMemberIDs:\[\]\}: /);
    // The last resolver error is the comparison with the last local member (in ID order).
    const lastLocal = [...local.members].sort((a, b) => (a.id < b.id ? -1 : 1)).at(-1)!;
    expect((error as Error).message).toContain(
      `: PeerURLs: no match found for existing member (22, [http://127.0.0.1:9999]), last resolver error (resolved urls: "http://127.0.0.1:9999" != "${lastLocal.peerUrls[0]}")`,
    );
  });
});

describe('the member list on the wire', () => {
  it('round-trips, IDs in hex as etcd writes them', () => {
    const json = encodeClusterListing(remote);
    expect(JSON.parse(json.toString()).members[2]).toEqual({
      id: '5a39f92b3f923dcc',
      name: '',
      peerURLs: ['http://127.0.0.1:2383'],
      clientURLs: [],
      isLearner: true,
    });
    expect(decodeClusterListing(json)).toEqual(remote);
  });

  it('refuses what is not a member list', () => {
    expect(() => decodeClusterListing(Buffer.from('<html>'))).toThrow(MemberListDecodeError);
    expect(() => decodeClusterListing(Buffer.from('{"clusterId":"zz","members":[]}'))).toThrow(MemberListDecodeError);
  });
});
