// The fault suite catches a real bug: a copy of this worktree's build (dist/) is patched so that
// followers answer linearizable reads from their local state, skipping the ReadIndex round;
// under the partition nemesis the linearizability checker must report a violation. Nothing in
// src knows about this: the patch is applied to the compiled JavaScript in a temp dir.
// Needs root (ip netns, tc) and a build (npx tsc -p tsconfig.build.json).

import { cpSync, mkdtempSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { removeDirSync } from '../support/processes.js';
import { REPO_ROOT } from '../support/servers.js';
import { FaultCluster } from './fault-cluster.js';
import { runScenario } from './scenario.js';

const SECONDS = 30;
const TARGET = join('dist', 'src', 'server', 'member', 'kv-server.js');
const HONEST = 'readBarrier() {\n        return this.raft.readBarrier();\n    }';
const PLANTED = 'readBarrier() {\n        return this.raft.isLeader ? this.raft.readBarrier() : Promise.resolve();\n    }';

const buildRoot = mkdtempSync(join(tmpdir(), 'metastore-planted-'));
let cluster: FaultCluster | undefined;

/** bin/ and dist/ copied, package.json (ESM) copied, node_modules and proto/ linked. */
function plantedBuild(): void {
  for (const part of ['bin', 'dist', 'package.json']) cpSync(join(REPO_ROOT, part), join(buildRoot, part), { recursive: true });
  for (const part of ['node_modules', 'proto']) symlinkSync(join(REPO_ROOT, part), join(buildRoot, part));
  const file = join(buildRoot, TARGET);
  const source = readFileSync(file, 'utf8');
  if (source.split(HONEST).length !== 2) throw new Error(`${TARGET} no longer contains the readBarrier this test patches; update HONEST`);
  writeFileSync(file, source.replace(HONEST, PLANTED));
}

afterAll(async () => {
  await cluster?.destroy();
  removeDirSync(buildRoot);
}, 60_000);

describe('a planted bug', () => {
  it(
    'followers serving linearizable reads without ReadIndex: the partition scenario reports a linearizability violation',
    async () => {
      plantedBuild();
      cluster = await FaultCluster.start({ flavor: 'metastore', buildRoot });
      const report = await runScenario(cluster, 'partition', SECONDS);
      console.log(report.summary);
      expect(report.verdict.linearizable, report.summary).toBe(false);
    },
    SECONDS * 1000 + 180_000,
  );
});
