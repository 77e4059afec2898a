// Loads the one Config from its four sources, lowest priority first: DEFAULTS, the YAML file
// named by --config, METASTORE_SERVER_* environment variables, command-line flags (MetaStore's
// own and etcd's server flags). Every value goes through the key table's typed parser, so a
// bad value is reported the same way whatever its source: one line naming the key and where it
// came from. Relations between keys are checked only after merging, because a relation can
// span sources (heartbeat from the file, election timeout from a flag). The result is
// deep-frozen: nothing may change configuration after startup.

import { readFileSync } from 'node:fs';
import { parseDocument } from 'yaml';
import { EtcdConfigFileError, readEtcdConfigFile, type EtcdFileSetting } from './etcd-config-file.js';
import { ETCD_FLAGS, ETCD_FLAGS_BY_NAME, tokenize, type FlagSpec } from './etcd-flags.js';
import { CIPHER_SUITES } from './cipher-suites.js';
import { CONFIG_KEYS, DEFAULTS, deepFreeze, getField, KEYS_BY_ENV, KEYS_BY_PATH, type Config, type KeySpec } from './schema.js';
import {
  bindHost,
  describeGot,
  formatUrl,
  isLoopbackHost,
  isSecureScheme,
  parseBool,
  parseDurationMs,
  parseEnum,
  parseHostPort,
  parseId,
  parseInitialCluster,
  parseInteger,
  parsePeer,
  parseSizeBytes,
  parseString,
  parseStringList,
  parseUrl,
  unixSocketPath,
  ValueProblem,
  type Url,
} from './values.js';

/** Bad configuration from the operator. The caller prints the message on one line, exits 2. */
export class ConfigError extends Error {
  override name = 'ConfigError';
}

export type Source =
  | { readonly kind: 'default' }
  | { readonly kind: 'file'; readonly path: string }
  | { readonly kind: 'env'; readonly name: string }
  | { readonly kind: 'flag'; readonly name: string }
  | { readonly kind: 'etcd-file'; readonly path: string; readonly key: string };

export interface LoadOptions {
  /** Arguments after the program name, e.g. process.argv.slice(2). */
  readonly argv: readonly string[];
  readonly env: Readonly<Record<string, string | undefined>>;
  /** Reads the --config file as UTF-8; defaults to fs.readFileSync. */
  readonly readFile?: (path: string) => string;
}

export interface Entry {
  readonly raw: unknown;
  readonly source: Source;
}

const ENV_PREFIX = 'METASTORE_SERVER_';
const DEFAULT_SOURCE: Source = { kind: 'default' };

/** Where a value came from, as an operator would look for it. */
function origin(source: Source): string {
  switch (source.kind) {
    case 'default':
      return 'the defaults';
    case 'file':
      return source.path;
    case 'env':
      return `environment variable ${source.name}`;
    case 'flag':
      return `flag --${source.name}`;
    case 'etcd-file':
      return `${source.key} of etcd config file ${source.path}`;
  }
}

function where(source: Source): string {
  return `in ${origin(source)}`;
}

function from(source: Source): string {
  return source.kind === 'default' ? 'default' : `from ${origin(source)}`;
}

function configError(message: string): ConfigError {
  return new ConfigError(`config error: ${message}`);
}

function rethrowValueProblem<T>(describe: () => string, fn: () => T): T {
  try {
    return fn();
  } catch (error) {
    if (error instanceof ValueProblem) throw configError(`${describe()}: ${error.message}`);
    throw error;
  }
}

/** Parses one key's raw value into its Config field's type. */
export function parseKeyValue(spec: KeySpec, raw: unknown, textual: boolean): unknown {
  switch (spec.type) {
    case 'int':
      return parseInteger(raw, textual, spec.min, spec.max);
    case 'uint':
      return parseInteger(raw, textual, spec.min ?? 0, spec.max);
    case 'bool':
      return parseBool(raw, textual);
    case 'string':
      return parseString(raw);
    case 'duration':
      return parseDurationMs(raw, textual);
    case 'size':
      return parseSizeBytes(raw, textual, spec.min ?? 0, spec.max, spec.bareUnitBytes);
    case 'enum':
      return parseEnum(raw, spec.values ?? []);
    case 'bigint-id':
      return parseId(raw);
    case 'string-list': {
      const items = parseStringList(raw);
      switch (spec.items) {
        case 'url':
          return items.map(parseUrl);
        case 'peer':
          return items.map(parsePeer);
        case 'initial-cluster':
          return parseInitialCluster(items);
        default:
          return items;
      }
    }
  }
}

