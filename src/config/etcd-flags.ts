// Command-line flags: a tokenizer shared by every command, and the table of etcd's server
// flags mapped onto MetaStore config keys, so an existing etcd command line for one member
// starts MetaStore unchanged. A flag never builds config directly: it produces assignments
// (key path -> text), which go through the same typed parsing as YAML and environment values,
// so one key is validated one way whatever its source.

import { bindHost, isSecureScheme, parseBool, parseStringList, parseUrl, unixSocketPath, ValueProblem, type Url } from './values.js';

export interface FlagToken {
  /** Name without dashes, e.g. "data-dir". */
  readonly name: string;
  /** The text after "=", if the flag was written --name=value. */
  readonly inlineValue: string | undefined;
}

export type ArgToken =
  | { readonly kind: 'flag'; readonly flag: FlagToken; readonly raw: string }
  | { readonly kind: 'positional'; readonly value: string; readonly raw: string };

/**
 * Splits argv into flags and positionals. Like Go's flag package (which etcd uses), one dash
 * and two dashes are the same ("-name" = "--name"), so etcd command lines work as written; and
 * a flag that needs a value takes the next argument whatever it looks like (its `raw` text), so
 * `--quota-backend-bytes -1` works.
 */
export function tokenize(argv: readonly string[]): ArgToken[] {
  return argv.map((arg): ArgToken => {
    const match = /^--?([A-Za-z0-9][A-Za-z0-9._-]*)(?:=(.*))?$/s.exec(arg);
    if (!match || arg === '-' || arg === '--') return { kind: 'positional', value: arg, raw: arg };
    return { kind: 'flag', flag: { name: match[1] ?? '', inlineValue: match[2] }, raw: arg };
  });
}

export interface Assignment {
  readonly path: string;
  readonly value: string;
}

export interface FlagContext {
  set(path: string, value: string): void;
}

export interface FlagSpec {
  readonly name: string;
  /** Boolean flags stand alone ("--pre-vote") or take "=false"; others take the next arg. */
  readonly boolean: boolean;
  readonly help: string;
  /** Throws ValueProblem for a value this flag cannot take (the caller names the flag). */
  readonly apply: (value: string, context: FlagContext) => void;
}

/** A flag whose value is exactly one key's value. */
function direct(name: string, path: string, boolean = false): FlagSpec {
  return { name, boolean, help: `sets ${path}`, apply: (value, context) => context.set(path, value) };
}

/**
 * etcd's --logger: zap writes JSON lines (MetaStore's JSON format), capnslog writes plain text
 * lines (MetaStore's console format). Either way pino writes them; the format is what changes.
 */
const LOGGER_FORMATS: Readonly<Record<string, string>> = { zap: 'json', capnslog: 'console' };

function loggerFlag(): FlagSpec {
  return {
    name: 'logger',
    boolean: false,
    help: 'sets server.log.format: zap = json, capnslog = console',
    apply: (value, context) => {
      const format = LOGGER_FORMATS[value];
      if (format === undefined) throw new ValueProblem(`expected one of zap, capnslog, got ${JSON.stringify(value)}`);
      context.set('server.log.format', format);
    },
  };
}

/** etcd serves Go's pprof on the client port; MetaStore has nothing of the kind, so "true" is refused. */
function enablePprofFlag(): FlagSpec {
  return {
    name: 'enable-pprof',
    boolean: true,
    help: 'only false: MetaStore has no Go profiler (profile with node --cpu-prof or --inspect)',
    apply: (value) => {
      if (parseBool(value, true)) {
        throw new ValueProblem('MetaStore has no Go profiler (pprof); profile the process with node --cpu-prof or node --inspect instead');
      }
    },
  };
}

function parseUrls(value: string): Url[] {
  const urls = parseStringList(value).map(parseUrl);
  if (urls.length === 0) throw new ValueProblem(`expected at least one URL like http://127.0.0.1:2379, got ${JSON.stringify(value)}`);
  return urls;
}

/**
 * etcd's listen URLs decide where to bind: the first URL's host and port become the section's
 * address and port (localhost meaning 127.0.0.1 in a TCP URL), and an https or unixs URL turns
 * TLS on.
 */
function listenUrls(name: string, section: 'grpc' | 'raft'): FlagSpec {
  return {
    name,
    boolean: false,
    help: `sets server.${section}.listen_urls, address and port from the first URL`,
    apply: (value, context) => {
      const urls = parseUrls(value);
      const first = urls[0] as Url;
      // A unix URL's host:port is a file name: it is kept as written.
      const listenHost = (u: Url) => (unixSocketPath(u) === undefined ? bindHost(u.host) : u.host);
      context.set(`server.${section}.listen_urls`, urls.map((u) => `${u.scheme}://${hostText(listenHost(u))}:${u.port}`).join(','));
      context.set(`server.${section}.address`, listenHost(first));
      context.set(`server.${section}.port`, String(first.port));
      if (urls.some((u) => isSecureScheme(u.scheme))) context.set(`server.${section}.tls.enabled`, 'true');
    },
  };
}

function advertiseUrls(name: string, section: 'grpc' | 'raft'): FlagSpec {
  return {
    name,
    boolean: false,
    help: `sets server.${section}.advertise_urls and advertise_address from the first URL`,
    apply: (value, context) => {
      const urls = parseUrls(value);
      const first = urls[0] as Url;
      context.set(`server.${section}.advertise_urls`, value);
      context.set(`server.${section}.advertise_address`, `${hostText(first.host)}:${first.port}`);
    },
  };
}

