// Keeps the key table and the defaults object in step: every field of DEFAULTS has exactly one
// key (or is a declared derived field), every key's type matches its field's runtime type, and
// each default written as YAML text parses back to the typed default.

import { describe, expect, it } from 'vitest';
import { loadConfig, parseKeyValue } from './parse-config.js';
import {
  clientAdvertiseUrls,
  clientListenUrls,
  CONFIG_KEYS,
  DEFAULTS,
  DERIVED_FIELDS,
  envVarName,
  getField,
  KEYS_BY_ENV,
  KEYS_BY_PATH,
  peerAdvertiseUrls,
} from './schema.js';

/** Leaf field paths of a config object; arrays are leaves (lists are one key). */
function leaves(node: unknown, prefix = ''): string[] {
  if (node === null || typeof node !== 'object' || Array.isArray(node)) return [prefix];
  return Object.entries(node).flatMap(([k, v]) => leaves(v, prefix === '' ? k : `${prefix}.${k}`));
}

describe('key table', () => {
  it('covers every field of DEFAULTS exactly once', () => {
    const fromKeys = CONFIG_KEYS.map((k) => k.field.join('.'));
    expect(new Set(fromKeys).size).toBe(fromKeys.length);
    expect([...fromKeys, ...DERIVED_FIELDS].sort()).toEqual(leaves(DEFAULTS).sort());
  });

  it('has unique paths and environment variable names', () => {
    expect(KEYS_BY_PATH.size).toBe(CONFIG_KEYS.length);
    expect(KEYS_BY_ENV.size).toBe(CONFIG_KEYS.length);
  });

  it('derives environment variable names from paths', () => {
    expect(envVarName('server.grpc.rate_limit_qps')).toBe('METASTORE_SERVER_GRPC_RATE_LIMIT_QPS');
    expect(KEYS_BY_PATH.get('server.grpc.tls.cert_file')?.env).toBe('METASTORE_SERVER_GRPC_TLS_CERT_FILE');
    for (const key of CONFIG_KEYS) expect(key.env).toBe(envVarName(key.path));
  });

  it('derives camelCase fields, with Ms on durations', () => {
    expect(KEYS_BY_PATH.get('server.grpc.max_recv_msg_size')?.field).toEqual(['grpc', 'maxRecvMsgSize']);
    expect(KEYS_BY_PATH.get('server.limits.request_timeout')?.field).toEqual(['limits', 'requestTimeoutMs']);
    expect(KEYS_BY_PATH.get('server.raft.election_timeout_ms')?.field).toEqual(['raft', 'electionTimeoutMs']);
    expect(KEYS_BY_PATH.get('server.member_id')?.field).toEqual(['memberId']);
  });

  it('writes each default so that it parses back to the typed default', () => {
    for (const key of CONFIG_KEYS) {
      expect(parseKeyValue(key, key.default, false), key.path).toEqual(getField(DEFAULTS, key.field));
    }
  });

  it('gives every field the runtime type of its key', () => {
    const expected = {
      int: 'number',
      uint: 'number',
      size: 'number',
      duration: 'number',
      bool: 'boolean',
      string: 'string',
      enum: 'string',
      'bigint-id': 'bigint',
    } as const;
    for (const key of CONFIG_KEYS) {
      const value = getField(DEFAULTS, key.field);
      if (key.type === 'string-list') expect(Array.isArray(value), key.path).toBe(true);
      else expect(typeof value, key.path).toBe(expected[key.type]);
      expect(key.description.length, key.path).toBeGreaterThan(0);
    }
  });

  it('freezes the defaults deeply', () => {
    expect(Object.isFrozen(DEFAULTS)).toBe(true);
    expect(Object.isFrozen(DEFAULTS.grpc.tls)).toBe(true);
    expect(Object.isFrozen(DEFAULTS.raft.peers)).toBe(true);
    expect(Object.isFrozen(CONFIG_KEYS)).toBe(true);
  });
});

describe('URL helpers', () => {
  it('fall back from etcd URL lists to advertise_address and address:port', () => {
    expect(clientListenUrls(DEFAULTS)).toEqual([{ scheme: 'http', host: '127.0.0.1', port: 2379 }]);
    expect(clientAdvertiseUrls(DEFAULTS)).toEqual([{ scheme: 'http', host: '127.0.0.1', port: 2379 }]);
    const config = loadConfig({ argv: [], env: { METASTORE_SERVER_RAFT_ADVERTISE_ADDRESS: '[fd00::1]:12379' } });
    expect(peerAdvertiseUrls(config)).toEqual([{ scheme: 'http', host: 'fd00::1', port: 12_379 }]);
    const etcd = loadConfig({ argv: ['--advertise-client-urls', 'http://10.0.0.1:2379,http://10.0.0.2:2379'], env: {} });
    expect(clientAdvertiseUrls(etcd)).toHaveLength(2);
  });
});
