import { describe, expect, it } from 'vitest';
import { DEFAULT_PEER_URL, initialMembership, type MembershipInput } from './cluster-members.js';
import { deriveClusterId, deriveMemberId } from './member-id.js';

const base: MembershipInput = {
  name: 'default',
  token: 'etcd-cluster',
  initialCluster: [],
  advertisePeerUrls: [],
  reachablePeerUrls: [],
  peers: [],
  memberId: 0n,
  clusterId: 0n,
};

describe('initialMembership', () => {
  it("with no cluster flags is etcd's default member, its ID derived as etcd derives it", () => {
    const membership = initialMembership(base);
    const id = deriveMemberId([DEFAULT_PEER_URL], 'etcd-cluster');
    expect(membership).toEqual({
      selfId: id,
      clusterId: deriveClusterId([id]),
      members: [{ id, name: 'default', peerUrls: [DEFAULT_PEER_URL], peerAddress: 'localhost:2380' }],
    });
  });

  it("the guide's lone member (member_id and cluster_id, no peers) is a one-member cluster of that member", () => {
    const membership = initialMembership({ ...base, memberId: 1n, clusterId: 1234567890n, reachablePeerUrls: ['http://127.0.0.1:12379'] });
    expect(membership.selfId).toBe(1n);
    expect(membership.clusterId).toBe(1234567890n);
    expect(membership.members).toEqual([{ id: 1n, name: 'default', peerUrls: ['http://127.0.0.1:12379'], peerAddress: '127.0.0.1:12379' }]);
  });

  it('YAML peers give every member its explicit ID and raft address', () => {
    const peers = [1n, 2n, 3n].map((id) => ({ id, host: `10.0.1.${9 + Number(id)}`, port: 12379 }));
    const membership = initialMembership({ ...base, memberId: 2n, clusterId: 1234567890n, peers });
    expect(membership.selfId).toBe(2n);
    expect(membership.members.map((m) => [m.id, m.peerAddress])).toEqual([
      [1n, '10.0.1.10:12379'],
      [2n, '10.0.1.11:12379'],
      [3n, '10.0.1.12:12379'],
    ]);
  });

  it('YAML peers: this member carries server.name when set; the others are member-N until they publish theirs', () => {
    const peers = [1n, 2n].map((id) => ({ id, host: '127.0.0.1', port: 12378 + Number(id) }));
    const named = initialMembership({ ...base, name: 'node2', memberId: 2n, peers });
    expect(named.members.map((m) => m.name)).toEqual(['member-1', 'node2']);
    const unnamed = initialMembership({ ...base, memberId: 2n, peers });
    expect(unnamed.members.map((m) => m.name)).toEqual(['member-1', 'member-2']);
  });

  it("etcd's --initial-cluster derives IDs from the peer URLs and the token", () => {
    const initialCluster = [
      { name: 'a', peerUrls: ['http://127.0.0.1:2380'] },
      { name: 'b', peerUrls: ['http://127.0.0.1:2381'] },
    ];
    const membership = initialMembership({ ...base, name: 'b', initialCluster });
    expect(membership.selfId).toBe(deriveMemberId(['http://127.0.0.1:2381'], 'etcd-cluster'));
    expect(membership.members).toHaveLength(2);
  });

  it('a unix peer URL is dialled as the socket file its host:port names', () => {
    const initialCluster = [{ name: 'a', peerUrls: ['unix://localhost:2380'] }];
    expect(initialMembership({ ...base, name: 'a', initialCluster }).members[0]?.peerAddress).toBe('unix:localhost:2380');
  });
});