// ---- sources -------------------------------------------------------------------------------

interface ParsedFlags {
  readonly configFile: string | undefined;
  /** etcd's --config-file: etcd's own YAML format, standing for the whole command line. */
  readonly etcdConfigFile: string | undefined;
  readonly entries: Map<string, Entry>;
}

/** Applies one etcd flag (from the command line or etcd's config file) as key assignments. */
function applyFlag(spec: FlagSpec, value: string, source: Source, entries: Map<string, Entry>): void {
  const describe = () => (source.kind === 'flag' ? `flag --${spec.name}` : origin(source));
  if (spec.boolean) rethrowValueProblem(describe, () => parseBool(value, true));
  rethrowValueProblem(describe, () =>
    spec.apply(value, {
      set: (path, text) => entries.set(path, { raw: text, source }),
    }),
  );
}

function parseFlags(argv: readonly string[]): ParsedFlags {
  const tokens = tokenize(argv);
  const entries = new Map<string, Entry>();
  let configFile: string | undefined;
  let etcdConfigFile: string | undefined;
  for (let i = 0; i < tokens.length; i++) {
    const token = tokens[i];
    if (token === undefined) break;
    if (token.kind === 'positional') throw configError(`unexpected argument ${JSON.stringify(token.value)} (flags start with --)`);
    const { name, inlineValue } = token.flag;
    const spec = ETCD_FLAGS_BY_NAME.get(name);
    const isFile = name === 'config' || name === 'config-file';
    if (!spec && !isFile) throw configError(`unknown flag --${name} (see --help)`);
    let value = inlineValue;
    if (value === undefined) {
      if (spec?.boolean) {
        value = 'true';
      } else {
        const next = tokens[i + 1];
        if (next === undefined) throw configError(`flag --${name} needs a value`);
        value = next.raw;
        i++;
      }
    }
    if (name === 'config') configFile = value;
    else if (name === 'config-file') etcdConfigFile = value;
    else if (spec) applyFlag(spec, value, { kind: 'flag', name }, entries);
  }
  return { configFile, etcdConfigFile, entries };
}

/**
 * etcd's --config-file: etcd ignores every other flag when it is given; MetaStore refuses the
 * mix instead of ignoring part of a command line.
 */
function parseEtcdConfigFile(flags: ParsedFlags, readFile: (path: string) => string): Map<string, Entry> {
  const file = flags.etcdConfigFile!;
  if (flags.entries.size > 0 || flags.configFile !== undefined) {
    throw configError(`flag --config-file ${file} cannot be combined with other flags (etcd ignores them): put those settings in ${file}`);
  }
  let text: string;
  try {
    text = readFile(file);
  } catch (error) {
    throw configError(`cannot read etcd config file ${file}: ${error instanceof Error ? error.message : String(error)}`);
  }
  const entries = new Map<string, Entry>();
  let settings: EtcdFileSetting[];
  try {
    settings = readEtcdConfigFile(text, (name) => ETCD_FLAGS_BY_NAME.has(name));
  } catch (error) {
    if (error instanceof EtcdConfigFileError) throw configError(`etcd config file ${file}: ${error.message}`);
    throw error;
  }
  for (const setting of settings) {
    applyFlag(ETCD_FLAGS_BY_NAME.get(setting.flag)!, setting.value, { kind: 'etcd-file', path: file, key: setting.key }, entries);
  }
  return entries;
}

function parseEnv(env: Readonly<Record<string, string | undefined>>): Map<string, Entry> {
  const entries = new Map<string, Entry>();
  for (const [name, value] of Object.entries(env)) {
    if (!name.startsWith(ENV_PREFIX) || value === undefined) continue;
    const spec = KEYS_BY_ENV.get(name);
    if (!spec) throw configError(`unknown environment variable ${name}${suggest(name, [...KEYS_BY_ENV.keys()])}`);
    entries.set(spec.path, { raw: value, source: { kind: 'env', name } });
  }
  return entries;
}

