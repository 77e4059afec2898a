// Parsers and formatters for the value types a config key can have (durations, sizes, IDs,
// URLs, peer lists). They know nothing about keys or sources: a parser either returns the
// typed value or throws ValueProblem ("expected X, got Y"), and the caller adds which key and
// which source (file, environment variable, flag) the bad value came from.
//
// `textual` says whether the raw value is a string typed by a human (environment variable,
// command-line flag) or a typed YAML value. Textual numbers and booleans are accepted as text;
// a quoted string in YAML where a number belongs is a type error, because it is usually a
// mistake that would otherwise pass silently.

export class ValueProblem extends Error {
  override name = 'ValueProblem';
}

/**
 * A parsed URL as etcd's flags use them; the port is always explicit. unix and unixs URLs name
 * a unix socket: as in etcd, its path is the URL's host:port text, relative to the working
 * directory (`unix://localhost:12345` is the file `localhost:12345`); unixs is TLS over it.
 */
export interface Url {
  readonly scheme: UrlScheme;
  readonly host: string;
  readonly port: number;
}

export type UrlScheme = 'http' | 'https' | 'unix' | 'unixs';

/** True for the schemes that carry TLS (https, unixs). */
export function isSecureScheme(scheme: UrlScheme): boolean {
  return scheme === 'https' || scheme === 'unixs';
}

/** The socket file of a unix or unixs URL; undefined for a TCP URL. */
export function unixSocketPath(url: Url): string | undefined {
  if (url.scheme !== 'unix' && url.scheme !== 'unixs') return undefined;
  return `${url.host.includes(':') ? `[${url.host}]` : url.host}:${url.port}`;
}

/** One MetaStore raft peer, written `ID@host:port` in configs. */
export interface Peer {
  readonly id: bigint;
  readonly host: string;
  readonly port: number;
}

/** One member of etcd's --initial-cluster (`name=url,...`); IDs are derived later by the server. */
export interface InitialClusterMember {
  readonly name: string;
  readonly peerUrls: readonly Url[];
}

export function describeGot(raw: unknown): string {
  if (raw === null || raw === undefined) return 'nothing';
  if (typeof raw === 'string') return JSON.stringify(raw);
  if (typeof raw === 'number' || typeof raw === 'bigint' || typeof raw === 'boolean') return String(raw);
  if (Array.isArray(raw)) return 'a list';
  return 'a mapping';
}

function fail(expected: string, raw: unknown): never {
  throw new ValueProblem(`expected ${expected}, got ${describeGot(raw)}`);
}

export function integerExpectation(min: number | undefined, max: number | undefined): string {
  if (min !== undefined && max !== undefined) return `an integer ${min}-${max}`;
  if (min !== undefined) return min === 0 ? 'a non-negative integer' : `an integer >= ${min}`;
  if (max !== undefined) return `an integer <= ${max}`;
  return 'an integer';
}

export function parseInteger(raw: unknown, textual: boolean, min?: number, max?: number): number {
  const expected = integerExpectation(min, max);
  let n: number | undefined;
  if (typeof raw === 'number' && Number.isSafeInteger(raw)) n = raw;
  else if (typeof raw === 'bigint' && raw >= BigInt(Number.MIN_SAFE_INTEGER) && raw <= BigInt(Number.MAX_SAFE_INTEGER)) n = Number(raw);
  else if (typeof raw === 'string' && textual && /^[+-]?\d+$/.test(raw.trim())) n = Number(raw.trim());
  if (n === undefined || !Number.isSafeInteger(n)) fail(expected, raw);
  if ((min !== undefined && n < min) || (max !== undefined && n > max)) fail(expected, raw);
  return n;
}

// Go's strconv.ParseBool set, because etcd's boolean flags accept exactly these spellings.
const TRUE_WORDS = new Set(['1', 't', 'T', 'true', 'TRUE', 'True']);
const FALSE_WORDS = new Set(['0', 'f', 'F', 'false', 'FALSE', 'False']);

export function parseBool(raw: unknown, textual: boolean): boolean {
  if (typeof raw === 'boolean') return raw;
  if (typeof raw === 'string' && textual) {
    if (TRUE_WORDS.has(raw.trim())) return true;
    if (FALSE_WORDS.has(raw.trim())) return false;
  }
  return fail('true or false', raw);
}

const DURATION_UNITS_MS: Readonly<Record<string, number>> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };
const DURATION_WHOLE = /^(?:\d+(?:\.\d+)?(?:ms|s|m|h))+$/;
const DURATION_PART = /(\d+(?:\.\d+)?)(ms|s|m|h)/g;
const DURATION_EXPECTED = 'a duration like "30s", "100ms", "5m", "1h" or an integer of milliseconds';

