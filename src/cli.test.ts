// Tests for parseCommandLine: which command an argv means, that the environment and the
// config file come only through the injected io, and snapshot restore's etcdctl-compatible
// parsing. Errors are ConfigErrors for main.ts to print on one line.

import { describe, expect, it } from 'vitest';
import { parseCommandLine, type CliIo } from './cli.js';
import { ConfigError } from './config/parse-config.js';
import { DEFAULTS } from './config/schema.js';

function io(env: Record<string, string> = {}, files: Record<string, string> = {}): CliIo {
  return {
    env,
    readFile: (path) => {
      const text = files[path];
      if (text === undefined) throw new Error(`ENOENT: ${path}`);
      return text;
    },
  };
}

describe('parseCommandLine', () => {
  it('serves with the defaults when given nothing', () => {
    expect(parseCommandLine([], io())).toEqual({ command: 'serve', config: DEFAULTS });
  });

  it('serves with file, env and flags through the injected io', () => {
    const result = parseCommandLine(
      ['--config', 'c.yaml', '--max-txn-ops', '256'],
      io({ METASTORE_SERVER_NAME: 'env-name' }, { 'c.yaml': 'server:\n  data_dir: /srv/ms\n' }),
    );
    expect(result.command).toBe('serve');
    if (result.command !== 'serve') return;
    expect(result.config.dataDir).toBe('/srv/ms');
    expect(result.config.name).toBe('env-name');
    expect(result.config.limits.maxTxnOps).toBe(256);
  });

  it('refuses --enable-pprof with one line; accepts --enable-pprof=false', () => {
    expect(() => parseCommandLine(['--enable-pprof'], io())).toThrow(
      /^config error: flag --enable-pprof: MetaStore has no Go profiler \(pprof\); profile the process with node --cpu-prof or node --inspect instead$/,
    );
    expect(parseCommandLine(['--enable-pprof=false'], io())).toEqual({ command: 'serve', config: DEFAULTS });
  });

  it('--help lists the snapshot restore flags, each of which snapshot restore accepts', () => {
    const help = parseCommandLine(['--help'], io());
    const text = help.command === 'help' ? help.text : '';
    const section = text.slice(text.indexOf('snapshot restore FILE flags'), text.indexOf('Config keys'));
    const listed = [...section.matchAll(/^ {2}--([a-z-]+)/gm)].map((m) => m[1]);
    expect(listed).toEqual(['data-dir', 'wal-dir', 'name', 'initial-cluster', 'initial-cluster-token', 'initial-advertise-peer-urls', 'skip-hash-check']);
    const restore = parseCommandLine(
      [
        'snapshot',
        'restore',
        's.db',
        '--data-dir',
        'd',
        '--wal-dir',
        'w',
        '--name',
        'm1',
        '--initial-cluster',
        'm1=http://127.0.0.1:2380',
        '--initial-cluster-token',
        't',
        '--initial-advertise-peer-urls',
        'http://127.0.0.1:2380',
        '--skip-hash-check',
      ],
      io(),
    );
    expect(restore).toMatchObject({ command: 'snapshot-restore', dataDir: 'd', walDir: 'w', name: 'm1', initialClusterToken: 't', skipHashCheck: true });
  });

  it('answers --help and --version before reading any config', () => {
    const broken = io({ METASTORE_SERVER_NOPE: '1' });
    for (const argv of [['--help'], ['-h'], ['help'], ['--config', 'missing.yaml', '--help']]) {
      const result = parseCommandLine(argv, broken);
      expect(result.command).toBe('help');
      expect(result.command === 'help' && result.text).toContain('METASTORE_SERVER_GRPC_PORT');
    }
    for (const argv of [['--version'], ['-version'], ['version']]) expect(parseCommandLine(argv, broken)).toEqual({ command: 'version' });
  });

  it('throws ConfigError with one line for bad input', () => {
    expect(() => parseCommandLine(['--bogus'], io())).toThrow(new ConfigError('config error: unknown flag --bogus (see --help)'));
    expect(() => parseCommandLine([], io({ METASTORE_SERVER_NOPE: '1' }))).toThrow(ConfigError);
  });
});