/** Every path that is a section (has keys below it), for walking nested YAML mappings. */
const SECTIONS: ReadonlySet<string> = new Set(
  CONFIG_KEYS.flatMap((k) => {
    const parts = k.path.split('.');
    return parts.slice(1).map((_, i) => parts.slice(0, i + 1).join('.'));
  }),
);

function isMapping(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

function parseYaml(text: string, file: string): Map<string, Entry> {
  const doc = parseDocument(text, { intAsBigInt: true, uniqueKeys: true });
  const firstError = doc.errors[0];
  if (firstError) throw configError(`cannot parse ${file}: ${firstError.message.split('\n')[0]}`);
  const root: unknown = doc.toJS();
  const entries = new Map<string, Entry>();
  const source: Source = { kind: 'file', path: file };
  if (root === null || root === undefined) return entries; // An empty file changes nothing.
  if (!isMapping(root)) throw configError(`${file}: expected a mapping with a server: section, got ${describeGot(root)}`);

  const walk = (node: Record<string, unknown>, prefix: string): void => {
    for (const [name, value] of Object.entries(node)) {
      const path = prefix === '' ? name : `${prefix}.${name}`;
      // A key with no value (`cert_file:`) means "not set here", as YAML readers expect.
      if (value === null) continue;
      if (KEYS_BY_PATH.has(path)) {
        entries.set(path, { raw: value, source });
      } else if (SECTIONS.has(path)) {
        if (!isMapping(value)) throw configError(`${path} in ${file}: expected a mapping of keys, got ${describeGot(value)}`);
        walk(value, path);
      } else if (replacedKey(path) !== undefined) {
        throw configError(`${path} in ${file}: ${replacedKey(path)}`);
      } else {
        throw configError(`unknown key ${path} in ${file}${suggest(path, [...KEYS_BY_PATH.keys(), ...SECTIONS])}`);
      }
    }
  };
  walk(root, '');
  return entries;
}

/**
 * Sections of the deployment guide that name parts MetaStore does differently: refused with what
 * to use instead, never accepted and ignored.
 */
const REPLACED_SECTIONS: ReadonlyMap<string, string> = new Map([
  [
    'server.rocksdb',
    'MetaStore keeps its data in LevelDB, not RocksDB: use server.storage (write_buffer_size, block_cache_size; ' +
      'max_write_buffer_number and max_background_jobs have no LevelDB counterpart)',
  ],
]);

function replacedKey(path: string): string | undefined {
  return REPLACED_SECTIONS.get(path);
}

/** A "did you mean" for near-miss spellings: the closest known name within a small edit distance. */
function suggest(name: string, known: readonly string[]): string {
  let best: string | undefined;
  let bestDistance = 3;
  for (const candidate of known) {
    const d = editDistance(name.toLowerCase(), candidate.toLowerCase());
    if (d < bestDistance) {
      best = candidate;
      bestDistance = d;
    }
  }
  return best === undefined ? '' : ` (did you mean ${best}?)`;
}

function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      current[j] = Math.min((previous[j] ?? 0) + 1, (current[j - 1] ?? 0) + 1, (previous[j - 1] ?? 0) + cost);
    }
    previous = current;
  }
  return previous[b.length] ?? 0;
}

// ---- merge, build, check ---------------------------------------------------------------------

type Mutable<T> = { -readonly [K in keyof T]: T[K] extends object ? (T[K] extends readonly unknown[] ? T[K] : Mutable<T[K]>) : T[K] };

function setField(target: Record<string, unknown>, field: readonly string[], value: unknown): void {
  let node = target;
  for (const segment of field.slice(0, -1)) node = node[segment] as Record<string, unknown>;
  node[field[field.length - 1] ?? ''] = value;
}

/**
 * Builds and checks a Config from already-collected entries (key path -> raw value and its
 * source). loadConfig is the usual entry point; this one serves callers that have their own
 * input (tests, a future reload). Entries for unknown paths are rejected.
 */
