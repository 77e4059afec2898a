// End to end: the real Prometheus (Debian prometheus, which ships promtool) against a local
// 3-member MetaStore cluster.
// - promtool accepts configs/prometheus.yml and configs/prometheus-alerts.yml, and the rule
//   unit tests (configs/prometheus-alerts.test.yml) pass.
// - A real prometheus, with the repository's config pointed at the three members' metrics
//   ports (1 s scrapes, temp storage), scrapes them all, loads the alert rules, and the
//   deployment guide's PromQL queries return series through its HTTP API.
// - Every metric name the alerts and the Grafana dashboard use is one the members export.

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse, stringify } from 'yaml';
import { freePort } from '../support/ports.js';
import { ServerProcess, removeDirSync, trackForCleanup } from '../support/processes.js';
import { REPO_ROOT, startMetaStoreCluster, type MetaStoreCluster } from '../support/servers.js';
import { waitFor } from '../support/wait.js';
import { etcdctl, requireTool, run } from '../support/tools.js';

const CONFIGS = path.join(REPO_ROOT, 'configs');

interface Series {
  metric: Record<string, string>;
  value: [number, string];
}

/** Metric names in a PromQL expression (identifiers that are not functions, keywords or labels). */
function metricNames(expr: string): string[] {
  const bare = expr
    .replace(/\{[^}]*\}/g, '')
    .replace(/"[^"]*"/g, '')
    .replace(/[a-zA-Z_]+\s*\(/g, '(');
  const words = bare.match(/[a-zA-Z_:][a-zA-Z0-9_:]*/g) ?? [];
  const keywords = new Set(['by', 'without', 'on', 'ignoring', 'group_left', 'group_right', 'and', 'or', 'unless', 'le', 'instance', 'method', 'job', 'bool']);
  return words.filter((w) => w.includes('_') && !keywords.has(w) && !/^[smhd]$/.test(w));
}

