// compose.yaml's three members, as compose would start them from the image (its baked-in
// config, then each service's environment), on loopback: the service names resolve to
// 127.0.0.1 and every member gets free ports of its own. They form one cluster that lists
// the guide's member IDs and serves writes.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { endpointStatuses, settledOn, until } from '../support/ops.js';
import { freePorts } from '../support/ports.js';
import { ServerProcess, removeDirSync, trackForCleanup } from '../support/processes.js';
import { READY_LINE, REPO_ROOT } from '../support/servers.js';
import { etcdctl } from '../support/tools.js';

const scratch = mkdtempSync(join(tmpdir(), 'metastore-compose-e2e-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

describe('compose.yaml', () => {
  it("the guide's three nodes (member IDs 1-3) form one cluster", async () => {
    const compose = parse(readFileSync(join(REPO_ROOT, 'compose.yaml'), 'utf8'), { merge: true });
    const names = Object.keys(compose.services);
    expect(names).toEqual(['node1', 'node2', 'node3']);
    const ports = await freePorts(4 * names.length);
    const own = (i: number) => ({ client: ports[4 * i]!, peer: ports[4 * i + 1]!, health: ports[4 * i + 2]!, metrics: ports[4 * i + 3]! });
    const local = (text: string) =>
      text
        .replace(/node(\d):12379/g, (_, n) => `127.0.0.1:${own(Number(n) - 1).peer}`)
        .replace(/node(\d):2379/g, (_, n) => `127.0.0.1:${own(Number(n) - 1).client}`);

    const servers = names.map((name, i) => {
      const service = compose.services[name];
      expect(service.build).toBe('.');
      expect(service.volumes[0]).toMatch(/:\/var\/lib\/metastore$/);
      const dataDir = join(scratch, name);
      const env: NodeJS.ProcessEnv = { PATH: process.env.PATH };
      for (const [key, value] of Object.entries<string>(service.environment)) env[key] = local(value);
      // Inside its container each member binds every interface on the image's ports; here
      // they share loopback, so the binds move to each member's own ports.
      Object.assign(env, {
        METASTORE_SERVER_DATA_DIR: dataDir,
        METASTORE_SERVER_GRPC_ADDRESS: '127.0.0.1',
        METASTORE_SERVER_GRPC_PORT: String(own(i).client),
        METASTORE_SERVER_RAFT_ADDRESS: '127.0.0.1',
        METASTORE_SERVER_RAFT_PORT: String(own(i).peer),
        METASTORE_SERVER_HEALTH_PORT: String(own(i).health),
        METASTORE_SERVER_MONITORING_PROMETHEUS_PORT: String(own(i).metrics),
      });
      const argv = [join(REPO_ROOT, 'bin', 'metastore'), '--config', join(REPO_ROOT, 'deploy', 'docker', 'metastore.yaml')];
      const server = new ServerProcess(`compose ${name}`, process.execPath, argv, env);
      trackForCleanup({
        label: server.label,
        dispose: async () => {
          await server.terminate('SIGKILL');
          removeDirSync(dataDir);
        },
        disposeSync: () => server.killSync(),
      });
      return server;
    });
    await Promise.all(servers.map((s) => s.waitForLog(READY_LINE, 30_000)));
    const endpoints = names.map((_, i) => `127.0.0.1:${own(i).client}`).join(',');
    await until('a leader', () => endpointStatuses(endpoints), settledOn(3));
    const list = await etcdctl(endpoints, ['member', 'list']);
    expect(list.code, list.stderr).toBe(0);
    for (const i of names.keys())
      expect(list.stdout).toContain(`${i + 1}, started, node${i + 1}, http://127.0.0.1:${own(i).peer}, http://127.0.0.1:${own(i).client}`);
    const put = await etcdctl(endpoints, ['put', 'k', 'v']);
    expect(put.code, put.stderr).toBe(0);
  });
});
