// TLS for MetaStore's two ports, from the config's TLS sections: which files, auto-TLS,
// what is verified, and what is refused. src/node calls clientPortTls() and peerPortTls(); the
// gRPC server and the peer transport only ever see credentials and a verification hook.
//
// Client port (etcd --cert-file, --key-file, --trusted-ca-file, --client-cert-auth,
// --client-crl-file, --auto-tls, --cipher-suites, --tls-min-version): with client-cert-auth a
// client without a certificate signed by the trusted CA fails the TLS handshake, as with etcd;
// one whose certificate the CRL lists is closed right after it (refusalOf), as etcd's listener
// does. The CRL is compared by serial only (crl.ts): a stale CRL still revokes what it lists.
// peerCommonName(call) gives the verified certificate's CN to handlers (etcd's user name when
// auth is on).
//
// Peer port (the --peer-* flags and --peer-cert-allowed-cn): peers are asked for a certificate
// but the handshake does not reject it; every peer call is checked by authorizePeer() before a
// byte of it is used, and a refusal is logged by the transport naming the remote address and
// the certificate's CN (a refusal in the handshake could not name the call it refused). Outgoing connections verify the peer's server certificate against the peer
// CA (and the allowed CN, as etcd does for both directions).
//
// Auto-TLS (etcd semantics): used only when no certificate files are given; the member then
// presents a self-signed certificate, and peers do not verify each other (there is no CA).

import type * as grpc from '@grpc/grpc-js';
import path from 'node:path';
import tls, { type PeerCertificate } from 'node:tls';
import { CIPHER_SUITES } from '../config/cipher-suites.js';
import type { PeerTlsConfig, TlsConfig } from '../config/schema.js';
import { ensureSelfSignedCertificate } from './auto-tls.js';
import { revokedSerialOf } from './crl.js';
import {
  peerClientTls,
  reloadingChannelCredentials,
  reloadingTlsServer,
  type ChannelTlsPolicy,
  type PeerClientTls,
  type ServerTlsPolicy,
} from './credentials.js';
import { TlsFiles, type TlsFilesLogger } from './tls-files.js';

export { TlsSetupError } from './tls-files.js';

/** Node's default TLS 1.3 suites; Go never lets --cipher-suites touch TLS 1.3, nor do we. */
const TLS13_SUITES = 'TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256:TLS_AES_128_GCM_SHA256';

export interface TlsSetupOptions {
  readonly dataDir: string;
  /** Listen hosts, for the SANs of an auto-TLS certificate. */
  readonly hosts: readonly string[];
  readonly logger?: TlsFilesLogger;
  readonly reloadIntervalMs?: number;
}

function cipherString(names: readonly string[]): string | undefined {
  if (names.length === 0) return undefined;
  // The config loader already refused unknown names.
  return [...names.map((n) => CIPHER_SUITES.get(n) ?? n), ...TLS13_SUITES.split(':')].join(':');
}

function minVersion(config: TlsConfig): 'TLSv1.2' | 'TLSv1.3' {
  return config.minVersion === 'TLS1.3' ? 'TLSv1.3' : 'TLSv1.2';
}

interface Loaded {
  files: TlsFiles;
  auto: boolean;
}

function loadFiles(config: TlsConfig, label: 'client' | 'peer', options: TlsSetupOptions): Loaded {
  const auto = config.autoTls && (config.certFile === '' || config.keyFile === '');
  if (config.autoTls && !auto) options.logger?.warn({ tls: label }, `ignoring ${label} auto TLS since certificate files are given`);
  const paths = auto
    ? ensureSelfSignedCertificate(path.join(options.dataDir, 'fixtures', label), options.hosts)
    : { certFile: config.certFile, keyFile: config.keyFile, created: false };
  if (auto) options.logger?.info({ tls: label, certFile: paths.certFile, created: paths.created }, 'using a self-signed certificate (auto TLS)');
  const files = TlsFiles.load(
    {
      certFile: paths.certFile,
      keyFile: paths.keyFile,
      // Auto TLS replaces the whole TLS setup, as etcd's SelfCert does: no CA, no CRL.
      caFile: auto ? '' : config.caFile,
      crlFile: auto ? '' : config.crlFile,
    },
    { label, intervalMs: options.reloadIntervalMs, logger: options.logger },
  );
  return { files, auto };
}

export interface ClientPortTls {
  /**
   * The TLS server the client listener terminates TLS with (ALPN h2 for gRPC, http/1.1 for the
   * HTTP endpoints beside it); it follows certificate rotation.
   */
  readonly tlsServer: tls.Server;
  /** Undefined to accept a connection the TLS server verified, or why it is refused (CRL). */
  refusalOf(socket: tls.TLSSocket): string | undefined;
  readonly files: TlsFiles;
  close(): void;
}

function revocationOf(certificate: PeerCertificate | undefined, files: TlsFiles): string | undefined {
  const revoked = files.current.revokedSerials;
  if (certificate === undefined || revoked.size === 0) return undefined;
  const serial = revokedSerialOf(certificate, revoked);
  return serial === undefined ? undefined : `certificate serial ${serial.toLowerCase()} revoked`;
}

