// The one typed shape of MetaStore's configuration, its one frozen defaults object, and the
// declarative table of every key (YAML path, type, default, description, environment
// variable). Everything else (the YAML loader, environment variables, etcd's flags, the help
// text, configs/metastore.yaml) is driven by this table, so a key added here is known
// everywhere at once.
//
// Invariants:
// - Every leaf of DEFAULTS is covered by exactly one key, except the DERIVED_FIELDS that the
//   loader computes from other keys (tested).
// - A key's TypeScript field is derived from its YAML path: `server.grpc.max_recv_msg_size` ->
//   `config.grpc.maxRecvMsgSize`; durations gain `Ms` (`request_timeout` -> `requestTimeoutMs`).
// - A key's environment variable is METASTORE_ + the upper-cased path, dots -> underscores.
// - Units go last in field names; durations are whole milliseconds, sizes whole bytes.

import { formatDurationMs, formatInitialCluster, formatPeer, formatUrl, type InitialClusterMember, type Peer, type Url } from './values.js';

export type { InitialClusterMember, Peer, Url } from './values.js';

export interface TlsConfig {
  readonly enabled: boolean;
  readonly certFile: string;
  readonly keyFile: string;
  readonly caFile: string;
  readonly clientCertAuth: boolean;
  readonly autoTls: boolean;
  /** Certificate revocation list (PEM) checked against client certificates; empty = none. */
  readonly crlFile: string;
  /** etcd --cipher-suites, Go/IANA names (TLS 1.2 suites); empty = Node's defaults. */
  readonly cipherSuites: readonly string[];
  readonly minVersion: TlsMinVersion;
}

export type TlsMinVersion = 'TLS1.2' | 'TLS1.3';

/** Peer TLS adds etcd's --peer-cert-allowed-cn. */
export interface PeerTlsConfig extends TlsConfig {
  /** Only peers whose certificate CN equals this are accepted; empty = any verified peer. */
  readonly allowedCn: string;
}

export type LogLevel = 'debug' | 'info' | 'warn' | 'error' | 'panic' | 'fatal';
export type LogFormat = 'json' | 'console';
export type CompactionMode = 'periodic' | 'revision';
export type InitialClusterState = 'new' | 'existing';

