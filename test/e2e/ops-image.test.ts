// The container image, built from the repository's Dockerfile and run with podman (no Docker
// engine runs here): the deployment guide's `docker run` line (ports published, data in a
// volume) serves a one-member store that the host's etcdctl reads and writes, /readiness
// answers, the HEALTHCHECK passes, the server runs as a non-root user with its data in the
// volume, and `podman stop` (SIGTERM) stops it gracefully (the server logs "stopped", exit 0).
//
// Everything happens under one temp dir (base image, storage, the volume) that is removed at
// the end. It builds from nothing every time, as CI starts clean: debootstrap (~1-2 min), the
// image build with `npm ci` inside (~2-3 min), then seconds for the checks.
import { chownSync, existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { importNodeBaseImage, privatePodman, type Podman } from '../support/podman.js';
import { freePorts } from '../support/ports.js';
import { REPO_ROOT } from '../support/servers.js';
import { etcdctl } from '../support/tools.js';
import { until } from '../support/ops.js';

const IMAGE = 'localhost/metastore:e2e';
const NAME = 'metastore-e2e';
const dir = mkdtempSync(join(tmpdir(), 'metastore-image-e2e-'));
const volume = join(dir, 'data');
let podman: Podman;
let teardown: (() => Promise<void>) | undefined;
let ports: { client: number; peer: number; metrics: number; health: number };
const timings: Record<string, number> = {};

async function timed<T>(step: string, fn: () => Promise<T>): Promise<T> {
  const start = Date.now();
  try {
    return await fn();
  } finally {
    timings[step] = Math.round((Date.now() - start) / 1000);
  }
}

beforeAll(async () => {
  const made = await privatePodman(join(dir, 'podman'));
  podman = made.podman;
  teardown = made.teardown;
  await timed('base image', () => importNodeBaseImage(podman, dir));
  await timed('build', () => podman(['build', '--pull=never', '--format', 'docker', '-t', IMAGE, REPO_ROOT], { timeoutMs: 900_000 }));
  const [client, peer, metrics, health] = await freePorts(4);
  ports = { client: client!, peer: peer!, metrics: metrics!, health: health! };
  // The guide's line, with the ports published on loopback only. The volume belongs to the
  // image's user (10001), as an operator's host directory must.
  mkdirSync(volume);
  chownSync(volume, 10001, 10001);
  await podman([
    'run',
    '-d',
    '--name',
    NAME,
    '--health-interval',
    'disable',
    '-p',
    `127.0.0.1:${ports.client}:2379`,
    '-p',
    `127.0.0.1:${ports.peer}:12379`,
    '-p',
    `127.0.0.1:${ports.metrics}:9090`,
    '-p',
    `127.0.0.1:${ports.health}:8080`,
    '-v',
    `${volume}:/var/lib/metastore`,
    IMAGE,
  ]);
}, 1_200_000);

afterAll(async () => {
  await teardown?.();
  rmSync(dir, { recursive: true, force: true });
  console.info(`image test timings (s): ${JSON.stringify(timings)}`);
}, 120_000);

describe('container image', () => {
  it('serves etcdctl and /readiness through the published ports, as a non-root user, with data in the volume', async () => {
    const logs = async () => (await podman(['logs', NAME])).stdout;
    await until('the ready log line', logs, (text) => text.includes('ready to serve client requests'), 60_000);
    const endpoint = `127.0.0.1:${ports.client}`;
    const put = await etcdctl(endpoint, ['put', 'from-host', 'hello']);
    expect(put.code, put.stderr).toBe(0);
    const get = await etcdctl(endpoint, ['get', 'from-host', '--print-value-only']);
    expect(get.stdout.trim()).toBe('hello');
    const members = await etcdctl(endpoint, ['member', 'list']);
    expect(members.stdout).toContain('metastore');

    const readiness = await fetch(`http://127.0.0.1:${ports.health}/readiness`);
    expect(readiness.status).toBe(200);
    expect(await readiness.json()).toEqual({ status: 'ready' });
    const metrics = await (await fetch(`http://127.0.0.1:${ports.metrics}/metrics`)).text();
    expect(metrics).toContain('etcd_server_has_leader 1');

    const health = await podman(['healthcheck', 'run', NAME], { allowFailure: true });
    expect(health.code, health.stderr).toBe(0);
    expect((await podman(['exec', NAME, 'id', '-u'])).stdout.trim()).toBe('10001');
    expect(existsSync(join(volume, 'db'))).toBe(true);
  });

  it('stops gracefully on SIGTERM (podman stop)', async () => {
    await podman(['stop', '--time', '30', NAME], { timeoutMs: 60_000 });
    const logs = (await podman(['logs', NAME])).stdout;
    expect(logs).toContain('"signal":"SIGTERM"');
    expect(logs).toContain('"msg":"stopped"');
    expect((await podman(['inspect', NAME, '--format', '{{.State.ExitCode}}'])).stdout.trim()).toBe('0');
  });
});
