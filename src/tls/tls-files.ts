// TLS material read from files (certificate chain, private key, trusted CA bundle, CRL) and
// kept current while the server runs, so certificates can be rotated without a restart.
//
// The files are polled (stat every `intervalMs`, read only when a signature changed): rotation
// tools write files in place or rename new ones over the old, and polling sees both, where
// fs.watch loses track of a renamed-over file.
//
// Invariants:
// - `current` is always a usable set: the first load throws TlsSetupError if the files are
//   missing or do not form a working TLS context; a later change that does not (a key written
//   before its certificate, a half-written file) is logged and ignored, and the previous set
//   stays in force until the files agree again (the next change is checked anew).
// - Listeners are called after `current` changed, never from inside onChange() itself.
// - close() stops the timer; the timer never keeps the process alive.

import fs from 'node:fs';
import tls from 'node:tls';
import { CrlParseError, revokedSerials } from './crl.js';

export class TlsSetupError extends Error {
  override name = 'TlsSetupError';
}

export interface TlsFilePaths {
  readonly certFile: string;
  readonly keyFile: string;
  /** Empty or absent = no CA bundle (peers and clients are not verified against one). */
  readonly caFile?: string;
  readonly crlFile?: string;
}

export interface TlsPem {
  readonly cert: Buffer;
  readonly key: Buffer;
  readonly ca: Buffer | undefined;
  /** The CRL file as read (DER or PEM), to notice a rotation. */
  readonly crl: Buffer | undefined;
  /** The serials the CRL lists (crl.ts); empty without a CRL. Never given to OpenSSL. */
  readonly revokedSerials: ReadonlySet<string>;
}

export interface TlsFilesLogger {
  info(fields: object, message: string): void;
  warn(fields: object, message: string): void;
}

export interface TlsFilesOptions {
  /** What the files are for, in log lines ("client", "peer"). */
  readonly label: string;
  readonly intervalMs?: number;
  readonly logger?: TlsFilesLogger;
}

/** How often the files are checked; etcd re-reads them on every handshake. */
export const DEFAULT_RELOAD_INTERVAL_MS = 1000;

type Listener = (pem: TlsPem) => void;

function paths(files: TlsFilePaths): string[] {
  return [files.certFile, files.keyFile, files.caFile ?? '', files.crlFile ?? ''].filter((p) => p !== '');
}

/** Size, mtime and inode of every file: a rotation changes at least one of them. */
function signature(files: TlsFilePaths): string {
  return paths(files)
    .map((p) => {
      try {
        const stat = fs.statSync(p);
        return `${p}:${stat.ino}:${stat.size}:${stat.mtimeMs}`;
      } catch {
        return `${p}:missing`;
      }
    })
    .join('|');
}

function parseCrl(file: Buffer, path: string): ReadonlySet<string> {
  try {
    return revokedSerials(file);
  } catch (error) {
    if (!(error instanceof CrlParseError)) throw error;
    throw new TlsSetupError(`CRL file ${path} is not a DER or PEM certificate revocation list: ${error.message}`);
  }
}

function readPem(files: TlsFilePaths): TlsPem {
  const read = (path: string, what: string): Buffer => {
    try {
      return fs.readFileSync(path);
    } catch (error) {
      throw new TlsSetupError(`cannot read ${what} ${path}: ${(error as Error).message}`);
    }
  };
  const crl = files.crlFile ? read(files.crlFile, 'CRL file') : undefined;
  const pem: TlsPem = {
    cert: read(files.certFile, 'certificate file'),
    key: read(files.keyFile, 'key file'),
    ca: files.caFile ? read(files.caFile, 'trusted CA file') : undefined,
    crl,
    revokedSerials: crl !== undefined && files.crlFile ? parseCrl(crl, files.crlFile) : new Set(),
  };
  try {
    // Throws for a key that does not match its certificate, bad PEM or a bad CA.
    tls.createSecureContext({ cert: pem.cert, key: pem.key, ca: pem.ca });
  } catch (error) {
    throw new TlsSetupError(`TLS files ${paths(files).join(', ')} are not usable: ${(error as Error).message}`);
  }
  return pem;
}

export class TlsFiles {
  private pem: TlsPem;
  private seen: string;
  private readonly listeners = new Set<Listener>();
  private readonly timer: NodeJS.Timeout;

  private constructor(
    readonly files: TlsFilePaths,
    private readonly options: TlsFilesOptions,
  ) {
    this.seen = signature(files);
    this.pem = readPem(files);
    this.timer = setInterval(() => this.poll(), options.intervalMs ?? DEFAULT_RELOAD_INTERVAL_MS);
    this.timer.unref();
  }

  /** Loads the files now (throws TlsSetupError) and watches them from then on. */
  static load(files: TlsFilePaths, options: TlsFilesOptions): TlsFiles {
    return new TlsFiles(files, options);
  }

  get current(): TlsPem {
    return this.pem;
  }

  /** Calls `listener` with every later usable set; returns the unsubscribe function. */
  onChange(listener: Listener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  close(): void {
    clearInterval(this.timer);
    this.listeners.clear();
  }

  /** Checks the files now (the timer does this every interval). */
  poll(): void {
    const now = signature(this.files);
    if (now === this.seen) return;
    this.seen = now;
    let pem: TlsPem;
    try {
      pem = readPem(this.files);
    } catch (error) {
      this.options.logger?.warn(
        { tls: this.options.label, error: (error as Error).message },
        'TLS files changed but are not usable (yet); keeping the previous certificate',
      );
      return;
    }
    if (pem.cert.equals(this.pem.cert) && pem.key.equals(this.pem.key) && sameBuffer(pem.ca, this.pem.ca) && sameBuffer(pem.crl, this.pem.crl)) return;
    this.pem = pem;
    this.options.logger?.info({ tls: this.options.label, certFile: this.files.certFile }, 'reloaded TLS certificate files');
    for (const listener of this.listeners) listener(pem);
  }
}

function sameBuffer(a: Buffer | undefined, b: Buffer | undefined): boolean {
  return a === undefined || b === undefined ? a === b : a.equals(b);
}