export interface Config {
  readonly name: string;
  /** 0 = derived by the server from the initial cluster and its token, as etcd does. */
  readonly clusterId: bigint;
  /** 0 = derived by the server from the name and peer URLs, as etcd does. */
  readonly memberId: bigint;
  readonly dataDir: string;
  /** Empty = the raft log lives inside dataDir. */
  readonly walDir: string;
  readonly initialClusterState: InitialClusterState;
  readonly initialClusterToken: string;
  readonly initialCluster: readonly InitialClusterMember[];
  readonly forceNewCluster: boolean;
  readonly grpc: {
    /** IP to bind the client port to. */
    readonly address: string;
    readonly port: number;
    /** host:port given to clients; empty = address:port. */
    readonly advertiseAddress: string;
    /** etcd --listen-client-urls; when set, the first one equals address:port. */
    readonly listenUrls: readonly Url[];
    /** etcd --advertise-client-urls; when set, the first one equals advertiseAddress. */
    readonly advertiseUrls: readonly Url[];
    readonly maxRecvMsgSize: number;
    readonly maxSendMsgSize: number;
    readonly maxConcurrentStreams: number;
    readonly enableRateLimit: boolean;
    readonly rateLimitQps: number;
    readonly rateLimitBurst: number;
    readonly keepaliveMinTimeMs: number;
    readonly keepaliveIntervalMs: number;
    readonly keepaliveTimeoutMs: number;
    /** etcd --experimental-watch-progress-notify-interval; 0 = etcd's default (10 minutes). */
    readonly watchProgressNotifyIntervalMs: number;
    readonly enableGateway: boolean;
    /** Edge processes serving the client port (node:cluster); 0 = all in the one process. */
    readonly workers: number;
    readonly tls: TlsConfig;
  };
  readonly raft: {
    readonly address: string;
    readonly port: number;
    readonly advertiseAddress: string;
    readonly listenUrls: readonly Url[];
    readonly advertiseUrls: readonly Url[];
    readonly electionTimeoutMs: number;
    readonly heartbeatIntervalMs: number;
    readonly peers: readonly Peer[];
    readonly snapshotCount: number;
    readonly preVote: boolean;
    readonly strictReconfigCheck: boolean;
    readonly maxLearners: number;
    /** Raft batches whose log writes may be in flight at once (the Ready pipeline's depth). */
    readonly maxWritesInFlight: number;
    readonly tls: PeerTlsConfig;
  };
  readonly limits: {
    readonly maxConnections: number;
    readonly requestTimeoutMs: number;
    readonly maxRequestBytes: number;
    readonly maxTxnOps: number;
    /** etcd semantics: 0 = the 2 GiB default, -1 = no quota. */
    readonly quotaBackendBytes: number;
    /** The leader refuses proposals past this many uncommitted log bytes (0 = no limit). */
    readonly maxUncommittedEntriesBytes: number;
    /** A member refuses proposals while its unanswered ones hold this many bytes (0 = no limit). */
    readonly maxPendingProposalBytes: number;
    /** A member refuses proposals while committed - applied exceeds this (etcd: 5000). */
    readonly maxCommitApplyGap: number;
    /** The client port refuses new requests from their headers while requests being received
     * would hold this many bytes, each counted at the largest request size (0 = no limit). */
    readonly maxReceivingRequestBytes: number;
  };
  readonly compaction: {
    readonly mode: CompactionMode;
    /** As written; the two derived fields below hold its meaning for the mode. */
    readonly retention: string;
    /** Derived: periodic mode's retention (0 = off). */
    readonly retentionMs: number;
    /** Derived: revision mode's number of revisions kept (0 = off). */
    readonly retentionRevisions: number;
  };
  readonly monitoring: {
    readonly enablePrometheus: boolean;
    readonly prometheusPort: number;
    /** Derived: whether prometheus_port is opened (not with etcd's command line unless set). */
    readonly openPrometheusPort: boolean;
    readonly listenMetricsUrls: readonly Url[];
    readonly slowRequestThresholdMs: number;
  };
  /** The deployment guide's optional HTTP API port: the client port's HTTP/1.1 endpoints. */
  readonly http: {
    /** Empty: grpc.address. */
    readonly address: string;
    /** 0: not opened (the default). */
    readonly port: number;
  };
  readonly health: {
    readonly port: number;
    /** Derived: whether the health port is opened (not with etcd's command line unless set). */
    readonly open: boolean;
  };
  readonly reliability: {
    readonly enablePanicRecovery: boolean;
    readonly gracefulShutdownTimeoutMs: number;
    readonly initialCorruptCheck: boolean;
    /** Period of the leader's corruption check against every member; 0 = off. */
    readonly corruptCheckTimeMs: number;
  };
  readonly log: {
    readonly level: LogLevel;
    readonly format: LogFormat;
    /** "stdout", "stderr" or a file path. */
    readonly output: string;
    readonly maxSize: number;
    readonly maxBackups: number;
    readonly maxAgeDays: number;
  };
  readonly auth: {
    readonly enabled: boolean;
    readonly rootPassword: string;
    /** etcd --auth-token: "simple" or "jwt,pub-key=...,priv-key=...,sign-method=...". */
    readonly token: string;
    readonly tokenTtlMs: number;
  };
  readonly storage: {
    readonly blockCacheSize: number;
    readonly writeBufferSize: number;
    readonly maxOpenFiles: number;
    readonly compression: boolean;
    /** Bytes of live values cached in the heap in front of LevelDB (MetaStore only). */
    readonly valueCacheSize: number;
  };
}

// A function, not a shared constant: the loader copies DEFAULTS with structuredClone, which
// keeps shared references shared, so one object here would tie client and peer TLS together.
function noTls(): TlsConfig {
  return {
    enabled: false,
    certFile: '',
    keyFile: '',
    caFile: '',
    clientCertAuth: false,
    autoTls: false,
    crlFile: '',
    cipherSuites: [],
    minVersion: 'TLS1.2',
  };
}

function noPeerTls(): PeerTlsConfig {
  return { ...noTls(), allowedCn: '' };
}

export function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const child of Object.values(value)) deepFreeze(child);
  }
  return value;
}

