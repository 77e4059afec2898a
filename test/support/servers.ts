// Launchers for real etcd and for MetaStore as single-member servers on loopback.
//
// Both get the same etcd-style command line (MetaStore accepts etcd's server flags), free
// ports picked at run time and a fresh temp data dir, and both are "ready" when they log
// "ready to serve client requests". Every server is registered for cleanup (processes.ts).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePorts } from './ports.js';
import { ServerProcess, removeDirSync, trackForCleanup, type ExitInfo } from './processes.js';
import { requireTool } from './tools.js';

export const READY_LINE = 'ready to serve client requests';
/** What a MetaStore member logs when it serves (serializable reads, health) without a leader. */
export const NO_LEADER_SERVING_LINE = 'serving client requests without a leader';
const DEFAULT_READY_TIMEOUT_MS = 30_000;

/** The repository root, resolved from this file's location (test/support/servers.ts). */
export const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));

export interface ServerOptions {
  /** Extra command-line flags appended after the standard ones. */
  extraArgs?: readonly string[];
  /** Options for node itself, before the script (benchmarks: --cpu-prof). */
  nodeArgs?: readonly string[];
  /** Client URLs' scheme (default http); with https, extraArgs bring the certificate flags. */
  clientScheme?: 'http' | 'https';
  /** Extra environment variables for the server process. */
  env?: Record<string, string>;
  /** Bound on the wait for the ready log line (default 30 s). */
  readyTimeoutMs?: number;
  /** MetaStore only: the log line that means started (default READY_LINE; a member that can
   * never find a leader logs NO_LEADER_SERVING_LINE instead). */
  readyLine?: string;
  /** Member name (default "default"). */
  name?: string;
  /** MetaStore only: ports chosen by the caller (a cluster needs all peer ports up front). */
  ports?: { client: number; peer: number; health: number; metrics: number };
  /** MetaStore only: --initial-cluster value replacing the single-member default. */
  initialCluster?: string;
  /** MetaStore only: start on this existing data dir (e.g. a restored snapshot) instead of a
   * fresh temp dir. It is removed with the handle like a fresh one. */
  dataDir?: string;
}

/** The single-member etcd server flags shared by etcd and MetaStore. */
export function etcdStyleFlags(opts: {
  name: string;
  clientPort: number;
  peerPort: number;
  dataDir: string;
  initialCluster?: string;
  clientScheme?: 'http' | 'https';
}): string[] {
  const client = `${opts.clientScheme ?? 'http'}://127.0.0.1:${opts.clientPort}`;
  const peer = `http://127.0.0.1:${opts.peerPort}`;
  return [
    '--name',
    opts.name,
    '--data-dir',
    opts.dataDir,
    '--listen-client-urls',
    client,
    '--advertise-client-urls',
    client,
    '--listen-peer-urls',
    peer,
    '--initial-advertise-peer-urls',
    peer,
    '--initial-cluster',
    opts.initialCluster ?? `${opts.name}=${peer}`,
  ];
}