describe('snapshot restore', () => {
  it('parses an etcdctl restore command line', () => {
    const argv = [
      'snapshot',
      'restore',
      'snap.db',
      '--data-dir',
      '/var/lib/m1',
      '--name',
      'm1',
      '--initial-cluster',
      'm1=http://10.0.1.10:2380,m2=http://10.0.1.11:2380',
      '--initial-cluster-token',
      'tkn',
      '--initial-advertise-peer-urls',
      'http://10.0.1.10:2380',
    ];
    expect(parseCommandLine(argv, io())).toEqual({
      command: 'snapshot-restore',
      snapshotFile: 'snap.db',
      dataDir: '/var/lib/m1',
      walDir: '',
      name: 'm1',
      initialCluster: [
        { name: 'm1', peerUrls: [{ scheme: 'http', host: '10.0.1.10', port: 2380 }] },
        { name: 'm2', peerUrls: [{ scheme: 'http', host: '10.0.1.11', port: 2380 }] },
      ],
      initialClusterToken: 'tkn',
      initialAdvertisePeerUrls: [{ scheme: 'http', host: '10.0.1.10', port: 2380 }],
      skipHashCheck: false,
    });
  });

  it("uses etcdctl's defaults", () => {
    expect(parseCommandLine(['snapshot', 'restore', 's.db', '--name=infra1', '--skip-hash-check'], io())).toMatchObject({
      dataDir: 'infra1.etcd',
      initialCluster: [{ name: 'infra1', peerUrls: [{ scheme: 'http', host: 'localhost', port: 2380 }] }],
      initialClusterToken: 'etcd-cluster',
      initialAdvertisePeerUrls: [{ scheme: 'http', host: 'localhost', port: 2380 }],
      skipHashCheck: true,
    });
  });

  it('rejects bad restore command lines', () => {
    const error = (argv: string[]) => () => parseCommandLine(argv, io());
    expect(error(['snapshot', 'save', 'x'])).toThrow(
      'config error: unknown snapshot command "save" (only "snapshot restore FILE" and "snapshot status FILE" are supported)',
    );
    expect(error(['snapshot', 'restore'])).toThrow('config error: snapshot restore takes exactly one snapshot file, got 0');
    expect(error(['snapshot', 'restore', 's.db', '--endpoints', 'x'])).toThrow('config error: unknown flag --endpoints for snapshot restore');
    expect(error(['snapshot', 'restore', 's.db', '--name', 'a', '--initial-cluster', 'b=http://h:2380'])).toThrow(
      'config error: flag --name: member "a" is not in --initial-cluster',
    );
    expect(error(['snapshot', 'restore', 's.db', '--initial-cluster', 'default=h:2380'])).toThrow(/^config error: flag --initial-cluster: expected a URL/);
    expect(error(['snapshot', 'restore', 's.db', '--data-dir'])).toThrow('config error: flag --data-dir needs a value');
  });
});

describe('snapshot status and migrate', () => {
  it("parses etcdctl's status command line, simple by default", () => {
    expect(parseCommandLine(['snapshot', 'status', 's.db'], io())).toEqual({ command: 'snapshot-status', snapshotFile: 's.db', format: 'simple' });
    expect(parseCommandLine(['snapshot', 'status', 's.db', '-w', 'json'], io())).toMatchObject({ format: 'json' });
    expect(parseCommandLine(['snapshot', 'status', '--write-out=table', 's.db'], io())).toMatchObject({ format: 'table' });
    expect(() => parseCommandLine(['snapshot', 'status', 's.db', '-w', 'yaml'], io())).toThrow(
      'config error: flag --write-out: "yaml" is not one of simple, table, json',
    );
  });

  it('parses migrate with the member flags, and needs both directories', () => {
    const argv = [
      'migrate',
      '--from-etcd-data-dir',
      '/var/lib/etcd',
      '--data-dir',
      '/var/lib/ms',
      '--name',
      'm1',
      '--initial-cluster',
      'm1=http://10.0.1.10:2380',
      '--initial-advertise-peer-urls',
      'http://10.0.1.10:2380',
    ];
    expect(parseCommandLine(argv, io())).toMatchObject({
      command: 'migrate',
      etcdDataDir: '/var/lib/etcd',
      dataDir: '/var/lib/ms',
      name: 'm1',
      initialCluster: [{ name: 'm1', peerUrls: [{ scheme: 'http', host: '10.0.1.10', port: 2380 }] }],
      initialClusterToken: 'etcd-cluster',
    });
    expect(() => parseCommandLine(['migrate', '--data-dir', 'x'], io())).toThrow(/migrate needs --from-etcd-data-dir/);
    expect(() => parseCommandLine(['migrate', '--from-etcd-data-dir', 'x'], io())).toThrow(/migrate needs --data-dir/);
    expect(() => parseCommandLine(['migrate', '--from-etcd-data-dir', 'x', '--data-dir', 'y', '--skip-hash-check'], io())).toThrow(
      'config error: unknown flag --skip-hash-check for migrate',
    );
  });
});
