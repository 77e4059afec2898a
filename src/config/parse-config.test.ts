// Tests for loadConfig: source precedence, the exact one-line error for each kind of bad input
// (naming the key and its source), etcd command lines, relations between keys, and the
// deep-frozen result. Files are served from an in-memory map, never from disk.

import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ConfigError, helpText, loadConfig, type LoadOptions } from './parse-config.js';
import { CONFIG_KEYS, DEFAULTS } from './schema.js';

function load(argv: string[], options: { env?: Record<string, string>; files?: Record<string, string> } = {}) {
  const files = options.files ?? {};
  const readFile: LoadOptions['readFile'] = (path) => {
    const text = files[path];
    if (text === undefined) throw new Error(`ENOENT: no such file, open '${path}'`);
    return text;
  };
  return loadConfig({ argv, env: options.env ?? {}, readFile });
}

function loadError(...args: Parameters<typeof load>): string {
  try {
    load(...args);
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    const message = (error as Error).message;
    expect(message).not.toContain('\n');
    return message;
  }
  throw new Error('expected a ConfigError');
}

const FILE = '/x/y.yaml';

describe('sources and precedence', () => {
  it('gives the defaults with no input', () => {
    expect(load([])).toEqual(DEFAULTS);
  });

  it('applies default < file < env < flag, key by key', () => {
    const files = { [FILE]: 'server:\n  raft:\n    snapshot_count: 5000\n  limits:\n    max_txn_ops: 64\n  name: from-file\n' };
    const env = { METASTORE_SERVER_RAFT_SNAPSHOT_COUNT: '6000', METASTORE_SERVER_NAME: 'from-env' };
    const config = load(['--config', FILE, '--snapshot-count', '7000'], { files, env });
    expect(config.raft.snapshotCount).toBe(7000); // file, env and flag: the flag wins
    expect(config.name).toBe('from-env'); // file and env: env wins
    expect(config.limits.maxTxnOps).toBe(64); // file only
    expect(config.limits.maxRequestBytes).toBe(1_572_864); // default
    expect(load(['--config', FILE], { files, env }).raft.snapshotCount).toBe(6000);
    expect(load(['--config', FILE], { files }).raft.snapshotCount).toBe(5000);
  });

  it('reads durations, sizes and IDs from each source', () => {
    const files = {
      [FILE]: 'server:\n  member_id: 18446744073709551615\n  limits: { request_timeout: 5m, max_request_bytes: 2MiB }\n  raft: { election_timeout_ms: 2000 }\n',
    };
    const config = load(['--config', FILE], {
      files,
      env: { METASTORE_SERVER_MONITORING_SLOW_REQUEST_THRESHOLD: '250ms', METASTORE_SERVER_STORAGE_BLOCK_CACHE_SIZE: '1GiB' },
    });
    expect(config.memberId).toBe(18_446_744_073_709_551_615n);
    expect(config.limits.requestTimeoutMs).toBe(300_000);
    expect(config.limits.maxRequestBytes).toBe(2_097_152);
    expect(config.raft.electionTimeoutMs).toBe(2000);
    expect(config.monitoring.slowRequestThresholdMs).toBe(250);
    expect(config.storage.blockCacheSize).toBe(1_073_741_824);
  });

  it('treats a YAML key without a value, and an empty file, as not set', () => {
    expect(load(['--config', FILE], { files: { [FILE]: 'server:\n  grpc:\n    tls:\n      cert_file:\n' } })).toEqual(DEFAULTS);
    expect(load(['--config', FILE], { files: { [FILE]: '' } })).toEqual(DEFAULTS);
  });

  it('ignores environment variables outside METASTORE_SERVER_', () => {
    expect(load([], { env: { PATH: '/bin', METASTORE_OTHER: 'x' } })).toEqual(DEFAULTS);
  });

  it('returns a deep-frozen config', () => {
    const config = load(['--name', 'n1', '--initial-cluster', 'n1=http://127.0.0.1:2380']);
    expect(Object.isFrozen(config)).toBe(true);
    expect(Object.isFrozen(config.grpc.tls)).toBe(true);
    expect(Object.isFrozen(config.initialCluster)).toBe(true);
    expect(Object.isFrozen(config.initialCluster[0]?.peerUrls[0])).toBe(true);
    expect(() => {
      (config.grpc as { port: number }).port = 1;
    }).toThrow(TypeError);
  });
});