function makeTempDir(prefix: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

export interface EtcdHandle {
  /** http://127.0.0.1:<clientPort> */
  readonly endpoint: string;
  readonly clientPort: number;
  readonly peerPort: number;
  readonly dataDir: string;
  readonly pid: number;
  /** SIGTERM, await exit, remove the data dir. */
  stop(): Promise<void>;
  /** SIGKILL, await exit, remove the data dir. */
  kill9(): Promise<void>;
  /** Everything etcd wrote to stdout and stderr so far. */
  logs(): string;
}

/** Starts real etcd 3.4 (`etcd` from Debian etcd-server) as a single member. */
export async function startEtcd(options: ServerOptions = {}): Promise<EtcdHandle> {
  const binary = await requireTool('etcd', 'etcd-server');
  const [clientPort, peerPort] = await freePorts(2);
  if (clientPort === undefined || peerPort === undefined) throw new Error('startEtcd: no ports');
  const dataDir = makeTempDir('etcd-e2e-');
  const name = options.name ?? 'default';
  const clientScheme = options.clientScheme ?? 'http';
  const args = [...etcdStyleFlags({ name, clientPort, peerPort, dataDir, clientScheme }), ...(options.extraArgs ?? [])];
  const env: NodeJS.ProcessEnv = { ...process.env, ...options.env };
  // ETCD_* variables in the test environment would silently reconfigure the server.
  for (const key of Object.keys(env)) if (key.startsWith('ETCD_') && !(options.env && key in options.env)) delete env[key];
  const server = new ServerProcess(`etcd :${clientPort}`, binary, args, env);

  let untrack = (): void => undefined;
  const dispose = async (signal: NodeJS.Signals): Promise<void> => {
    await server.terminate(signal);
    removeDirSync(dataDir);
    untrack();
  };
  untrack = trackForCleanup({
    label: server.label,
    dispose: () => dispose('SIGKILL'),
    disposeSync: () => {
      server.killSync();
      removeDirSync(dataDir);
    },
  });

  try {
    await server.waitForLog(READY_LINE, options.readyTimeoutMs ?? DEFAULT_READY_TIMEOUT_MS);
  } catch (error) {
    await dispose('SIGKILL');
    throw error;
  }
  const pid = server.pid;
  if (pid === undefined) throw new Error('startEtcd: no pid');
  return {
    endpoint: `${clientScheme}://127.0.0.1:${clientPort}`,
    clientPort,
    peerPort,
    dataDir,
    pid,
    stop: () => dispose('SIGTERM'),
    kill9: () => dispose('SIGKILL'),
    logs: () => server.logs(),
  };
}

export interface MetaStoreHandle {
  /** http://127.0.0.1:<clientPort> */
  readonly endpoint: string;
  readonly clientPort: number;
  readonly peerPort: number;
  /** METASTORE_SERVER_HEALTH_PORT */
  readonly healthPort: number;
  /** METASTORE_SERVER_MONITORING_PROMETHEUS_PORT */
  readonly metricsPort: number;
  readonly dataDir: string;
  /** pid of the current incarnation. */
  readonly pid: number;
  isRunning(): boolean;
  /** SIGTERM, await exit. Keeps the data dir so restart() can reuse it. */
  stop(): Promise<void>;
  /** SIGKILL, await exit. Keeps the data dir so restart() can reuse it. */
  kill9(): Promise<void>;
  /** Stops the current incarnation if running (SIGTERM), then starts a new one on the same
   * data dir and ports and waits until it is ready. */
  restart(options?: { readyTimeoutMs?: number }): Promise<void>;
  /** Kills the process if running and removes the data dir; the handle is dead afterwards. */
  destroy(): Promise<void>;
  /** Output of every incarnation so far, each introduced by a "[harness] start #n" line. */
  logs(): string;
  /** Resolves when the current incarnation has logged a line containing `text`. */
  waitForLog(text: string, timeoutMs?: number): Promise<void>;
  /** Settles when the current incarnation has exited (on its own or stopped), with its exit code. */
  exited(): Promise<ExitInfo>;
}

/**
 * Starts MetaStore (`node <repo>/bin/metastore`) with the same flags as startEtcd, plus free
 * ports for its health and metrics side listeners.
 */
export async function startMetaStore(options: ServerOptions = {}): Promise<MetaStoreHandle> {
  const bin = path.join(REPO_ROOT, 'bin', 'metastore');
  const [clientPort, peerPort, healthPort, metricsPort] = options.ports
    ? [options.ports.client, options.ports.peer, options.ports.health, options.ports.metrics]
    : await freePorts(4);
  if (clientPort === undefined || peerPort === undefined || healthPort === undefined || metricsPort === undefined) {
    throw new Error('startMetaStore: no ports');
  }
  const dataDir = options.dataDir ?? makeTempDir('metastore-e2e-');
  const name = options.name ?? 'default';
  const clientScheme = options.clientScheme ?? 'http';
  const flags = etcdStyleFlags({ name, clientPort, peerPort, dataDir, initialCluster: options.initialCluster, clientScheme });
  const args = [...(options.nodeArgs ?? []), bin, ...flags, ...(options.extraArgs ?? [])];
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const key of Object.keys(env)) if (key.startsWith('METASTORE_')) delete env[key];
  Object.assign(env, {
    METASTORE_SERVER_HEALTH_PORT: String(healthPort),
    METASTORE_SERVER_MONITORING_PROMETHEUS_PORT: String(metricsPort),
    ...options.env,
  });

  const incarnations: ServerProcess[] = [];
  let destroyed = false;
  const current = (): ServerProcess => {
    const last = incarnations[incarnations.length - 1];
    if (last === undefined) throw new Error('startMetaStore: not started');
    return last;
  };
  const launch = async (readyTimeoutMs: number): Promise<void> => {
    if (destroyed) throw new Error('MetaStore handle was destroyed');
    const server = new ServerProcess(`metastore :${clientPort} #${incarnations.length + 1}`, process.execPath, args, env);
    incarnations.push(server);
    await server.waitForLog(options.readyLine ?? READY_LINE, readyTimeoutMs);
  };

  let untrack = (): void => undefined;
  const destroy = async (): Promise<void> => {
    destroyed = true;
    await Promise.all(incarnations.map((p) => p.terminate('SIGKILL')));
    removeDirSync(dataDir);
    untrack();
  };
  untrack = trackForCleanup({
    label: `metastore :${clientPort}`,
    dispose: destroy,
    disposeSync: () => {
      for (const p of incarnations) p.killSync();
      removeDirSync(dataDir);
    },
  });

  try {
    await launch(options.readyTimeoutMs ?? DEFAULT_READY_TIMEOUT_MS);
  } catch (error) {
    await destroy();
    throw error;
  }

  return {
    endpoint: `${clientScheme}://127.0.0.1:${clientPort}`,
    clientPort,
    peerPort,
    healthPort,
    metricsPort,
    dataDir,
    get pid(): number {
      const pid = current().pid;
      if (pid === undefined) throw new Error('MetaStore has no pid');
      return pid;
    },
    isRunning: () => current().isRunning(),
    stop: async () => {
      await current().terminate('SIGTERM');
    },
    kill9: async () => {
      await current().terminate('SIGKILL');
    },
    restart: async (restartOptions = {}) => {
      await current().terminate('SIGTERM');
      await launch(restartOptions.readyTimeoutMs ?? options.readyTimeoutMs ?? DEFAULT_READY_TIMEOUT_MS);
    },
    destroy,
    logs: () => incarnations.map((p, i) => `[harness] start #${i + 1}\n${p.logs()}`).join('\n'),
    waitForLog: (text, timeoutMs = DEFAULT_READY_TIMEOUT_MS) => current().waitForLog(text, timeoutMs),
    exited: () => current().exited,
  };
}

