// etcd's own YAML configuration file (`etcd --config-file FILE`), read as etcd 3.4 reads it:
// top-level keys named like the server flags (`data-dir`, `listen-client-urls: "http://..."`,
// `initial-cluster`), and the TLS settings of each port under `client-transport-security` and
// `peer-transport-security`. Each key becomes the flag of the same name, so an etcd config file
// means exactly what the same etcd command line means.

import { parseDocument } from 'yaml';

/** One setting of the file, as the flag it stands for. */
export interface EtcdFileSetting {
  /** The key as written in the file (`client-transport-security.cert-file`). */
  readonly key: string;
  /** The etcd flag it sets (`cert-file`). */
  readonly flag: string;
  readonly value: string;
}

/** What etcd's securityConfig holds, per port: key in the file -> flag name without prefix. */
const SECURITY_KEYS = ['cert-file', 'key-file', 'client-cert-auth', 'trusted-ca-file', 'auto-tls'];
const SECURITY_SECTIONS: ReadonlyMap<string, string> = new Map([
  ['client-transport-security', ''],
  ['peer-transport-security', 'peer-'],
]);

export class EtcdConfigFileError extends Error {
  override name = 'EtcdConfigFileError';
}

/**
 * A value that asks for nothing beyond etcd's defaults (`enable-v2: false`, `discovery: ''`,
 * `proxy: off` in etcd's sample file): such a key of an etcd feature MetaStore lacks is harmless.
 */
export function asksNothing(value: unknown): boolean {
  return value === null || value === '' || value === false || value === 0 || value === 0n || value === 'off' || (Array.isArray(value) && value.length === 0);
}

function flagValue(key: string, value: unknown): string {
  if (Array.isArray(value)) return value.map((item) => String(item)).join(',');
  if (typeof value === 'string' || typeof value === 'number' || typeof value === 'bigint' || typeof value === 'boolean') return String(value);
  throw new EtcdConfigFileError(`${key}: expected a string, number, boolean or list, got ${JSON.stringify(value)}`);
}

/**
 * The settings of an etcd config file, in file order. `isFlag` says which flag names MetaStore
 * understands; a key it does not understand is refused unless it asks for nothing.
 */
export function readEtcdConfigFile(text: string, isFlag: (name: string) => boolean): EtcdFileSetting[] {
  const doc = parseDocument(text, { intAsBigInt: true, uniqueKeys: true });
  const firstError = doc.errors[0];
  if (firstError) throw new EtcdConfigFileError(`cannot parse: ${firstError.message.split('\n')[0]}`);
  const root: unknown = doc.toJS();
  if (root === null || root === undefined) return [];
  if (typeof root !== 'object' || Array.isArray(root)) throw new EtcdConfigFileError('expected a mapping of etcd options');
  const settings: EtcdFileSetting[] = [];
  for (const [key, value] of Object.entries(root as Record<string, unknown>)) {
    const prefix = SECURITY_SECTIONS.get(key);
    if (prefix !== undefined) {
      settings.push(...securitySettings(key, prefix, value));
      continue;
    }
    if (isFlag(key)) {
      if (value !== null) settings.push({ key, flag: key, value: flagValue(key, value) });
    } else if (!asksNothing(value)) {
      throw new EtcdConfigFileError(`${key}: an etcd option MetaStore does not support (see metastore --help for the etcd flags it does)`);
    }
  }
  return settings;
}

function securitySettings(section: string, prefix: string, value: unknown): EtcdFileSetting[] {
  if (value === null) return [];
  if (typeof value !== 'object' || Array.isArray(value)) throw new EtcdConfigFileError(`${section}: expected a mapping of TLS settings`);
  const settings: EtcdFileSetting[] = [];
  for (const [name, setting] of Object.entries(value as Record<string, unknown>)) {
    const key = `${section}.${name}`;
    if (!SECURITY_KEYS.includes(name)) throw new EtcdConfigFileError(`${key}: not one of etcd's ${SECURITY_KEYS.join(', ')}`);
    if (setting === null || setting === '') continue;
    settings.push({ key, flag: `${prefix}${name}`, value: flagValue(key, setting) });
  }
  return settings;
}
