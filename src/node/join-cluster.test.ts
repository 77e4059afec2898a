// A joiner's first start against real peer transports on loopback: it asks the other members
// of its --initial-cluster (never itself) in sorted URL order, skips one that does not answer,
// takes the IDs from the first answer; with no answer at all it stops with etcd's message.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { DEFAULTS } from '../config/schema.js';
import { initialMembership } from '../server/membership/cluster-members.js';
import { encodeClusterListing } from '../server/membership/member-list-json.js';
import { servePeerConnections } from '../grpc/grpc-server.js';
import { PeerTransport } from '../transport/peer-transport.js';
import { freePorts } from '../../test/support/ports.js';
import { learnClusterFromPeers, learnsIdentityFromCluster } from './join-cluster.js';
import { StartupError } from './startup-error.js';

const transports: PeerTransport[] = [];
const dirs: string[] = [];
afterEach(async () => {
  await Promise.all(transports.splice(0).map((t) => t.close()));
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

const silent = pino({ level: 'silent' });

function joinerConfig() {
  const dataDir = mkdtempSync(join(tmpdir(), 'metastore-join-'));
  dirs.push(dataDir);
  return { ...DEFAULTS, name: 'm3', dataDir, initialClusterState: 'existing' as const };
}

function localCluster(urls: { m1: string; m2: string; m3: string }) {
  return initialMembership({
    name: 'm3',
    token: 'etcd-cluster',
    initialCluster: Object.entries(urls).map(([name, url]) => ({ name, peerUrls: [url] })),
    advertisePeerUrls: [urls.m3],
    reachablePeerUrls: [],
    peers: [],
    memberId: 0n,
    clusterId: 0n,
  });
}

async function describingPeer(id: bigint, urls: { m1: string; m2: string; m3: string }, port: number): Promise<void> {
  const members = [
    { id: 0x11n, name: 'm1', peerUrls: [urls.m1], clientUrls: [], isLearner: false },
    { id: 0x22n, name: 'm2', peerUrls: [urls.m2], clientUrls: [], isLearner: false },
    { id: 0x33n, name: '', peerUrls: [urls.m3], clientUrls: [], isLearner: false },
  ];
  const transport = await PeerTransport.start({
    clusterId: 0xc1n,
    memberId: id,
    listenHost: '127.0.0.1',
    listenPort: port,
    peers: new Map(),
    serveCalls: servePeerConnections,
    onMessages: () => {},
    describeCluster: () => encodeClusterListing({ clusterId: 0xc1n, members }),
  });
  transports.push(transport);
}

describe('a joiner learns its IDs from its peers', () => {
  it('only a joiner without explicit IDs asks', () => {
    const config = joinerConfig();
    expect(learnsIdentityFromCluster(config)).toBe(true);
    expect(learnsIdentityFromCluster({ ...config, initialClusterState: 'new' })).toBe(false);
    expect(learnsIdentityFromCluster({ ...config, memberId: 7n })).toBe(false);
  });

  it('skips a peer that does not answer and takes the IDs of the first that does', async () => {
    const [p1, p2, p3] = await freePorts(3);
    const urls = { m1: `http://127.0.0.1:${p1}`, m2: `http://127.0.0.1:${p2}`, m3: `http://127.0.0.1:${p3}` };
    // The peer asked first (its URL sorts first) is down; the other one answers.
    const [, answering] = [urls.m1, urls.m2].sort();
    await describingPeer(0x22n, urls, Number(new URL(answering!).port));
    const learnt = await learnClusterFromPeers(joinerConfig(), localCluster(urls), silent);
    expect(learnt.selfId).toBe(0x33n);
    expect(learnt.clusterId).toBe(0xc1n);
    expect(learnt.members.map((m) => [m.name, m.id])).toEqual([
      ['m1', 0x11n],
      ['m2', 0x22n],
      ['m3', 0x33n],
    ]);
  });

  it("stops with etcd's message when no peer answers (its own URL is never asked)", async () => {
    const [p1, p2, p3] = await freePorts(3);
    const urls = { m1: `http://127.0.0.1:${p1}`, m2: `http://127.0.0.1:${p2}`, m3: `http://127.0.0.1:${p3}` };
    // Only the joiner's own peer URL answers: asking it would be a bug.
    await describingPeer(0x33n, urls, p3!);
    await expect(learnClusterFromPeers(joinerConfig(), localCluster(urls), silent)).rejects.toThrow(
      new StartupError('cannot fetch cluster info from peer urls: could not retrieve cluster information from the given URLs'),
    );
  });
});
