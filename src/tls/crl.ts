// The revoked serial numbers of a certificate revocation list, read the way etcd uses a CRL
// (--client-crl-file, --peer-crl-file): etcd's listener compares each certificate the peer
// presents with the serials the CRL lists, and nothing else. The CRL's dates and signature play
// no part, so a CRL past its next-update date still revokes exactly what it lists; OpenSSL's own
// CRL check (Node's `crl` option) would instead refuse every certificate once it is stale.
//
// Input is DER or PEM ("-----BEGIN X509 CRL-----" blocks; several blocks are read together).
// Serials are kept as upper-case hex without leading zeros, the form of Node's
// PeerCertificate.serialNumber after revokedSerialOf() normalizes it.
//
// The DER reader walks only what it needs: CertificateList -> tbsCertList ->
// revokedCertificates -> each entry's userCertificate INTEGER (RFC 5280 section 5.1).

import type { DetailedPeerCertificate, PeerCertificate } from 'node:tls';

export class CrlParseError extends Error {
  override name = 'CrlParseError';
}

const TAG_INTEGER = 0x02;
const TAG_SEQUENCE = 0x30;
const TAG_UTC_TIME = 0x17;
const TAG_GENERALIZED_TIME = 0x18;

interface Element {
  readonly tag: number;
  /** The contents (without tag and length). */
  readonly body: Buffer;
}

/** The DER elements that follow each other in `data`, in order. */
function elements(data: Buffer): Element[] {
  const found: Element[] = [];
  let at = 0;
  while (at < data.length) {
    if (at + 2 > data.length) throw new CrlParseError('truncated DER element');
    const tag = data[at] as number;
    let length = data[at + 1] as number;
    at += 2;
    if (length & 0x80) {
      const octets = length & 0x7f;
      if (octets === 0 || octets > 4 || at + octets > data.length) throw new CrlParseError('unsupported DER length');
      length = 0;
      for (let i = 0; i < octets; i++) length = length * 256 + (data[at + i] as number);
      at += octets;
    }
    if (at + length > data.length) throw new CrlParseError('DER element runs past its container');
    found.push({ tag, body: data.subarray(at, at + length) });
    at += length;
  }
  return found;
}

function only(data: Buffer, tag: number, what: string): Buffer {
  const [first] = elements(data);
  if (first === undefined || first.tag !== tag) throw new CrlParseError(`expected ${what}`);
  return first.body;
}

/** Hex of an INTEGER's magnitude, upper case, no leading zeros ("0" for zero). */
function serialHex(bytes: Buffer): string {
  return normalizeSerial(bytes.toString('hex'));
}

export function normalizeSerial(hex: string): string {
  return hex.toUpperCase().replace(/^0+/, '') || '0';
}

function isTime(element: Element | undefined): boolean {
  return element?.tag === TAG_UTC_TIME || element?.tag === TAG_GENERALIZED_TIME;
}

/** The revoked serials of one DER CertificateList. */
function revokedInDer(der: Buffer): string[] {
  const certificateList = only(der, TAG_SEQUENCE, 'a CertificateList SEQUENCE');
  const tbs = only(certificateList, TAG_SEQUENCE, 'a tbsCertList SEQUENCE');
  const fields = elements(tbs);
  let i = fields[0]?.tag === TAG_INTEGER ? 1 : 0; // optional version
  // signature AlgorithmIdentifier, issuer Name, thisUpdate
  if (fields[i]?.tag !== TAG_SEQUENCE || fields[i + 1]?.tag !== TAG_SEQUENCE || !isTime(fields[i + 2]))
    throw new CrlParseError('tbsCertList lacks signature, issuer or thisUpdate');
  i += 3;
  if (isTime(fields[i])) i++; // optional nextUpdate
  const revoked = fields[i];
  if (revoked?.tag !== TAG_SEQUENCE) return []; // no revokedCertificates (maybe extensions)
  return elements(revoked.body).map((entry) => {
    if (entry.tag !== TAG_SEQUENCE) throw new CrlParseError('revoked certificate entry is not a SEQUENCE');
    return serialHex(only(entry.body, TAG_INTEGER, 'a userCertificate INTEGER'));
  });
}

const PEM_BLOCK = /-----BEGIN X509 CRL-----([\s\S]*?)-----END X509 CRL-----/g;

/** Revoked serials of a CRL file (DER, or PEM with one or more CRL blocks). Throws CrlParseError. */
export function revokedSerials(file: Buffer): ReadonlySet<string> {
  const text = file.toString('latin1');
  const ders = text.includes('-----BEGIN') ? [...text.matchAll(PEM_BLOCK)].map((m) => Buffer.from(m[1] ?? '', 'base64')) : [file];
  if (ders.length === 0) throw new CrlParseError('no "X509 CRL" PEM block');
  return new Set(ders.flatMap(revokedInDer));
}

/**
 * The first certificate of `certificate`'s chain (leaf, then issuers as far as Node reports
 * them) whose serial `revoked` lists, or undefined. etcd checks every certificate the peer
 * presented in the same way.
 */
export function revokedSerialOf(certificate: PeerCertificate, revoked: ReadonlySet<string>): string | undefined {
  const seen = new Set<PeerCertificate>();
  let current: PeerCertificate | undefined = certificate;
  while (current !== undefined && !seen.has(current) && current.serialNumber !== undefined) {
    seen.add(current);
    const serial = normalizeSerial(current.serialNumber);
    if (revoked.has(serial)) return serial;
    current = (current as Partial<DetailedPeerCertificate>).issuerCertificate;
  }
  return undefined;
}
