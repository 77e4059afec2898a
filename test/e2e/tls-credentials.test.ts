// In-process checks of src/tls on a real grpc-js server and client: the verified client
// certificate's CN reaches the handler (peerCommonName), a revoked certificate (CRL) and a
// too-old TLS version are refused at the handshake, and client auto-TLS makes and reuses a
// self-signed certificate in the data dir; the credentials a member dials other members'
// client ports with present its certificate, verify the server, follow rotated files, and
// connect to an auto-TLS member without verifying it.

import * as grpc from '@grpc/grpc-js';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { X509Certificate } from 'node:crypto';
import tls, { type PeerCertificate } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULTS, type TlsConfig } from '../../src/config/schema.js';
import { ClientListener } from '../../src/grpc/client-listener.js';
import { memberChannelTls } from '../../src/tls/member-channel-tls.js';
import { clientPortTls, peerCommonName, peerPortTls, type ClientPortTls, type PeerCall } from '../../src/tls/tls.js';
import { makeTestPki, type CertPair, type TestPki } from './tls-certs.js';

const echo = (b: Buffer): Buffer => b;
const service: grpc.ServiceDefinition = {
  Who: {
    path: '/test.Tls/Who',
    requestStream: false,
    responseStream: false,
    requestSerialize: echo,
    requestDeserialize: echo,
    responseSerialize: echo,
    responseDeserialize: echo,
  },
};

let pki: TestPki;
let serverPair: CertPair;
let alice: CertPair;
let bob: CertPair;
let crlFile: string;
/** `openssl ca` arguments for the test CA and its database (bob revoked). */
let caArgs: string[];

beforeAll(() => {
  pki = makeTestPki();
  serverPair = pki.issue('srv', { cn: 'server' });
  alice = pki.issue('alice', { cn: 'alice' });
  bob = pki.issue('bob', { cn: 'bob' });
  // A CRL revoking bob, made with `openssl ca` and a throwaway CA database.
  const conf = path.join(pki.dir, 'ca.cnf');
  fs.writeFileSync(path.join(pki.dir, 'index.txt'), '');
  fs.writeFileSync(path.join(pki.dir, 'crlnumber'), '01\n');
  fs.writeFileSync(
    conf,
    [
      '[ca]',
      'default_ca = d',
      '[d]',
      `database = ${pki.dir}/index.txt`,
      `crlnumber = ${pki.dir}/crlnumber`,
      'default_md = sha256',
      'default_crl_days = 30',
      '',
    ].join('\n'),
  );
  caArgs = ['-config', conf, '-keyfile', pki.ca.key, '-cert', pki.ca.cert];
  execFileSync('openssl', ['ca', ...caArgs, '-revoke', bob.cert], { stdio: 'ignore' });
  crlFile = path.join(pki.dir, 'ca.crl');
  execFileSync('openssl', ['ca', ...caArgs, '-gencrl', '-out', crlFile], { stdio: 'ignore' });
});

afterAll(() => pki?.remove());

/** A gRPC server behind the member's client listener (TLS terminated there, CRL checked there). */
async function serve(config: Partial<TlsConfig>, dataDir = pki.dir): Promise<{ port: number; tls: ClientPortTls; stop(): void }> {
  const setup = clientPortTls({ ...DEFAULTS.grpc.tls, enabled: true, ...config }, { dataDir, hosts: ['127.0.0.1'] });
  if (setup === undefined) throw new Error('TLS not enabled');
  const server = new grpc.Server();
  server.addService(service, {
    Who: (call: grpc.ServerUnaryCall<Buffer, Buffer>, callback: grpc.sendUnaryData<Buffer>) => callback(null, Buffer.from(peerCommonName(call) ?? '(none)')),
  });
  const listener = await ClientListener.listen({
    addresses: [{ host: '127.0.0.1', port: 0, secure: true }],
    maxConnections: 100,
    tls: setup.tlsServer,
    refuseTls: (socket) => setup.refusalOf(socket),
  });
  const injector = server.createConnectionInjector(grpc.ServerCredentials.createInsecure());
  listener.serveGrpc((socket) => injector.injectConnection(socket));
  listener.serveHttp1((socket) => socket.destroy());
  return {
    port: listener.ports[0] ?? 0,
    tls: setup,
    stop: () => {
      void listener.close();
      server.forceShutdown();
      setup.close();
    },
  };
}