/**
 * Durations are Go-style strings ("30s", "1h30m", "2h0m0s" as Go prints them) or plain
 * integers of milliseconds. The result is whole milliseconds; finer values are rejected rather
 * than rounded, so what the operator wrote is what runs.
 */
export function parseDurationMs(raw: unknown, textual: boolean): number {
  void textual; // Durations are strings in every source, so YAML and text are treated alike.
  if (typeof raw === 'number' || typeof raw === 'bigint') return parseInteger(raw, false, 0);
  if (typeof raw !== 'string') return fail(DURATION_EXPECTED, raw);
  const text = raw.trim();
  if (/^\d+$/.test(text)) return parseInteger(text, true, 0);
  if (!DURATION_WHOLE.test(text)) return fail(DURATION_EXPECTED, raw);
  let total = 0;
  for (const match of text.matchAll(DURATION_PART)) {
    total += Number(match[1]) * (DURATION_UNITS_MS[match[2] ?? ''] ?? Number.NaN);
  }
  const rounded = Math.round(total);
  // Decimal fractions like 1.1s are not exact in binary; allow that noise, not real sub-ms values.
  if (!Number.isSafeInteger(rounded) || Math.abs(total - rounded) > 1e-6) return fail(`${DURATION_EXPECTED} (whole milliseconds)`, raw);
  return rounded;
}

export function formatDurationMs(ms: number): string {
  if (ms === 0) return '0s';
  for (const [unit, size] of [
    ['h', 3_600_000],
    ['m', 60_000],
    ['s', 1000],
  ] as const) {
    if (ms % size === 0) return `${ms / size}${unit}`;
  }
  return `${ms}ms`;
}

const SIZE_UNITS: Readonly<Record<string, number>> = {
  b: 1,
  kb: 1e3,
  mb: 1e6,
  gb: 1e9,
  tb: 1e12,
  kib: 1024,
  mib: 1024 ** 2,
  gib: 1024 ** 3,
  tib: 1024 ** 4,
};

/** Sizes are integers of bytes or strings with a unit: "4MiB" (binary) or "4MB" (decimal). */
export function parseSizeBytes(raw: unknown, textual: boolean, min = 0, max?: number, bareUnitBytes = 1): number {
  const range = min < 0 ? ` >= ${min}` : '';
  const expected = `a size in bytes like 4194304 or "4MiB"${range}${max !== undefined ? ` up to ${max}` : ''}`;
  let n: number | undefined;
  if (typeof raw === 'number' || typeof raw === 'bigint') {
    n = parseIntegerOrUndefined(raw);
    if (n !== undefined) n *= bareUnitBytes;
  } else if (typeof raw === 'string') {
    const match = /^([+-]?\d+(?:\.\d+)?)\s*([a-zA-Z]*)$/.exec(raw.trim());
    const unit = SIZE_UNITS[(match?.[2] ?? '').toLowerCase() || 'b'];
    if (match && unit !== undefined && (textual || match[2] !== '')) {
      const value = Number(match[1]) * (match[2] === '' ? bareUnitBytes : unit);
      n = Number.isSafeInteger(value) ? value : undefined;
    }
  }
  if (n === undefined || n < min || (max !== undefined && n > max)) return fail(expected, raw);
  return n;
}

function parseIntegerOrUndefined(raw: number | bigint): number | undefined {
  const n = Number(raw);
  return Number.isSafeInteger(n) ? n : undefined;
}

export function parseEnum<T extends string>(raw: unknown, values: readonly T[]): T {
  if (typeof raw === 'string' && (values as readonly string[]).includes(raw.trim())) return raw.trim() as T;
  return fail(`one of ${values.join(', ')}`, raw);
}

export function parseString(raw: unknown): string {
  if (typeof raw === 'string') return raw;
  // `root_password: 1234` or `retention: 0` in YAML mean the text the operator typed.
  if (typeof raw === 'number' || typeof raw === 'bigint') return String(raw);
  return fail('a string', raw);
}

/** A list is a YAML sequence of scalars, or comma-separated text (env, flags, or a YAML string). */
export function parseStringList(raw: unknown): string[] {
  if (typeof raw === 'string')
    return raw
      .split(',')
      .map((s) => s.trim())
      .filter((s) => s !== '');
  if (Array.isArray(raw)) {
    return raw.map((item) => {
      if (typeof item === 'string') return item.trim();
      if (typeof item === 'number' || typeof item === 'bigint') return String(item);
      return fail('a list of strings', raw);
    });
  }
  return fail('a list of strings', raw);
}

