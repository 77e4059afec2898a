// --auto-tls / --peer-auto-tls: a self-signed certificate generated at start-up into the data
// dir, as etcd does (<data-dir>/fixtures/client or fixtures/peer, cert.pem and key.pem, valid
// one year, IP or DNS SANs from the listen hosts, server and client auth usages, an ECDSA key).
//
// Node's crypto can make keys but not X.509 certificates, so the `openssl` command makes them.
// Invariants:
// - Existing cert.pem and key.pem are reused unchanged (a restart keeps its certificate).
// - The key file is written 0600 and never logged.
// - A missing openssl command is a TlsSetupError that says what to install.

import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { TlsSetupError } from './tls-files.js';

export interface SelfSignedFiles {
  readonly certFile: string;
  readonly keyFile: string;
  /** False when an earlier start's files were reused. */
  readonly created: boolean;
}

export function ensureSelfSignedCertificate(dir: string, hosts: readonly string[]): SelfSignedFiles {
  const certFile = path.join(dir, 'cert.pem');
  const keyFile = path.join(dir, 'key.pem');
  if (fs.existsSync(certFile) && fs.existsSync(keyFile)) return { certFile, keyFile, created: false };
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  const names = [...new Set(hosts.length > 0 ? hosts : ['127.0.0.1'])].map((h) => (net.isIP(h) !== 0 ? `IP:${h}` : `DNS:${h}`));
  const args = [
    'req',
    '-x509',
    '-nodes',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:prime256v1',
    '-keyout',
    keyFile,
    '-out',
    certFile,
    '-days',
    '365',
    '-subj',
    '/O=metastore',
    '-addext',
    `subjectAltName=${names.join(',')}`,
    '-addext',
    'keyUsage=critical,digitalSignature,keyEncipherment',
    '-addext',
    'extendedKeyUsage=serverAuth,clientAuth',
  ];
  try {
    execFileSync('openssl', args, { stdio: ['ignore', 'ignore', 'pipe'] });
  } catch (error) {
    fs.rmSync(certFile, { force: true });
    fs.rmSync(keyFile, { force: true });
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') {
      throw new TlsSetupError(
        'auto TLS needs the openssl command to create a self-signed certificate; install it (e.g. apt-get install openssl) or give certificate files',
      );
    }
    const stderr = (error as { stderr?: Buffer }).stderr?.toString().trim();
    throw new TlsSetupError(`openssl could not create a self-signed certificate in ${dir}: ${stderr || (error as Error).message}`);
  }
  fs.chmodSync(keyFile, 0o600);
  return { certFile, keyFile, created: true };
}
