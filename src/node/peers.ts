// The peer side of a member: the Raft transport on the peer port (with peer TLS), and the
// member list driving it. Members added, updated or removed through the log become (or stop
// being) peers; a member that learns it was removed from the cluster stops itself.
//
// The member is opened before the transport (the transport delivers to it), so Raft sends
// through a PeerOutbox that the transport is attached to once it is up.

import type { Logger } from 'pino';
import { peerListenUrls, type Config } from '../config/schema.js';
import { bindHost, formatUrl, unixSocketPath } from '../config/values.js';
import type { Message } from '../raft/types.js';
import type { KvServer } from '../server/member/kv-server.js';
import type { PeerSender } from '../server/member/raft-node.js';
import { dialAddress } from '../server/membership/member-address.js';
import type { ClusterMembership } from '../server/membership/cluster-members.js';
import { encodeClusterListing } from '../server/membership/member-list-json.js';
import { servePeerConnections } from '../grpc/grpc-server.js';
import { peerPortTls, type PeerPortTls } from '../tls/tls.js';
import { PeerTransport } from '../transport/peer-transport.js';
import { listenHosts } from './listen-hosts.js';
import { listeningFor } from './startup-error.js';
import type { NodeStorage } from './storage.js';

/** Raft's outgoing messages, dropped until a transport is attached (Raft resends what matters). */
export class PeerOutbox implements PeerSender {
  private transport: PeerSender | undefined;

  attach(transport: PeerSender): void {
    this.transport = transport;
  }

  send(messages: Message[]): void {
    this.transport?.send(messages);
  }
}

export interface PeerLinks {
  updatePeer(id: bigint, address: string): void;
  removePeer(id: bigint): void;
}

/** The transport's peers, kept equal to the member list (every member but this one). */
export class PeerDirectory {
  private readonly addresses: Map<bigint, string>;

  constructor(
    private readonly selfId: bigint,
    private readonly links: PeerLinks,
    initial: ReadonlyMap<bigint, string>,
  ) {
    this.addresses = new Map(initial);
  }

  /** Adds new peers, re-points moved ones, drops removed ones; unchanged peers are left alone. */
  follow(members: ReadonlyArray<{ id: bigint; peerUrls: readonly string[] }>): void {
    const wanted = new Map(members.filter((m) => m.id !== this.selfId && m.peerUrls[0] !== undefined).map((m) => [m.id, dialAddress(m.peerUrls[0]!)]));
    for (const [id, address] of wanted) {
      if (this.addresses.get(id) === address) continue;
      this.addresses.set(id, address);
      this.links.updatePeer(id, address);
    }
    for (const id of [...this.addresses.keys()]) {
      if (wanted.has(id)) continue;
      this.addresses.delete(id);
      this.links.removePeer(id);
    }
  }
}

export interface PeersOptions {
  config: Pick<Config, 'raft' | 'dataDir' | 'initialClusterState'>;
  storage: NodeStorage;
  cluster: ClusterMembership;
  kv: KvServer;
  outbox: PeerOutbox;
  logger: Logger;
  /** Stops this member gracefully (it was removed from the cluster). */
  stopSelf(): void;
}

/** The peer link's TLS (server and channel credentials, peer verification); undefined without TLS. */
export function peerTlsOf(config: Pick<Config, 'raft' | 'dataDir'>, logger: Logger): PeerPortTls | undefined {
  return peerPortTls(config.raft.tls, { dataDir: config.dataDir, hosts: listenHosts(config.raft), logger: logger.child({ component: 'tls' }) });
}

/** Starts the peer transport for a member that runs Raft; undefined for one that does not. */
export async function startPeers(options: PeersOptions): Promise<{ close(): Promise<void> } | undefined> {
  const { config, storage, cluster, kv, logger } = options;
  const raft = kv.raft;
  if (raft === undefined) return undefined;
  const selfId = storage.identity.memberId;
  const raftLog = logger.child({ component: 'raft' });
  const peerTls = peerTlsOf(config, logger);
  const initialPeers = new Map(cluster.members.filter((m) => m.id !== selfId).map((m) => [m.id, m.peerAddress]));
  const [first, ...more] = peerListenUrls(config).map((url) => ({
    scheme: url.scheme,
    host: unixSocketPath(url) === undefined ? bindHost(url.host) : url.host,
    port: url.port,
    socketPath: unixSocketPath(url),
  }));
  const listenKey = config.raft.listenUrls.length > 0 ? 'server.raft.listen_urls (--listen-peer-urls)' : 'server.raft.port';
  const transport = await listeningFor(listenKey, () =>
    PeerTransport.start({
      credentials: peerTls?.credentials,
      authorizePeer: peerTls ? (call) => peerTls.authorizePeer(call) : undefined,
      serveCalls: servePeerConnections,
      // A member joining an existing cluster learns the cluster's ID from its peers.
      clusterId: config.initialClusterState === 'existing' && !storage.identityWasStored ? 0n : storage.identity.clusterId,
      onClusterId: (clusterId) => void storage.adoptClusterId(clusterId),
      // What a member joining with an empty data dir learns its IDs from (node/join-cluster.ts).
      describeCluster: () => encodeClusterListing({ clusterId: storage.identity.clusterId, members: kv.membership.list() }),
      memberId: selfId,
      listenHost: first!.host,
      listenPort: first!.port,
      listenSocketPath: first!.socketPath,
      alsoListen: more,
      peers: initialPeers,
      onMessages: (messages) => raft.receive(messages),
      isRemoved: (id) => kv.membership.wasRemoved(id),
      onRemoved: (byPeer) => {
        raftLog.warn({ peer: byPeer.toString(16) }, 'this member was removed from the cluster (told by a peer); stopping');
        options.stopSelf();
      },
      onUnreachable: (peer) => raft.reportUnreachable(peer),
      onSnapshotStatus: (peer, ok) => raft.reportSnapshot(peer, ok),
      logger: logger.child({ component: 'transport' }),
    }),
  );
  for (const [i, url] of [first!, ...more].entries()) {
    raftLog.info({ address: formatUrl({ ...url, port: transport.ports[i] ?? url.port }) }, 'listening for peer traffic');
  }
  options.outbox.attach(transport);
  const directory = new PeerDirectory(selfId, transport, initialPeers);
  kv.membership.onChange((members) => {
    directory.follow(members);
    if (!members.some((m) => m.id === selfId) && kv.membership.wasRemoved(selfId)) {
      raftLog.warn('this member was removed from the cluster; stopping');
      options.stopSelf();
    }
  });
  return { close: () => transport.close() };
}