const UINT64_MAX = (1n << 64n) - 1n;
const ID_EXPECTED = 'an unsigned 64-bit integer (decimal, or hex with 0x)';

/** Member and cluster IDs are full 64-bit values: bigint, never number (DESIGN §5). */
export function parseId(raw: unknown): bigint {
  let id: bigint | undefined;
  if (typeof raw === 'bigint') id = raw;
  else if (typeof raw === 'number' && Number.isSafeInteger(raw)) id = BigInt(raw);
  else if (typeof raw === 'string' && /^(?:\d+|0[xX][0-9a-fA-F]+)$/.test(raw.trim())) id = BigInt(raw.trim());
  if (id === undefined || id < 0n || id > UINT64_MAX) return fail(ID_EXPECTED, raw);
  return id;
}

const HOST = String.raw`(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9._-]+)`;
const URL_RE = new RegExp(String.raw`^(https?|unixs?)://${HOST}:(\d{1,5})/?$`);
const HOST_PORT_RE = new RegExp(String.raw`^${HOST}:(\d{1,5})$`);

function unbracket(host: string): string {
  return host.startsWith('[') ? host.slice(1, -1) : host;
}

function validPort(text: string | undefined, lowest = 1): number | undefined {
  const port = Number(text);
  return Number.isInteger(port) && port >= lowest && port <= 65535 ? port : undefined;
}

/** Port 0 is accepted in URLs as etcd does: listening on it picks a free port. */
export function parseUrl(text: string): Url {
  const match = URL_RE.exec(text);
  const port = validPort(match?.[3], 0);
  if (!match || port === undefined) return fail('a URL like http://127.0.0.1:2379 (http, https, unix or unixs; explicit port)', text);
  return { scheme: match[1] as UrlScheme, host: unbracket(match[2] ?? ''), port };
}

export function formatUrl(url: Url): string {
  const host = url.host.includes(':') ? `[${url.host}]` : url.host;
  return `${url.scheme}://${host}:${url.port}`;
}

/**
 * "host:port" as in `advertise_address: 10.0.1.10:2379`; empty means "not set". Port 0 only
 * with `allowPortZero` (an advertised client address, as etcd accepts it).
 */
export function parseHostPort(text: string, allowPortZero = false): { host: string; port: number } {
  const match = HOST_PORT_RE.exec(text);
  const port = validPort(match?.[2], allowPortZero ? 0 : 1);
  if (!match || port === undefined) return fail('host:port like 10.0.1.10:2379', text);
  return { host: unbracket(match[1] ?? ''), port };
}

export function parsePeer(text: string): Peer {
  const at = text.indexOf('@');
  const idText = text.slice(0, at);
  if (at > 0 && /^(?:\d+|0[xX][0-9a-fA-F]+)$/.test(idText)) {
    const match = HOST_PORT_RE.exec(text.slice(at + 1));
    const port = validPort(match?.[2]);
    const id = BigInt(idText);
    if (match && port !== undefined && id > 0n && id <= UINT64_MAX) return { id, host: unbracket(match[1] ?? ''), port };
  }
  return fail('a peer ID@host:port like 1@10.0.1.10:12379 (ID > 0)', text);
}

export function formatPeer(peer: Peer): string {
  const host = peer.host.includes(':') ? `[${peer.host}]` : peer.host;
  return `${peer.id}@${host}:${peer.port}`;
}

/**
 * etcd's --initial-cluster: `name=url` entries, where a name repeats once per peer URL of that
 * member. Entries of one name are grouped, in first-seen order.
 */
export function parseInitialCluster(items: readonly string[]): InitialClusterMember[] {
  const byName = new Map<string, Url[]>();
  for (const item of items) {
    const eq = item.indexOf('=');
    if (eq <= 0) return fail('name=URL entries like infra1=http://10.0.1.10:2380', item);
    const name = item.slice(0, eq);
    const url = parseUrl(item.slice(eq + 1));
    const urls = byName.get(name) ?? [];
    urls.push(url);
    byName.set(name, urls);
  }
  return [...byName].map(([name, peerUrls]) => ({ name, peerUrls }));
}

export function formatInitialCluster(members: readonly InitialClusterMember[]): string[] {
  return members.flatMap((m) => m.peerUrls.map((u) => `${m.name}=${formatUrl(u)}`));
}

/** Binding to "localhost" means the IPv4 loopback, as the task and etcd's docs assume. */
export function bindHost(host: string): string {
  return host === 'localhost' ? '127.0.0.1' : host;
}

/** True for names of this machine's loopback interface (127.0.0.0/8, ::1, localhost). */
export function isLoopbackHost(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);
}
