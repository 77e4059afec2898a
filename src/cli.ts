// Command-line front door: turns argv (plus the environment and the config file, read through
// an injected adapter) into one typed command for main.ts to run. It never prints and never
// exits; bad input is a ConfigError whose one-line message main.ts prints before exiting 2.
//
//   metastore [--config FILE] [etcd flags...]        -> serve with the merged Config
//   metastore --version | version                    -> version
//   metastore --help | -h | help                     -> help text generated from the key table
//   metastore snapshot restore FILE [flags...]       -> snapshot-restore (etcd or MetaStore file)
//   metastore snapshot status FILE [-w table|json]   -> snapshot-status (etcdctl's output)
//   metastore migrate --from-etcd-data-dir DIR --data-dir NEW [member flags]  -> migrate

import { readFileSync } from 'node:fs';
import { tokenize, type ArgToken } from './config/etcd-flags.js';
import { ConfigError, helpText, loadConfig } from './config/parse-config.js';
import type { Config } from './config/schema.js';
import { parseBool, parseInitialCluster, parseStringList, parseUrl, ValueProblem, type InitialClusterMember, type Url } from './config/values.js';

/** The member a restore or migration makes. */
export interface MemberFlags {
  /** etcdctl's default: `${name}.etcd`. */
  readonly dataDir: string;
  /** Empty = inside dataDir. */
  readonly walDir: string;
  readonly name: string;
  readonly initialCluster: readonly InitialClusterMember[];
  readonly initialClusterToken: string;
  readonly initialAdvertisePeerUrls: readonly Url[];
}

export interface SnapshotRestoreCommand extends MemberFlags {
  readonly command: 'snapshot-restore';
  readonly snapshotFile: string;
  readonly skipHashCheck: boolean;
}

export interface SnapshotStatusCommand {
  readonly command: 'snapshot-status';
  readonly snapshotFile: string;
  readonly format: 'simple' | 'table' | 'json';
}

export interface MigrateCommand extends MemberFlags {
  readonly command: 'migrate';
  /** A stopped etcd member's data dir (its member/snap/db is read). */
  readonly etcdDataDir: string;
}

export type CommandLine =
  | { readonly command: 'serve'; readonly config: Config }
  | { readonly command: 'version' }
  | { readonly command: 'help'; readonly text: string }
  | SnapshotRestoreCommand
  | SnapshotStatusCommand
  | MigrateCommand;

/** The two effects parsing needs, injectable so parsing stays a pure function in tests. */
export interface CliIo {
  readonly env: Readonly<Record<string, string | undefined>>;
  readonly readFile: (path: string) => string;
}

export function processIo(): CliIo {
  return { env: process.env, readFile: (path) => readFileSync(path, 'utf8') };
}

function isFlag(token: ArgToken, ...names: string[]): boolean {
  return token.kind === 'flag' && names.includes(token.flag.name) && token.flag.inlineValue !== 'false';
}

/** Parses argv (without node and the script path) into the command to run. */
export function parseCommandLine(argv: readonly string[], io: CliIo = processIo()): CommandLine {
  const tokens = tokenize(argv);
  // Help and version win over everything else, so a broken config never hides --help.
  if (tokens.some((t) => isFlag(t, 'help', 'h'))) return { command: 'help', text: helpText() };
  if (tokens.some((t) => isFlag(t, 'version'))) return { command: 'version' };
  const first = tokens[0];
  if (first?.kind === 'positional') {
    if (first.value === 'help') return { command: 'help', text: helpText() };
    if (first.value === 'version') return { command: 'version' };
    if (first.value === 'snapshot') return parseSnapshotCommand(argv.slice(1));
    if (first.value === 'migrate') return parseMigrateCommand(argv.slice(1));
  }
  const config = loadConfig({ argv, env: io.env, readFile: io.readFile });
  return { command: 'serve', config };
}

function fail(message: string): never {
  throw new ConfigError(`config error: ${message}`);
}

/** The flags of a member being made (snapshot restore, migrate), with etcdctl's defaults. */
const MEMBER_VALUE_FLAGS = ['data-dir', 'wal-dir', 'name', 'initial-cluster', 'initial-cluster-token', 'initial-advertise-peer-urls'];

interface SubcommandArgs {
  values: Map<string, string>;
  bools: Map<string, boolean>;
  positionals: string[];
}

