// TLS for the calls a member makes to another member's client port (forwarding to the leader,
// lease relays, member operations, the corruption checks' HashKV), from the member's own client
// TLS settings, as etcd dials client ports with its client TLS info (TLSInfo.ClientConfig):
//
// - Certificate files given: the member's certificate and key are its client identity (so a
//   member passes --client-cert-auth on its peers' client ports), the trusted CA verifies the
//   other member's certificate and its host name (system roots without a CA file, as Go does).
//   The files are followed as they change (rotation without restart), like the peer port's.
// - Auto TLS (a self-signed certificate, no CA): the other member cannot be verified and is
//   not (etcd sets InsecureSkipVerify for self-signed certificates); no client certificate is
//   sent, since an auto-TLS client port asks for none.
// - Plain-text client port: no credentials (undefined): channels are plain text too.

import * as grpc from '@grpc/grpc-js';
import tls from 'node:tls';
import type { TlsConfig } from '../config/schema.js';
import { reloadingChannelCredentials } from './credentials.js';
import { TlsFiles, type TlsFilesLogger } from './tls-files.js';

export interface MemberChannelTls {
  readonly credentials: grpc.ChannelCredentials;
  /** Stops following the certificate files. */
  close(): void;
}

export interface MemberChannelTlsOptions {
  readonly logger?: TlsFilesLogger;
  readonly reloadIntervalMs?: number;
}

/** Undefined when the client port is plain text. Throws TlsSetupError for unusable files. */
export function memberChannelTls(config: TlsConfig, options: MemberChannelTlsOptions = {}): MemberChannelTls | undefined {
  if (!config.enabled) return undefined;
  const auto = config.autoTls && (config.certFile === '' || config.keyFile === '');
  if (auto) return { credentials: grpc.credentials.createSsl(null, null, null, { rejectUnauthorized: false }), close: () => {} };
  const files = TlsFiles.load(
    // A CRL lists client certificates this member refuses; it says nothing about servers.
    { certFile: config.certFile, keyFile: config.keyFile, caFile: config.caFile },
    { label: 'client (outbound to members)', intervalMs: options.reloadIntervalMs, logger: options.logger },
  );
  const credentials = reloadingChannelCredentials(
    files,
    { verifyServer: true, checkServer: (host, certificate) => tls.checkServerIdentity(host, certificate) },
    Buffer.from(tls.rootCertificates.join('\n')),
  );
  return { credentials, close: () => files.close() };
}
