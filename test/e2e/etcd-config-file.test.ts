// etcd's --config-file: one etcd-format YAML file starts real etcd 3.4.23 and MetaStore alike
// (each on its own free ports and data dir), and both serve what etcdctl asks; the log goes where
// the file's log-outputs says. A key MetaStore does not support stops it in one line, exit 2.

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { freePorts } from '../support/ports.js';
import { ServerProcess, disposeAll, removeDirSync, trackForCleanup } from '../support/processes.js';
import { READY_LINE, REPO_ROOT } from '../support/servers.js';
import { etcdctl, requireTool, run } from '../support/tools.js';
import { waitFor } from '../support/wait.js';

const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'etcd-config-file-'));
afterAll(async () => {
  await disposeAll();
  removeDirSync(scratch);
});

/** An etcd config file for one member on free loopback ports, with its own data dir and log file. */
async function etcdConfigFile(name: string): Promise<{ file: string; endpoint: string; logFile: string }> {
  const [client, peer] = await freePorts(2);
  const dir = path.join(scratch, name);
  fs.mkdirSync(dir);
  const logFile = path.join(dir, 'server.log');
  const file = path.join(dir, 'etcd.yaml');
  fs.writeFileSync(
    file,
    [
      `name: ${name}`,
      `data-dir: ${path.join(dir, 'data')}`,
      `listen-client-urls: http://127.0.0.1:${client}`,
      `advertise-client-urls: http://127.0.0.1:${client}`,
      `listen-peer-urls: http://127.0.0.1:${peer}`,
      `initial-advertise-peer-urls: http://127.0.0.1:${peer}`,
      `initial-cluster: ${name}=http://127.0.0.1:${peer}`,
      'initial-cluster-token: config-file-test',
      "initial-cluster-state: 'new'",
      'heartbeat-interval: 100',
      'election-timeout: 1000',
      'logger: zap',
      `log-outputs: [${logFile}]`,
      'enable-v2: false',
      "discovery: ''",
      '',
    ].join('\n'),
  );
  return { file, endpoint: `127.0.0.1:${client}`, logFile };
}

async function serve(label: string, command: string, args: string[], logFile: string, readyLine: string): Promise<ServerProcess> {
  const server = new ServerProcess(label, command, args, { ...process.env });
  trackForCleanup({ label, dispose: () => server.terminate('SIGKILL').then(() => undefined), disposeSync: () => server.killSync() });
  // The ready line goes to the file the config names, not to the process's output.
  await waitFor(
    () => {
      if (!server.isRunning()) throw new Error(`${label} exited: ${server.logTail()}`);
      return fs.existsSync(logFile) && fs.readFileSync(logFile, 'utf8').includes(readyLine);
    },
    { what: `${label} to log "${readyLine}" to ${logFile}`, intervalMs: 50 },
  );
  return server;
}

describe("etcd's --config-file", () => {
  it('the same etcd config file starts real etcd and MetaStore; both serve, both log to the file it names', async () => {
    const etcdBinary = await requireTool('etcd', 'etcd-server');
    // etcd's zap logger (which writes to log-outputs) says it serves clients in its own words.
    for (const [label, command, prefix, readyLine] of [
      ['etcd', etcdBinary, [], 'serving client traffic'],
      ['metastore', process.execPath, [path.join(REPO_ROOT, 'bin/metastore')], READY_LINE],
    ] as const) {
      const { file, endpoint, logFile } = await etcdConfigFile(label);
      const server = await serve(label, command, [...prefix, '--config-file', file], logFile, readyLine);
      expect(await etcdctl(endpoint, ['put', 'from', label])).toMatchObject({ code: 0, stdout: 'OK\n' });
      expect((await etcdctl(endpoint, ['get', 'from', '--print-value-only'])).stdout).toBe(`${label}\n`);
      expect(server.logs()).not.toContain(readyLine);
      await server.terminate('SIGTERM');
    }
  });

  it('a file with an option MetaStore does not support stops it in one line with exit code 2', async () => {
    const file = path.join(scratch, 'unsupported.yaml');
    fs.writeFileSync(file, 'name: x\nenable-v2: true\n');
    const result = await run(process.execPath, [path.join(REPO_ROOT, 'bin/metastore'), '--config-file', file], { timeoutMs: 30_000 });
    expect(result.code).toBe(2);
    expect(result.stderr).toBe(
      `config error: etcd config file ${file}: enable-v2: an etcd option MetaStore does not support (see metastore --help for the etcd flags it does)\n`,
    );
  });
});
