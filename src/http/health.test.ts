// Tests of the health decisions (each 503 reason, the degraded cases, the shutdown flip) and
// of their HTTP mapping on both side ports (fastify inject, no sockets).

import { afterEach, describe, expect, it } from 'vitest';
import type { FastifyInstance } from 'fastify';
import { checkHealth, checkReadiness, etcdHealth, runEtcdChecks, type HealthSources } from './health.js';
import { buildHealthApp, buildMetricsApp, startHealthServer } from './health-server.js';
import { ListenError } from '../util/listen-error.js';

interface FakeState {
  leader: boolean;
  applied: number;
  committed: number;
  alarms: string[];
  stopping: boolean;
  read: 'ok' | 'fail' | 'hang';
}

function fake(overrides: Partial<FakeState> = {}): HealthSources & { state: FakeState } {
  const state: FakeState = { leader: true, applied: 10, committed: 10, alarms: [], stopping: false, read: 'ok', ...overrides };
  return {
    state,
    hasLeader: () => state.leader,
    appliedIndex: () => state.applied,
    committedIndex: () => state.committed,
    alarms: () => state.alarms,
    shuttingDown: () => state.stopping,
    checkRead: () =>
      state.read === 'ok' ? Promise.resolve() : state.read === 'fail' ? Promise.reject(new Error('backend closed')) : new Promise<void>(() => {}),
  };
}

const OPTIONS = { maxApplyLag: 100, readTimeoutMs: 50 };
const NONE = new Set<string>();

describe('MetaStore /health verdict', () => {
  it('is healthy with a leader, caught up, no alarm and a working store', async () => {
    const report = await checkHealth(fake(), OPTIONS);
    expect(report.status).toBe('healthy');
    expect(report.checks.store.status).toBe('ok');
    expect(report.checks.raft).toMatchObject({ status: 'ok', hasLeader: true, appliedIndex: 10, committedIndex: 10, applyLag: 0 });
    expect(report.checks.disk).toEqual({ status: 'ok', alarms: [] });
    expect(report.checks.server).toEqual({ status: 'serving' });
  });

  it.each([
    ['no leader', { leader: false }, 'no_leader'],
    ['a CORRUPT alarm', { alarms: ['CORRUPT'] }, 'ok'],
    ['a failing store read', { read: 'fail' as const }, 'ok'],
    ['a hanging store read', { read: 'hang' as const }, 'ok'],
  ])('is unhealthy with %s', async (_what, state, raftStatus) => {
    const report = await checkHealth(fake(state), OPTIONS);
    expect(report.status).toBe('unhealthy');
    expect(report.checks.raft.status).toBe(raftStatus);
  });

  it('names the store error', async () => {
    expect((await checkHealth(fake({ read: 'fail' }), OPTIONS)).checks.store).toMatchObject({ status: 'failed', error: 'backend closed' });
    expect((await checkHealth(fake({ read: 'hang' }), OPTIONS)).checks.store.error).toBe('read did not answer within 50 ms');
  });

  it.each([
    ['a NOSPACE alarm', { alarms: ['NOSPACE'] }],
    ['applied far behind committed', { applied: 10, committed: 111 }],
    ['shutting down', { stopping: true }],
  ])('is degraded (still 200) with %s', async (_what, state) => {
    expect((await checkHealth(fake(state), OPTIONS)).status).toBe('degraded');
  });
});

describe('readiness', () => {
  it('is ready when serving', async () => {
    expect(await checkReadiness(fake(), OPTIONS)).toEqual({ ready: true, reasons: [] });
    expect((await checkReadiness(fake({ applied: 10, committed: 110 }), OPTIONS)).ready).toBe(true);
  });

  it.each([
    ['no leader', { leader: false }, 'no leader'],
    ['apply lag', { applied: 10, committed: 111 }, 'applied index 10 trails committed index 111 by more than 100'],
    ['an alarm', { alarms: ['NOSPACE'] }, 'alarm NOSPACE'],
    ['shutdown', { stopping: true }, 'shutting down'],
    ['a failing read', { read: 'fail' as const }, 'store read failed: backend closed'],
    ['a hanging read', { read: 'hang' as const }, 'store read failed: read did not answer within 50 ms'],
  ])('is not ready with %s, and says so', async (_what, state, reason) => {
    expect(await checkReadiness(fake(state), OPTIONS)).toEqual({ ready: false, reasons: [reason] });
  });

  it('flips to not ready the moment shutdown begins, before anything else stops', async () => {
    const sources = fake();
    expect((await checkReadiness(sources, OPTIONS)).ready).toBe(true);
    sources.state.stopping = true; // everything else still fine: gRPC still serving
    expect(await checkReadiness(sources, OPTIONS)).toEqual({ ready: false, reasons: ['shutting down'] });
  });
});

