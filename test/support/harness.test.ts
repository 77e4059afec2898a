// Smoke test of the end-to-end harness against real etcd: start, put/get through etcdctl,
// stop, and prove nothing is left behind (process gone, temp data dir removed).
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { claimAcrossProcesses, freePorts } from './ports.js';
import { pidAlive } from './processes.js';
import { startEtcd, startMetaStore } from './servers.js';
import { etcdctl } from './tools.js';

describe('e2e harness', () => {
  it('hands out distinct free ports', async () => {
    const ports = await freePorts(8);
    expect(new Set(ports).size).toBe(8);
    for (const port of ports) expect(port).toBeGreaterThan(0);
  });

  it('claims a port across processes: a live holder keeps it, a dead one loses it', async () => {
    const [port] = await freePorts(1);
    const file = path.join(os.tmpdir(), 'metastore-test-ports', String(port));
    expect(Number(fs.readFileSync(file, 'latin1'))).toBe(process.pid);
    expect(claimAcrossProcesses(port!)).toBe(false);
    const holder = spawn('sleep', ['60'], { stdio: 'ignore' });
    try {
      fs.writeFileSync(file, String(holder.pid));
      expect(claimAcrossProcesses(port!)).toBe(false);
    } finally {
      holder.kill('SIGKILL');
      await new Promise((resolve) => holder.once('exit', resolve));
    }
    expect(claimAcrossProcesses(port!)).toBe(true);
    expect(Number(fs.readFileSync(file, 'latin1'))).toBe(process.pid);
  });

  it('starts etcd, talks to it with etcdctl, and stops it cleanly', async () => {
    const etcd = await startEtcd();
    expect(fs.existsSync(etcd.dataDir)).toBe(true);
    expect(pidAlive(etcd.pid)).toBe(true);
    expect(etcd.logs()).toContain('ready to serve client requests');

    const put = await etcdctl(etcd.endpoint, ['put', 'a', '1']);
    expect(put).toEqual({ code: 0, stdout: 'OK\n', stderr: '' });
    const get = await etcdctl(etcd.endpoint, ['get', 'a']);
    expect(get).toEqual({ code: 0, stdout: 'a\n1\n', stderr: '' });
    const bad = await etcdctl(etcd.endpoint, ['get', '']);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain('Error: etcdserver: key is not provided');

    await etcd.stop();
    expect(fs.existsSync(etcd.dataDir)).toBe(false);
    expect(pidAlive(etcd.pid)).toBe(false);
  }, 60_000);

  it('kill9 leaves no process and no data dir', async () => {
    const etcd = await startEtcd();
    await etcd.kill9();
    expect(pidAlive(etcd.pid)).toBe(false);
    expect(fs.existsSync(etcd.dataDir)).toBe(false);
  }, 60_000);

  it('fails with the log tail when the server cannot start', async () => {
    await expect(startEtcd({ extraArgs: ['--no-such-flag'], readyTimeoutMs: 10_000 })).rejects.toThrow(
      /exited .*before logging "ready to serve client requests"[\s\S]*no-such-flag/,
    );
  }, 30_000);

  it('restarts MetaStore on the same data dir, after SIGTERM and after kill -9', async () => {
    const ms = await startMetaStore();
    expect(await etcdctl(ms.endpoint, ['put', 'k', 'v'])).toMatchObject({ code: 0, stdout: 'OK\n' });
    const firstPid = ms.pid;
    await ms.restart();
    expect(ms.pid).not.toBe(firstPid);
    expect(pidAlive(firstPid)).toBe(false);
    expect(await etcdctl(ms.endpoint, ['get', 'k', '--print-value-only'])).toMatchObject({ code: 0, stdout: 'v\n' });
    const secondPid = ms.pid;
    await ms.kill9();
    expect(pidAlive(secondPid)).toBe(false);
    expect(ms.isRunning()).toBe(false);
    await ms.restart();
    expect(await etcdctl(ms.endpoint, ['get', 'k', '--print-value-only'])).toMatchObject({ code: 0, stdout: 'v\n' });
    const thirdPid = ms.pid;
    await ms.destroy();
    expect(pidAlive(thirdPid)).toBe(false);
    expect(fs.existsSync(ms.dataDir)).toBe(false);
  }, 120_000);

  it('fails (never skips) when MetaStore cannot start', async () => {
    await expect(startMetaStore({ extraArgs: ['--no-such-flag'], readyTimeoutMs: 20_000 })).rejects.toThrow(/metastore .*(exited|did not log)/);
  }, 30_000);
});