/** etcd's --log-outputs as MetaStore's one log output. */
function logOutput(value: string): string {
  const outputs = parseStringList(value);
  if (outputs.length !== 1) throw new ValueProblem(`MetaStore writes its log to exactly one output, got ${JSON.stringify(value)}`);
  const output = outputs[0]!;
  if (output === 'systemd/journal') throw new ValueProblem('systemd/journal is not supported: use stderr, which journald records under systemd');
  return output === 'default' ? 'stderr' : output;
}

function hostText(host: string): string {
  return host.includes(':') ? `[${host}]` : host;
}

function tlsFlags(prefix: '' | 'peer-', section: 'grpc' | 'raft'): FlagSpec[] {
  return [
    direct(`${prefix}cert-file`, `server.${section}.tls.cert_file`),
    direct(`${prefix}key-file`, `server.${section}.tls.key_file`),
    direct(`${prefix}trusted-ca-file`, `server.${section}.tls.ca_file`),
    direct(`${prefix}client-cert-auth`, `server.${section}.tls.client_cert_auth`, true),
    direct(`${prefix}auto-tls`, `server.${section}.tls.auto_tls`, true),
    direct(`${prefix === '' ? 'client-' : prefix}crl-file`, `server.${section}.tls.crl_file`),
  ];
}

/** etcd has one flag for both ports; it sets the key of each section. */
function bothSections(name: string, key: string, help: string): FlagSpec {
  return {
    name,
    boolean: false,
    help,
    apply: (value, context) => {
      context.set(`server.grpc.tls.${key}`, value);
      context.set(`server.raft.tls.${key}`, value);
    },
  };
}

/** etcd's server flags (etcd 3.4-3.6 names) that MetaStore understands. */
export const ETCD_FLAGS: readonly FlagSpec[] = [
  direct('name', 'server.name'),
  direct('data-dir', 'server.data_dir'),
  direct('wal-dir', 'server.wal_dir'),
  listenUrls('listen-client-urls', 'grpc'),
  advertiseUrls('advertise-client-urls', 'grpc'),
  listenUrls('listen-peer-urls', 'raft'),
  advertiseUrls('initial-advertise-peer-urls', 'raft'),
  direct('initial-cluster', 'server.initial_cluster'),
  direct('initial-cluster-token', 'server.initial_cluster_token'),
  direct('initial-cluster-state', 'server.initial_cluster_state'),
  direct('force-new-cluster', 'server.force_new_cluster', true),
  direct('max-request-bytes', 'server.limits.max_request_bytes'),
  direct('max-txn-ops', 'server.limits.max_txn_ops'),
  direct('quota-backend-bytes', 'server.limits.quota_backend_bytes'),
  direct('auto-compaction-mode', 'server.compaction.mode'),
  direct('auto-compaction-retention', 'server.compaction.retention'),
  direct('snapshot-count', 'server.raft.snapshot_count'),
  direct('heartbeat-interval', 'server.raft.heartbeat_interval_ms'),
  direct('election-timeout', 'server.raft.election_timeout_ms'),
  direct('pre-vote', 'server.raft.pre_vote', true),
  direct('strict-reconfig-check', 'server.raft.strict_reconfig_check', true),
  direct('max-learners', 'server.raft.max_learners'),
  direct('experimental-initial-corrupt-check', 'server.reliability.initial_corrupt_check', true),
  direct('experimental-corrupt-check-time', 'server.reliability.corrupt_check_time'),
  direct('log-level', 'server.log.level'),
  {
    name: 'log-outputs',
    boolean: false,
    help: 'sets server.log.output: default (= stderr, as etcd), stderr, stdout or one file path',
    apply: (value, context) => context.set('server.log.output', logOutput(value)),
  },
  loggerFlag(),
  {
    name: 'listen-metrics-urls',
    boolean: false,
    help: 'sets server.monitoring.listen_metrics_urls',
    apply: (value, context) => context.set('server.monitoring.listen_metrics_urls', value),
  },
  enablePprofFlag(),
  direct('auth-token', 'server.auth.token'),
  {
    name: 'auth-token-ttl',
    boolean: false,
    help: 'sets server.auth.token_ttl (a bare integer is seconds, as in etcd)',
    // etcd's flag is whole seconds, while a bare integer in a MetaStore duration is milliseconds.
    apply: (value, context) => context.set('server.auth.token_ttl', /^\d+$/.test(value.trim()) ? `${value.trim()}s` : value),
  },
  ...tlsFlags('', 'grpc'),
  ...tlsFlags('peer-', 'raft'),
  direct('peer-cert-allowed-cn', 'server.raft.tls.allowed_cn'),
  bothSections('cipher-suites', 'cipher_suites', 'sets server.grpc.tls.cipher_suites and server.raft.tls.cipher_suites'),
  // etcd 3.5's flag; etcd 3.4 always requires TLS 1.2 or later, which is the default here.
  bothSections('tls-min-version', 'min_version', 'sets server.grpc.tls.min_version and server.raft.tls.min_version (TLS1.2|TLS1.3)'),
  direct('grpc-keepalive-min-time', 'server.grpc.keepalive_min_time'),
  direct('grpc-keepalive-interval', 'server.grpc.keepalive_interval'),
  direct('grpc-keepalive-timeout', 'server.grpc.keepalive_timeout'),
  direct('experimental-watch-progress-notify-interval', 'server.grpc.watch_progress_notify_interval'),
  direct('enable-grpc-gateway', 'server.grpc.enable_gateway', true),
];

export const ETCD_FLAGS_BY_NAME: ReadonlyMap<string, FlagSpec> = new Map(ETCD_FLAGS.map((f) => [f.name, f]));
