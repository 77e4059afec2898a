// The operator's book (docs/operations/*.md) is executable: every fenced shell block marked
// ```sh runbook is run, page by page and in order, as one bash script (set -euo pipefail)
// against real members on loopback; a block marked ```sh covered-by=<test file> is exercised
// by that test instead (the image, the chart); ```sh host-only marks the few steps that change
// the host itself (useradd, systemctl) and are run by no test; an unmarked shell block fails
// this test, so a command cannot enter the book without a decision about how it is checked.
//
// The pages name hosts through variables (NODE1_CLIENT, NODE1_PEER, NODE1_HEALTH, ... NODE6_*,
// DATA, BACKUP_DIR): here they are loopback addresses with free ports. `metastore` is a small
// wrapper that gives each member (by its --name) its own health and metrics ports, which on
// real hosts are all 8080 and 9090. Every process a page starts is in the script's process
// group, which is killed when the page is done.
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { spawn } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { freePorts } from '../support/ports.js';
import { trackForCleanup } from '../support/processes.js';
import { REPO_ROOT } from '../support/servers.js';
import { requireTool } from '../support/tools.js';

const BOOK = join(REPO_ROOT, 'docs', 'operations');
const scratch = mkdtempSync(join(tmpdir(), 'metastore-runbook-e2e-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

interface Block {
  info: string;
  body: string;
}

function blocks(markdown: string): Block[] {
  return [...markdown.matchAll(/^```([^\n]*)\n([\s\S]*?)^```/gm)].map((m) => ({ info: m[1]!.trim(), body: m[2]! }));
}

const SHELL = /^(sh|bash|shell|console)\b/;
const pages = readdirSync(BOOK)
  .filter((f) => f.endsWith('.md'))
  .sort();

const WRAPPER = `#!/usr/bin/env bash
# Test stand-in for the installed metastore: each member (found by --name nodeN) gets its own
# health and metrics ports from NODEn_HEALTH / NODEn_METRICS, as members share loopback here.
name=""; prev=""
for arg in "$@"; do
  [ "$prev" = --name ] && name=$arg
  case $arg in --name=*) name=\${arg#--name=} ;; esac
  prev=$arg
done
if [ -n "$name" ]; then
  health=\${name^^}_HEALTH; metrics=\${name^^}_METRICS
  [ -n "\${!health:-}" ] && export METASTORE_SERVER_HEALTH_PORT=\${!health##*:}
  [ -n "\${!metrics:-}" ] && export METASTORE_SERVER_MONITORING_PROMETHEUS_PORT=\${!metrics##*:}
fi
exec node "$REPO/bin/metastore" "$@"
`;

async function prelude(dir: string): Promise<string> {
  const ports = await freePorts(24);
  const lines = ['set -euo pipefail', `export REPO=${JSON.stringify(REPO_ROOT)}`, `export DATA=${dir}/data BACKUP_DIR=${dir}/backups`];
  lines.push(`export PATH=${dir}/bin:${REPO_ROOT}/scripts:$PATH ETCDCTL_API=3`);
  for (let n = 1; n <= 6; n++) {
    const [client, peer, health, metrics] = ports.slice(4 * (n - 1), 4 * n);
    lines.push(
      `export NODE${n}_CLIENT=127.0.0.1:${client} NODE${n}_PEER=127.0.0.1:${peer} NODE${n}_HEALTH=127.0.0.1:${health} NODE${n}_METRICS=127.0.0.1:${metrics}`,
    );
  }
  lines.push('mkdir -p "$DATA"', 'cd "$DATA"', 'set -x');
  return `${lines.join('\n')}\n`;
}

/** Runs a script in its own process group; kills the whole group when it ends. */
function runPage(label: string, script: string, timeoutMs: number): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve) => {
    const env = { ...process.env };
    for (const key of Object.keys(env)) if (key.startsWith('ETCDCTL_') || key.startsWith('METASTORE_')) delete env[key];
    const child = spawn('bash', [script], { detached: true, stdio: ['ignore', 'pipe', 'pipe'], env });
    const killGroup = () => {
      try {
        if (child.pid !== undefined) process.kill(-child.pid, 'SIGKILL');
      } catch {
        // The group is already gone.
      }
    };
    const untrack = trackForCleanup({ label, dispose: async () => killGroup(), disposeSync: killGroup });
    let output = '';
    child.stdout.setEncoding('utf8').on('data', (c: string) => (output += c));
    child.stderr.setEncoding('utf8').on('data', (c: string) => (output += c));
    const timer = setTimeout(() => {
      output += `\n[runbook] timed out after ${timeoutMs} ms\n`;
      killGroup();
    }, timeoutMs);
    child.once('close', (code) => {
      clearTimeout(timer);
      killGroup();
      untrack();
      resolve({ code, output });
    });
  });
}

describe('operations runbook', () => {
  it('every shell block is marked runbook or covered-by an existing test', () => {
    for (const page of pages) {
      for (const block of blocks(readFileSync(join(BOOK, page), 'utf8'))) {
        if (!SHELL.test(block.info)) continue;
        const covered = /covered-by=(\S+)/.exec(block.info)?.[1];
        const where = `${page}: \`\`\`${block.info}\n${block.body.slice(0, 200)}`;
        const marked = block.info === 'sh runbook' || block.info === 'sh host-only' || covered !== undefined;
        expect(marked, `unmarked shell block in ${where}`).toBe(true);
        if (covered !== undefined) expect(existsSync(join(REPO_ROOT, covered)), `${where}: no test ${covered}`).toBe(true);
      }
    }
  });

  for (const page of pages) {
    const runnable = blocks(readFileSync(join(BOOK, page), 'utf8')).filter((b) => b.info === 'sh runbook');
    if (runnable.length === 0) continue;
    it(`${page}: its commands run against a local cluster`, async () => {
      // What the pages' commands use, installed (as root) when missing, never skipped.
      const tools = [
        ['etcdctl', 'etcd-client'],
        ['jq', 'jq'],
        ['curl', 'curl'],
        ['openssl', 'openssl'],
        ['promtool', 'prometheus'],
        ['ss', 'iproute2'],
        ['systemd-analyze', 'systemd'],
      ];
      for (const [tool, debianPackage] of tools) await requireTool(tool!, debianPackage!);
      const dir = join(scratch, page.replace(/\.md$/, ''));
      mkdirSync(join(dir, 'bin'), { recursive: true });
      writeFileSync(join(dir, 'bin', 'metastore'), WRAPPER);
      chmodSync(join(dir, 'bin', 'metastore'), 0o755);
      const script = join(dir, 'page.sh');
      writeFileSync(script, (await prelude(dir)) + runnable.map((b) => b.body).join('\n'));
      const result = await runPage(`runbook ${page}`, script, 240_000);
      expect(result.code, `${page} failed:\n${result.output.slice(-6000)}`).toBe(0);
    }, 300_000);
  }
});
