// Health decisions, kept apart from HTTP so each verdict and each 503 reason is unit-tested.
//
// Inputs come from HealthSources, a narrow interface src/node/ops-sources.ts fills from the
// member; nothing here imports server internals. Three audiences:
// - MetaStore's own /health (status healthy | degraded | unhealthy, with per-area checks),
//   /readiness (is this member fit to take client traffic: what HAProxy asks) and /liveness.
// - etcd's /health ({"health","reason"}), and /livez and /readyz with their named checks,
//   for tools written against etcd.
//
// Verdicts:
//   unhealthy  store read fails or hangs; no leader; CORRUPT alarm          (HTTP 503)
//   degraded   another alarm (NOSPACE: reads still work); applied index far behind
//              committed; shutting down                                      (HTTP 200)
//   ready      leader known, applied within maxApplyLag of committed, no alarm, not shutting
//              down, and the store answers a read
//
// Invariant: once shuttingDown() is true, readiness is false (shutdown flips it before the
// gRPC server stops accepting, so a balancer drains the member first).

export interface HealthSources {
  hasLeader(): boolean;
  appliedIndex(): number;
  committedIndex(): number;
  /** Active alarm names, e.g. "NOSPACE", "CORRUPT". */
  alarms(): string[];
  shuttingDown(): boolean;
  /** A serializable read of the store; rejects when the store cannot serve it. */
  checkRead(): Promise<void>;
}

export interface HealthOptions {
  /**
   * How far applied may trail committed and still count as caught up. etcd refuses new
   * requests ("too many requests") beyond 5000; a member doing that is not fit for traffic.
   */
  maxApplyLag: number;
  /** A store read slower than this counts as failed. */
  readTimeoutMs: number;
}

export const DEFAULT_HEALTH_OPTIONS: HealthOptions = Object.freeze({ maxApplyLag: 5000, readTimeoutMs: 2000 });

export type HealthStatus = 'healthy' | 'degraded' | 'unhealthy';

export interface HealthReport {
  status: HealthStatus;
  checks: {
    store: { status: 'ok' | 'failed'; tookMs: number; error?: string };
    raft: { status: 'ok' | 'lagging' | 'no_leader'; hasLeader: boolean; appliedIndex: number; committedIndex: number; applyLag: number };
    disk: { status: 'ok' | 'alarm'; alarms: string[] };
    server: { status: 'serving' | 'shutting_down' };
  };
}

export interface ReadResult {
  ok: boolean;
  tookMs: number;
  error?: string;
}

/** Runs checkRead with a time bound; never rejects. */
export async function probeRead(sources: HealthSources, timeoutMs: number): Promise<ReadResult> {
  const started = performance.now();
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`read did not answer within ${timeoutMs} ms`)), timeoutMs);
  });
  try {
    await Promise.race([sources.checkRead(), timeout]);
    return { ok: true, tookMs: performance.now() - started };
  } catch (error) {
    return { ok: false, tookMs: performance.now() - started, error: error instanceof Error ? error.message : String(error) };
  } finally {
    clearTimeout(timer);
  }
}

function applyLag(sources: HealthSources): { applied: number; committed: number; lag: number } {
  const applied = sources.appliedIndex();
  const committed = sources.committedIndex();
  return { applied, committed, lag: Math.max(0, committed - applied) };
}

export async function checkHealth(sources: HealthSources, options: HealthOptions = DEFAULT_HEALTH_OPTIONS): Promise<HealthReport> {
  const read = await probeRead(sources, options.readTimeoutMs);
  const hasLeader = sources.hasLeader();
  const { applied, committed, lag } = applyLag(sources);
  const alarms = sources.alarms();
  const shuttingDown = sources.shuttingDown();

  const lagging = lag > options.maxApplyLag;
  let status: HealthStatus = 'healthy';
  if (alarms.length > 0 || lagging || shuttingDown) status = 'degraded';
  if (!read.ok || !hasLeader || alarms.includes('CORRUPT')) status = 'unhealthy';

  return {
    status,
    checks: {
      store: { status: read.ok ? 'ok' : 'failed', tookMs: Math.round(read.tookMs * 1000) / 1000, ...(read.error === undefined ? {} : { error: read.error }) },
      raft: {
        status: !hasLeader ? 'no_leader' : lagging ? 'lagging' : 'ok',
        hasLeader,
        appliedIndex: applied,
        committedIndex: committed,
        applyLag: lag,
      },
      disk: { status: alarms.length > 0 ? 'alarm' : 'ok', alarms },
      server: { status: shuttingDown ? 'shutting_down' : 'serving' },
    },
  };
}