describe('error messages name the key and the source', () => {
  it('wrong type in the file', () => {
    expect(loadError(['--config', FILE], { files: { [FILE]: 'server:\n  grpc:\n    port: abc\n' } })).toBe(
      'config error: server.grpc.port in /x/y.yaml: expected an integer 0-65535, got "abc"',
    );
    expect(loadError(['--config', FILE], { files: { [FILE]: 'server:\n  grpc:\n    port: "2379"\n' } })).toBe(
      'config error: server.grpc.port in /x/y.yaml: expected an integer 0-65535, got "2379"',
    );
    expect(loadError(['--config', FILE], { files: { [FILE]: 'server:\n  auth:\n    enabled: 1\n' } })).toBe(
      'config error: server.auth.enabled in /x/y.yaml: expected true or false, got 1',
    );
    expect(loadError(['--config', FILE], { files: { [FILE]: 'server:\n  grpc: 5\n' } })).toBe(
      'config error: server.grpc in /x/y.yaml: expected a mapping of keys, got 5',
    );
  });

  it('unknown key in the file, with a suggestion', () => {
    expect(loadError(['--config', FILE], { files: { [FILE]: 'server:\n  grpc:\n    prot: 1\n' } })).toBe(
      'config error: unknown key server.grpc.prot in /x/y.yaml (did you mean server.grpc.port?)',
    );
    expect(loadError(['--config', FILE], { files: { [FILE]: 'client:\n  x: 1\n' } })).toMatch(/^config error: unknown key client in \/x\/y\.yaml/);
    expect(loadError(['--config', FILE], { files: { [FILE]: 'server:\n  cassandra:\n    block_size: 1\n' } })).toMatch(
      /^config error: unknown key server\.cassandra in \/x\/y\.yaml/,
    );
  });

  it('unparsable or unreadable file', () => {
    expect(loadError(['--config', FILE], { files: { [FILE]: 'server: [\n' } })).toMatch(/^config error: cannot parse \/x\/y\.yaml: /);
    expect(loadError(['--config', FILE], { files: { [FILE]: 'server:\n  name: a\n  name: b\n' } })).toMatch(
      /^config error: cannot parse \/x\/y\.yaml: .*[Mm]ap keys must be unique/,
    );
    expect(loadError(['--config', '/nope.yaml'])).toMatch(/^config error: cannot read config file \/nope\.yaml: ENOENT/);
    expect(loadError(['--config', FILE], { files: { [FILE]: '- a\n' } })).toBe(
      'config error: /x/y.yaml: expected a mapping with a server: section, got a list',
    );
  });

  it('bad and unknown environment variables', () => {
    expect(loadError([], { env: { METASTORE_SERVER_HEALTH_PORT: '0' } })).toBe(
      'config error: server.health.port in environment variable METASTORE_SERVER_HEALTH_PORT: expected an integer 1-65535, got "0"',
    );
    expect(loadError([], { env: { METASTORE_SERVER_GRPC_PROT: '1' } })).toBe(
      'config error: unknown environment variable METASTORE_SERVER_GRPC_PROT (did you mean METASTORE_SERVER_GRPC_PORT?)',
    );
    expect(loadError([], { env: { METASTORE_SERVER_LIMITS_REQUEST_TIMEOUT: 'forever' } })).toMatch(
      /^config error: server\.limits\.request_timeout in environment variable METASTORE_SERVER_LIMITS_REQUEST_TIMEOUT: expected a duration/,
    );
  });

  it('bad and unknown flags', () => {
    expect(loadError(['--no-such-flag', 'x'])).toBe('config error: unknown flag --no-such-flag (see --help)');
    expect(loadError(['--heartbeat-interval', 'fast'])).toBe(
      'config error: server.raft.heartbeat_interval_ms in flag --heartbeat-interval: expected an integer >= 1, got "fast"',
    );
    expect(loadError(['--name'])).toBe('config error: flag --name needs a value');
    expect(loadError(['--pre-vote=maybe'])).toBe('config error: flag --pre-vote: expected true or false, got "maybe"');
    expect(loadError(['--listen-client-urls', '127.0.0.1:2379'])).toBe(
      'config error: flag --listen-client-urls: expected a URL like http://127.0.0.1:2379 (http, https, unix or unixs; explicit port), got "127.0.0.1:2379"',
    );
    expect(loadError(['--log-level', 'trace'])).toBe(
      'config error: server.log.level in flag --log-level: expected one of debug, info, warn, error, panic, fatal, got "trace"',
    );
    expect(loadError(['stray'])).toBe('config error: unexpected argument "stray" (flags start with --)');
    expect(loadError(['--logger', 'glog'])).toBe('config error: flag --logger: expected one of zap, capnslog, got "glog"');
  });
});

