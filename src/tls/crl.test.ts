// The CRL reader against CRLs made by `openssl ca -gencrl` (PEM and DER, stale and current,
// with and without revoked entries) and against malformed input.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { PeerCertificate } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CrlParseError, revokedSerialOf, revokedSerials } from './crl.js';

let dir: string;

beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'metastore-crl-'));
  execFileSync(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:prime256v1',
      '-nodes',
      '-keyout',
      'ca.key',
      '-out',
      'ca.pem',
      '-days',
      '2',
      '-subj',
      '/CN=crl-ca',
    ],
    { cwd: dir, stdio: 'ignore' },
  );
});

afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

/** A CRL listing `serials` (hex), made by `openssl ca` from a hand-written CA database. */
function makeCrl(name: string, serials: string[], dates: string[] = []): Buffer {
  const index = serials.map((s) => `R\t300101000000Z\t240101000000Z\t${s}\tunknown\t/CN=leaf-${s}\n`).join('');
  fs.writeFileSync(path.join(dir, `${name}.index`), index);
  fs.writeFileSync(path.join(dir, `${name}.crlnumber`), '01\n');
  const conf = [
    '[ca]',
    'default_ca = d',
    '[d]',
    `database = ${name}.index`,
    `crlnumber = ${name}.crlnumber`,
    'default_md = sha256',
    'default_crl_days = 1',
    '',
  ];
  fs.writeFileSync(path.join(dir, `${name}.cnf`), conf.join('\n'));
  const out = `${name}.crl`;
  execFileSync('openssl', ['ca', '-config', `${name}.cnf`, '-keyfile', 'ca.key', '-cert', 'ca.pem', '-gencrl', ...dates, '-out', out], {
    cwd: dir,
    stdio: 'ignore',
  });
  return fs.readFileSync(path.join(dir, out));
}

function toDer(pem: Buffer): Buffer {
  return execFileSync('openssl', ['crl', '-outform', 'DER'], { input: pem });
}

describe('revokedSerials', () => {
  it('reads every listed serial from PEM and DER, normalized to upper-case hex without leading zeros', () => {
    // 80 needs a leading zero byte in DER; 0a01 starts with a zero nibble.
    const pem = makeCrl('many', ['01', '80', '0A01', '1234567890ABCDEF1234']);
    const expected = new Set(['1', '80', 'A01', '1234567890ABCDEF1234']);
    expect(revokedSerials(pem)).toEqual(expected);
    expect(revokedSerials(toDer(pem))).toEqual(expected);
  });

  it('a CRL past its next-update date still lists its serials (etcd ignores the dates)', () => {
    const pem = makeCrl('stale', ['02'], ['-crl_lastupdate', '20200101000000Z', '-crl_nextupdate', '20200102000000Z']);
    const nextUpdate = execFileSync('openssl', ['crl', '-noout', '-nextupdate'], { input: pem }).toString();
    expect(nextUpdate).toContain('2020');
    expect(revokedSerials(pem)).toEqual(new Set(['2']));
  });

  it('a CRL without revoked certificates lists nothing', () => {
    const pem = makeCrl('empty', []);
    expect(revokedSerials(pem).size).toBe(0);
    expect(revokedSerials(toDer(pem)).size).toBe(0);
  });

  it('refuses what is not a CRL', () => {
    expect(() => revokedSerials(Buffer.from('not a crl at all'))).toThrow(CrlParseError);
    expect(() => revokedSerials(fs.readFileSync(path.join(dir, 'ca.pem')))).toThrow(CrlParseError);
    const der = toDer(makeCrl('cut', ['05']));
    expect(() => revokedSerials(der.subarray(0, der.length - 10))).toThrow(CrlParseError);
  });
});

describe('revokedSerialOf', () => {
  const certificate = (serialNumber: string, issuer?: PeerCertificate): PeerCertificate =>
    ({ serialNumber, ...(issuer !== undefined && { issuerCertificate: issuer }) }) as unknown as PeerCertificate;

  it('matches the leaf or an issuer by serial, whatever the hex case and leading zeros', () => {
    const revoked = new Set(['A01', '7']);
    expect(revokedSerialOf(certificate('0a01'), revoked)).toBe('A01');
    expect(revokedSerialOf(certificate('05', certificate('07')), revoked)).toBe('7');
    expect(revokedSerialOf(certificate('05', certificate('06')), revoked)).toBeUndefined();
  });

  it('stops at a self-issued root', () => {
    const root = certificate('09') as PeerCertificate & { issuerCertificate?: PeerCertificate };
    root.issuerCertificate = root;
    expect(revokedSerialOf(certificate('05', root), new Set(['1']))).toBeUndefined();
  });
});