function who(port: number, pair?: CertPair): Promise<string> {
  const credentials = grpc.credentials.createSsl(
    fs.readFileSync(pki.ca.cert),
    pair ? fs.readFileSync(pair.key) : null,
    pair ? fs.readFileSync(pair.cert) : null,
  );
  const client = new grpc.Client(`127.0.0.1:${port}`, credentials);
  return new Promise((resolve, reject) => {
    client.makeUnaryRequest('/test.Tls/Who', echo, echo, Buffer.alloc(0), { deadline: Date.now() + 3000 }, (error, value) => {
      client.close();
      if (error) reject(error);
      else resolve(value!.toString());
    });
  });
}

describe('client port TLS credentials', () => {
  it('hands the verified client certificate CN to handlers and refuses a missing one', async () => {
    const s = await serve({ certFile: serverPair.cert, keyFile: serverPair.key, caFile: pki.ca.cert, clientCertAuth: true });
    try {
      expect(await who(s.port, alice)).toBe('alice');
      await expect(who(s.port)).rejects.toThrow();
    } finally {
      s.stop();
    }
  });

  it('without client-cert-auth there is no CN', async () => {
    const s = await serve({ certFile: serverPair.cert, keyFile: serverPair.key });
    try {
      expect(await who(s.port)).toBe('(none)');
    } finally {
      s.stop();
    }
  });

  it('refuses a certificate revoked by the CRL', async () => {
    const s = await serve({ certFile: serverPair.cert, keyFile: serverPair.key, caFile: pki.ca.cert, clientCertAuth: true, crlFile });
    try {
      expect(await who(s.port, alice)).toBe('alice');
      await expect(who(s.port, bob)).rejects.toThrow();
    } finally {
      s.stop();
    }
  });

  it('reads a DER-encoded CRL as etcd does (etcd accepts DER and PEM)', async () => {
    const derFile = path.join(pki.dir, 'ca.crl.der');
    execFileSync('openssl', ['crl', '-in', crlFile, '-outform', 'DER', '-out', derFile]);
    expect(fs.readFileSync(derFile).includes('-----BEGIN')).toBe(false);
    const s = await serve({ certFile: serverPair.cert, keyFile: serverPair.key, caFile: pki.ca.cert, clientCertAuth: true, crlFile: derFile });
    try {
      expect(await who(s.port, alice)).toBe('alice');
      await expect(who(s.port, bob)).rejects.toThrow();
    } finally {
      s.stop();
    }
  });

  it('a CRL past its next-update date still revokes what it lists and nothing else, as etcd', async () => {
    const staleFile = path.join(pki.dir, 'stale.crl');
    const dates = ['-crl_lastupdate', '20200101000000Z', '-crl_nextupdate', '20200102000000Z'];
    execFileSync('openssl', ['ca', ...caArgs, '-gencrl', ...dates, '-out', staleFile], { stdio: 'ignore' });
    expect(execFileSync('openssl', ['crl', '-in', staleFile, '-noout', '-nextupdate']).toString()).toContain('2020');
    const s = await serve({ certFile: serverPair.cert, keyFile: serverPair.key, caFile: pki.ca.cert, clientCertAuth: true, crlFile: staleFile });
    try {
      expect(await who(s.port, alice)).toBe('alice');
      await expect(who(s.port, bob)).rejects.toThrow();
    } finally {
      s.stop();
    }
  });

  it('a rewritten CRL takes effect for new connections without a restart', async () => {
    const rotating = path.join(pki.dir, 'rotating.crl');
    execFileSync('openssl', ['crl', '-in', crlFile, '-out', rotating]);
    const s = await serve({ certFile: serverPair.cert, keyFile: serverPair.key, caFile: pki.ca.cert, clientCertAuth: true, crlFile: rotating });
    try {
      await expect(who(s.port, bob)).rejects.toThrow();
      const emptyDb = path.join(pki.dir, 'index-empty.txt');
      fs.writeFileSync(emptyDb, '');
      const conf = fs.readFileSync(path.join(pki.dir, 'ca.cnf'), 'utf8').replace(/database = .*/, `database = ${emptyDb}`);
      fs.writeFileSync(path.join(pki.dir, 'ca-empty.cnf'), conf);
      execFileSync(
        'openssl',
        ['ca', '-config', path.join(pki.dir, 'ca-empty.cnf'), '-keyfile', pki.ca.key, '-cert', pki.ca.cert, '-gencrl', '-out', rotating],
        { stdio: 'ignore' },
      );
      s.tls.files.poll();
      expect(s.tls.files.current.revokedSerials.size).toBe(0);
      expect(await who(s.port, bob)).toBe('bob');
    } finally {
      s.stop();
    }
  });

  it('a TLS 1.3 minimum refuses TLS 1.2 clients; cipher suites restrict TLS 1.2', async () => {
    const s = await serve({ certFile: serverPair.cert, keyFile: serverPair.key, minVersion: 'TLS1.3' });
    const handshake = (port: number, options: tls.ConnectionOptions): Promise<string> =>
      new Promise((resolve, reject) => {
        const socket = tls.connect({ host: '127.0.0.1', port, ca: fs.readFileSync(pki.ca.cert), ALPNProtocols: ['h2'], ...options }, () => {
          const version = socket.getProtocol() ?? '';
          socket.destroy();
          resolve(version);
        });
        socket.once('error', reject);
      });
    try {
      expect(await handshake(s.port, {})).toBe('TLSv1.3');
      await expect(handshake(s.port, { maxVersion: 'TLSv1.2' })).rejects.toThrow();
    } finally {
      s.stop();
    }
    // The test certificates have ECDSA keys: an RSA-only suite list leaves nothing to agree on.
    const rsaOnly = await serve({ certFile: serverPair.cert, keyFile: serverPair.key, cipherSuites: ['TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256'] });
    const ecdsa = await serve({ certFile: serverPair.cert, keyFile: serverPair.key, cipherSuites: ['TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256'] });
    try {
      await expect(handshake(rsaOnly.port, { maxVersion: 'TLSv1.2' })).rejects.toThrow();
      expect(await handshake(ecdsa.port, { maxVersion: 'TLSv1.2' })).toBe('TLSv1.2');
      // TLS 1.3 is untouched by --cipher-suites, as in Go.
      expect(await handshake(rsaOnly.port, {})).toBe('TLSv1.3');
    } finally {
      rsaOnly.stop();
      ecdsa.stop();
    }
  });

  it('auto TLS creates a self-signed certificate in <data-dir>/fixtures/client and reuses it', async () => {
    const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'metastore-autotls-'));
    try {
      const first = await serve({ autoTls: true }, dataDir);
      const certFile = path.join(dataDir, 'fixtures', 'client', 'cert.pem');
      const cert = fs.readFileSync(certFile);
      expect(fs.statSync(path.join(dataDir, 'fixtures', 'client', 'key.pem')).mode & 0o777).toBe(0o600);
      const version = await new Promise<string>((resolve, reject) => {
        const socket = tls.connect({ host: '127.0.0.1', port: first.port, rejectUnauthorized: false, ALPNProtocols: ['h2'] }, () => {
          resolve(socket.getProtocol() ?? '');
          socket.destroy();
        });
        socket.once('error', reject);
      });
      expect(version).toMatch(/^TLSv1\.[23]$/);
      first.stop();
      const second = await serve({ autoTls: true }, dataDir);
      second.stop();
      expect(fs.readFileSync(certFile).equals(cert)).toBe(true);
    } finally {
      fs.rmSync(dataDir, { recursive: true, force: true });
    }
  });
});