/** Go-flag-style parsing of a subcommand's arguments: value flags, boolean flags, positionals. */
function parseSubcommandArgs(argv: readonly string[], what: string, valueFlags: readonly string[], boolFlags: readonly string[]): SubcommandArgs {
  const tokens = tokenize(argv);
  const args: SubcommandArgs = { values: new Map(), bools: new Map(), positionals: [] };
  for (let i = 0; i < tokens.length; i++) {
    const token = tokens[i];
    if (token === undefined) break;
    if (token.kind === 'positional') {
      args.positionals.push(token.value);
      continue;
    }
    const { name, inlineValue } = token.flag;
    if (boolFlags.includes(name)) {
      args.bools.set(
        name,
        guard(`flag --${name}`, () => parseBool(inlineValue ?? 'true', true)),
      );
      continue;
    }
    if (!valueFlags.includes(name)) fail(`unknown flag --${name} for ${what}`);
    let value = inlineValue;
    if (value === undefined) {
      const next = tokens[i + 1];
      if (next === undefined) fail(`flag --${name} needs a value`);
      value = next.raw;
      i++;
    }
    args.values.set(name, value);
  }
  return args;
}

/** The new member's flags, with etcdctl snapshot restore's defaults. */
function memberFlags(values: Map<string, string>): MemberFlags {
  const name = values.get('name') ?? 'default';
  const initialCluster = guard('flag --initial-cluster', () =>
    parseInitialCluster(parseStringList(values.get('initial-cluster') ?? `${name}=http://localhost:2380`)),
  );
  const initialAdvertisePeerUrls = guard('flag --initial-advertise-peer-urls', () =>
    parseStringList(values.get('initial-advertise-peer-urls') ?? 'http://localhost:2380').map(parseUrl),
  );
  if (!initialCluster.some((m) => m.name === name)) fail(`flag --name: member ${JSON.stringify(name)} is not in --initial-cluster`);
  return {
    dataDir: values.get('data-dir') ?? `${name}.etcd`,
    walDir: values.get('wal-dir') ?? '',
    name,
    initialCluster,
    initialClusterToken: values.get('initial-cluster-token') ?? 'etcd-cluster',
    initialAdvertisePeerUrls,
  };
}

function parseSnapshotCommand(argv: readonly string[]): SnapshotRestoreCommand | SnapshotStatusCommand {
  const [sub, ...rest] = argv;
  if (sub === 'status') return parseSnapshotStatus(rest);
  if (sub !== 'restore') fail(`unknown snapshot command ${JSON.stringify(sub ?? '')} (only "snapshot restore FILE" and "snapshot status FILE" are supported)`);
  const args = parseSubcommandArgs(rest, 'snapshot restore', MEMBER_VALUE_FLAGS, ['skip-hash-check']);
  if (args.positionals.length !== 1) fail(`snapshot restore takes exactly one snapshot file, got ${args.positionals.length}`);
  return {
    command: 'snapshot-restore',
    snapshotFile: args.positionals[0] ?? '',
    ...memberFlags(args.values),
    skipHashCheck: args.bools.get('skip-hash-check') ?? false,
  };
}

const STATUS_FORMATS = ['simple', 'table', 'json'] as const;

function parseSnapshotStatus(argv: readonly string[]): SnapshotStatusCommand {
  const args = parseSubcommandArgs(argv, 'snapshot status', ['w', 'write-out'], []);
  if (args.positionals.length !== 1) fail(`snapshot status takes exactly one snapshot file, got ${args.positionals.length}`);
  const format = args.values.get('w') ?? args.values.get('write-out') ?? 'simple';
  const known = STATUS_FORMATS.find((f) => f === format);
  if (known === undefined) fail(`flag --write-out: "${format}" is not one of ${STATUS_FORMATS.join(', ')}`);
  return { command: 'snapshot-status', snapshotFile: args.positionals[0] ?? '', format: known };
}

function parseMigrateCommand(argv: readonly string[]): MigrateCommand {
  const args = parseSubcommandArgs(argv, 'migrate', [...MEMBER_VALUE_FLAGS, 'from-etcd-data-dir'], []);
  if (args.positionals.length > 0) fail(`migrate takes no positional arguments, got ${JSON.stringify(args.positionals[0])}`);
  const etcdDataDir = args.values.get('from-etcd-data-dir');
  if (etcdDataDir === undefined) fail("migrate needs --from-etcd-data-dir (a stopped etcd member's data dir)");
  if (!args.values.has('data-dir')) fail('migrate needs --data-dir (the new MetaStore data dir)');
  return { command: 'migrate', etcdDataDir, ...memberFlags(args.values) };
}

function guard<T>(where: string, fn: () => T): T {
  try {
    return fn();
  } catch (error) {
    if (error instanceof ValueProblem) fail(`${where}: ${error.message}`);
    throw error;
  }
}
