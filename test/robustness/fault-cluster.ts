// A 3-member cluster (MetaStore from a given build root, or etcd 3.4 for comparison) with each
// member in a network namespace of its own on a bridge, reachable from the test process through
// a link from the root namespace. Each member's data dir can sit on a small tmpfs so its disk
// can be filled. Every namespace, tmpfs, process and temp dir is removed by destroy(), and by
// the harness's cleanup if the test dies first.

import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { clients } from '../../src/grpc/proto.js';
import { createNetwork, dropTraffic, healTraffic, type NetHost, type NetworkPlan, removeNetwork, requireRoot } from '../support/netns.js';
import { ServerProcess, removeDirSync, trackForCleanup } from '../support/processes.js';
import { READY_LINE, REPO_ROOT } from '../support/servers.js';
import { findExecutable } from '../support/tools.js';
import { waitFor } from '../support/wait.js';

export type Flavor = 'metastore' | 'etcd';

export interface FaultClusterOptions {
  flavor: Flavor;
  /** MetaStore only: directory holding bin/ and dist/ (default: this repository). */
  buildRoot?: string;
  /** Put each member's data dir on a tmpfs of this many MiB (for disk-full faults). */
  tmpfsMiB?: number;
}

const CLIENT_PORT = 2379;
const PEER_PORT = 2380;
const CHANNEL_OPTIONS = {
  // Members are killed and restarted: reconnect quickly instead of grpc's 120 s backoff cap.
  'grpc.initial_reconnect_backoff_ms': 100,
  'grpc.max_reconnect_backoff_ms': 1000,
  'grpc.min_reconnect_backoff_ms': 100,
};

/** Clients of one member, created from the root namespace. */
export interface MemberClients {
  readonly kv: any;
  readonly lease: any;
  readonly watch: any;
  readonly maintenance: any;
}

export interface Member {
  readonly index: number;
  readonly host: NetHost;
  readonly name: string;
  /** Mount point (tmpfs) or plain dir holding data/ and, while the disk is full, filler. */
  readonly dir: string;
  readonly clients: MemberClients;
  process: ServerProcess | undefined;
  paused: boolean;
}

let clusterCount = 0;

/** A 10.2xx.y.0/24 the root namespace has no route for (the host link adds one). Starting
 * from the pid keeps test processes that run in parallel on different candidates. */
function freeSubnet(): string {
  const routes = execFileSync('ip', ['-o', 'route', 'show'], { encoding: 'utf8' });
  for (let n = 0; n < 12_500; n++) {
    const k = (process.pid * 7 + clusterCount * 131 + n) % 12_500;
    const subnet = `10.${200 + Math.floor(k / 250)}.${k % 250}`;
    if (!routes.includes(`${subnet}.0/24`)) return subnet;
  }
  throw new Error('no free 10.2xx.y.0/24 for the fault cluster');
}

export class FaultCluster {
  readonly members: Member[];
  readonly network: NetworkPlan;
  private readonly workDir: string;
  private readonly mounts: string[] = [];
  private destroyed = false;

  private constructor(
    readonly options: FaultClusterOptions,
    readonly label: string,
  ) {
    const tag = `fc${process.pid % 100_000}${clusterCount++}`;
    const subnet = freeSubnet();
    const hosts = [1, 2, 3].map((n) => ({ ns: `${tag}n${n}`, ip: `${subnet}.${10 + n}` }));
    this.network = { switchNs: `${tag}sw`, hosts, hostIp: `${subnet}.100`, hostLink: `${tag}h` };
    this.workDir = mkdtempSync(join(tmpdir(), 'metastore-faults-'));
    this.members = hosts.map((host, index) => ({
      index,
      host,
      name: `m${index + 1}`,
      dir: join(this.workDir, `m${index + 1}`),
      clients: memberClients(`${host.ip}:${CLIENT_PORT}`),
      process: undefined,
      paused: false,
    }));
  }