/** The one defaults object. etcd's defaults where etcd has the setting, the guide's otherwise. */
export const DEFAULTS: Config = deepFreeze<Config>({
  name: 'default',
  clusterId: 0n,
  memberId: 0n,
  dataDir: './data',
  walDir: '',
  initialClusterState: 'new',
  initialClusterToken: 'etcd-cluster',
  initialCluster: [],
  forceNewCluster: false,
  grpc: {
    address: '127.0.0.1',
    port: 2379,
    advertiseAddress: '',
    listenUrls: [],
    advertiseUrls: [],
    // etcd's gRPC limits: receive = max_request_bytes + 512 KiB (derived while unset), send =
    // Go's math.MaxInt32.
    maxRecvMsgSize: 2_097_152,
    maxSendMsgSize: 2_147_483_647,
    maxConcurrentStreams: 1000,
    enableRateLimit: false,
    rateLimitQps: 10_000,
    rateLimitBurst: 20_000,
    keepaliveMinTimeMs: 5000,
    keepaliveIntervalMs: 7_200_000,
    keepaliveTimeoutMs: 20_000,
    watchProgressNotifyIntervalMs: 600_000,
    enableGateway: true,
    workers: 0,
    tls: noTls(),
  },
  raft: {
    address: '127.0.0.1',
    port: 12_379,
    advertiseAddress: '',
    listenUrls: [],
    advertiseUrls: [],
    electionTimeoutMs: 1000,
    heartbeatIntervalMs: 100,
    peers: [],
    snapshotCount: 10_000,
    preVote: true,
    strictReconfigCheck: true,
    maxLearners: 1,
    maxWritesInFlight: 1,
    tls: noPeerTls(),
  },
  limits: {
    maxConnections: 1000,
    requestTimeoutMs: 30_000,
    maxRequestBytes: 1_572_864,
    maxTxnOps: 128,
    quotaBackendBytes: 0,
    maxUncommittedEntriesBytes: 67_108_864,
    maxPendingProposalBytes: 67_108_864,
    maxCommitApplyGap: 5000,
    maxReceivingRequestBytes: 67_108_864,
  },
  compaction: { mode: 'periodic', retention: '0', retentionMs: 0, retentionRevisions: 0 },
  monitoring: { enablePrometheus: true, prometheusPort: 9090, openPrometheusPort: true, listenMetricsUrls: [], slowRequestThresholdMs: 100 },
  http: { address: '', port: 0 },
  health: { port: 8080, open: true },
  reliability: { enablePanicRecovery: true, gracefulShutdownTimeoutMs: 30_000, initialCorruptCheck: false, corruptCheckTimeMs: 0 },
  log: { level: 'info', format: 'json', output: 'stdout', maxSize: 104_857_600, maxBackups: 10, maxAgeDays: 30 },
  auth: { enabled: false, rootPassword: '', token: 'simple', tokenTtlMs: 300_000 },
  storage: { blockCacheSize: 8_388_608, writeBufferSize: 16_777_216, maxOpenFiles: 74, compression: true, valueCacheSize: 16_777_216 },
});

/** Fields computed by the loader from other keys, so they have no key of their own. */
export const DERIVED_FIELDS: readonly string[] = ['compaction.retentionMs', 'compaction.retentionRevisions', 'health.open', 'monitoring.openPrometheusPort'];

export type KeyType = 'int' | 'uint' | 'bool' | 'string' | 'duration' | 'size' | 'enum' | 'string-list' | 'bigint-id';

/** How the items of a string-list key are refined into typed values. */
export type ListItems = 'string' | 'url' | 'peer' | 'initial-cluster';

export interface KeySpec {
  /** YAML path, e.g. "server.grpc.port". */
  readonly path: string;
  readonly type: KeyType;
  readonly description: string;
  /** The TypeScript field path inside Config, e.g. ["grpc", "port"]. */
  readonly field: readonly string[];
  readonly env: string;
  /** The default as it is written in YAML (durations as "30s", URLs as text). */
  readonly default: string | number | boolean | bigint | readonly string[];
  readonly min?: number;
  readonly max?: number;
  readonly values?: readonly string[];
  readonly items?: ListItems;
  /** For sizes: the unit of a bare number (lumberjack's max_size counts megabytes); default bytes. */
  readonly bareUnitBytes?: number;
}

interface KeyOptions {
  readonly min?: number;
  readonly max?: number;
  readonly values?: readonly string[];
  readonly items?: ListItems;
  readonly bareUnitBytes?: number;
  /** Only when the derived name would be wrong (a unit the YAML key does not spell). */
  readonly field?: readonly string[];
}

const PORT = { min: 1, max: 65_535 } as const;
/** Ports that etcd's listen URLs also set, where 0 (a free port) is allowed as in etcd. */
const LISTEN_PORT = { min: 0, max: 65_535 } as const;