/**
 * Undefined when the client port is plain text. Throws TlsSetupError for unusable files.
 * `alpn`: the protocols offered (the HTTP API port offers http/1.1 only: it serves no gRPC).
 */
export function clientPortTls(config: TlsConfig, options: TlsSetupOptions, alpn: readonly string[] = ['h2', 'http/1.1']): ClientPortTls | undefined {
  // As in etcd, the URL scheme (or tls.enabled) switches TLS on; auto_tls only supplies the certificate.
  if (!config.enabled) return undefined;
  const { files, auto } = loadFiles(config, 'client', options);
  const verify = config.clientCertAuth && !auto;
  const policy: ServerTlsPolicy = {
    requestCert: verify,
    rejectUnauthorized: verify,
    ciphers: cipherString(config.cipherSuites),
    minVersion: minVersion(config),
  };
  const terminator = reloadingTlsServer(files, policy, [...alpn]);
  return {
    tlsServer: terminator.server,
    refusalOf: (socket) => (verify ? revocationOf(socket.getPeerCertificate(true), files) : undefined),
    files,
    close: () => {
      terminator.detach();
      files.close();
    },
  };
}

/** grpc-js's view of a call's TLS peer (its AuthContext, which the package does not export). */
export interface AuthContextLike {
  readonly sslPeerCertificate?: PeerCertificate;
}

/** A peer call as the transport sees it. */
export interface PeerCall {
  getPeer(): string;
  getAuthContext(): AuthContextLike;
}

export interface PeerPortTls {
  /**
   * server: the peer port's TLS terminator (ALPN h2; the transport hands it accepted sockets);
   * channel: grpc-js's (Snapshot and Members calls); client: the Stream's own HTTP/2 client.
   */
  readonly credentials: { server: tls.Server; channel: grpc.ChannelCredentials; client: PeerClientTls };
  /** Undefined to accept the call, or the reason it is refused. */
  authorizePeer(call: PeerCall): string | undefined;
  readonly files: TlsFiles;
  close(): void;
}

export function peerPortTls(config: PeerTlsConfig, options: TlsSetupOptions): PeerPortTls | undefined {
  // As in etcd, the URL scheme (or tls.enabled) switches TLS on; auto_tls only supplies the certificate.
  if (!config.enabled) return undefined;
  const { files, auto } = loadFiles(config, 'peer', options);
  const verifyClients = !auto && (config.clientCertAuth || config.allowedCn !== '');
  const allowedCn = auto ? '' : config.allowedCn;
  const terminator = reloadingTlsServer(
    files,
    { requestCert: verifyClients, rejectUnauthorized: false, ciphers: cipherString(config.cipherSuites), minVersion: minVersion(config) },
    ['h2'],
  );
  const channelPolicy: ChannelTlsPolicy = {
    verifyServer: !auto,
    checkServer: (host, certificate) => {
      const hostError = tls.checkServerIdentity(host, certificate);
      if (hostError !== undefined) return hostError;
      const cn = commonNameOf(certificate);
      if (allowedCn !== '' && cn !== allowedCn)
        return new Error(`peer certificate CN ${JSON.stringify(cn ?? '')} is not the allowed CN ${JSON.stringify(allowedCn)}`);
      return undefined;
    },
  };
  // Without a peer CA file, servers are verified against the system roots (Go does the same).
  const systemRoots = Buffer.from(tls.rootCertificates.join('\n'));
  const channel = reloadingChannelCredentials(files, channelPolicy, systemRoots);
  const client = peerClientTls(files, channelPolicy, systemRoots);
  return {
    credentials: { server: terminator.server, channel, client },
    authorizePeer: (call) => {
      if (!verifyClients) return undefined;
      const certificate = call.getAuthContext().sslPeerCertificate;
      // The call layer reports a certificate only when the handshake verified it against the CA
      // bundle (as grpc-js did).
      if (certificate === undefined) return 'no peer certificate, or one not signed by the trusted peer CA';
      const revoked = revocationOf(certificate, files);
      if (revoked !== undefined) return revoked;
      const cn = commonNameOf(certificate);
      if (allowedCn !== '' && cn !== allowedCn) return `peer certificate CN ${JSON.stringify(cn ?? '')} is not the allowed CN ${JSON.stringify(allowedCn)}`;
      return undefined;
    },
    files,
    close: () => {
      terminator.detach();
      files.close();
    },
  };
}

export function commonNameOf(certificate: PeerCertificate): string | undefined {
  const cn: unknown = certificate.subject?.CN;
  if (typeof cn === 'string') return cn;
  // A subject with several CNs arrives as an array. Go's x509 parser overwrites CommonName with
  // each one, so etcd sees the last; so do we.
  if (Array.isArray(cn) && typeof cn[cn.length - 1] === 'string') return cn[cn.length - 1] as string;
  return undefined;
}

/**
 * The CN of the client certificate verified on this call's connection (client port with
 * --client-cert-auth), or undefined (plain text, no certificate, or not verified). etcd uses it
 * as the user name when auth is enabled and the request carries no token.
 */
export function peerCommonName(call: { getAuthContext(): AuthContextLike }): string | undefined {
  const certificate = call.getAuthContext().sslPeerCertificate;
  return certificate === undefined ? undefined : commonNameOf(certificate);
}
