// etcd's Cluster service: MemberList, MemberAdd, MemberRemove, MemberUpdate, MemberPromote.
// Membership changes go through Raft as conf changes; each answer is sent once this member
// has applied the change, with the member list as it then stands.

import type { KvServer } from '../server/member/kv-server.js';
import type { Member } from '../server/membership/membership.js';
import { type Handlers, type ResponseHeaders, unary } from './handler.js';
import { forwardedCredentials, requireRoot } from './auth-check.js';
import { forwardToLeader } from './leader-forward.js';
import type { MemberDialer } from './member-dialer.js';

function toWireMember(member: Member) {
  return { ID: member.id.toString(), name: member.name, peerURLs: member.peerUrls, clientURLs: member.clientUrls, isLearner: member.isLearner };
}

/** `dialer` reaches the leader's client port for the member changes a follower forwards. */
export function clusterHandlers(kv: KvServer, headers: ResponseHeaders, dialer: MemberDialer): Handlers {
  // etcd's Cluster service fills in no revision (ClusterServer.header: IDs and term only).
  const header = () => headers.at(0);
  /**
   * Membership changes are made by the leader: it alone knows the learners' progress, and a
   * member being removed may never hear the commit of its own removal (the leader stops
   * talking to it), so a follower forwards the call.
   */
  // Member changes need the root role once auth is enabled (checked here and, when forwarded
  // with the caller's token or the member's statement of the caller's user, again on the leader).
  type Call = Parameters<typeof requireRoot>[1];
  const onLeader = (method: string, request: object, call: Call): Promise<unknown> | undefined => {
    requireRoot(kv.auth, call);
    if (kv.raft === undefined || kv.raft.isLeader) return undefined;
    return forwardToLeader(kv, dialer, { service: 'Cluster', method, request, metadata: forwardedCredentials(kv.auth, call) });
  };
  return {
    MemberList: unary<{ linearizable?: boolean }>('MemberList', async (request) => {
      if (request.linearizable) await kv.readBarrier();
      return { header: header(), members: kv.listMembers().map(toWireMember) };
    }),

    MemberAdd: unary<{ peerURLs?: string[]; isLearner?: boolean }>('MemberAdd', async (request, call) => {
      const forwarded = onLeader('MemberAdd', { peerURLs: request.peerURLs, isLearner: request.isLearner }, call);
      if (forwarded) return forwarded;
      const { member, members } = await kv.addMember(request.peerURLs ?? [], request.isLearner ?? false);
      return { header: header(), member: toWireMember(member), members: members.map(toWireMember) };
    }),

    MemberRemove: unary<{ ID?: string }>('MemberRemove', async (request, call) => {
      const forwarded = onLeader('MemberRemove', { ID: request.ID }, call);
      if (forwarded) return forwarded;
      const members = await kv.removeMember(BigInt(request.ID ?? '0'));
      return { header: header(), members: members.map(toWireMember) };
    }),

    MemberUpdate: unary<{ ID?: string; peerURLs?: string[] }>('MemberUpdate', async (request, call) => {
      const forwarded = onLeader('MemberUpdate', { ID: request.ID, peerURLs: request.peerURLs }, call);
      if (forwarded) return forwarded;
      const members = await kv.updateMember(BigInt(request.ID ?? '0'), request.peerURLs ?? []);
      return { header: header(), members: members.map(toWireMember) };
    }),

    MemberPromote: unary<{ ID?: string }>('MemberPromote', async (request, call) => {
      const forwarded = onLeader('MemberPromote', { ID: request.ID }, call);
      if (forwarded) return forwarded;
      const members = await kv.promoteMember(BigInt(request.ID ?? '0'));
      return { header: header(), members: members.map(toWireMember) };
    }),
  };
}
