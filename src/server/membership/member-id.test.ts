import { describe, expect, it } from 'vitest';
import { deriveAddedMemberId, deriveClusterId, deriveMemberId } from './member-id.js';

describe('member and cluster IDs as etcd derives them', () => {
  it('matches etcd 3.4 defaults (--name default, peer http://localhost:2380, token etcd-cluster)', () => {
    // `etcd` with no flags reports member 8e9e05c52164694d in cluster cdf818194e3a8c32.
    const member = deriveMemberId(['http://localhost:2380'], 'etcd-cluster');
    expect(member.toString(16)).toBe('8e9e05c52164694d');
    expect(deriveClusterId([member]).toString(16)).toBe('cdf818194e3a8c32');
  });

  it('sorts peer URLs before hashing', () => {
    expect(deriveMemberId(['http://b:1', 'http://a:1'], 't')).toBe(deriveMemberId(['http://a:1', 'http://b:1'], 't'));
  });

  it('mixes the time of a member add into the ID as etcd 3.4 MemberAdd does', () => {
    // Computed with etcd 3.4.23's own membership.NewMember("", urls, "", &t) for
    // t = time.Unix(1796553600, 0): the cluster name is empty, the time is hashed as decimal seconds.
    const urls = ['http://127.0.0.1:2380', 'http://10.0.0.3:2380'];
    expect(deriveAddedMemberId(urls, 1796553600).toString(16)).toBe('5a39f92b3f923dcc');
    // A fraction of a second does not change it (etcd hashes now.Unix()); the next second does.
    expect(deriveAddedMemberId(urls, 1796553600.9)).toBe(deriveAddedMemberId(urls, 1796553600));
    expect(deriveAddedMemberId(urls, 1796553601)).not.toBe(deriveAddedMemberId(urls, 1796553600));
  });
});
