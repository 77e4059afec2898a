// End to end: the real HAProxy (Debian haproxy) with configs/haproxy.cfg, its addresses set
// through the file's environment variables, in front of a local 3-member MetaStore cluster.
// etcdctl talks only to HAProxy. A stopped member must be marked DOWN through its /readiness
// check (seen on HAProxy's stats socket) while traffic keeps flowing, and marked UP again after
// a restart.

import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePorts } from '../support/ports.js';
import { ServerProcess, removeDirSync, trackForCleanup } from '../support/processes.js';
import { REPO_ROOT, startMetaStoreCluster, type MetaStoreCluster } from '../support/servers.js';
import { waitFor } from '../support/wait.js';
import { etcdctl, requireTool } from '../support/tools.js';

/** HAProxy's runtime API: one command over the stats socket, the whole answer. */
function statsCommand(socketPath: string, command: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(socketPath);
    let out = '';
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => (out += chunk));
    socket.on('end', () => resolve(out));
    socket.on('error', reject);
    socket.write(`${command}\n`);
  });
}

/** Status (UP, DOWN, ...) of each server of the backend, from `show stat` CSV. */
async function serverStatus(socketPath: string): Promise<Record<string, string>> {
  const csv = await statsCommand(socketPath, 'show stat');
  const [header, ...rows] = csv.trim().split('\n');
  const columns = header!.replace(/^# /, '').split(',');
  const [px, sv, st] = ['pxname', 'svname', 'status'].map((c) => columns.indexOf(c));
  const status: Record<string, string> = {};
  for (const row of rows) {
    const cells = row.split(',');
    if (cells[px!] === 'metastore_members' && /^node\d$/.test(cells[sv!] ?? '')) status[cells[sv!]!] = cells[st!]!;
  }
  return status;
}

describe('ops: HAProxy in front of a 3-member cluster', () => {
  let cluster: MetaStoreCluster;
  let haproxy: ServerProcess;
  let lbEndpoint: string;
  let socketPath: string;
  let tempDir: string;

  const waitForStatus = (node: string, status: string) =>
    waitFor(async () => (await serverStatus(socketPath))[node] === status, { what: `HAProxy to report ${node} ${status}` });

  beforeAll(async () => {
    const binary = await requireTool('haproxy', 'haproxy');
    await requireTool('etcdctl', 'etcd-client');
    cluster = await startMetaStoreCluster(3);
    const [frontPort, statsPort] = await freePorts(2);
    tempDir = fs.mkdtempSync(path.join(os.tmpdir(), 'metastore-haproxy-'));
    socketPath = path.join(tempDir, 'stats.sock');
    lbEndpoint = `127.0.0.1:${frontPort}`;
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      METASTORE_LB_BIND: lbEndpoint,
      METASTORE_LB_STATS_SOCKET: socketPath,
      METASTORE_LB_STATS_BIND: `127.0.0.1:${statsPort}`,
      METASTORE_LB_CHECK_INTER: '200ms',
    };
    cluster.members.forEach((member, i) => {
      env[`METASTORE_NODE${i + 1}`] = `127.0.0.1:${member.clientPort}`;
      env[`METASTORE_NODE${i + 1}_HEALTH_PORT`] = String(member.healthPort);
    });
    const config = path.join(REPO_ROOT, 'configs', 'haproxy.cfg');
    // -db: stay in the foreground, logs on stdout (the config logs to stdout).
    haproxy = new ServerProcess('haproxy', binary, ['-db', '-f', config], env);
    const untrack = trackForCleanup({
      label: 'haproxy',
      dispose: async () => {
        await haproxy.terminate('SIGTERM');
        removeDirSync(tempDir);
        untrack();
      },
      disposeSync: () => {
        haproxy.killSync();
        removeDirSync(tempDir);
      },
    });
    try {
      for (const node of ['node1', 'node2', 'node3']) await waitForStatus(node, 'UP');
    } catch (error) {
      throw new Error(`${String(error)}\nHAProxy log:\n${haproxy.logTail()}`);
    }
  }, 90_000);

  afterAll(async () => {
    await haproxy?.terminate('SIGTERM');
    await cluster?.destroy();
    if (tempDir) removeDirSync(tempDir);
    expect(haproxy?.isRunning()).toBe(false);
  }, 60_000);

  it('etcdctl through HAProxy; a stopped member is marked DOWN by /readiness and traffic continues; a restarted one comes back UP', async () => {
    const put = await etcdctl(lbEndpoint, ['put', 'lb/a', '1']);
    expect(put.code, put.stderr).toBe(0);
    const get = await etcdctl(lbEndpoint, ['get', 'lb/a', '--print-value-only']);
    expect([get.code, get.stdout.trim()]).toEqual([0, '1']);

    // Stop a follower, so the cluster keeps its leader and every request through HAProxy must
    // succeed (stopping the leader would add an election to the test, not to HAProxy).
    const leaderIndex = await waitFor(
      async () => {
        for (let i = 0; i < cluster.members.length; i++) {
          const text = await (await fetch(`http://127.0.0.1:${cluster.members[i]!.metricsPort}/metrics`)).text();
          if (/^etcd_server_is_leader 1$/m.test(text)) return i;
        }
        return undefined;
      },
      { what: 'a leader', until: (index): index is number => index !== undefined },
    );
    const victimIndex = (leaderIndex + 1) % 3;
    const victim = cluster.members[victimIndex]!;
    const node = `node${victimIndex + 1}`;
    await victim.stop();
    await waitForStatus(node, 'DOWN');
    expect(haproxy.logs()).toContain(`Server metastore_members/${node} is DOWN`);
    expect(Object.values(await serverStatus(socketPath)).filter((s) => s === 'UP')).toHaveLength(2);

    for (let i = 0; i < 6; i++) {
      const write = await etcdctl(lbEndpoint, ['put', `lb/k${i}`, `v${i}`]);
      expect(write.code, write.stderr).toBe(0);
      const read = await etcdctl(lbEndpoint, ['get', `lb/k${i}`, '--print-value-only']);
      expect([read.code, read.stdout.trim()], read.stderr).toEqual([0, `v${i}`]);
    }

    await victim.restart();
    await waitForStatus(node, 'UP');
    expect(haproxy.logs()).toContain(`Server metastore_members/${node} is UP`);
    // The restarted member caught up and serves through HAProxy like the others.
    const all = await etcdctl(lbEndpoint, ['get', 'lb/', '--prefix', '--keys-only']);
    expect(all.code, all.stderr).toBe(0);
    expect(all.stdout.split('\n').filter(Boolean)).toHaveLength(7);
  }, 120_000);
});
