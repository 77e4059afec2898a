#!/usr/bin/env node
// `npm run cluster`: starts the 3-member loopback cluster of configs/local/ (one process per
// member, output prefixed with the member's name); Ctrl-C stops all of them.
//   etcdctl --endpoints=127.0.0.1:21379,127.0.0.1:22379,127.0.0.1:23379 endpoint status -w table
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const members = ['member1', 'member2', 'member3'];
const children = members.map((name) => {
  const child = spawn(process.execPath, [join(root, 'bin', 'metastore'), '--config', join(root, 'configs', 'local', `${name}.yaml`)], {
    cwd: root,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  for (const stream of [child.stdout, child.stderr]) {
    createInterface({ input: stream }).on('line', (line) => process.stdout.write(`[${name}] ${line}\n`));
  }
  child.on('exit', (code, signal) => {
    process.stdout.write(`[${name}] exited (${signal ?? code})\n`);
    if (!stopping) stopAll(1);
  });
  return child;
});

let stopping = false;
function stopAll(code) {
  if (stopping) return;
  stopping = true;
  let running = children.filter((c) => c.exitCode === null && c.signalCode === null).length;
  if (running === 0) process.exit(code);
  for (const child of children) {
    child.once('exit', () => {
      running -= 1;
      if (running === 0) process.exit(code);
    });
    child.kill('SIGTERM');
  }
}
process.on('SIGINT', () => stopAll(0));
process.on('SIGTERM', () => stopAll(0));
