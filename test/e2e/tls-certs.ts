// Test PKI for the TLS end-to-end tests, made with the openssl command in a temp dir: two
// independent CAs, and leaf certificates (ECDSA P-256) signed by either, with a chosen CN and
// IP SAN 127.0.0.1 (plus DNS localhost), usable as server and as client certificates.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export interface CertPair {
  readonly cert: string;
  readonly key: string;
}

export interface TestPki {
  readonly dir: string;
  readonly ca: CertPair;
  readonly otherCa: CertPair;
  /** A leaf certificate signed by `ca` (default) or `otherCa`; `file` names its files. */
  issue(file: string, options: { cn: string; by?: 'ca' | 'otherCa' }): CertPair;
  /**
   * A PEM CRL of `ca` listing `revoked`, written to `file`; `stale` makes its nextUpdate lie in
   * the past (2020), which etcd ignores.
   */
  crl(file: string, revoked: readonly CertPair[], options?: { stale?: boolean }): string;
  remove(): void;
}

function openssl(args: string[], cwd: string): void {
  execFileSync('openssl', args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
}

const EC_KEY = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];

export function makeTestPki(): TestPki {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'metastore-pki-'));
  const makeCa = (name: string): CertPair => {
    const pair = { cert: path.join(dir, `${name}.pem`), key: path.join(dir, `${name}.key`) };
    openssl(
      [
        'req',
        '-x509',
        ...EC_KEY,
        '-keyout',
        pair.key,
        '-out',
        pair.cert,
        '-days',
        '30',
        '-subj',
        `/CN=${name}`,
        '-addext',
        'basicConstraints=critical,CA:TRUE',
        '-addext',
        'keyUsage=critical,keyCertSign,cRLSign,digitalSignature',
      ],
      dir,
    );
    return pair;
  };
  const ca = makeCa('test-ca');
  const otherCa = makeCa('other-ca');
  const extFile = path.join(dir, 'leaf.ext');
  fs.writeFileSync(
    extFile,
    [
      'subjectAltName=IP:127.0.0.1,DNS:localhost',
      'keyUsage=critical,digitalSignature,keyEncipherment',
      'extendedKeyUsage=serverAuth,clientAuth',
      'basicConstraints=CA:FALSE',
      '',
    ].join('\n'),
  );
  let serial = 1;
  return {
    dir,
    ca,
    otherCa,
    issue: (file, options) => {
      const signer = options.by === 'otherCa' ? otherCa : ca;
      const pair = { cert: path.join(dir, `${file}.pem`), key: path.join(dir, `${file}.key`) };
      const csr = path.join(dir, `${file}.csr`);
      openssl(['req', '-new', ...EC_KEY, '-keyout', pair.key, '-out', csr, '-subj', `/CN=${options.cn}`], dir);
      openssl(
        [
          'x509',
          '-req',
          '-in',
          csr,
          '-CA',
          signer.cert,
          '-CAkey',
          signer.key,
          '-set_serial',
          String(serial++),
          '-out',
          pair.cert,
          '-days',
          '30',
          '-extfile',
          extFile,
        ],
        dir,
      );
      return pair;
    },
    crl: (file, revoked, options = {}) => {
      // `openssl ca` needs a CA database: a fresh one per CRL, with the revoked entries.
      const index = path.join(dir, `${file}.index`);
      fs.writeFileSync(index, '');
      fs.writeFileSync(path.join(dir, `${file}.crlnumber`), '01\n');
      const conf = path.join(dir, `${file}.cnf`);
      const lines = [
        '[ca]',
        'default_ca = d',
        '[d]',
        `database = ${index}`,
        `crlnumber = ${dir}/${file}.crlnumber`,
        'default_md = sha256',
        'default_crl_days = 30',
        '',
      ];
      fs.writeFileSync(conf, lines.join('\n'));
      const caArgs = ['ca', '-config', conf, '-keyfile', ca.key, '-cert', ca.cert];
      for (const pair of revoked) openssl([...caArgs, '-revoke', pair.cert], dir);
      const out = path.join(dir, file);
      const dates = options.stale ? ['-crl_lastupdate', '20200101000000Z', '-crl_nextupdate', '20200102000000Z'] : [];
      openssl([...caArgs, '-gencrl', ...dates, '-out', out], dir);
      return out;
    },
    remove: () => fs.rmSync(dir, { recursive: true, force: true }),
  };
}
