// A throw-away podman for the image test: storage, run state and containers.conf live under one
// temp dir, so the test leaves nothing behind and never touches the host's own containers.
//
// No registry is reachable here, so the Dockerfile's FROM image (node:20-bookworm-slim) is made
// locally: a minbase Debian bookworm from the configured Debian archive, plus the host's node,
// npm and CA bundle (npm inside the build must trust what the host trusts), imported under the
// FROM name. runc is the runtime (crun fails on this host's cgroups); default ulimits are capped
// because the host's (very high) nofile limit is refused inside the container.
import { cpSync, mkdirSync, readFileSync, realpathSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { requireTool, run, type RunResult } from './tools.js';

export const FROM_IMAGE = 'docker.io/library/node:20-bookworm-slim';

/** Runs `podman <args>` against the private storage; rejects on a non-zero exit. */
export type Podman = (args: readonly string[], options?: { timeoutMs?: number; allowFailure?: boolean }) => Promise<RunResult>;

export async function privatePodman(dir: string): Promise<{ podman: Podman; teardown: () => Promise<void> }> {
  const binary = await requireTool('podman', 'podman');
  const runtime = await requireTool('runc', 'runc');
  mkdirSync(dir, { recursive: true });
  const conf = join(dir, 'containers.conf');
  writeFileSync(
    conf,
    [
      '[containers]',
      'default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]',
      '[engine]',
      `runtime = "${runtime}"`,
      'cgroup_manager = "cgroupfs"',
      'events_logger = "file"',
      '',
    ].join('\n'),
  );
  const env = { ...process.env, CONTAINERS_CONF: conf };
  const globals = ['--root', join(dir, 'storage'), '--runroot', join(dir, 'run'), '--tmpdir', join(dir, 'tmp')];
  const podman: Podman = async (args, options = {}) => {
    const result = await run(binary, [...globals, ...args], { env, timeoutMs: options.timeoutMs ?? 120_000 });
    if (result.code !== 0 && !options.allowFailure) throw new Error(`podman ${args.join(' ')} failed (${result.code}):\n${result.stderr}`);
    return result;
  };
  const teardown = async () => {
    // Containers first (they hold mounts), then everything podman stored, then the dir.
    await podman(['rm', '--all', '--force', '--time', '0'], { allowFailure: true });
    await podman(['system', 'reset', '--force'], { allowFailure: true });
    rmSync(dir, { recursive: true, force: true });
  };
  return { podman, teardown };
}

/** The URI of the Debian archive apt is configured with (deb822 or one-line sources). */
function debianMirror(): string {
  for (const file of ['/etc/apt/sources.list.d/debian.sources', '/etc/apt/sources.list']) {
    let text = '';
    try {
      text = readFileSync(file, 'utf8');
    } catch {
      continue;
    }
    const match = /^URIs:\s*(\S+)/m.exec(text) ?? /^deb\s+(?:\[[^\]]*\]\s+)?(\S+)\s+bookworm\s/m.exec(text);
    if (match?.[1]) return match[1];
  }
  return 'http://deb.debian.org/debian';
}

/** Builds FROM_IMAGE from debootstrap + the host's node and npm, into the private storage. */
export async function importNodeBaseImage(podman: Podman, dir: string): Promise<void> {
  const debootstrap = await requireTool('debootstrap', 'debootstrap');
  const rootfs = join(dir, 'rootfs');
  const boot = await run(debootstrap, ['--variant=minbase', 'bookworm', rootfs, debianMirror()], { timeoutMs: 600_000 });
  if (boot.code !== 0) throw new Error(`debootstrap failed (${boot.code}):\n${boot.stdout.slice(-2000)}\n${boot.stderr}`);
  // Where the official node image keeps them: /usr/local/bin, /usr/local/lib/node_modules.
  cpSync(realpathSync(process.execPath), join(rootfs, 'usr/local/bin/node'));
  const npmRoot = realpathSync(join(process.execPath, '../../lib/node_modules/npm'));
  cpSync(npmRoot, join(rootfs, 'usr/local/lib/node_modules/npm'), { recursive: true });
  symlinkSync('../lib/node_modules/npm/bin/npm-cli.js', join(rootfs, 'usr/local/bin/npm'));
  symlinkSync('../lib/node_modules/npm/bin/npx-cli.js', join(rootfs, 'usr/local/bin/npx'));
  mkdirSync(join(rootfs, 'etc/ssl/certs'), { recursive: true });
  cpSync('/etc/ssl/certs/ca-certificates.crt', join(rootfs, 'etc/ssl/certs/ca-certificates.crt'));
  mkdirSync(join(rootfs, 'usr/local/etc'), { recursive: true });
  writeFileSync(join(rootfs, 'usr/local/etc/npmrc'), 'cafile=/etc/ssl/certs/ca-certificates.crt\n');
  const tar = join(dir, 'rootfs.tar');
  const packed = await run('tar', ['-C', rootfs, '-cf', tar, '.'], { timeoutMs: 300_000 });
  if (packed.code !== 0) throw new Error(`tar failed:\n${packed.stderr}`);
  rmSync(rootfs, { recursive: true, force: true });
  await podman(['import', '--change', 'CMD ["node"]', tar, FROM_IMAGE], { timeoutMs: 300_000 });
  rmSync(tar, { force: true });
}
