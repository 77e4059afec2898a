// --advertise-client-urls with port 0. etcd 3.4.23 accepts it and publishes port 0 as given
// (member list shows http://127.0.0.1:0, which no client can dial). MetaStore publishes the
// port a port-0 listen URL of the same scheme and host got, and port 0 (as etcd) otherwise.

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { freePorts } from '../support/ports.js';
import { removeDirSync, ServerProcess, trackForCleanup } from '../support/processes.js';
import { READY_LINE, REPO_ROOT } from '../support/servers.js';
import { etcdctl, requireTool } from '../support/tools.js';

async function spawnServer(kind: 'metastore' | 'etcd', args: readonly string[]): Promise<ServerProcess> {
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const key of Object.keys(env)) if (key.startsWith('METASTORE_') || key.startsWith('ETCD_')) delete env[key];
  const server =
    kind === 'etcd'
      ? new ServerProcess('etcd port 0', await requireTool('etcd', 'etcd-server'), args, env)
      : new ServerProcess('metastore port 0', process.execPath, [path.join(REPO_ROOT, 'bin', 'metastore'), ...args], env);
  trackForCleanup({ label: server.label, dispose: async () => void (await server.terminate('SIGKILL')), disposeSync: () => server.killSync() });
  return server;
}

/** The first client port the server says it bound (both log it at start). */
function boundClientPort(logs: string): number {
  const match = /serving insecure client requests on 127\.0\.0\.1:(\d+)|"address":"http:\/\/127\.0\.0\.1:(\d+)","msg":"listening for client traffic/.exec(logs);
  if (!match) throw new Error(`no bound client port in the log:\n${logs}`);
  return Number(match[1] ?? match[2]);
}

describe('an advertised client URL with port 0', () => {
  it.each([
    ['metastore', 'http://127.0.0.1:0,http://127.0.0.2:0', (bound: number) => [`http://127.0.0.1:${bound}`, 'http://127.0.0.2:0']],
    ['etcd', 'http://127.0.0.1:0,http://127.0.0.2:0', () => ['http://127.0.0.1:0', 'http://127.0.0.2:0']],
  ] as const)(
    '%s publishes %s as expected',
    async (kind, advertise, published) => {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), `advertise-zero-${kind}-`));
      trackForCleanup({ label: dir, dispose: async () => removeDirSync(dir), disposeSync: () => removeDirSync(dir) });
      const [peerPort] = await freePorts(1);
      const peer = `http://127.0.0.1:${peerPort}`;
      const server = await spawnServer(kind, [
        ...['--name', 'z', '--data-dir', path.join(dir, 'data')],
        ...['--listen-client-urls', 'http://127.0.0.1:0', '--advertise-client-urls', advertise],
        ...['--listen-peer-urls', peer, '--initial-advertise-peer-urls', peer, '--initial-cluster', `z=${peer}`],
      ]);
      try {
        await server.waitForLog(READY_LINE, 60_000);
        // etcd logs the address it serves on just after its ready line.
        await server.waitForLog(kind === 'etcd' ? 'serving insecure client requests on' : 'listening for client traffic', 30_000);
        const bound = boundClientPort(server.logs());
        const list = await etcdctl(`127.0.0.1:${bound}`, ['member', 'list', '-w', 'json']);
        const clientUrls = (JSON.parse(list.stdout) as { members: { clientURLs: string[] }[] }).members[0]?.clientURLs;
        // etcd sorts the advertised URLs; both lists here are in that order.
        expect(clientUrls).toEqual(published(bound));
      } finally {
        await server.terminate('SIGTERM');
      }
    },
    90_000,
  );
});