export function parseConfig(entries: ReadonlyMap<string, Entry>): Config {
  const config = structuredClone(DEFAULTS) as Mutable<Config>;
  const sources = new Map<string, Source>();
  for (const [path, entry] of entries) {
    const spec = KEYS_BY_PATH.get(path);
    if (!spec) throw configError(`unknown key ${path} ${where(entry.source)}`);
    const value = rethrowValueProblem(
      () => `${path} ${where(entry.source)}`,
      () => parseKeyValue(spec, entry.raw, entry.source.kind !== 'file'),
    );
    setField(config as unknown as Record<string, unknown>, spec.field, value);
    sources.set(path, entry.source);
  }
  deriveAndCheck(config, (path) => sources.get(path) ?? DEFAULT_SOURCE);
  return deepFreeze(config as Config);
}

/**
 * etcd sizes its gRPC receive limit as max-request-bytes + 512 KiB (grpcOverheadBytes), so an
 * etcd command line that raises --max-request-bytes keeps working: the limit follows it unless
 * the operator chose one. A receive limit chosen alone (the deployment guide's
 * max_recv_msg_size: 1572864) sets the request limit instead: what fits in such a message with
 * 512 bytes of framing. A chosen limit must leave a request of the full size that room.
 */
function deriveReceiveLimit(config: Mutable<Config>, sourceOf: (path: string) => Source, show: (path: string, value: unknown) => string): void {
  if (sourceOf('server.grpc.max_recv_msg_size').kind === 'default') {
    config.grpc.maxRecvMsgSize = config.limits.maxRequestBytes + ETCD_GRPC_OVERHEAD_BYTES;
    return;
  }
  if (config.grpc.maxRecvMsgSize >= config.limits.maxRequestBytes + 512) return;
  const requestChosen = sourceOf('server.limits.max_request_bytes').kind !== 'default';
  if (!requestChosen && config.grpc.maxRecvMsgSize > 512) {
    config.limits.maxRequestBytes = config.grpc.maxRecvMsgSize - 512;
    return;
  }
  throw configError(
    `${show('server.grpc.max_recv_msg_size', config.grpc.maxRecvMsgSize)} must be at least ` +
      `${show('server.limits.max_request_bytes', config.limits.maxRequestBytes)} + 512`,
  );
}

/** etcd's grpcOverheadBytes: its gRPC receive limit is --max-request-bytes plus this. */
const ETCD_GRPC_OVERHEAD_BYTES = 512 * 1024;