export function envVarName(path: string): string {
  return `METASTORE_${path.toUpperCase().replaceAll('.', '_')}`;
}

function camel(snake: string): string {
  return snake.replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase());
}

export function fieldFor(path: string, type: KeyType): string[] {
  const segments = path.split('.').slice(1).map(camel);
  const last = segments.length - 1;
  if (type === 'duration' && !(segments[last] ?? '').endsWith('Ms')) segments[last] = `${segments[last]}Ms`;
  return segments;
}

export function getField(config: unknown, field: readonly string[]): unknown {
  let node: unknown = config;
  for (const segment of field) node = (node as Record<string, unknown> | undefined)?.[segment];
  return node;
}

/** Renders a typed default back to the text an operator would write in YAML. */
function yamlDefault(type: KeyType, items: ListItems | undefined, value: unknown): KeySpec['default'] {
  switch (type) {
    case 'duration':
      return formatDurationMs(value as number);
    case 'string-list': {
      const list = value as readonly unknown[];
      if (items === 'url') return (list as readonly Url[]).map(formatUrl);
      if (items === 'peer') return (list as readonly Peer[]).map(formatPeer);
      if (items === 'initial-cluster') return formatInitialCluster(list as readonly InitialClusterMember[]);
      return list as readonly string[];
    }
    default:
      return value as string | number | boolean | bigint;
  }
}

function key(path: string, type: KeyType, description: string, options: KeyOptions = {}): KeySpec {
  const field = options.field ?? fieldFor(path, type);
  const value = getField(DEFAULTS, field);
  if (value === undefined) throw new Error(`config key ${path} has no default at ${field.join('.')}`);
  return Object.freeze({
    path,
    type,
    description,
    field: Object.freeze([...field]),
    env: envVarName(path),
    default: options.bareUnitBytes !== undefined ? Number(value) / options.bareUnitBytes : yamlDefault(type, options.items, value),
    ...(options.min !== undefined && { min: options.min }),
    ...(options.max !== undefined && { max: options.max }),
    ...(options.values !== undefined && { values: options.values }),
    ...(type === 'string-list' && { items: options.items ?? 'string' }),
    ...(options.bareUnitBytes !== undefined && { bareUnitBytes: options.bareUnitBytes }),
  });
}

function tlsKeys(prefix: string, what: string): KeySpec[] {
  return [
    key(`${prefix}.enabled`, 'bool', `serve ${what} over TLS (also turned on by https:// URLs)`),
    key(`${prefix}.cert_file`, 'string', `${what} TLS certificate file`),
    key(`${prefix}.key_file`, 'string', `${what} TLS private key file`),
    key(`${prefix}.ca_file`, 'string', `CA bundle for verifying ${what} client certificates`),
    key(`${prefix}.client_cert_auth`, 'bool', `require and verify ${what} client certificates`),
    key(`${prefix}.auto_tls`, 'bool', `generate a self-signed ${what} certificate (testing only)`),
    key(
      `${prefix}.crl_file`,
      'string',
      `certificate revocation list (DER or PEM); ${what} client certificates whose serial it lists are refused, whatever its dates (as etcd)`,
    ),
    key(`${prefix}.cipher_suites`, 'string-list', `TLS 1.2 cipher suites offered (Go/IANA names as etcd); empty = defaults`),
    key(`${prefix}.min_version`, 'enum', `lowest TLS version accepted`, { values: ['TLS1.2', 'TLS1.3'] }),
  ];
}