  static async start(options: FaultClusterOptions): Promise<FaultCluster> {
    requireRoot('the fault-injection suite');
    const cluster = new FaultCluster(options, options.flavor);
    trackForCleanup({ label: `fault cluster ${cluster.network.switchNs}`, dispose: () => cluster.destroy(), disposeSync: () => cluster.destroySync() });
    createNetwork(cluster.network);
    for (const member of cluster.members) {
      mkdirSync(member.dir);
      if (options.tmpfsMiB !== undefined) {
        execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${options.tmpfsMiB}m`, 'tmpfs', member.dir]);
        cluster.mounts.push(member.dir);
      }
    }
    await Promise.all(cluster.members.map((m) => cluster.launch(m)));
    return cluster;
  }

  endpoint(i: number): string {
    return `${this.members[i]!.host.ip}:${CLIENT_PORT}`;
  }

  get endpoints(): string {
    return this.members.map((_, i) => this.endpoint(i)).join(',');
  }

  private initialCluster(): string {
    return this.members.map((m) => `${m.name}=http://${m.host.ip}:${PEER_PORT}`).join(',');
  }

  private command(member: Member): string[] {
    const client = `http://${member.host.ip}:${CLIENT_PORT}`;
    const peer = `http://${member.host.ip}:${PEER_PORT}`;
    const flags = ['--name', member.name, '--data-dir', join(member.dir, 'data'), '--listen-client-urls', client, '--advertise-client-urls', client];
    flags.push('--listen-peer-urls', peer, '--initial-advertise-peer-urls', peer, '--initial-cluster', this.initialCluster());
    if (this.options.flavor === 'etcd') return [findExecutable('etcd') ?? '/usr/bin/etcd', ...flags];
    return [process.execPath, join(this.options.buildRoot ?? REPO_ROOT, 'bin', 'metastore'), ...flags];
  }

  /** Starts the member's process and waits until it serves. */
  async launch(member: Member): Promise<void> {
    if (this.destroyed) throw new Error('fault cluster destroyed');
    const env: NodeJS.ProcessEnv = { ...process.env };
    for (const key of Object.keys(env)) if (key.startsWith('METASTORE_') || key.startsWith('ETCD_')) delete env[key];
    // `ip netns exec` execs the command, so the pid is the member's own (for kill and SIGSTOP).
    member.process = new ServerProcess(`${this.label} ${member.name}`, 'ip', ['netns', 'exec', member.host.ns, ...this.command(member)], env);
    member.paused = false;
    await member.process.waitForLog(READY_LINE, 60_000);
  }

  isRunning(i: number): boolean {
    return this.members[i]!.process?.isRunning() ?? false;
  }

  async kill9(i: number): Promise<void> {
    await this.members[i]!.process?.terminate('SIGKILL');
  }

  pause(i: number): void {
    const member = this.members[i]!;
    member.process?.child.kill('SIGSTOP');
    member.paused = true;
  }

  resume(i: number): void {
    const member = this.members[i]!;
    member.process?.child.kill('SIGCONT');
    member.paused = false;
  }

  /** Cuts member i off from its peers (clients still reach it). */
  isolate(i: number): void {
    const peers = this.members.filter((m) => m.index !== i);
    dropTraffic(
      this.members[i]!.host,
      peers.map((m) => m.host.ip),
    );
    for (const peer of peers) dropTraffic(peer.host, [this.members[i]!.host.ip]);
  }

  /** Cuts only the link between members i and j (both directions). */
  cutLink(i: number, j: number): void {
    dropTraffic(this.members[i]!.host, [this.members[j]!.host.ip]);
    dropTraffic(this.members[j]!.host, [this.members[i]!.host.ip]);
  }

  heal(): void {
    for (const m of this.members) healTraffic(m.host);
  }

  /** Fills member i's tmpfs to the last byte. */
  fillDisk(i: number): void {
    try {
      execFileSync('dd', ['if=/dev/zero', `of=${join(this.members[i]!.dir, 'filler')}`, 'bs=1M'], { stdio: 'ignore' });
    } catch {
      // dd stops with "No space left on device": that is the point.
    }
  }

  freeDisk(i: number): void {
    rmSync(join(this.members[i]!.dir, 'filler'), { force: true });
  }

  /** Each member's view: its id and the leader it knows (undefined: no answer). */
  async statuses(): Promise<Array<{ memberId: string; leader: string; raftTerm: number; revision: number } | undefined>> {
    return Promise.all(
      this.members.map(
        (m) =>
          new Promise<{ memberId: string; leader: string; raftTerm: number; revision: number } | undefined>((resolve) => {
            m.clients.maintenance.Status({}, { deadline: Date.now() + 1000 }, (error: Error | null, r: any) =>
              resolve(error ? undefined : { memberId: r.header.memberId, leader: r.leader, raftTerm: Number(r.raftTerm), revision: Number(r.header.revision) }),
            );
          }),
      ),
    );
  }

  /** Member i's ID as its Status reports it (waits until it answers). */
  async memberId(i: number): Promise<string> {
    return waitFor(async () => (await this.statuses())[i]?.memberId, {
      what: `member ${i + 1}'s status`,
      timeoutMs: 30_000,
      intervalMs: 50,
      until: (id): id is string => id !== undefined,
    });
  }

  /** Index of the leader a majority of members agree on (waits until there is one). */
  async leader(timeoutMs = 30_000): Promise<number> {
    return waitFor(
      async () => {
        const statuses = await this.statuses();
        const claims = statuses.filter((s) => s !== undefined && s.leader !== '0');
        for (const [i, s] of statuses.entries()) {
          if (s === undefined || s.leader !== s.memberId) continue;
          if (claims.filter((c) => c!.leader === s.memberId).length >= 2) return i;
        }
        return undefined;
      },
      { what: `a leader in the ${this.label} cluster`, timeoutMs, intervalMs: 50, until: (i): i is number => i !== undefined },
    );
  }

  /** etcdctl alarm disarm: deactivates every active alarm; returns how many there were. */
  async disarmAlarms(): Promise<number> {
    const maintenance = this.members[await this.leader()]!.clients.maintenance;
    const list = await alarm(maintenance, { action: ALARM_GET, memberID: '0', alarm: 0 });
    for (const a of list) await alarm(maintenance, { action: ALARM_DEACTIVATE, memberID: a.memberID, alarm: a.alarm });
    return list.length;
  }

  async destroy(): Promise<void> {
    for (const m of this.members) if (m.paused) this.resume(m.index);
    await Promise.all(this.members.map((m) => m.process?.terminate('SIGKILL')));
    this.destroySync();
  }

  destroySync(): void {
    this.destroyed = true;
    for (const m of this.members) {
      if (m.paused) this.resume(m.index);
      m.process?.killSync();
      for (const c of Object.values(m.clients)) c.close();
    }
    removeNetwork(this.network);
    for (const mount of this.mounts.splice(0)) {
      try {
        execFileSync('umount', ['-l', mount], { stdio: 'ignore' });
      } catch {
        // Not mounted any more.
      }
    }
    removeDirSync(this.workDir);
  }
}

const ALARM_GET = 0;
const ALARM_DEACTIVATE = 2;

function alarm(maintenance: any, request: object): Promise<Array<{ memberID: string; alarm: number }>> {
  return new Promise((resolve, reject) => {
    maintenance.Alarm(request, { deadline: Date.now() + 10_000 }, (error: Error | null, response: any) => (error ? reject(error) : resolve(response.alarms)));
  });
}

function memberClients(target: string): MemberClients {
  const credentials = grpc.credentials.createInsecure();
  return {
    kv: new clients.KV(target, credentials, CHANNEL_OPTIONS),
    lease: new clients.Lease(target, credentials, CHANNEL_OPTIONS),
    watch: new clients.Watch(target, credentials, CHANNEL_OPTIONS),
    maintenance: new clients.Maintenance(target, credentials, CHANNEL_OPTIONS),
  };
}