function deriveAndCheck(config: Mutable<Config>, sourceOf: (path: string) => Source): void {
  const show = (path: string, value: unknown): string =>
    `${path} (${typeof value === 'string' ? JSON.stringify(value) : String(value)}, ${from(sourceOf(path))})`;

  // Auto-compaction retention means different things per mode (etcd semantics): periodic takes
  // a duration, or a bare integer of hours; revision takes a count of revisions.
  const retention = config.compaction.retention.trim();
  if (config.compaction.mode === 'periodic') {
    config.compaction.retentionMs = rethrowValueProblem(
      () => `server.compaction.retention ${where(sourceOf('server.compaction.retention'))}`,
      () => (/^\d+$/.test(retention) ? parseInteger(retention, true, 0) * 3_600_000 : parseDurationMs(retention, true)),
    );
  } else {
    config.compaction.retentionRevisions = rethrowValueProblem(
      () => `server.compaction.retention ${where(sourceOf('server.compaction.retention'))} (revision mode)`,
      () => parseInteger(retention, true, 0),
    );
  }

  deriveReceiveLimit(config, sourceOf, show);

  const { electionTimeoutMs, heartbeatIntervalMs } = config.raft;
  if (electionTimeoutMs < 5 * heartbeatIntervalMs) {
    throw configError(
      `${show('server.raft.election_timeout_ms', electionTimeoutMs)} must be at least 5 x ` +
        `${show('server.raft.heartbeat_interval_ms', heartbeatIntervalMs)}`,
    );
  }

  checkPeers(config, show);
  checkUrls(config, 'grpc', show);
  checkUrls(config, 'raft', show);
  const unixMetricsUrl = config.monitoring.listenMetricsUrls.find((url) => unixSocketPath(url) !== undefined);
  if (unixMetricsUrl !== undefined) {
    throw configError(`${show('server.monitoring.listen_metrics_urls', formatUrl(unixMetricsUrl))}: unix sockets are supported for client and peer URLs only`);
  }
  deriveListening(config, sourceOf);

  // A section whose first listen URL is a unix socket has no TCP port to clash.
  const tcpPort = (section: 'grpc' | 'raft'): [string, number][] => {
    const first = config[section].listenUrls[0];
    return first !== undefined && unixSocketPath(first) !== undefined ? [] : [[`server.${section}.port`, config[section].port]];
  };
  const ports: [string, number][] = [...tcpPort('grpc'), ...tcpPort('raft')];
  if (config.http.port !== 0) ports.push(['server.http.port', config.http.port]);
  if (config.health.open) ports.push(['server.health.port', config.health.port]);
  if (config.monitoring.openPrometheusPort) ports.push(['server.monitoring.prometheus_port', config.monitoring.prometheusPort]);
  for (const [i, [pathA, portA]] of ports.entries()) {
    // Port 0 asks for a free port, different for each listener.
    const clash = ports.slice(i + 1).find(([, portB]) => portB === portA && portA !== 0);
    if (clash) throw configError(`${show(pathA, portA)} and ${show(clash[0], clash[1])} must be different ports`);
  }

  if (config.initialCluster.length > 0 && !config.initialCluster.some((m) => m.name === config.name)) {
    throw configError(`${show('server.name', config.name)} is not among the members of server.initial_cluster (${from(sourceOf('server.initial_cluster'))})`);
  }

  if (!/^(?:simple|jwt(?:,[a-z-]+=[^,]*)*)$/.test(config.auth.token)) {
    throw configError(
      `server.auth.token ${where(sourceOf('server.auth.token'))}: expected "simple" or "jwt,pub-key=...,priv-key=...,sign-method=...", got ${JSON.stringify(config.auth.token)}`,
    );
  }
  for (const path of ['server.data_dir', 'server.log.output', 'server.grpc.address', 'server.raft.address'] as const) {
    if (String(lookup(config, path)).trim() === '') throw configError(`${path} ${where(sourceOf(path))}: must not be empty`);
  }
}

/**
 * Where the member listens. A member advertised at a non-loopback address must be reachable
 * there, so without an explicit address (or etcd listen URLs) its ports bind every interface
 * (0.0.0.0), as the deployment guide's configs expect. With etcd's listen URL flags the member
 * has etcd's port footprint: MetaStore's health and metrics side ports open only when set.
 */
function deriveListening(config: Mutable<Config>, sourceOf: (path: string) => Source): void {
  for (const section of ['grpc', 'raft'] as const) {
    const s = config[section];
    const addressChosen = sourceOf(`server.${section}.address`).kind !== 'default';
    if (addressChosen || s.listenUrls.length > 0 || s.advertiseAddress === '') continue;
    if (!isLoopbackHost(parseHostPort(s.advertiseAddress).host)) s.address = '0.0.0.0';
  }
  const fromEtcd = (path: string): boolean => ['flag', 'etcd-file'].includes(sourceOf(path).kind);
  const etcdFootprint = fromEtcd('server.grpc.listen_urls') || fromEtcd('server.raft.listen_urls');
  const chosen = (path: string): boolean => sourceOf(path).kind !== 'default';
  config.health.open = !etcdFootprint || chosen('server.health.port');
  config.monitoring.openPrometheusPort = config.monitoring.enablePrometheus && (!etcdFootprint || chosen('server.monitoring.prometheus_port'));
}

function lookup(config: Config, path: string): unknown {
  return getField(config, KEYS_BY_PATH.get(path)?.field ?? []);
}

function checkPeers(config: Config, show: (path: string, value: unknown) => string): void {
  const peers = config.raft.peers;
  if (peers.length === 0) return;
  const seenIds = new Set<bigint>();
  const seenAddresses = new Set<string>();
  for (const peer of peers) {
    const address = `${peer.host}:${peer.port}`;
    if (seenIds.has(peer.id)) throw configError(`${show('server.raft.peers', `${peers.length} peers`)} lists member ID ${peer.id} twice`);
    if (seenAddresses.has(address)) throw configError(`${show('server.raft.peers', `${peers.length} peers`)} lists address ${address} twice`);
    seenIds.add(peer.id);
    seenAddresses.add(address);
  }
  if (!seenIds.has(config.memberId)) {
    throw configError(`${show('server.member_id', config.memberId)} must be one of the IDs in server.raft.peers (${[...seenIds].join(', ')})`);
  }
}