/** Every key, in the order the reference YAML and the help text present them. */
export const CONFIG_KEYS: readonly KeySpec[] = Object.freeze([
  key('server.name', 'string', 'human-readable member name (etcd --name)'),
  key('server.cluster_id', 'bigint-id', 'cluster ID; 0 = derived from initial cluster and token'),
  key(
    'server.member_id',
    'bigint-id',
    "this member's ID; 0 = derived from peer URLs and token, or learnt from the running cluster when joining it (with raft.peers: the ID member add printed)",
  ),
  key('server.data_dir', 'string', 'directory for the LevelDB data'),
  key('server.wal_dir', 'string', 'separate directory for the raft log; empty = inside data_dir'),
  key('server.initial_cluster_state', 'enum', 'new to bootstrap a cluster, existing to join one', { values: ['new', 'existing'] }),
  key('server.initial_cluster_token', 'string', 'token that keeps separately bootstrapped clusters apart'),
  key('server.initial_cluster', 'string-list', 'etcd-style bootstrap members, name=peer-url entries', { items: 'initial-cluster' }),
  key('server.force_new_cluster', 'bool', 'restart as a one-member cluster from existing data (disaster recovery)'),

  key('server.grpc.address', 'string', 'IP the client (gRPC), health and metrics ports bind to; unset with a non-loopback advertise_address = 0.0.0.0'),
  key('server.grpc.port', 'uint', 'client (gRPC) port; 0 = a free port', LISTEN_PORT),
  key('server.grpc.advertise_address', 'string', 'host:port advertised to clients; empty = address:port'),
  key('server.grpc.listen_urls', 'string-list', 'client URLs to listen on (etcd: http, https, unix, unixs); first must match address:port', { items: 'url' }),
  key('server.grpc.advertise_urls', 'string-list', 'client URLs advertised (etcd); first must match advertise_address', { items: 'url' }),
  key(
    'server.grpc.max_recv_msg_size',
    'size',
    'largest gRPC message received, bytes (larger: RESOURCE_EXHAUSTED as grpc-go); unset = max_request_bytes + 512 KiB as etcd, set alone = the request limit becomes this - 512',
    { min: 1 },
  ),
  key(
    'server.grpc.max_send_msg_size',
    'size',
    "largest gRPC message sent, bytes (a larger response fails with RESOURCE_EXHAUSTED); default etcd's 2147483647",
    { min: 1, max: 2_147_483_647 },
  ),
  key('server.grpc.max_concurrent_streams', 'uint', 'concurrent streams per client connection', { min: 1 }),
  key('server.grpc.enable_rate_limit', 'bool', 'limit requests per second per member'),
  key('server.grpc.rate_limit_qps', 'uint', 'sustained requests per second when rate limiting', { min: 1 }),
  key('server.grpc.rate_limit_burst', 'uint', 'burst size when rate limiting', { min: 1 }),
  key(
    'server.grpc.keepalive_min_time',
    'duration',
    "shortest client keepalive ping interval accepted; a client pinging more often (or at all without an open call) is sent GOAWAY too_many_pings after 3 strikes, as grpc-go; 0 = grpc-go's 5m",
  ),
  key('server.grpc.keepalive_interval', 'duration', "server-to-client keepalive ping interval; 0 (or keepalive_timeout 0) = grpc-go's 2h"),
  key(
    'server.grpc.keepalive_timeout',
    'duration',
    "close a connection whose keepalive ping is unanswered this long; 0 (or keepalive_interval 0) = grpc-go's 20s",
  ),
  key(
    'server.grpc.watch_progress_notify_interval',
    'duration',
    'period of progress notifications to synced watchers that asked (progress_notify); 0 = 10m, under 100ms = 100ms',
  ),
  key('server.grpc.enable_gateway', 'bool', 'serve the JSON gRPC gateway (/v3/...) on the client port'),
  key(
    'server.grpc.workers',
    'uint',
    'edge processes terminating TLS, HTTP/2 and gRPC on the client port and relaying calls to the member process (no etcd equivalent); 0 = everything in one process',
    { max: 64 },
  ),
  ...tlsKeys('server.grpc.tls', 'client'),

  key('server.raft.address', 'string', 'IP the peer (raft) port binds to; unset with a non-loopback advertise_address = 0.0.0.0'),
  key('server.raft.port', 'uint', 'peer (raft) port; 0 = a free port', LISTEN_PORT),
  key('server.raft.advertise_address', 'string', 'host:port advertised to peers; empty = address:port'),
  key('server.raft.listen_urls', 'string-list', 'peer URLs to listen on (etcd: http, https, unix, unixs); first must match address:port', { items: 'url' }),
  key('server.raft.advertise_urls', 'string-list', 'peer URLs advertised (etcd); first must match advertise_address', { items: 'url' }),
  key('server.raft.election_timeout_ms', 'uint', 'election timeout in ms (>= 5 x heartbeat, <= 50000)', { min: 1, max: 50_000 }),
  key('server.raft.heartbeat_interval_ms', 'uint', 'leader heartbeat interval in ms', { min: 1 }),
  key('server.raft.peers', 'string-list', 'all voting members as ID@host:port, this member included', { items: 'peer' }),
  key('server.raft.snapshot_count', 'uint', 'applied entries between raft snapshots', { min: 1 }),
  key('server.raft.pre_vote', 'bool', 'pre-vote before campaigning, so a rejoining member does not disrupt'),
  key('server.raft.strict_reconfig_check', 'bool', 'refuse membership changes that would lose quorum'),
  key('server.raft.max_learners', 'uint', 'most learner members allowed'),
  key(
    'server.raft.max_writes_in_flight',
    'uint',
    'raft batches whose log writes may be in flight at once: 1 = the next batch is taken as the previous write lands (its write starts before the landed batch is applied); more lets the leader send and queue later batches during a write (the disk never waits for the main thread, at the cost of more, smaller messages and more CPU per entry); the leader counts its own copy toward the commit only once its write landed',
    { min: 1, max: 64 },
  ),
  ...tlsKeys('server.raft.tls', 'peer'),
  key('server.raft.tls.allowed_cn', 'string', 'accept only peers whose certificate CN is this (etcd --peer-cert-allowed-cn); empty = any'),

  key('server.limits.max_connections', 'uint', 'most concurrent client connections', { min: 1 }),
  key('server.limits.request_timeout', 'duration', 'how long a request waits for its result'),
  key('server.limits.max_request_bytes', 'size', 'largest client request, bytes', { min: 1 }),
  key('server.limits.max_txn_ops', 'uint', 'most operations in one txn branch', { min: 1 }),
  key('server.limits.quota_backend_bytes', 'size', 'backend size that raises NOSPACE; 0 = 2 GiB, -1 = no quota', { min: -1 }),
  key(
    'server.limits.max_uncommitted_entries_bytes',
    'size',
    'the leader answers "too many requests" to proposals past this many uncommitted raft log bytes; 0 = no limit',
    { min: 0 },
  ),
  key(
    'server.limits.max_pending_proposal_bytes',
    'size',
    'a member answers "too many requests" while its proposals awaiting their result hold this many bytes; 0 = no limit',
    { min: 0 },
  ),
  key(
    'server.limits.max_receiving_request_bytes',
    'size',
    'the client port answers "too many requests" from the headers of a new request while large requests being received (more than 64 KiB arrived, body incomplete; each counted at --max-request-bytes + 512 KiB) could hold this many bytes; 0 = no limit',
    { min: 0 },
  ),
  key(
    'server.limits.max_commit_apply_gap',
    'uint',
    'a member answers "too many requests" while committed raft entries are this many ahead of applied ones (etcd: 5000)',
    { min: 1 },
  ),

  key('server.compaction.mode', 'enum', 'auto-compaction mode', { values: ['periodic', 'revision'] }),
  key('server.compaction.retention', 'string', 'periodic: duration or integer hours; revision: revisions kept; 0 = off'),

  key('server.monitoring.enable_prometheus', 'bool', 'serve Prometheus metrics'),
  key('server.monitoring.prometheus_port', 'uint', 'port of the /metrics endpoint (with etcd listen URL flags: opened only when set)', PORT),
  key(
    'server.monitoring.listen_metrics_urls',
    'string-list',
    'extra URLs serving /metrics, /health, /livez, /readyz and /version (etcd --listen-metrics-urls)',
    { items: 'url' },
  ),
  key(
    'server.monitoring.slow_request_threshold',
    'duration',
    'log requests slower than this (at most 10 lines a second; the next line counts those not logged)',
  ),

  key('server.http.address', 'string', 'IP the HTTP API port binds to; empty = server.grpc.address'),
  key(
    'server.http.port',
    'uint',
    "the guide's HTTP API port: etcd's JSON gateway (/v3/...), /health and the client port's other HTTP/1.1 endpoints; TLS as the client port; 0 = off",
    LISTEN_PORT,
  ),

  key('server.health.port', 'uint', 'port of /health, /readiness and /liveness (with etcd listen URL flags: opened only when set)', PORT),

  key(
    'server.reliability.enable_panic_recovery',
    'bool',
    'true: an unexpected error in a request handler is logged and answered INTERNAL; false: it stops the member (exit 1), as a Go server without recovery',
  ),
  key('server.reliability.graceful_shutdown_timeout', 'duration', 'how long shutdown waits for requests in flight'),
  key('server.reliability.initial_corrupt_check', 'bool', 'compare hashes with peers before serving'),
  key('server.reliability.corrupt_check_time', 'duration', "leader's periodic hash check of every member (raises CORRUPT); 0 = off"),

  key('server.log.level', 'enum', 'lowest level logged', { values: ['debug', 'info', 'warn', 'error', 'panic', 'fatal'] }),
  key('server.log.format', 'enum', 'log line format', { values: ['json', 'console'] }),
  key('server.log.output', 'string', 'stdout, stderr or a file path (reopened on SIGHUP)'),
  key('server.log.max_size', 'size', 'rotate the log file at this size: a bare number is megabytes (as lumberjack), or "100MiB"', {
    min: 1_048_576,
    bareUnitBytes: 1_048_576,
  }),
  key('server.log.max_backups', 'uint', 'rotated log files kept'),
  key('server.log.max_age', 'uint', 'days rotated log files are kept', { field: ['log', 'maxAgeDays'] }),

  key('server.auth.enabled', 'bool', 'require authentication (also switchable at runtime by AuthEnable)'),
  key('server.auth.root_password', 'string', 'password for the root user created at bootstrap; empty = none'),
  key('server.auth.token', 'string', 'token provider: simple, or jwt,pub-key=...,priv-key=...,sign-method=...'),
  key('server.auth.token_ttl', 'duration', 'lifetime of an idle simple token'),

  key('server.storage.block_cache_size', 'size', 'LevelDB block cache, bytes'),
  key(
    'server.storage.write_buffer_size',
    'size',
    "LevelDB write buffer (memtable) of each database (the data dir's, and the wal dir's when there is one), bytes; up to two of them in memory per database. Larger memtables mean fewer, larger level-0 tables, so LevelDB rewrites much less in compaction (16 MiB: ~40% of the compaction CPU per put of 4 MiB, LevelDB's own default)",
    { min: 1 },
  ),
  key(
    'server.storage.max_open_files',
    'uint',
    'LevelDB open file limit; LevelDB keeps 10 for itself and memory-maps the table files it holds open (2 MiB each), so scans (snapshot, hash) add at most (N - 10) x 2 MiB of resident file pages; values below 74 count as 74',
    { min: 1 },
  ),
  key('server.storage.compression', 'bool', 'Snappy-compress LevelDB blocks'),
  key('server.storage.value_cache_size', 'size', 'live values cached in memory in front of LevelDB (CLOCK eviction), bytes; 0 = none'),
]);