describe("etcd's /health, /livez, /readyz", () => {
  it("answers etcd's reasons in etcd's order", async () => {
    expect(await etcdHealth(fake(), { exclude: NONE, serializable: false }, OPTIONS)).toEqual({ health: 'true', reason: '' });
    expect(await etcdHealth(fake({ alarms: ['NOSPACE'], leader: false }), { exclude: NONE, serializable: false }, OPTIONS)).toEqual({
      health: 'false',
      reason: 'ALARM NOSPACE',
    });
    expect(await etcdHealth(fake({ alarms: ['CORRUPT'] }), { exclude: NONE, serializable: false }, OPTIONS)).toEqual({
      health: 'false',
      reason: 'ALARM CORRUPT',
    });
    expect(await etcdHealth(fake({ leader: false }), { exclude: NONE, serializable: false }, OPTIONS)).toEqual({
      health: 'false',
      reason: 'RAFT NO LEADER',
    });
    expect(await etcdHealth(fake({ read: 'fail' }), { exclude: NONE, serializable: false }, OPTIONS)).toEqual({
      health: 'false',
      reason: 'RANGE ERROR:backend closed',
    });
  });

  it('honours ?exclude=<alarm> and ?serializable=true', async () => {
    expect(await etcdHealth(fake({ alarms: ['NOSPACE'] }), { exclude: new Set(['NOSPACE']), serializable: false }, OPTIONS)).toEqual({
      health: 'true',
      reason: '',
    });
    expect(await etcdHealth(fake({ leader: false }), { exclude: NONE, serializable: true }, OPTIONS)).toEqual({ health: 'true', reason: '' });
  });

  it('runs the named checks, with exclusions and single checks', async () => {
    expect(await runEtcdChecks('readyz', fake(), { exclude: NONE }, OPTIONS)).toEqual({
      ok: true,
      lines: ['[+]data_corruption ok', '[+]serializable_read ok', '[+]linearizable_read ok', '[+]non_learner ok'],
    });
    const noLeader = await runEtcdChecks('readyz', fake({ leader: false }), { exclude: NONE }, OPTIONS);
    expect(noLeader?.ok).toBe(false);
    expect(noLeader?.lines).toContain('[-]linearizable_read failed: etcdserver: no leader');
    expect((await runEtcdChecks('readyz', fake({ leader: false }), { exclude: new Set(['linearizable_read']) }, OPTIONS))?.lines).toContain(
      '[+]linearizable_read excluded: ok',
    );
    expect((await runEtcdChecks('livez', fake({ leader: false }), { exclude: NONE }, OPTIONS))?.ok).toBe(true);
    expect((await runEtcdChecks('readyz', fake({ alarms: ['CORRUPT'] }), { exclude: NONE, only: 'data_corruption' }, OPTIONS))?.lines).toEqual([
      '[-]data_corruption failed: alarm CORRUPT is active',
    ]);
    expect(await runEtcdChecks('livez', fake(), { exclude: NONE, only: 'nope' }, OPTIONS)).toBeUndefined();
  });
});