function checkUrls(config: Config, section: 'grpc' | 'raft', show: (path: string, value: unknown) => string): void {
  const s = config[section];
  const base = `server.${section}`;
  const first = s.listenUrls[0];
  const firstHost = first && unixSocketPath(first) === undefined ? bindHost(first.host) : first?.host;
  if (first && (firstHost !== s.address || first.port !== s.port)) {
    throw configError(`${show(`${base}.listen_urls`, formatUrl(first))} must match ${show(`${base}.address`, s.address)} and ${show(`${base}.port`, s.port)}`);
  }
  // etcd publishes an advertised client port 0 as given (the bound port replaces it here when
  // a port-0 listen URL has the same host); a peer URL is also the member's identity (its ID is
  // derived from it) and what the other members dial, so port 0 is refused there.
  const zeroPeerUrl = section === 'raft' ? s.advertiseUrls.find((url) => url.port === 0 && unixSocketPath(url) === undefined) : undefined;
  if (zeroPeerUrl !== undefined || (section === 'raft' && s.advertiseUrls.length === 0 && /:0$/.test(s.advertiseAddress))) {
    throw configError(
      `${show(`${base}.advertise_address`, s.advertiseAddress)}: a peer URL cannot advertise port 0 (members dial it and derive the member ID from it): give the port`,
    );
  }
  if (s.advertiseAddress !== '') {
    const advertised = rethrowValueProblem(
      () => `${show(`${base}.advertise_address`, s.advertiseAddress)}`,
      () => parseHostPort(s.advertiseAddress, section === 'grpc'),
    );
    const firstAdvertised: Url | undefined = s.advertiseUrls[0];
    if (firstAdvertised && (firstAdvertised.host !== advertised.host || firstAdvertised.port !== advertised.port)) {
      throw configError(`${show(`${base}.advertise_urls`, formatUrl(firstAdvertised))} must match ${show(`${base}.advertise_address`, s.advertiseAddress)}`);
    }
  } else if (s.advertiseUrls.length > 0) {
    throw configError(`${show(`${base}.advertise_address`, '')} must be set when ${base}.advertise_urls is`);
  }
  const tls = s.tls;
  const httpsUrl = [...s.listenUrls, ...s.advertiseUrls].find((u) => isSecureScheme(u.scheme));
  if (httpsUrl && !tls.enabled) {
    throw configError(`${show(`${base}.tls.enabled`, false)} must be true for the https URL ${formatUrl(httpsUrl)}`);
  }
  if (tls.enabled && !tls.autoTls && (tls.certFile === '' || tls.keyFile === '')) {
    throw configError(`${show(`${base}.tls.enabled`, true)} needs ${base}.tls.cert_file and ${base}.tls.key_file (or ${base}.tls.auto_tls)`);
  }
  if (tls.clientCertAuth && !tls.autoTls && tls.caFile === '') {
    throw configError(`${show(`${base}.tls.client_cert_auth`, true)} needs ${base}.tls.ca_file to verify client certificates`);
  }
  const unknownSuite = tls.cipherSuites.find((name) => !CIPHER_SUITES.has(name));
  if (unknownSuite !== undefined) {
    throw configError(
      `${show(`${base}.tls.cipher_suites`, tls.cipherSuites.join(','))}: unknown TLS 1.2 cipher suite ${JSON.stringify(unknownSuite)} (known: ${[...CIPHER_SUITES.keys()].join(', ')})`,
    );
  }
  if (tls.crlFile !== '' && !tls.clientCertAuth) {
    throw configError(`${show(`${base}.tls.crl_file`, tls.crlFile)} needs ${base}.tls.client_cert_auth (a CRL applies to verified client certificates)`);
  }
}

// ---- entry points ----------------------------------------------------------------------------