export const KEYS_BY_PATH: ReadonlyMap<string, KeySpec> = new Map(CONFIG_KEYS.map((k) => [k.path, k]));
export const KEYS_BY_ENV: ReadonlyMap<string, KeySpec> = new Map(CONFIG_KEYS.map((k) => [k.env, k]));

/** Client URLs to bind: the etcd-style list when given, else address:port. */
export function clientListenUrls(config: Config): readonly Url[] {
  if (config.grpc.listenUrls.length > 0) return config.grpc.listenUrls;
  return [{ scheme: config.grpc.tls.enabled ? 'https' : 'http', host: config.grpc.address, port: config.grpc.port }];
}

/** Peer URLs to bind: the etcd-style list when given, else address:port. */
export function peerListenUrls(config: Pick<Config, 'raft'>): readonly Url[] {
  if (config.raft.listenUrls.length > 0) return config.raft.listenUrls;
  return [{ scheme: config.raft.tls.enabled ? 'https' : 'http', host: config.raft.address, port: config.raft.port }];
}

/** Client URLs to advertise: the etcd-style list, else advertise_address, else what is bound. */
export function clientAdvertiseUrls(config: Config): readonly Url[] {
  return advertised(config.grpc.advertiseUrls, config.grpc.advertiseAddress, clientListenUrls(config));
}

/** Peer URLs to advertise: the etcd-style list, else advertise_address, else what is bound. */
export function peerAdvertiseUrls(config: Pick<Config, 'raft'>): readonly Url[] {
  return advertised(config.raft.advertiseUrls, config.raft.advertiseAddress, peerListenUrls(config));
}

function advertised(urls: readonly Url[], address: string, listening: readonly Url[]): readonly Url[] {
  if (urls.length > 0) return urls;
  const scheme = listening[0]?.scheme ?? 'http';
  // The loader has checked advertise_address is host:port; split at the last colon for IPv6.
  if (address !== '') {
    const colon = address.lastIndexOf(':');
    const host = address.slice(0, colon).replace(/^\[(.*)\]$/, '$1');
    return [{ scheme, host, port: Number(address.slice(colon + 1)) }];
  }
  return listening;
}
