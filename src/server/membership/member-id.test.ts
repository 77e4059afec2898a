import { describe, expect, it } from 'vitest';
import { deriveClusterId, deriveMemberId } from './member-id.js';

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
});