describe('relations between keys', () => {
  it('election timeout is at least 5 x heartbeat, naming both sources', () => {
    expect(loadError(['--heartbeat-interval', '300'])).toBe(
      'config error: server.raft.election_timeout_ms (1000, default) must be at least 5 x server.raft.heartbeat_interval_ms (300, from flag --heartbeat-interval)',
    );
    expect(load(['--heartbeat-interval', '200']).raft.heartbeatIntervalMs).toBe(200);
  });

  it('election timeout is at most 50000', () => {
    expect(loadError(['--election-timeout', '50001'])).toBe(
      'config error: server.raft.election_timeout_ms in flag --election-timeout: expected an integer 1-50000, got "50001"',
    );
  });

  it('ports are distinct', () => {
    expect(loadError([], { env: { METASTORE_SERVER_HEALTH_PORT: '2379' } })).toBe(
      'config error: server.grpc.port (2379, default) and server.health.port (2379, from environment variable METASTORE_SERVER_HEALTH_PORT) must be different ports',
    );
    // The metrics port only counts while Prometheus is on.
    expect(load([], { env: { METASTORE_SERVER_MONITORING_PROMETHEUS_PORT: '8080', METASTORE_SERVER_MONITORING_ENABLE_PROMETHEUS: 'false' } }).health.port).toBe(
      8080,
    );
  });

  it('peers have the ID@host:port form, unique IDs, and include member_id', () => {
    const peers = 'server:\n  member_id: 4\n  raft:\n    peers: ["1@10.0.1.10:12379", "2@10.0.1.11:12379"]\n';
    expect(loadError(['--config', FILE], { files: { [FILE]: peers } })).toBe(
      'config error: server.member_id (4, from /x/y.yaml) must be one of the IDs in server.raft.peers (1, 2)',
    );
    expect(loadError(['--config', FILE], { files: { [FILE]: 'server:\n  raft:\n    peers: ["10.0.1.10:12379"]\n' } })).toBe(
      'config error: server.raft.peers in /x/y.yaml: expected a peer ID@host:port like 1@10.0.1.10:12379 (ID > 0), got "10.0.1.10:12379"',
    );
    expect(loadError([], { env: { METASTORE_SERVER_MEMBER_ID: '1', METASTORE_SERVER_RAFT_PEERS: '1@a:1,1@b:1' } })).toMatch(/lists member ID 1 twice$/);
    expect(load([], { env: { METASTORE_SERVER_MEMBER_ID: '2', METASTORE_SERVER_RAFT_PEERS: '1@a:1,2@b:1' } }).raft.peers).toEqual([
      { id: 1n, host: 'a', port: 1 },
      { id: 2n, host: 'b', port: 1 },
    ]);
  });

  it('the member name is in the initial cluster', () => {
    expect(loadError(['--name', 'infra9', '--initial-cluster', 'infra1=http://127.0.0.1:2380'])).toBe(
      'config error: server.name ("infra9", from flag --name) is not among the members of server.initial_cluster (from flag --initial-cluster)',
    );
  });

  it('TLS flags beyond the files: CRL, allowed peer CN, cipher suites and minimum version for both ports', () => {
    const config = load([
      '--client-cert-auth',
      '--trusted-ca-file',
      'ca.pem',
      '--client-crl-file',
      'c.crl',
      '--peer-client-cert-auth',
      '--peer-trusted-ca-file',
      'pca.pem',
      '--peer-crl-file',
      'p.crl',
      '--peer-cert-allowed-cn',
      'member',
      '--cipher-suites',
      'TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384',
      '--tls-min-version',
      'TLS1.3',
    ]);
    expect(config.grpc.tls).toMatchObject({
      crlFile: 'c.crl',
      minVersion: 'TLS1.3',
      cipherSuites: ['TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256', 'TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384'],
    });
    expect(config.raft.tls).toMatchObject({ crlFile: 'p.crl', allowedCn: 'member', minVersion: 'TLS1.3' });
    expect(loadError(['--cipher-suites', 'TLS_NOPE'])).toMatch(/unknown TLS 1\.2 cipher suite "TLS_NOPE"/);
    expect(loadError(['--client-crl-file', 'c.crl'])).toMatch(/server\.grpc\.tls\.crl_file .* needs server\.grpc\.tls\.client_cert_auth/);
    expect(loadError(['--tls-min-version', 'TLS1.1'])).toMatch(/tls-min-version/);
  });

  it('listen URLs agree with address and port, https needs TLS files', () => {
    expect(loadError(['--config', FILE], { files: { [FILE]: 'server:\n  grpc:\n    listen_urls: ["http://10.0.0.1:2379"]\n' } })).toBe(
      'config error: server.grpc.listen_urls ("http://10.0.0.1:2379", from /x/y.yaml) must match server.grpc.address ("127.0.0.1", default) and server.grpc.port (2379, default)',
    );
    expect(loadError(['--listen-client-urls', 'https://127.0.0.1:2379'])).toBe(
      'config error: server.grpc.tls.enabled (true, from flag --listen-client-urls) needs server.grpc.tls.cert_file and server.grpc.tls.key_file (or server.grpc.tls.auto_tls)',
    );
    const tls = load([
      '--listen-client-urls',
      'https://127.0.0.1:2379',
      '--cert-file',
      'c.pem',
      '--key-file',
      'k.pem',
      '--client-cert-auth',
      '--trusted-ca-file',
      'ca.pem',
    ]);
    expect(tls.grpc.tls).toEqual({
      enabled: true,
      certFile: 'c.pem',
      keyFile: 'k.pem',
      caFile: 'ca.pem',
      clientCertAuth: true,
      autoTls: false,
      crlFile: '',
      cipherSuites: [],
      minVersion: 'TLS1.2',
    });
    expect(loadError(['--peer-client-cert-auth'])).toMatch(
      /server\.raft\.tls\.client_cert_auth \(true, from flag --peer-client-cert-auth\) needs server\.raft\.tls\.ca_file/,
    );
  });

  it('auto-compaction retention follows etcd: periodic hours or duration, revision count', () => {
    expect(load(['--auto-compaction-retention', '1']).compaction.retentionMs).toBe(3_600_000);
    expect(load(['--auto-compaction-retention', '30m']).compaction.retentionMs).toBe(1_800_000);
    const revision = load(['--auto-compaction-mode', 'revision', '--auto-compaction-retention', '1000']).compaction;
    expect(revision).toEqual({ mode: 'revision', retention: '1000', retentionMs: 0, retentionRevisions: 1000 });
    expect(loadError(['--auto-compaction-mode', 'revision', '--auto-compaction-retention', '1h'])).toBe(
      'config error: server.compaction.retention in flag --auto-compaction-retention (revision mode): expected a non-negative integer, got "1h"',
    );
    expect(loadError(['--auto-compaction-retention', 'daily'])).toMatch(
      /^config error: server\.compaction\.retention in flag --auto-compaction-retention: expected a duration/,
    );
  });

  it('the gRPC receive limit follows --max-request-bytes (+ 512 KiB, as etcd) unless set explicitly', () => {
    expect(load([]).grpc.maxRecvMsgSize).toBe(1_572_864 + 512 * 1024);
    expect(load(['--max-request-bytes', '10485760']).grpc.maxRecvMsgSize).toBe(10_485_760 + 512 * 1024);
    expect(load(['--max-request-bytes', '1000'], { env: { METASTORE_SERVER_GRPC_MAX_RECV_MSG_SIZE: '3000' } }).grpc.maxRecvMsgSize).toBe(3000);
    expect(loadError(['--max-request-bytes', '10485760'], { env: { METASTORE_SERVER_GRPC_MAX_RECV_MSG_SIZE: '4MiB' } })).toBe(
      'config error: server.grpc.max_recv_msg_size (4194304, from environment variable METASTORE_SERVER_GRPC_MAX_RECV_MSG_SIZE) must be at least server.limits.max_request_bytes (10485760, from flag --max-request-bytes) + 512',
    );
  });

  it('the auth token names a known provider', () => {
    expect(load(['--auth-token', 'jwt,pub-key=a.pub,priv-key=a.key,sign-method=RS256']).auth.token).toMatch(/^jwt,/);
    expect(loadError(['--auth-token', 'magic'])).toMatch(/^config error: server\.auth\.token in flag --auth-token: expected "simple" or "jwt/);
  });
});

describe("etcd's --config-file and --log-outputs", () => {
  const ETCD_FILE = [
    'name: infra1',
    'data-dir: /tmp/x',
    'listen-client-urls: https://127.0.0.1:2379',
    'advertise-client-urls: https://127.0.0.1:2379',
    'listen-peer-urls: http://127.0.0.1:2380',
    'initial-advertise-peer-urls: http://127.0.0.1:2380',
    'initial-cluster: infra1=http://127.0.0.1:2380',
    'initial-cluster-token: tkn',
    "initial-cluster-state: 'new'",
    'heartbeat-interval: 100',
    'election-timeout: 1000',
    'snapshot-count: 10000',
    'quota-backend-bytes: 0',
    'log-outputs: [stderr]',
    'enable-v2: false',
    "discovery: ''",
    'client-transport-security:',
    '  cert-file: /pki/server.crt',
    '  key-file: /pki/server.key',
    '  client-cert-auth: true',
    '  trusted-ca-file: /pki/ca.crt',
    '  auto-tls: false',
    'peer-transport-security:',
    "  cert-file: ''",
    '',
  ].join('\n');
  const SAME_FLAGS =
    '--name infra1 --data-dir /tmp/x --listen-client-urls https://127.0.0.1:2379 --advertise-client-urls https://127.0.0.1:2379 ' +
    '--listen-peer-urls http://127.0.0.1:2380 --initial-advertise-peer-urls http://127.0.0.1:2380 --initial-cluster infra1=http://127.0.0.1:2380 ' +
    '--initial-cluster-token tkn --initial-cluster-state new --heartbeat-interval 100 --election-timeout 1000 --snapshot-count 10000 ' +
    '--quota-backend-bytes 0 --log-outputs stderr --cert-file /pki/server.crt --key-file /pki/server.key --client-cert-auth ' +
    '--trusted-ca-file /pki/ca.crt --auto-tls=false';

  it('an etcd config file means what the same etcd command line means', () => {
    const fromFile = load(['--config-file', 'etcd.yaml'], { files: { 'etcd.yaml': ETCD_FILE } });
    expect(fromFile).toEqual(load(SAME_FLAGS.split(' ')));
    expect(fromFile.grpc.tls).toMatchObject({ enabled: true, certFile: '/pki/server.crt', clientCertAuth: true, caFile: '/pki/ca.crt' });
    expect(fromFile.log.output).toBe('stderr');
  });

  it('refuses an etcd option it does not support, a bad value, and other flags beside the file, each in one line', () => {
    expect(loadError(['--config-file', 'e.yaml'], { files: { 'e.yaml': 'enable-v2: true\n' } })).toBe(
      'config error: etcd config file e.yaml: enable-v2: an etcd option MetaStore does not support (see metastore --help for the etcd flags it does)',
    );
    expect(loadError(['--config-file', 'e.yaml'], { files: { 'e.yaml': 'client-transport-security:\n  crl: x\n' } })).toContain(
      'client-transport-security.crl: not one of etcd',
    );
    expect(loadError(['--config-file', 'e.yaml'], { files: { 'e.yaml': 'heartbeat-interval: soon\n' } })).toMatch(
      /^config error: server\.raft\.heartbeat_interval_ms .*heartbeat-interval of etcd config file e\.yaml/,
    );
    expect(loadError(['--config-file', 'e.yaml', '--name', 'x'], { files: { 'e.yaml': 'name: y\n' } })).toBe(
      'config error: flag --config-file e.yaml cannot be combined with other flags (etcd ignores them): put those settings in e.yaml',
    );
  });

  it('--log-outputs takes one output; default is stderr as in etcd', () => {
    expect(load(['--log-outputs', 'default']).log.output).toBe('stderr');
    expect(load(['--log-outputs', '/var/log/etcd.log']).log.output).toBe('/var/log/etcd.log');
    expect(loadError(['--log-outputs', 'stderr,/var/log/etcd.log'])).toContain('exactly one output');
    expect(loadError(['--log-outputs', 'systemd/journal'])).toContain('systemd/journal is not supported');
  });
});

describe('etcd command lines', () => {
  const ETCD_LINE =
    '--name infra1 --data-dir /tmp/x --listen-client-urls http://127.0.0.1:2379 --advertise-client-urls http://127.0.0.1:2379 ' +
    '--listen-peer-urls http://127.0.0.1:2380 --initial-advertise-peer-urls http://127.0.0.1:2380 --initial-cluster infra1=http://127.0.0.1:2380 ' +
    '--initial-cluster-token tkn --initial-cluster-state new --heartbeat-interval 100 --election-timeout 1000 --snapshot-count 10000 ' +
    '--auto-compaction-mode revision --auto-compaction-retention 1000 --max-request-bytes 1572864 --max-txn-ops 128 --quota-backend-bytes 0 --log-level info';

  it('parses the documented single-member command line', () => {
    const config = load(ETCD_LINE.split(' '));
    const local = { scheme: 'http', host: '127.0.0.1', port: 2379 };
    const peer = { scheme: 'http', host: '127.0.0.1', port: 2380 };
    expect(config).toEqual({
      ...DEFAULTS,
      name: 'infra1',
      dataDir: '/tmp/x',
      initialClusterToken: 'tkn',
      initialClusterState: 'new',
      initialCluster: [{ name: 'infra1', peerUrls: [peer] }],
      grpc: { ...DEFAULTS.grpc, address: '127.0.0.1', port: 2379, advertiseAddress: '127.0.0.1:2379', listenUrls: [local], advertiseUrls: [local] },
      raft: {
        ...DEFAULTS.raft,
        address: '127.0.0.1',
        port: 2380,
        advertiseAddress: '127.0.0.1:2380',
        listenUrls: [peer],
        advertiseUrls: [peer],
        heartbeatIntervalMs: 100,
        electionTimeoutMs: 1000,
        snapshotCount: 10_000,
      },
      compaction: { mode: 'revision', retention: '1000', retentionMs: 0, retentionRevisions: 1000 },
      limits: { ...DEFAULTS.limits, maxRequestBytes: 1_572_864, maxTxnOps: 128, quotaBackendBytes: 0 },
      log: { ...DEFAULTS.log, level: 'info' },
      // etcd's listen URL flags give etcd's port footprint: no MetaStore side ports.
      health: { ...DEFAULTS.health, open: false },
      monitoring: { ...DEFAULTS.monitoring, openPrometheusPort: false },
    });
  });

  it("etcd's listen URL flags: several URLs, port 0, side ports only when set explicitly", () => {
    const config = load(['--listen-client-urls', 'http://127.0.0.1:0,http://10.0.0.1:2379', '--listen-peer-urls', 'http://127.0.0.1:0']);
    expect(config.grpc.listenUrls.map((u) => u.port)).toEqual([0, 2379]);
    expect([config.grpc.port, config.raft.port]).toEqual([0, 0]);
    expect([config.health.open, config.monitoring.openPrometheusPort]).toEqual([false, false]);
    const explicit = load(['--listen-client-urls', 'http://127.0.0.1:0'], { env: { METASTORE_SERVER_HEALTH_PORT: '18080' } });
    expect([explicit.health.open, explicit.monitoring.openPrometheusPort]).toEqual([true, false]);
    expect([DEFAULTS.health.open, load([]).monitoring.openPrometheusPort]).toEqual([true, true]);
  });

  it('a non-loopback advertise_address without an address listens on every interface', () => {
    const yaml = 'server:\n  grpc:\n    advertise_address: "10.0.1.10:2379"\n  raft:\n    advertise_address: "10.0.1.10:12379"\n';
    const config = load(['--config', FILE], { files: { [FILE]: yaml } });
    expect([config.grpc.address, config.raft.address]).toEqual(['0.0.0.0', '0.0.0.0']);
    const loopback = load(['--config', FILE], { files: { [FILE]: 'server:\n  grpc:\n    advertise_address: "127.0.0.1:2379"\n' } });
    expect(loopback.grpc.address).toBe('127.0.0.1');
    const bound = load(['--config', FILE], { files: { [FILE]: 'server:\n  grpc:\n    address: "10.0.1.10"\n    advertise_address: "10.0.1.10:2379"\n' } });
    expect(bound.grpc.address).toBe('10.0.1.10');
  });

  it('accepts --flag=value, single dashes and bare booleans', () => {
    const config = load(['-name=a', '--data-dir=/d', '--pre-vote=false', '--strict-reconfig-check=0', '--force-new-cluster', '--enable-grpc-gateway=false']);
    expect(config.name).toBe('a');
    expect(config.dataDir).toBe('/d');
    expect(config.raft.preVote).toBe(false);
    expect(config.raft.strictReconfigCheck).toBe(false);
    expect(config.forceNewCluster).toBe(true);
    expect(config.grpc.enableGateway).toBe(false);
  });

  it('lets a value flag take the next argument even when it starts with a dash, as Go does', () => {
    expect(load(['--quota-backend-bytes', '-1']).limits.quotaBackendBytes).toBe(-1);
  });

  it('binds localhost as 127.0.0.1 and keeps extra listen URLs', () => {
    const config = load(['--listen-client-urls', 'http://localhost:3379,http://10.0.0.5:3379', '--listen-peer-urls', 'http://localhost:3380']);
    expect(config.grpc.address).toBe('127.0.0.1');
    expect(config.grpc.port).toBe(3379);
    expect(config.grpc.listenUrls).toEqual([
      { scheme: 'http', host: '127.0.0.1', port: 3379 },
      { scheme: 'http', host: '10.0.0.5', port: 3379 },
    ]);
    expect(config.raft.port).toBe(3380);
  });

  it("etcd's unix and unixs URLs: the socket name is kept as written, unixs turns TLS on, metrics URLs stay TCP", () => {
    const config = load(['--listen-client-urls', 'unix://localhost:2379,http://localhost:0', '--listen-peer-urls', 'unix://localhost:2380']);
    expect(config.grpc.listenUrls).toEqual([
      { scheme: 'unix', host: 'localhost', port: 2379 },
      { scheme: 'http', host: '127.0.0.1', port: 0 },
    ]);
    expect(config.raft.listenUrls).toEqual([{ scheme: 'unix', host: 'localhost', port: 2380 }]);
    // Two unix sockets that share a "port" do not clash: they are files.
    expect(load(['--listen-client-urls', 'unix://a:7', '--listen-peer-urls', 'unix://b:7']).raft.port).toBe(7);
    expect(load(['--listen-client-urls', 'unixs://localhost:1', '--auto-tls']).grpc.tls.enabled).toBe(true);
    expect(loadError(['--listen-metrics-urls', 'unix://localhost:9'])).toBe(
      'config error: server.monitoring.listen_metrics_urls ("unix://localhost:9", from flag --listen-metrics-urls): unix sockets are supported for client and peer URLs only',
    );
  });

  it('an advertised client port 0 is accepted (as etcd); an advertised peer port 0 is refused in one line', () => {
    const config = load(['--listen-client-urls', 'http://127.0.0.1:0', '--advertise-client-urls', 'http://127.0.0.1:0']);
    expect(config.grpc.advertiseUrls).toEqual([{ scheme: 'http', host: '127.0.0.1', port: 0 }]);
    expect(loadError(['--listen-peer-urls', 'http://127.0.0.1:0', '--initial-advertise-peer-urls', 'http://127.0.0.1:0'])).toBe(
      'config error: server.raft.advertise_address ("127.0.0.1:0", from flag --initial-advertise-peer-urls): a peer URL cannot advertise port 0 (members dial it and derive the member ID from it): give the port',
    );
  });

  it('server.http.port: off by default, set from the environment, never the port of another listener', () => {
    expect(load([]).http).toEqual({ address: '', port: 0 });
    expect(load([], { env: { METASTORE_SERVER_HTTP_PORT: '2380' } }).http.port).toBe(2380);
    expect(loadError([], { env: { METASTORE_SERVER_HTTP_PORT: '8080' } })).toBe(
      'config error: server.http.port (8080, from environment variable METASTORE_SERVER_HTTP_PORT) and server.health.port (8080, default) must be different ports',
    );
  });

  it('flags override an address set by the file', () => {
    const files = { [FILE]: 'server:\n  grpc:\n    address: 10.0.1.10\n    port: 2379\n' };
    expect(load(['--config', FILE, '--listen-client-urls', 'http://127.0.0.1:4379'], { files }).grpc).toMatchObject({ address: '127.0.0.1', port: 4379 });
  });

  it('maps the remaining etcd flags', () => {
    const config = load([
      '--wal-dir',
      '/wal',
      '--max-learners',
      '2',
      '--experimental-initial-corrupt-check',
      '--auth-token-ttl',
      '600',
      '--grpc-keepalive-min-time',
      '10s',
      '--grpc-keepalive-interval',
      '2h0m0s',
      '--grpc-keepalive-timeout',
      '20s',
      '--listen-metrics-urls',
      'http://127.0.0.1:2381',
      '--logger',
      'zap',
      '--enable-pprof=false',
      '--auto-tls',
      '--peer-auto-tls',
      '--peer-cert-file',
      'p.pem',
      '--peer-key-file',
      'pk.pem',
      '--peer-trusted-ca-file',
      'pca.pem',
      '--quota-backend-bytes',
      '8589934592',
      '--initial-cluster-state',
      'existing',
      '--experimental-watch-progress-notify-interval',
      '500ms',
    ]);
    expect(config.walDir).toBe('/wal');
    expect(config.raft.maxLearners).toBe(2);
    expect(config.reliability.initialCorruptCheck).toBe(true);
    expect(config.auth.tokenTtlMs).toBe(600_000); // etcd's integer is seconds
    expect([config.grpc.keepaliveMinTimeMs, config.grpc.keepaliveIntervalMs, config.grpc.keepaliveTimeoutMs]).toEqual([10_000, 7_200_000, 20_000]);
    expect(config.monitoring.listenMetricsUrls).toEqual([{ scheme: 'http', host: '127.0.0.1', port: 2381 }]);
    expect(config.grpc.tls.autoTls).toBe(true);
    expect(config.raft.tls).toMatchObject({ autoTls: true, certFile: 'p.pem', keyFile: 'pk.pem', caFile: 'pca.pem' });
    expect(config.limits.quotaBackendBytes).toBe(8_589_934_592);
    expect(config.initialClusterState).toBe('existing');
    expect(config.grpc.watchProgressNotifyIntervalMs).toBe(500);
    expect(config.log.format).toBe('json'); // --logger zap
  });

  it('--logger picks the log format: zap = JSON lines, capnslog = console lines', () => {
    expect(load(['--logger', 'zap']).log.format).toBe('json');
    expect(load(['--logger', 'capnslog']).log.format).toBe('console');
    expect(load(['--logger=capnslog', '--log-level', 'debug']).log).toMatchObject({ format: 'console', level: 'debug' });
  });

  it('--enable-pprof is refused unless false: there is no Go profiler to serve', () => {
    expect(load(['--enable-pprof=false']).name).toBe('default');
    const refusal =
      'config error: flag --enable-pprof: MetaStore has no Go profiler (pprof); profile the process with node --cpu-prof or node --inspect instead';
    expect(loadError(['--enable-pprof'])).toBe(refusal);
    expect(loadError(['--enable-pprof=true'])).toBe(refusal);
  });
});

describe('shipped configs', () => {
  const read = (name: string) => readFileSync(new URL(`../../configs/${name}`, import.meta.url), 'utf8');

  it.each([1, 2, 3])("node%i.yaml is the guide's production member", (n) => {
    const file = `configs/node${n}.yaml`;
    const config = load(['--config', file], { files: { [file]: read(`node${n}.yaml`) } });
    const ip = `10.0.1.${9 + n}`;
    expect(config.clusterId).toBe(1n);
    expect(config.memberId).toBe(BigInt(n));
    expect(config.grpc).toMatchObject({ address: ip, port: 2379, advertiseAddress: `${ip}:2379` });
    expect(config.raft).toMatchObject({ address: ip, port: 12_379, advertiseAddress: `${ip}:12379`, electionTimeoutMs: 1000, heartbeatIntervalMs: 100 });
    expect(config.raft.peers.map((p) => `${p.id}@${p.host}:${p.port}`)).toEqual(['1@10.0.1.10:12379', '2@10.0.1.11:12379', '3@10.0.1.12:12379']);
  });

  it('single.yaml is a loopback member', () => {
    const config = load(['--config', 'single.yaml'], { files: { 'single.yaml': read('single.yaml') } });
    expect(config.grpc.address).toBe('127.0.0.1');
    expect(config.raft.address).toBe('127.0.0.1');
    expect(config.raft.peers).toEqual([]);
  });
});

describe("the deployment guide's examples, verbatim (configs/guide/)", () => {
  const read = (name: string) => readFileSync(new URL(`../../configs/guide/${name}`, import.meta.url), 'utf8');
  const guide = readFileSync(new URL('../../../shared/DEPLOYMENT-GUIDE.md', import.meta.url), 'utf8');
  /** The YAML block that follows a heading or bold label of the guide. */
  const guideBlock = (label: string): string => {
    const after = guide.slice(guide.indexOf(label));
    return after.slice(after.indexOf('```yaml\n') + 8, after.indexOf('\n```', after.indexOf('```yaml\n') + 8) + 1);
  };

  it("configs/guide/ holds the guide's blocks unchanged", () => {
    expect(read('basic.yaml')).toBe(guideBlock('### Basic Configuration'));
    for (const n of [1, 2, 3]) expect(read(`node${n}.yaml`)).toBe(guideBlock(`**Node ${n}`));
  });

  it("Basic Configuration: sizes in the guide's units, the request limit derived from the gRPC message size", () => {
    const config = load(['--config', 'basic.yaml'], { files: { 'basic.yaml': read('basic.yaml') } });
    expect(config.clusterId).toBe(1234567890n);
    expect(config.memberId).toBe(1n);
    expect(config.log).toMatchObject({ maxSize: 100 * 1024 * 1024, maxBackups: 3, maxAgeDays: 7, output: '/var/log/metastore.log' });
    expect(config.grpc).toMatchObject({ maxRecvMsgSize: 1_572_864, maxSendMsgSize: 1_572_864, maxConcurrentStreams: 1000, rateLimitQps: 10_000 });
    expect(config.limits.maxRequestBytes).toBe(1_572_864 - 512);
  });

  it('a bare log max_size is megabytes from every source; a unit still works', () => {
    expect(load([], { env: { METASTORE_SERVER_LOG_MAX_SIZE: '20' } }).log.maxSize).toBe(20 * 1024 * 1024);
    expect(load(['--config', FILE], { files: { [FILE]: 'server:\n  log:\n    max_size: 64MiB\n' } }).log.maxSize).toBe(64 * 1024 * 1024);
  });

  it('an explicit receive limit below an explicit request limit is still refused', () => {
    expect(
      loadError(['--config', FILE], { files: { [FILE]: 'server:\n  grpc:\n    max_recv_msg_size: 1000\n  limits:\n    max_request_bytes: 2000\n' } }),
    ).toContain('must be at least server.limits.max_request_bytes');
  });

  it.each([1, 2, 3])("High Availability node%i parses with the guide's peers and addresses", (n) => {
    const config = load(['--config', `node${n}.yaml`], { files: { [`node${n}.yaml`]: read(`node${n}.yaml`) } });
    expect(config.memberId).toBe(BigInt(n));
    expect(config.grpc.advertiseAddress).toBe(`10.0.1.${9 + n}:2379`);
    expect(config.raft.advertiseAddress).toBe(`10.0.1.${9 + n}:12379`);
    expect(config.raft.peers.map((p) => `${p.id}@${p.host}:${p.port}`)).toEqual(['1@10.0.1.10:12379', '2@10.0.1.11:12379', '3@10.0.1.12:12379']);
  });

  it('the RocksDB Tuning block is refused in one line naming what to use instead', () => {
    const message = loadError(['--config', FILE], { files: { [FILE]: guideBlock('### RocksDB Tuning') } });
    expect(message).toBe(
      `config error: server.rocksdb in ${FILE}: MetaStore keeps its data in LevelDB, not RocksDB: use server.storage (write_buffer_size, block_cache_size; ` +
        'max_write_buffer_number and max_background_jobs have no LevelDB counterpart)',
    );
  });
});

describe('helpText', () => {
  it('lists every key with its environment variable, and every etcd flag', () => {
    const text = helpText();
    for (const key of CONFIG_KEYS) {
      expect(text).toContain(key.path);
      expect(text).toContain(key.env);
    }
    for (const flag of ['--listen-client-urls', '--initial-cluster', '--auto-compaction-retention', '--config FILE']) expect(text).toContain(flag);
  });
});
