// Limits and logging, end to end where a process is needed:
// - request_timeout and slow-request logging in the unary call wrapper (in-process, with a
//   call that never answers), and through a real 3-member cluster that lost its quorum;
// - max_connections: the connection beyond the limit is refused, a freed slot is reusable;
// - log.output file reopened on SIGHUP (logrotate's rename + postrotate).

import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { afterEach, describe, expect, it } from 'vitest';
import { setRequestLimits, unary } from '../../src/grpc/handler.js';
import { clients } from '../../src/grpc/proto.js';
import { freePorts } from '../support/ports.js';
import { removeDirSync, trackForCleanup } from '../support/processes.js';
import { READY_LINE, REPO_ROOT, etcdStyleFlags, startMetaStore, startMetaStoreCluster } from '../support/servers.js';
import { waitFor } from '../support/wait.js';
import { etcdctl } from '../support/tools.js';

describe('ops limits: request timeout and slow requests (in-process)', () => {
  afterEach(() => setRequestLimits(undefined));

  it('a call unanswered after request_timeout fails with etcd\'s "request timed out"; slow calls are reported with their request', async () => {
    const slow: Array<{ method: string; request: unknown; tookMs: number; code: number }> = [];
    setRequestLimits({ timeoutMs: 50, slowMs: 20, onSlow: (method, request, tookMs, code) => slow.push({ method, request, tookMs, code }) });
    const handler = unary<{ key: Buffer }>('Put', () => new Promise(() => undefined));
    const request = { key: Buffer.from('slow/key') };
    const answer = await new Promise<{ error: Partial<grpc.ServiceError> | null }>((resolve) => {
      handler({ request } as unknown as grpc.ServerUnaryCall<{ key: Buffer }, unknown>, (error) => resolve({ error }));
    });
    expect(answer.error).toMatchObject({ code: grpc.status.UNAVAILABLE, details: 'etcdserver: request timed out' });
    expect(slow).toHaveLength(1);
    expect(slow[0]).toMatchObject({ method: 'Put', request, code: grpc.status.UNAVAILABLE });

    // A quick answer is neither timed out nor slow.
    const quick = unary<{ key: Buffer }>('Range', async () => ({ ok: true }));
    const result = await new Promise<unknown>((resolve) => {
      quick({ request } as unknown as grpc.ServerUnaryCall<{ key: Buffer }, unknown>, (error, response) => resolve(error ?? response));
    });
    expect(result).toEqual({ ok: true });
    expect(slow).toHaveLength(1);
  });
});