export interface MetaStoreCluster {
  readonly members: MetaStoreHandle[];
  /** Every member's client endpoint, comma-separated, for etcdctl --endpoints. */
  readonly endpoints: string;
  /** Kills every member and removes every data dir. */
  destroy(): Promise<void>;
}

/** Names, ports and --initial-cluster of an n-member cluster, chosen before it starts. */
export interface MetaStoreClusterPlan {
  readonly names: string[];
  readonly ports: Array<{ client: number; peer: number; health: number; metrics: number }>;
  /** name=http://127.0.0.1:<peer>,... */
  readonly initialCluster: string;
  /** Each member's peer URL, in member order. */
  readonly peerUrls: string[];
}

export async function planMetaStoreCluster(size: number): Promise<MetaStoreClusterPlan> {
  const ports = await freePorts(4 * size);
  const names = Array.from({ length: size }, (_, i) => `m${i + 1}`);
  const peerUrls = names.map((_, i) => `http://127.0.0.1:${ports[4 * i + 1]}`);
  return {
    names,
    ports: names.map((_, i) => ({ client: ports[4 * i]!, peer: ports[4 * i + 1]!, health: ports[4 * i + 2]!, metrics: ports[4 * i + 3]! })),
    initialCluster: names.map((name, i) => `${name}=${peerUrls[i]}`).join(','),
    peerUrls,
  };
}

/**
 * Starts an n-member MetaStore cluster on loopback from etcd-style flags (--initial-cluster
 * naming every member), and resolves once every member logged it is ready. With `plan` and
 * `dataDirs`, the members start on the given ports and existing data dirs (restore tests).
 */
export async function startMetaStoreCluster(
  size: number,
  options: Pick<ServerOptions, 'extraArgs' | 'nodeArgs' | 'readyTimeoutMs' | 'env'> & {
    plan?: MetaStoreClusterPlan;
    dataDirs?: ReadonlyArray<string | undefined>;
  } = {},
): Promise<MetaStoreCluster> {
  const { plan: given, dataDirs, ...serverOptions } = options;
  const plan = given ?? (await planMetaStoreCluster(size));
  const members = await Promise.all(
    plan.names.map((name, i) =>
      startMetaStore({
        ...serverOptions,
        name,
        initialCluster: plan.initialCluster,
        ports: plan.ports[i]!,
        dataDir: dataDirs?.[i],
      }),
    ),
  );
  return {
    members,
    endpoints: members.map((m) => m.endpoint.replace('http://', '')).join(','),
    destroy: async () => {
      await Promise.all(members.map((m) => m.destroy()));
    },
  };
}