describe('ops: Prometheus', () => {
  let promtool: string;
  let cluster: MetaStoreCluster;
  let prometheus: ServerProcess;
  let api: string;
  let tempDir: string;

  const query = async (expr: string): Promise<Series[]> => {
    const response = await fetch(`${api}/api/v1/query?query=${encodeURIComponent(expr)}`);
    const body = (await response.json()) as { status: string; data: { resultType: string; result: Series[] }; error?: string };
    if (body.status !== 'success') throw new Error(`query ${expr} failed: ${body.error}`);
    return body.data.result;
  };

  beforeAll(async () => {
    promtool = await requireTool('promtool', 'prometheus');
    const binary = await requireTool('prometheus', 'prometheus');
    await requireTool('etcdctl', 'etcd-client');
    cluster = await startMetaStoreCluster(3);
    tempDir = fs.mkdtempSync(path.join(os.tmpdir(), 'metastore-prometheus-'));

    // The repository's config with the local members as targets and a 1 s scrape interval.
    const config = parse(fs.readFileSync(path.join(CONFIGS, 'prometheus.yml'), 'utf8')) as {
      global: Record<string, string>;
      rule_files: string[];
      scrape_configs: Array<{ static_configs: Array<{ targets: string[] }> }>;
    };
    config.global.scrape_interval = '1s';
    config.global.evaluation_interval = '1s';
    config.rule_files = config.rule_files.map((file) => path.join(CONFIGS, file));
    config.scrape_configs[0]!.static_configs[0]!.targets = cluster.members.map((m) => `127.0.0.1:${m.metricsPort}`);
    const configFile = path.join(tempDir, 'prometheus.yml');
    fs.writeFileSync(configFile, stringify(config));

    const port = await freePort();
    api = `http://127.0.0.1:${port}`;
    prometheus = new ServerProcess(
      'prometheus',
      binary,
      [`--config.file=${configFile}`, `--storage.tsdb.path=${path.join(tempDir, 'data')}`, `--web.listen-address=127.0.0.1:${port}`],
      process.env,
    );
    const untrack = trackForCleanup({
      label: 'prometheus',
      dispose: async () => {
        await prometheus.terminate('SIGTERM');
        removeDirSync(tempDir);
        untrack();
      },
      disposeSync: () => {
        prometheus.killSync();
        removeDirSync(tempDir);
      },
    });
    await prometheus.waitForLog('Server is ready to receive web requests', 60_000);
  }, 120_000);

  afterAll(async () => {
    await prometheus?.terminate('SIGTERM');
    await cluster?.destroy();
    if (tempDir) removeDirSync(tempDir);
    expect(prometheus?.isRunning()).toBe(false);
  }, 60_000);

  it('promtool: check config, check rules and the rule unit tests pass', async () => {
    const config = await run(promtool, ['check', 'config', path.join(CONFIGS, 'prometheus.yml')]);
    expect(config.code, config.stdout + config.stderr).toBe(0);
    const rules = await run(promtool, ['check', 'rules', path.join(CONFIGS, 'prometheus-alerts.yml')]);
    expect(rules.code, rules.stdout + rules.stderr).toBe(0);
    expect(rules.stdout).toContain('SUCCESS: 6 rules found');
    const tests = await run(promtool, ['test', 'rules', path.join(CONFIGS, 'prometheus-alerts.test.yml')]);
    expect(tests.code, tests.stdout + tests.stderr).toBe(0);
    expect(tests.stdout).toContain('SUCCESS');
  });

  it('scrapes all three members and loads the alert rules', async () => {
    const targets = await waitFor(
      async () => {
        const body = (await (await fetch(`${api}/api/v1/targets`)).json()) as { data: { activeTargets: Array<{ health: string; scrapeUrl: string }> } };
        const up = body.data.activeTargets.filter((t) => t.health === 'up');
        return up.length === 3 ? up : undefined;
      },
      { what: 'three healthy targets', timeoutMs: 60_000, intervalMs: 250 },
    );
    expect(targets.map((t) => t.scrapeUrl).sort()).toEqual(cluster.members.map((m) => `http://127.0.0.1:${m.metricsPort}/metrics`).sort());
    const rules = (await (await fetch(`${api}/api/v1/rules`)).json()) as { data: { groups: Array<{ rules: Array<{ name: string; health: string }> }> } };
    const loaded = rules.data.groups.flatMap((g) => g.rules);
    expect(loaded.map((r) => r.name).sort()).toEqual([
      'DatabaseQuotaNearlyFull',
      'FrequentLeaderChanges',
      'HighErrorRate',
      'HighFsyncLatency',
      'HighP99Latency',
      'NoLeader',
    ]);
  }, 90_000);

  it("the guide's PromQL queries return series", async () => {
    // Traffic on every member while Prometheus scrapes, so rates have two differing samples.
    const writeSome = async (round: number): Promise<void> => {
      for (const member of cluster.members) {
        const put = await etcdctl(member.endpoint, ['put', `prom/${round}`, 'v']);
        expect(put.code, put.stderr).toBe(0);
      }
    };
    let round = 0;
    // Resolves once `expr` has series from all three members.
    const withTraffic = async (expr: string): Promise<Series[]> =>
      waitFor(
        async () => {
          await writeSome(round++);
          const result = await query(expr);
          return new Set(result.map((s) => s.metric.instance)).size === 3 ? result : undefined;
        },
        { what: `series of ${expr} from every member`, timeoutMs: 60_000, intervalMs: 250 },
      );

    const rates = await withTraffic('rate(grpc_server_request_total[1m])');
    expect(rates.some((s) => s.metric.method === 'Put' && s.metric.code === 'OK')).toBe(true);

    const p99 = await withTraffic('histogram_quantile(0.99, rate(grpc_server_request_duration_seconds_bucket[5m]))');
    expect(p99.some((s) => s.metric.method === 'Put' && Number.isFinite(Number(s.value[1])))).toBe(true);

    const hasLeader = await query('etcd_server_has_leader');
    expect(hasLeader.map((s) => s.value[1])).toEqual(['1', '1', '1']);
    const leaders = await query('sum(etcd_server_is_leader)');
    expect(leaders[0]?.value[1]).toBe('1');
    for (const expr of ['raft_applied_index', 'mvcc_current_revision', 'grpc_server_active_connections', 'etcd_mvcc_db_total_size_in_bytes']) {
      expect(await query(expr), expr).toHaveLength(3);
    }
    // The backend's timing hook feeds the commit histogram. (Synced raft log writes of a
    // multi-member cluster go through the raft log store straight to LevelDB, not through the
    // backend's write queue, so etcd_disk_wal_fsync_duration_seconds stays empty here.)
    expect(await query('etcd_disk_backend_commit_duration_seconds_count > 0')).toHaveLength(3);
  }, 120_000);

  it('every metric the alerts and the dashboard use is exported by the members', async () => {
    const exported = new Set(((await (await fetch(`${api}/api/v1/label/__name__/values`)).json()) as { data: string[] }).data);
    const alerts = parse(fs.readFileSync(path.join(CONFIGS, 'prometheus-alerts.yml'), 'utf8')) as { groups: Array<{ rules: Array<{ expr: string }> }> };
    const dashboard = JSON.parse(fs.readFileSync(path.join(CONFIGS, 'dashboards', 'metastore.json'), 'utf8')) as {
      panels: Array<{ title: string; targets: Array<{ expr: string }> }>;
    };
    expect(dashboard.panels.map((p) => p.title)).toEqual(['Request rate', 'Error rate', 'p99 latency', 'Leader', 'Applied index / revision', 'DB size']);
    const exprs = [...alerts.groups.flatMap((g) => g.rules.map((r) => r.expr)), ...dashboard.panels.flatMap((p) => p.targets.map((t) => t.expr))];
    const used = new Set(exprs.flatMap(metricNames));
    expect(used.size).toBeGreaterThan(8);
    const missing = [...used].filter((name) => !exported.has(name));
    expect(missing).toEqual([]);
    // And each dashboard query is valid PromQL that Prometheus evaluates.
    for (const expr of dashboard.panels.flatMap((p) => p.targets.map((t) => t.expr))) {
      await query(expr.replace(/\$job|\$instance/g, '.*'));
    }
  });
});
