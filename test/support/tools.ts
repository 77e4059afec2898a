// External tools for end-to-end tests: locating (and, as root, installing) binaries, and
// running etcdctl.
//
// Tests never skip silently: a missing tool is installed when we can (root + apt-get) and is
// otherwise a thrown error naming the Debian package to install.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Runs a command to completion, capturing output. Never rejects on a non-zero exit. */
export function run(
  command: string,
  args: readonly string[],
  options: { stdin?: string; env?: NodeJS.ProcessEnv; timeoutMs?: number; cwd?: string } = {},
): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, {
      env: options.env ?? process.env,
      stdio: ['pipe', 'pipe', 'pipe'],
      ...(options.cwd !== undefined && { cwd: options.cwd }),
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    const timeoutMs = options.timeoutMs ?? 60_000;
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${command} ${args.join(' ')} did not finish within ${timeoutMs} ms\nstdout:\n${stdout}\nstderr:\n${stderr}`));
    }, timeoutMs);
    child.once('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
    // A child that exits without reading stdin makes the write fail with EPIPE; that is not ours
    // to report (the exit code and stderr tell the story).
    child.stdin.on('error', () => undefined);
    child.stdin.end(options.stdin ?? '');
  });
}

/** Absolute path of `name` on PATH (or `name` itself if absolute), or undefined. */
export function findExecutable(name: string): string | undefined {
  const candidates = path.isAbsolute(name)
    ? [name]
    : (process.env.PATH ?? '')
        .split(path.delimiter)
        .filter(Boolean)
        .map((dir) => path.join(dir, name));
  for (const candidate of candidates) {
    try {
      fs.accessSync(candidate, fs.constants.X_OK);
      if (fs.statSync(candidate).isFile()) return candidate;
    } catch {
      // Not here; keep looking.
    }
  }
  return undefined;
}

let aptUpdated: Promise<void> | undefined;
const installs = new Map<string, Promise<void>>();

async function aptInstall(debianPackage: string): Promise<void> {
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  aptUpdated ??= run('apt-get', ['update'], { env, timeoutMs: 600_000 }).then((r) => {
    if (r.code !== 0) throw new Error(`apt-get update failed (exit ${r.code}):\n${r.stderr}`);
  });
  await aptUpdated;
  const r = await run('apt-get', ['install', '-y', debianPackage], { env, timeoutMs: 600_000 });
  if (r.code !== 0) throw new Error(`apt-get install -y ${debianPackage} failed (exit ${r.code}):\n${r.stderr}`);
}

/**
 * Returns the absolute path of binary `name`. When it is missing and we run as root, installs
 * `debianPackage` with apt-get (after one `apt-get update`); if it is still missing, throws an
 * error that says what to install. Never returns undefined, never skips.
 */
export async function requireTool(name: string, debianPackage: string): Promise<string> {
  const found = findExecutable(name);
  if (found !== undefined) return found;
  const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
  let installError = '';
  if (isRoot && findExecutable('apt-get') !== undefined) {
    let pending = installs.get(debianPackage);
    if (pending === undefined) {
      pending = aptInstall(debianPackage);
      installs.set(debianPackage, pending);
    }
    try {
      await pending;
    } catch (error) {
      installError = `\n${String(error)}`;
    }
    const installed = findExecutable(name);
    if (installed !== undefined) return installed;
  }
  throw new Error(
    `Required tool "${name}" is not installed and could not be installed automatically. ` +
      `Install the Debian package "${debianPackage}" (apt-get install -y ${debianPackage}) ` +
      `and rerun the tests.${isRoot ? '' : ' (Automatic installation needs root.)'}${installError}`,
  );
}

export interface EtcdctlOptions {
  stdin?: string;
  env?: Record<string, string>;
  /** Bound on the whole invocation (etcdctl has its own --command-timeout, 5 s by default). */
  timeoutMs?: number;
  /** Working directory (a unix:// endpoint names a socket file relative to it). */
  cwd?: string;
}

/**
 * Runs `etcdctl --endpoints=<endpoint> <args...>` with ETCDCTL_API=3. Resolves with the exit
 * code and raw output; never rejects because of a non-zero exit.
 */
export async function etcdctl(
  endpoint: string,
  args: readonly string[],
  options: EtcdctlOptions = {},
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const binary = await requireTool('etcdctl', 'etcd-client');
  const env: NodeJS.ProcessEnv = { ...process.env, ETCDCTL_API: '3', ...options.env };
  // Inherited ETCDCTL_* settings (e.g. ETCDCTL_ENDPOINTS) would change what we test.
  for (const key of Object.keys(env)) {
    if (key.startsWith('ETCDCTL_') && key !== 'ETCDCTL_API' && !(options.env && key in options.env)) delete env[key];
  }
  const result = await run(binary, [`--endpoints=${endpoint}`, ...args], {
    stdin: options.stdin,
    env,
    timeoutMs: options.timeoutMs ?? 60_000,
    ...(options.cwd !== undefined && { cwd: options.cwd }),
  });
  return { code: result.code, stdout: result.stdout, stderr: result.stderr };
}

/** One row of `etcdctl member list` (simple format). */
export interface ListedMember {
  /** Hex, without the spaces etcdctl's %16x pads an ID of under 16 digits with. */
  id: string;
  status: string;
  name: string;
  peerUrls: string;
  clientUrls: string;
  isLearner: string;
}

/** `etcdctl member list` parsed; throws with etcdctl's stderr when it fails. */
export async function listMembers(endpoints: string): Promise<ListedMember[]> {
  const result = await etcdctl(endpoints, ['member', 'list']);
  if (result.code !== 0) throw new Error(`etcdctl member list failed: ${result.stderr}`);
  return result.stdout
    .trim()
    .split('\n')
    .map((line) => {
      const [id, status, name, peerUrls, clientUrls, isLearner] = line.split(', ');
      return { id: id!.trim(), status: status!, name: name!, peerUrls: peerUrls!, clientUrls: clientUrls!, isLearner: isLearner! };
    });
}
