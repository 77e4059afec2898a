// Command-line front door: turns argv (plus the environment and the config file, read through
// an injected adapter) into one typed command for main.ts to run. It never prints and never
// exits; bad input is a ConfigError whose one-line message main.ts prints before exiting 2.
//
//   metastore [--config FILE] [etcd flags...]        -> serve with the merged Config
//   metastore --version | version                    -> version
//   metastore --help | -h | help                     -> help text generated from the key table
//   metastore snapshot restore FILE [flags...]       -> snapshot-restore (implemented elsewhere)

import { readFileSync } from 'node:fs';
import { tokenize, type ArgToken } from './config/etcd-flags.js';
import { ConfigError, helpText, loadConfig } from './config/parse-config.js';
import type { Config } from './config/schema.js';
import {
  parseBool,
  parseInitialCluster,
  parseStringList,
  parseUrl,
  ValueProblem,
  type InitialClusterMember,
  type Url,
} from './config/values.js';

export interface SnapshotRestoreCommand {
  readonly command: 'snapshot-restore';
  readonly snapshotFile: string;
  /** etcdctl's default: `${name}.etcd`. */
  readonly dataDir: string;
  /** Empty = inside dataDir. */
  readonly walDir: string;
  readonly name: string;
  readonly initialCluster: readonly InitialClusterMember[];
  readonly initialClusterToken: string;
  readonly initialAdvertisePeerUrls: readonly Url[];
  readonly skipHashCheck: boolean;
}

export type CommandLine =
  | { readonly command: 'serve'; readonly config: Config; readonly notes: readonly string[] }
  | { readonly command: 'version' }
  | { readonly command: 'help'; readonly text: string }
  | SnapshotRestoreCommand;

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
  }
  const notes: string[] = [];
  const config = loadConfig({ argv, env: io.env, readFile: io.readFile, onNote: (note) => notes.push(note) });
  return { command: 'serve', config, notes };
}

function fail(message: string): never {
  throw new ConfigError(`config error: ${message}`);
}

const RESTORE_VALUE_FLAGS = new Set(['data-dir', 'wal-dir', 'name', 'initial-cluster', 'initial-cluster-token', 'initial-advertise-peer-urls']);

function parseSnapshotCommand(argv: readonly string[]): SnapshotRestoreCommand {
  const [sub, ...rest] = argv;
  if (sub !== 'restore') fail(`unknown snapshot command ${JSON.stringify(sub ?? '')} (only "snapshot restore FILE" is supported)`);
  const tokens = tokenize(rest);
  const values = new Map<string, string>();
  const positionals: string[] = [];
  let skipHashCheck = false;
  for (let i = 0; i < tokens.length; i++) {
    const token = tokens[i];
    if (token === undefined) break;
    if (token.kind === 'positional') {
      positionals.push(token.value);
      continue;
    }
    const { name, inlineValue } = token.flag;
    if (name === 'skip-hash-check') {
      skipHashCheck = guard(`flag --${name}`, () => parseBool(inlineValue ?? 'true', true));
      continue;
    }
    if (!RESTORE_VALUE_FLAGS.has(name)) fail(`unknown flag --${name} for snapshot restore`);
    let value = inlineValue;
    if (value === undefined) {
      const next = tokens[i + 1];
      if (next === undefined) fail(`flag --${name} needs a value`);
      value = next.raw;
      i++;
    }
    values.set(name, value);
  }
  if (positionals.length !== 1) fail(`snapshot restore takes exactly one snapshot file, got ${positionals.length}`);

  // etcdctl's defaults, so its restore command lines mean the same here.
  const name = values.get('name') ?? 'default';
  const initialCluster = guard('flag --initial-cluster', () =>
    parseInitialCluster(parseStringList(values.get('initial-cluster') ?? `${name}=http://localhost:2380`)),
  );
  const initialAdvertisePeerUrls = guard('flag --initial-advertise-peer-urls', () =>
    parseStringList(values.get('initial-advertise-peer-urls') ?? 'http://localhost:2380').map(parseUrl),
  );
  if (!initialCluster.some((m) => m.name === name)) fail(`flag --name: member ${JSON.stringify(name)} is not in --initial-cluster`);
  return {
    command: 'snapshot-restore',
    snapshotFile: positionals[0] ?? '',
    dataDir: values.get('data-dir') ?? `${name}.etcd`,
    walDir: values.get('wal-dir') ?? '',
    name,
    initialCluster,
    initialClusterToken: values.get('initial-cluster-token') ?? 'etcd-cluster',
    initialAdvertisePeerUrls,
    skipHashCheck,
  };
}

function guard<T>(where: string, fn: () => T): T {
  try {
    return fn();
  } catch (error) {
    if (error instanceof ValueProblem) fail(`${where}: ${error.message}`);
    throw error;
  }
}
