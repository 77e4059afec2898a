// gRPC credentials built on TlsFiles, so that every new connection uses the newest certificate
// files (rotation without restart), on both ends:
//
// - Server side (client port and peer port): reloadingTlsServer, a Node TLS server that never
//   listens (accepted sockets are handed to it) and whose secure context is replaced with
//   setSecureContext() when the files change, for the handshakes from then on; open
//   connections keep the certificate they were made with.
// - Channel side (peer dialing): grpc-js's createCertificateProviderChannelCredentials with
//   providers fed by the same TlsFiles; it builds a secure context per connection attempt
//   from the latest update. The peer link's own HTTP/2 client (src/transport) takes plain
//   Node TLS options instead (peerClientTls): the same CA, identity and checks, a secure
//   context per connection attempt from the files as they are then.
//
// What the server side sets: the Node TLS server options requestCert, rejectUnauthorized,
// ciphers (TLS 1.2 list plus TLS 1.3 suites) and minVersion; the CRL is checked by us after the
// handshake (crl.ts). The peer port asks for a certificate without rejecting in the handshake
// and verifies in each call, so a refusal can be logged naming the call (see tls.ts).

import * as grpc from '@grpc/grpc-js';
import tls, { type SecureContextOptions } from 'node:tls';
import type { TlsFiles, TlsPem } from './tls-files.js';

type CertificateProvider = grpc.experimental.CertificateProvider;
type CaListener = grpc.experimental.CaCertificateUpdateListener;
type IdentityListener = grpc.experimental.IdentityCertificateUpdateListener;

export interface ServerTlsPolicy {
  /** Ask the client for a certificate. */
  readonly requestCert: boolean;
  /** Fail the handshake when the certificate is missing or not verified by the CA bundle. */
  readonly rejectUnauthorized: boolean;
  /** OpenSSL cipher string; undefined = Node's defaults. */
  readonly ciphers: string | undefined;
  readonly minVersion: 'TLSv1.2' | 'TLSv1.3';
}

function contextOptions(pem: TlsPem, policy: ServerTlsPolicy): SecureContextOptions {
  return {
    cert: pem.cert,
    key: pem.key,
    ...(pem.ca !== undefined && { ca: pem.ca }),
    ...(policy.ciphers !== undefined && { ciphers: policy.ciphers }),
    minVersion: policy.minVersion,
  };
}

/**
 * A Node TLS server (never listening: sockets are handed to it) with the newest certificate
 * files: a change replaces the secure context for the handshakes from then on, as grpc-js does
 * for its own servers. The client port terminates TLS with it, offering `alpn`.
 */
export function reloadingTlsServer(files: TlsFiles, policy: ServerTlsPolicy, alpn: readonly string[]): { server: tls.Server; detach(): void } {
  const server = tls.createServer({
    ...contextOptions(files.current, policy),
    requestCert: policy.requestCert,
    rejectUnauthorized: policy.rejectUnauthorized,
    ALPNProtocols: [...alpn],
  });
  const unsubscribe = files.onChange((pem) => server.setSecureContext(contextOptions(pem, policy)));
  return { server, detach: unsubscribe };
}

/** A grpc-js certificate provider answering from TlsFiles: identity = cert+key, CA = bundle. */
class FilesCertificateProvider implements CertificateProvider {
  private readonly caListeners = new Set<CaListener>();
  private readonly identityListeners = new Set<IdentityListener>();
  private readonly unsubscribe: () => void;

  constructor(
    private readonly files: TlsFiles,
    /** Used when the files hold no CA bundle (system roots, or anything for auto-TLS). */
    private readonly fallbackCa: Buffer,
  ) {
    this.unsubscribe = files.onChange((pem) => {
      for (const listener of this.caListeners) listener(this.caUpdate(pem));
      for (const listener of this.identityListeners) listener(this.identityUpdate(pem));
    });
  }

  private caUpdate(pem: TlsPem): grpc.experimental.CaCertificateUpdate {
    return { caCertificate: pem.ca ?? this.fallbackCa };
  }

  private identityUpdate(pem: TlsPem): grpc.experimental.IdentityCertificateUpdate {
    return { certificate: pem.cert, privateKey: pem.key };
  }

  // grpc-js waits for a first update after adding a listener, so it gets the current one at once.
  addCaCertificateListener(listener: CaListener): void {
    this.caListeners.add(listener);
    listener(this.caUpdate(this.files.current));
  }

  removeCaCertificateListener(listener: CaListener): void {
    this.caListeners.delete(listener);
  }

  addIdentityCertificateListener(listener: IdentityListener): void {
    this.identityListeners.add(listener);
    listener(this.identityUpdate(this.files.current));
  }

  removeIdentityCertificateListener(listener: IdentityListener): void {
    this.identityListeners.delete(listener);
  }

  close(): void {
    this.unsubscribe();
  }
}

export interface ChannelTlsPolicy {
  /** False for auto-TLS peers: self-signed certificates cannot be verified (etcd skips it too). */
  readonly verifyServer: boolean;
  /** Extra check after the usual chain and host name checks; returns an Error to refuse. */
  readonly checkServer?: (host: string, certificate: import('node:tls').PeerCertificate) => Error | undefined;
}

export function reloadingChannelCredentials(files: TlsFiles, policy: ChannelTlsPolicy, fallbackCa: Buffer): grpc.ChannelCredentials {
  const provider = new FilesCertificateProvider(files, fallbackCa);
  return grpc.experimental.createCertificateProviderChannelCredentials(provider, provider, {
    rejectUnauthorized: policy.verifyServer,
    ...(policy.checkServer !== undefined && { checkServerIdentity: policy.checkServer }),
  });
}

/** TLS options for one outgoing peer connection, built when it is attempted (src/transport). */
export type PeerClientTls = () => tls.ConnectionOptions;

/**
 * The same verification as reloadingChannelCredentials, as Node TLS options: the newest
 * certificate files for every connection attempt (one secure context per file version).
 */
export function peerClientTls(files: TlsFiles, policy: ChannelTlsPolicy, fallbackCa: Buffer): PeerClientTls {
  let built: { pem: TlsPem; context: tls.SecureContext } | undefined;
  return () => {
    const pem = files.current;
    if (built?.pem !== pem) built = { pem, context: tls.createSecureContext({ ca: pem.ca ?? fallbackCa, cert: pem.cert, key: pem.key }) };
    return {
      secureContext: built.context,
      rejectUnauthorized: policy.verifyServer,
      ...(policy.checkServer !== undefined && { checkServerIdentity: policy.checkServer }),
    };
  };
}