/** Merges defaults < YAML file (--config) < METASTORE_SERVER_* env < flags into a frozen Config. */
export function loadConfig(options: LoadOptions): Config {
  const flags = parseFlags(options.argv);
  const envEntries = parseEnv(options.env);
  const readFile = options.readFile ?? ((path: string) => readFileSync(path, 'utf8'));
  if (flags.etcdConfigFile !== undefined) {
    const etcdEntries = parseEtcdConfigFile(flags, readFile);
    return parseConfig(new Map([...envEntries, ...etcdEntries]));
  }
  let fileEntries = new Map<string, Entry>();
  if (flags.configFile !== undefined) {
    const file = flags.configFile;
    let text: string;
    try {
      text = readFile(file);
    } catch (error) {
      throw configError(`cannot read config file ${file}: ${error instanceof Error ? error.message : String(error)}`);
    }
    fileEntries = parseYaml(text, file);
  }
  // Later sources override earlier ones key by key.
  const merged = new Map<string, Entry>([...fileEntries, ...envEntries, ...flags.entries]);
  return parseConfig(merged);
}

/** Parses a YAML config text alone (no env, no flags), e.g. to check a config file. */
export function parseYamlConfig(text: string, file: string): Config {
  return parseConfig(parseYaml(text, file));
}

function defaultText(spec: KeySpec): string {
  const value = spec.default;
  if (Array.isArray(value)) return value.length === 0 ? '[]' : value.join(',');
  if (value === '') return '""';
  return String(value);
}

/** The --help text, generated from the key and flag tables so it cannot drift from them. */
/** The flags of `metastore snapshot restore` (parsed in cli.ts), with etcdctl's defaults. */
const SNAPSHOT_RESTORE_HELP: readonly string[] = [
  "snapshot restore FILE flags (etcdctl snapshot restore's; FILE is an etcd or MetaStore snapshot):",
  '  --data-dir DIR                              data dir to create (default NAME.etcd)',
  "  --wal-dir DIR                               raft log dir (etcdctl's flag; as the server's --wal-dir)",
  '  --name NAME                                 this member\'s name (default "default")',
  '  --initial-cluster NAME=URL,...              the restored cluster (default NAME=http://localhost:2380)',
  '  --initial-cluster-token TOKEN               cluster token (default "etcd-cluster")',
  "  --initial-advertise-peer-urls URL,...       this member's peer URLs (default http://localhost:2380)",
  '  --skip-hash-check[=true|false]              restore a snapshot without an integrity hash (copied from a data dir)',
];

export function helpText(): string {
  const lines: string[] = [
    'Usage:',
    '  metastore [--config FILE] [flags]        serve',
    "  metastore --config-file ETCD_FILE        serve with etcd's own YAML config file",
    '  metastore snapshot restore FILE [flags]  restore a member data dir from a snapshot',
    '  metastore --version | --help',
    '',
    'Settings come from, lowest priority first: defaults, the YAML file given by --config,',
    'METASTORE_SERVER_* environment variables, then flags.',
    '',
    'MetaStore flags:',
    '  --config FILE   YAML config file (all keys under server:)',
    '  --version       print the version and exit',
    '  --help          print this help and exit',
    '',
    "  --config-file FILE  etcd's YAML config file (keys named like the etcd flags below,",
    '                  TLS under client-transport-security / peer-transport-security);',
    '                  stands for the whole command line, as in etcd',
    '',
    'etcd server flags (an etcd command line for one member works unchanged):',
  ];
  for (const flag of ETCD_FLAGS) {
    lines.push(`  --${flag.name}${flag.boolean ? '[=true|false]' : ' VALUE'}`.padEnd(44) + flag.help);
  }
  lines.push('', ...SNAPSHOT_RESTORE_HELP);
  lines.push('', 'Config keys (YAML path, type, default; environment variable):');
  for (const spec of CONFIG_KEYS) {
    const type = spec.type === 'enum' ? (spec.values ?? []).join('|') : spec.type;
    lines.push(`  ${spec.path} (${type}, default ${defaultText(spec)})`);
    lines.push(`      ${spec.description}; env ${spec.env}`);
  }
  return lines.join('\n');
}
