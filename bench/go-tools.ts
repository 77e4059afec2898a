// The Go load tools under bench/ (go-load, go-watch: etcd's own clientv3), built with Debian's Go
// and etcd sources in GOPATH mode (no network), and rebuilt when their source is newer than the
// binary, so a changed tool is never run from a stale build.

import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const benchDir = fileURLToPath(new URL('.', import.meta.url));

/** True when a Go toolchain is installed (apt-get install golang-go golang-etcd-server-dev). */
export function haveGo(): boolean {
  try {
    execFileSync('go', ['version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** The path of bench/out/NAME, built from bench/NAME/main.go if missing or older than it. */
export function goTool(name: 'go-load' | 'go-watch'): string {
  const out = join(benchDir, 'out', name);
  const source = join(benchDir, name, 'main.go');
  if (existsSync(out) && statSync(out).mtimeMs >= statSync(source).mtimeMs) return out;
  mkdirSync(join(benchDir, 'out'), { recursive: true });
  execFileSync('go', ['build', '-o', out, '.'], {
    cwd: join(benchDir, name),
    env: { ...process.env, GO111MODULE: 'off', GOPATH: '/usr/share/gocode', GOCACHE: join(benchDir, 'out', 'gocache') },
    stdio: 'inherit',
  });
  return out;
}
