// The Helm chart (deploy/helm/metastore), rendered by scripts/helm-lite.mjs (real helm is not
// packaged by Debian): for 1, 3 and 5 replicas the peer list names every member through the
// headless Service, the probes hit the health port, the disruption budget keeps a quorum;
// TLS comes from Secrets; deploy/k8s/metastore.yaml is the chart's default rendering; and the
// member command lines it renders start a working 3-member cluster (loopback, free ports).
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
// @ts-expect-error: a plain .mjs script without type declarations
import { renderChart } from '../../scripts/helm-lite.mjs';
import { endpointStatuses, settledOn, until } from '../support/ops.js';
import { freePorts } from '../support/ports.js';
import { ServerProcess, removeDirSync, trackForCleanup } from '../support/processes.js';
import { READY_LINE, REPO_ROOT } from '../support/servers.js';
import { etcdctl } from '../support/tools.js';
import { makeTestPki } from './tls-certs.js';

const CHART = join(REPO_ROOT, 'deploy', 'helm', 'metastore');
const scratch = mkdtempSync(join(tmpdir(), 'metastore-chart-e2e-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

function render(set: string[] = []): any[] {
  const text: string = renderChart(CHART, { name: 'metastore', namespace: 'prod', set });
  return parseAllDocuments(text).map((d) => d.toJSON());
}

const ofKind = (docs: any[], kind: string) => docs.filter((d) => d.kind === kind);
const container = (docs: any[]) => ofKind(docs, 'StatefulSet')[0].spec.template.spec.containers[0];
const flag = (args: string[], name: string) => args.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3);

/**
 * Starts the three members of a rendered StatefulSet as local processes: what Kubernetes and
 * the cluster DNS would do (expand $(POD_NAME), resolve each member's name), plus what the test
 * needs (every member on loopback with ports of its own, its data in the scratch dir).
 */
async function startRendered(docs: any[], adjust: (arg: string) => string = (arg) => arg) {
  const c = container(docs);
  const ports = await freePorts(12);
  const member = (i: number) => ({ client: ports[4 * i]!, peer: ports[4 * i + 1]!, health: ports[4 * i + 2]!, metrics: ports[4 * i + 3]! });
  const tag = `${Date.now()}`;
  const processes = [0, 1, 2].map((i) => {
    const pod = `metastore-${i}`;
    const dataDir = join(scratch, `${pod}-${tag}`);
    const args: string[] = c.args.map((arg: string) =>
      adjust(
        arg
          .replaceAll('$(POD_NAME)', pod)
          .replace(/metastore-(\d)\.metastore-headless\.prod\.svc:12379/g, (_, j) => `127.0.0.1:${member(Number(j)).peer}`)
          .replace(/metastore-(\d)\.metastore-headless\.prod\.svc:2379/g, (_, j) => `127.0.0.1:${member(Number(j)).client}`)
          .replace('0.0.0.0:2379', `127.0.0.1:${member(i).client}`)
          .replace('0.0.0.0:12379', `127.0.0.1:${member(i).peer}`)
          .replace('--data-dir=/var/lib/metastore', `--data-dir=${dataDir}`),
      ),
    );
    const env: NodeJS.ProcessEnv = { PATH: process.env.PATH };
    for (const e of c.env) if (e.value !== undefined) env[e.name] = e.value;
    env.METASTORE_SERVER_HEALTH_PORT = String(member(i).health);
    env.METASTORE_SERVER_MONITORING_PROMETHEUS_PORT = String(member(i).metrics);
    // The image's entrypoint: its baked-in config first, the chart's flags on top.
    const argv = [join(REPO_ROOT, 'bin', 'metastore'), '--config', join(REPO_ROOT, 'deploy', 'docker', 'metastore.yaml'), ...args];
    const server = new ServerProcess(`chart ${pod}`, process.execPath, argv, env);
    trackForCleanup({
      label: server.label,
      dispose: async () => {
        await server.terminate('SIGKILL');
        removeDirSync(dataDir);
      },
      disposeSync: () => server.killSync(),
    });
    return server;
  });
  await Promise.all(processes.map((p) => p.waitForLog(READY_LINE, 30_000)));
  return { member, endpoints: [0, 1, 2].map((i) => `127.0.0.1:${member(i).client}`).join(',') };
}

describe('Helm chart', () => {
  for (const replicas of [1, 3, 5]) {
    it(`${replicas} replica(s): peer list, probes on the health port, quorum-keeping budget`, () => {
      const docs = render([`replicaCount=${replicas}`]);
      const [sts] = ofKind(docs, 'StatefulSet');
      expect(sts.spec.replicas).toBe(replicas);
      expect(sts.spec.podManagementPolicy).toBe('Parallel');
      expect(sts.spec.serviceName).toBe('metastore-headless');
      const headless = ofKind(docs, 'Service').find((s) => s.metadata.name === 'metastore-headless');
      expect(headless.spec.clusterIP).toBe('None');
      expect(headless.spec.publishNotReadyAddresses).toBe(true);

      const c = container(docs);
      const peers = Array.from({ length: replicas }, (_, i) => `metastore-${i}=http://metastore-${i}.metastore-headless.prod.svc:12379`);
      expect(flag(c.args, 'initial-cluster')).toBe(peers.join(','));
      expect(flag(c.args, 'initial-advertise-peer-urls')).toBe('http://$(POD_NAME).metastore-headless.prod.svc:12379');
      expect(flag(c.args, 'name')).toBe('$(POD_NAME)');

      const healthPort = c.ports.find((p: any) => p.name === 'health').containerPort;
      expect(c.env.find((e: any) => e.name === 'METASTORE_SERVER_HEALTH_PORT').value).toBe(String(healthPort));
      expect(c.readinessProbe.httpGet).toEqual({ path: '/readiness', port: 'health' });
      expect(c.livenessProbe.httpGet).toEqual({ path: '/liveness', port: 'health' });

      const pdbs = ofKind(docs, 'PodDisruptionBudget');
      if (replicas === 1) expect(pdbs).toEqual([]);
      else expect(pdbs[0].spec.minAvailable).toBe(Math.floor(replicas / 2) + 1);
      expect(ofKind(docs, 'ServiceMonitor')).toEqual([]);
    });
  }

  it("takes the guide's install values, TLS from Secrets, and an optional ServiceMonitor", () => {
    const docs = render([
      'persistence.size=100Gi',
      'resources.requests.memory=16Gi',
      'tls.client.enabled=true',
      'tls.client.secretName=ms-client',
      'tls.peer.enabled=true',
      'tls.peer.secretName=ms-peer',
      'metrics.serviceMonitor.enabled=true',
    ]);
    const [sts] = ofKind(docs, 'StatefulSet');
    expect(sts.spec.volumeClaimTemplates[0].spec.resources.requests.storage).toBe('100Gi');
    const c = container(docs);
    expect(c.resources.requests.memory).toBe('16Gi');
    expect(flag(c.args, 'listen-client-urls')).toBe('https://0.0.0.0:2379');
    expect(flag(c.args, 'initial-cluster')).toContain('=https://metastore-0.');
    expect(flag(c.args, 'trusted-ca-file')).toBe('/etc/metastore/tls/client/ca.crt');
    expect(flag(c.args, 'peer-cert-file')).toBe('/etc/metastore/tls/peer/tls.crt');
    expect(sts.spec.template.spec.volumes.map((v: any) => v.secret.secretName)).toEqual(['ms-client', 'ms-peer']);
    expect(ofKind(docs, 'ServiceMonitor')[0].spec.endpoints[0].port).toBe('metrics');
    expect(() => render(['tls.client.enabled=true'])).toThrow('tls.client.secretName is required');
  });

  it('deploy/k8s/metastore.yaml is the chart rendered with its default values', () => {
    const committed = readFileSync(join(REPO_ROOT, 'deploy', 'k8s', 'metastore.yaml'), 'utf8');
    expect(committed).toBe(renderChart(CHART, { name: 'metastore', namespace: 'default' }));
  });

  it("the rendered members' command lines start a 3-member cluster (loopback, free ports)", async () => {
    const { member, endpoints } = await startRendered(render(['replicaCount=3']));
    await until('a leader', () => endpointStatuses(endpoints), settledOn(3));
    const list = await etcdctl(endpoints, ['member', 'list']);
    for (let i = 0; i < 3; i++) expect(list.stdout).toContain(`metastore-${i}, http://127.0.0.1:${member(i).peer}, http://127.0.0.1:${member(i).client}`);
    for (let i = 0; i < 3; i++) expect((await fetch(`http://127.0.0.1:${member(i).health}/readiness`)).status).toBe(200);
    const put = await etcdctl(endpoints, ['put', 'k', 'v']);
    expect(put.code, put.stderr).toBe(0);
  });

  it('with TLS from Secrets, the rendered members form a cluster that clients reach over mutual TLS', async () => {
    const pki = makeTestPki();
    try {
      // What the Secrets would hold, mounted where the chart mounts them.
      const secrets = join(scratch, 'secrets');
      for (const port of ['client', 'peer']) {
        const pair = pki.issue(`member-${port}`, { cn: `metastore-${port}` });
        mkdirSync(join(secrets, port), { recursive: true });
        copyFileSync(pair.cert, join(secrets, port, 'tls.crt'));
        copyFileSync(pair.key, join(secrets, port, 'tls.key'));
        copyFileSync(pki.ca.cert, join(secrets, port, 'ca.crt'));
      }
      const docs = render(['tls.client.enabled=true', 'tls.client.secretName=c', 'tls.peer.enabled=true', 'tls.peer.secretName=p']);
      const { member, endpoints } = await startRendered(docs, (arg) => arg.replaceAll('/etc/metastore/tls/', `${secrets}/`));
      const client = pki.issue('etcdctl', { cn: 'root' });
      const tls = [`--cacert=${pki.ca.cert}`, `--cert=${client.cert}`, `--key=${client.key}`];
      const https = endpoints
        .split(',')
        .map((e) => `https://${e}`)
        .join(',');
      await until('a leader', () => endpointStatuses(https, tls), settledOn(3));
      const list = await etcdctl(https, [...tls, 'member', 'list']);
      for (let i = 0; i < 3; i++) expect(list.stdout).toContain(`metastore-${i}, https://127.0.0.1:${member(i).peer}, https://127.0.0.1:${member(i).client}`);
      const put = await etcdctl(https, [...tls, 'put', 'k', 'v']);
      expect(put.code, put.stderr).toBe(0);
      const anonymous = await etcdctl(https, [`--cacert=${pki.ca.cert}`, '--command-timeout=2s', 'get', 'k']);
      expect(anonymous.code).not.toBe(0);
    } finally {
      pki.remove();
    }
  });
});