describe('HTTP mapping', () => {
  const apps: FastifyInstance[] = [];
  afterEach(async () => {
    await Promise.all(apps.splice(0).map((a) => a.close()));
  });
  const healthApp = (sources: HealthSources): FastifyInstance => {
    const app = buildHealthApp({ sources, health: OPTIONS });
    apps.push(app);
    return app;
  };
  const metricsApp = (sources: HealthSources): FastifyInstance => {
    const app = buildMetricsApp({
      sources,
      health: OPTIONS,
      metrics: { text: async () => '# HELP x y\n# TYPE x gauge\nx 1\n', contentType: 'text/plain; version=0.0.4; charset=utf-8' },
      versions: { etcdserver: '3.4.23', etcdcluster: '3.4.0' },
    });
    apps.push(app);
    return app;
  };

  it('health port: /health 200/503, /readiness 200/503 with reasons, /liveness 200', async () => {
    const sources = fake();
    const app = healthApp(sources);
    let r = await app.inject('/health');
    expect(r.statusCode).toBe(200);
    expect(r.json()).toMatchObject({ status: 'healthy', checks: { store: { status: 'ok' }, raft: { status: 'ok' }, disk: { status: 'ok' } } });
    expect((await app.inject('/readiness')).json()).toEqual({ status: 'ready' });
    expect((await app.inject('/liveness')).statusCode).toBe(200);

    sources.state.alarms = ['NOSPACE'];
    r = await app.inject('/health');
    expect([r.statusCode, r.json().status]).toEqual([200, 'degraded']);
    r = await app.inject('/readiness');
    expect([r.statusCode, r.json()]).toEqual([503, { status: 'not ready', reasons: ['alarm NOSPACE'] }]);

    sources.state.leader = false;
    r = await app.inject('/health');
    expect([r.statusCode, r.json().status]).toEqual([503, 'unhealthy']);
    expect((await app.inject('/liveness')).json()).toEqual({ status: 'alive' });
  });

  it("metrics port: etcd's endpoints and formats", async () => {
    const sources = fake();
    const app = metricsApp(sources);
    let r = await app.inject('/health');
    expect([r.statusCode, r.body]).toEqual([200, '{"health":"true"}']);
    r = await app.inject('/livez');
    expect([r.statusCode, r.body]).toEqual([200, 'ok']);
    r = await app.inject('/readyz?verbose');
    expect(r.statusCode).toBe(200);
    expect(r.body).toBe('[+]data_corruption ok\n[+]serializable_read ok\n[+]linearizable_read ok\n[+]non_learner ok\nok\n');
    r = await app.inject('/readyz/serializable_read?verbose');
    expect(r.body).toBe('[+]serializable_read ok\nok\n');
    expect((await app.inject('/readyz/bogus')).statusCode).toBe(404);
    r = await app.inject('/version');
    expect([r.statusCode, r.json()]).toEqual([200, { etcdserver: '3.4.23', etcdcluster: '3.4.0' }]);
    r = await app.inject('/metrics');
    expect(r.statusCode).toBe(200);
    expect(r.headers['content-type']).toContain('version=0.0.4');
    expect(r.body).toContain('x 1');

    sources.state.leader = false;
    r = await app.inject('/health');
    expect([r.statusCode, r.body]).toEqual([503, '{"health":"false"}\n']);
    expect((await app.inject('/health?serializable=true')).statusCode).toBe(200);
    r = await app.inject('/readyz');
    expect(r.statusCode).toBe(503);
    expect(r.body).toBe(
      '[+]data_corruption ok\n[+]serializable_read ok\n[-]linearizable_read failed: etcdserver: no leader\n[+]non_learner ok\nhealth check failed\n',
    );
    expect((await app.inject('/readyz?exclude=linearizable_read')).statusCode).toBe(200);
    expect((await app.inject('/livez')).statusCode).toBe(200);

    sources.state.alarms = ['NOSPACE', 'CORRUPT'];
    expect((await app.inject('/health?exclude=NOSPACE&serializable=true')).json()).toEqual({ health: 'false' });
  });
});

describe('listening', () => {
  it('serves on a real port, and a taken port fails with a ListenError naming the port', async () => {
    const server = await startHealthServer({ host: '127.0.0.1', port: 0, sources: fake() });
    try {
      const response = await fetch(`http://127.0.0.1:${server.port}/liveness`);
      expect(response.status).toBe(200);
      const taken = startHealthServer({ host: '127.0.0.1', port: server.port, sources: fake() });
      await expect(taken).rejects.toThrow(ListenError);
      await expect(taken).rejects.toThrow(`cannot listen on 127.0.0.1:${server.port}: port ${server.port} is already in use`);
    } finally {
      await server.close();
    }
  });
});