/** Who the server says is calling, over a channel of its own with the given credentials. */
function whoOver(port: number, credentials: grpc.ChannelCredentials): Promise<string> {
  // A local subchannel pool: a new connection (and handshake) per call, not a shared one.
  const client = new grpc.Client(`127.0.0.1:${port}`, credentials, { 'grpc.use_local_subchannel_pool': 1 });
  return new Promise((resolve, reject) => {
    client.makeUnaryRequest('/test.Tls/Who', echo, echo, Buffer.alloc(0), { deadline: Date.now() + 3000 }, (error, value) => {
      client.close();
      if (error) reject(error);
      else resolve(value!.toString());
    });
  });
}

describe("member-to-member channel credentials (calls to other members' client ports)", () => {
  const memberTls = (config: Partial<TlsConfig>) => memberChannelTls({ ...DEFAULTS.grpc.tls, enabled: true, ...config }, { reloadIntervalMs: 20 });

  it('are undefined (plain text) when the client port has no TLS', () => {
    expect(memberChannelTls({ ...DEFAULTS.grpc.tls, enabled: false })).toBeUndefined();
  });

  it("present the member's certificate to a --client-cert-auth port and verify the server against the CA", async () => {
    const s = await serve({ certFile: serverPair.cert, keyFile: serverPair.key, caFile: pki.ca.cert, clientCertAuth: true });
    const member = memberTls({ certFile: alice.cert, keyFile: alice.key, caFile: pki.ca.cert })!;
    const distrusting = memberTls({ certFile: alice.cert, keyFile: alice.key, caFile: pki.otherCa.cert })!;
    try {
      expect(await whoOver(s.port, member.credentials)).toBe('alice');
      await expect(whoOver(s.port, distrusting.credentials)).rejects.toThrow();
    } finally {
      s.stop();
      member.close();
      distrusting.close();
    }
  });

  it('follow rotated certificate files: new connections present the new certificate', async () => {
    const dir = fs.mkdtempSync(path.join(pki.dir, 'rotate-'));
    const certFile = path.join(dir, 'member.pem');
    const keyFile = path.join(dir, 'member.key');
    fs.copyFileSync(alice.cert, certFile);
    fs.copyFileSync(alice.key, keyFile);
    const s = await serve({ certFile: serverPair.cert, keyFile: serverPair.key, caFile: pki.ca.cert, clientCertAuth: true });
    const member = memberTls({ certFile, keyFile, caFile: pki.ca.cert })!;
    try {
      expect(await whoOver(s.port, member.credentials)).toBe('alice');
      // Key first, then certificate: the mismatched moment in between is skipped by the reloader.
      fs.copyFileSync(bob.key, keyFile);
      fs.copyFileSync(bob.cert, certFile);
      await expect.poll(() => whoOver(s.port, member.credentials), { timeout: 5000, interval: 50 }).toBe('bob');
    } finally {
      s.stop();
      member.close();
    }
  });

  it('reach an auto-TLS member without verifying its self-signed certificate', async () => {
    const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'metastore-autotls-'));
    const s = await serve({ autoTls: true }, dataDir);
    const member = memberTls({ autoTls: true })!;
    try {
      expect(await whoOver(s.port, member.credentials)).toBe('(none)');
    } finally {
      s.stop();
      member.close();
      fs.rmSync(dataDir, { recursive: true, force: true });
    }
  });
});

describe('peer port CRL', () => {
  const callWith = (pair: CertPair): PeerCall => {
    const certificate = new X509Certificate(fs.readFileSync(pair.cert));
    const peerCertificate = { serialNumber: certificate.serialNumber, subject: { CN: certificate.subject.replace(/^CN=/, '') } } as unknown as PeerCertificate;
    return { getPeer: () => '127.0.0.1:1', getAuthContext: () => ({ sslPeerCertificate: peerCertificate }) };
  };

  it('refuses a peer whose certificate serial the CRL lists, with etcd-like wording', () => {
    const peer = peerPortTls(
      { ...DEFAULTS.raft.tls, enabled: true, certFile: serverPair.cert, keyFile: serverPair.key, caFile: pki.ca.cert, clientCertAuth: true, crlFile },
      { dataDir: pki.dir, hosts: ['127.0.0.1'] },
    );
    if (peer === undefined) throw new Error('TLS not enabled');
    try {
      expect(peer.authorizePeer(callWith(alice))).toBeUndefined();
      expect(peer.authorizePeer(callWith(bob))).toMatch(/^certificate serial [0-9a-f]+ revoked$/);
    } finally {
      peer.close();
    }
  });
});