describe('ops limits (processes)', () => {
  it('request_timeout through a real cluster without quorum; the slow request is logged with method, key and tookMs', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'metastore-limits-'));
    const config = path.join(dir, 'limits.yaml');
    fs.writeFileSync(config, 'server:\n  limits:\n    request_timeout: "1s"\n  monitoring:\n    slow_request_threshold: "100ms"\n');
    // A long election timeout: nothing changes in the cluster while the request waits.
    const cluster = await startMetaStoreCluster(3, {
      extraArgs: ['--config', config, '--heartbeat-interval', '500', '--election-timeout', '5000'],
      readyTimeoutMs: 60_000,
    });
    try {
      const [target, ...others] = cluster.members;
      // Members are ready before the first election ends: wait for a leader.
      await waitFor(async () => (await etcdctl(target!.endpoint, ['put', 'quorum/ok', '1'])).code === 0, { what: 'a leader', timeoutMs: 40_000 });
      // Freeze the other two: the target can neither commit (leader) nor reach its leader.
      for (const member of others) process.kill(member!.pid, 'SIGSTOP');
      try {
        const stuck = await etcdctl(target!.endpoint, ['--command-timeout=20s', 'put', 'quorum/stuck', '2']);
        expect(stuck.code).not.toBe(0);
        expect(stuck.stderr).toContain('etcdserver: request timed out');
      } finally {
        for (const member of others) process.kill(member!.pid, 'SIGCONT');
      }
      await target!.waitForLog('"msg":"slow request"', 5000);
      const line = target!
        .logs()
        .split('\n')
        .find((l) => l.includes('"msg":"slow request"') && l.includes('quorum/stuck'));
      expect(line, target!.logs()).toBeDefined();
      const entry = JSON.parse(line!) as Record<string, unknown>;
      expect(entry).toMatchObject({ method: 'Put', key: 'quorum/stuck', code: grpc.status.UNAVAILABLE });
      expect(typeof entry.tookMs).toBe('number');
    } finally {
      await cluster.destroy();
      removeDirSync(dir);
    }
  }, 120_000);

  it('max_connections: the connection beyond the limit is refused; a closed one frees its slot', async () => {
    const server = await startMetaStore({ env: { METASTORE_SERVER_LIMITS_MAX_CONNECTIONS: '2' } });
    const address = `127.0.0.1:${server.clientPort}`;
    const opened: grpc.Client[] = [];
    // Each client has its own subchannel pool, hence its own TCP connection.
    const status = (client: grpc.Client): Promise<grpc.ServiceError | null> =>
      new Promise((resolve) => {
        (client as unknown as { status(r: object, o: grpc.CallOptions, cb: (e: grpc.ServiceError | null) => void): void }).status(
          {},
          { deadline: Date.now() + 5000 },
          (error) => resolve(error),
        );
      });
    const connect = (): grpc.Client => {
      const client = new clients.Maintenance(address, grpc.credentials.createInsecure(), { 'grpc.use_local_subchannel_pool': 1 });
      opened.push(client);
      return client;
    };
    try {
      const first = connect();
      const second = connect();
      expect(await status(first)).toBeNull();
      expect(await status(second)).toBeNull();
      const third = connect();
      const refused = await status(third);
      expect(refused?.code).toBe(grpc.status.UNAVAILABLE);
      await server.waitForLog('refused client connection: max_connections reached', 5000);
      third.close();

      first.close();
      // The server frees the slot when it sees the close; a new client gets in then.
      await waitFor(
        async () => {
          const client = connect();
          const error = await status(client);
          if (error === null) return true;
          client.close();
          return false;
        },
        { what: 'a freed connection slot', intervalMs: 50 },
      );
      expect(await status(second)).toBeNull();
    } finally {
      for (const client of opened) client.close();
      await server.destroy();
    }
  }, 60_000);

  it('log.output is reopened on SIGHUP: after a rename, new lines land in a new file', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'metastore-sighup-'));
    const logFile = path.join(dir, 'log', 'metastore.log');
    const [client, peer, health, metrics] = await freePorts(4);
    const flags = etcdStyleFlags({ name: 'default', clientPort: client!, peerPort: peer!, dataDir: path.join(dir, 'data') });
    const env: NodeJS.ProcessEnv = { ...process.env };
    for (const key of Object.keys(env)) if (key.startsWith('METASTORE_')) delete env[key];
    Object.assign(env, {
      METASTORE_SERVER_HEALTH_PORT: String(health),
      METASTORE_SERVER_MONITORING_PROMETHEUS_PORT: String(metrics),
      METASTORE_SERVER_LOG_OUTPUT: logFile,
    });
    const child = spawn(process.execPath, [path.join(REPO_ROOT, 'bin', 'metastore'), ...flags], { env, stdio: 'ignore' });
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    const untrack = trackForCleanup({
      label: 'metastore (file log)',
      dispose: async () => {
        if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
        await exited;
        removeDirSync(dir);
        untrack();
      },
      disposeSync: () => {
        child.kill('SIGKILL');
        removeDirSync(dir);
      },
    });
    const read = (file: string): string => (fs.existsSync(file) ? fs.readFileSync(file, 'utf8') : '');
    await waitFor(() => read(logFile).includes(READY_LINE), { what: 'the ready line in the log file', intervalMs: 50 });

    const rotated = `${logFile}.1`;
    fs.renameSync(logFile, rotated);
    child.kill('SIGHUP');
    await waitFor(() => read(logFile).includes('reopened log output on SIGHUP'), { what: 'a new log file', intervalMs: 50 });
    const put = await etcdctl(`127.0.0.1:${client}`, ['put', 'after', 'rotation']);
    expect(put.code, put.stderr).toBe(0);
    child.kill('SIGTERM');
    await exited;
    expect(child.exitCode).toBe(0);
    const fresh = read(logFile);
    expect(fresh).toContain('"msg":"stopped"');
    expect(fresh).not.toContain(READY_LINE);
    expect(read(rotated)).toContain(READY_LINE);
    expect(read(rotated)).not.toContain('"msg":"stopped"');
    await (async () => {
      removeDirSync(dir);
      untrack();
    })();
  }, 60_000);
});