export interface Readiness {
  ready: boolean;
  /** Why not ready, one phrase each; empty when ready. */
  reasons: string[];
}

export async function checkReadiness(sources: HealthSources, options: HealthOptions = DEFAULT_HEALTH_OPTIONS): Promise<Readiness> {
  const reasons: string[] = [];
  // Checked first and without awaiting anything: a member that is stopping says so at once.
  if (sources.shuttingDown()) reasons.push('shutting down');
  if (!sources.hasLeader()) reasons.push('no leader');
  const { applied, committed, lag } = applyLag(sources);
  if (lag > options.maxApplyLag) reasons.push(`applied index ${applied} trails committed index ${committed} by more than ${options.maxApplyLag}`);
  for (const alarm of sources.alarms()) reasons.push(`alarm ${alarm}`);
  if (reasons.length === 0) {
    const read = await probeRead(sources, options.readTimeoutMs);
    if (!read.ok) reasons.push(`store read failed: ${read.error ?? 'unknown error'}`);
  }
  return { ready: reasons.length === 0, reasons };
}

// ---------------------------------------------------------------- etcd's endpoints

export interface EtcdHealth {
  health: 'true' | 'false';
  reason: string;
}

/**
 * etcd's /health: alarms (minus `exclude`), then the leader (skipped when `serializable`),
 * then a read. Reasons are etcd's strings.
 */
export async function etcdHealth(
  sources: HealthSources,
  query: { exclude: ReadonlySet<string>; serializable: boolean },
  options: HealthOptions = DEFAULT_HEALTH_OPTIONS,
): Promise<EtcdHealth> {
  for (const alarm of sources.alarms()) {
    if (query.exclude.has(alarm)) continue;
    const known = alarm === 'NOSPACE' || alarm === 'CORRUPT';
    return { health: 'false', reason: `ALARM ${known ? alarm : 'UNKNOWN'}` };
  }
  if (!query.serializable && !sources.hasLeader()) return { health: 'false', reason: 'RAFT NO LEADER' };
  const read = await probeRead(sources, options.readTimeoutMs);
  if (!read.ok) return { health: 'false', reason: `RANGE ERROR:${read.error ?? 'unknown error'}` };
  return { health: 'true', reason: '' };
}

/** A named check of /livez or /readyz; resolves to undefined when it passes, else why not. */
type EtcdCheck = (sources: HealthSources, options: HealthOptions) => Promise<string | undefined>;

const serializableRead: EtcdCheck = async (sources, options) => {
  const read = await probeRead(sources, options.readTimeoutMs);
  return read.ok ? undefined : (read.error ?? 'read failed');
};

/** The checks etcd 3.5.11+ runs for each endpoint, in its order. */
export const ETCD_CHECKS: Readonly<Record<'livez' | 'readyz', ReadonlyArray<readonly [string, EtcdCheck]>>> = {
  livez: [['serializable_read', serializableRead]],
  readyz: [
    ['data_corruption', async (sources) => (sources.alarms().includes('CORRUPT') ? 'alarm CORRUPT is active' : undefined)],
    ['serializable_read', serializableRead],
    ['linearizable_read', async (sources, options) => (sources.hasLeader() ? serializableRead(sources, options) : 'etcdserver: no leader')],
    // MetaStore has no learners yet: every member is a voter.
    ['non_learner', async () => undefined],
  ],
};

export interface EtcdCheckReport {
  ok: boolean;
  /** "[+]name ok" / "[+]name excluded: ok" / "[-]name failed: why", one per check run. */
  lines: string[];
}

/**
 * Runs an endpoint's checks. `only` restricts to one check (/readyz/<name>); undefined from
 * this function means that check does not exist.
 */
export async function runEtcdChecks(
  endpoint: 'livez' | 'readyz',
  sources: HealthSources,
  query: { exclude: ReadonlySet<string>; only?: string },
  options: HealthOptions = DEFAULT_HEALTH_OPTIONS,
): Promise<EtcdCheckReport | undefined> {
  let checks = ETCD_CHECKS[endpoint];
  if (query.only !== undefined) {
    checks = checks.filter(([name]) => name === query.only);
    if (checks.length === 0) return undefined;
  }
  const lines: string[] = [];
  let ok = true;
  for (const [name, check] of checks) {
    if (query.exclude.has(name)) {
      lines.push(`[+]${name} excluded: ok`);
      continue;
    }
    const failure = await check(sources, options);
    if (failure === undefined) {
      lines.push(`[+]${name} ok`);
    } else {
      ok = false;
      lines.push(`[-]${name} failed: ${failure}`);
    }
  }
  return { ok, lines };
}
