// The root logger: pino writing JSON (or a human-readable console line) to stdout, stderr or a
// file, with the file reopened on demand (SIGHUP, for logrotate's postrotate) and optionally
// rotated by size with lumberjack's knobs (max_size, max_backups, max_age).
//
// Invariants / choices:
// - Writes are asynchronous (a SonicBoom made by pino.destination, which flushes
//   synchronously at process exit); flushSync() is for fatal paths that exit right after.
// - reopen() opens the configured path again: after logrotate renamed the file, lines logged
//   after the reopen land in a new file at the original path; lines still buffered at that
//   moment may land in the renamed one (the old descriptor), never lost.
// - Size rotation is decided before a line is written: when the file would grow past
//   maxSizeBytes it is renamed to `<base>-<UTC timestamp><ext>` next to it and reopened. The
//   size is counted in UTF-16 units of the lines written (equal to bytes for ASCII, an
//   undercount otherwise), plus the file's size when opened. Backups beyond maxBackups
//   (newest kept; 0 keeps all) and older than maxAgeDays (0 keeps all) are removed right
//   after a rotation, so pruning costs nothing between rotations.
// - The console format parses each JSON line pino produced; it is meant for people at a
//   terminal, not for throughput.

import { readdirSync, renameSync, statSync, unlinkSync } from 'node:fs';
import { basename, dirname, extname, join } from 'node:path';
import { pino, type Logger } from 'pino';
import { assert } from '../util/assert.js';

export type LogLevelName = 'debug' | 'info' | 'warn' | 'error' | 'panic' | 'fatal';

export interface LoggingOptions {
  level: LogLevelName;
  format: 'json' | 'console';
  /** "stdout", "stderr" or a file path. */
  output: string;
  /** Rotate a file output once it would grow past this many bytes; 0 = never. */
  maxSizeBytes: number;
  /** Rotated files kept (newest first); 0 = keep all. */
  maxBackups: number;
  /** Rotated files older than this many days are removed; 0 = keep regardless of age. */
  maxAgeDays: number;
  /** Fields on every line (e.g. the member name). */
  base?: Record<string, unknown>;
  /** Clock for backup names and ages (tests). */
  now?: () => Date;
}

export interface Logging {
  readonly logger: Logger;
  /** Reopens a file output at its configured path (no-op for stdout/stderr). */
  reopen(): void;
  /** Writes out everything buffered before returning (for exit paths that cannot wait). */
  flushSync(): void;
  /** Writes out everything, in the order logged, once the write in flight has landed (at most
   * `maxWaitMs` of waiting): for the graceful shutdown's exit. */
  flushInOrder(maxWaitMs: number): Promise<void>;
  /** Number of size rotations done so far. */
  readonly rotations: number;
}

type Destination = ReturnType<typeof pino.destination>;

/** The object pino writes its lines to: a file or fd, with size rotation and reformatting. */
class LogSink {
  private bytes = 0;
  rotations = 0;

  constructor(
    private readonly boom: Destination,
    private readonly file: string | undefined,
    private readonly options: LoggingOptions,
    private readonly format: ((line: string) => string) | undefined,
  ) {
    if (file !== undefined) this.bytes = sizeOf(file);
  }

  write(line: string): boolean {
    const out = this.format ? this.format(line) : line;
    if (this.file !== undefined && this.options.maxSizeBytes > 0) {
      if (this.bytes > 0 && this.bytes + out.length > this.options.maxSizeBytes) this.rotate();
      this.bytes += out.length;
    }
    return this.boom.write(out);
  }

  flush(callback?: (error?: Error) => void): void {
    this.boom.flush(callback);
  }

  flushSync(): void {
    try {
      this.boom.flushSync();
    } catch {
      // Not open yet (nothing written) or already closed: nothing to flush.
    }
  }

  /**
   * Waits for the write in flight, then writes the rest synchronously. flushSync alone writes
   * the buffered lines at once, ahead of an asynchronous write still running in the thread
   * pool: at exit, lines came out of order (a CI run saw "stopped" before the shutdown's first
   * line). SonicBoom has no public "in flight" flag: its `_writing` field is checked to be a
   * boolean (sonic-boom is pinned by package-lock), and a wait is cut short at `maxWaitMs`.
   */
  async flushInOrder(maxWaitMs: number): Promise<void> {
    const writing = (this.boom as unknown as { _writing?: unknown })._writing;
    assert(typeof writing === 'boolean', 'sonic-boom has no boolean _writing: the log cannot be flushed in order');
    if (writing) {
      let timer: NodeJS.Timeout | undefined;
      await new Promise<void>((resolve) => {
        timer = setTimeout(resolve, maxWaitMs);
        this.boom.once('drain', resolve);
        this.boom.once('error', resolve);
      });
      clearTimeout(timer);
    }
    this.flushSync();
  }

  reopen(): void {
    if (this.file === undefined) return;
    this.boom.reopen();
    this.bytes = sizeOf(this.file);
  }

  private rotate(): void {
    const file = this.file!;
    const now = (this.options.now ?? (() => new Date()))();
    try {
      renameSync(file, backupName(file, now));
    } catch {
      // Someone else (logrotate) moved it already; reopening creates it again either way.
    }
    this.boom.reopen();
    this.bytes = 0;
    this.rotations++;
    pruneBackups(file, this.options, now);
  }
}

function sizeOf(file: string): number {
  try {
    return statSync(file).size;
  } catch {
    return 0;
  }
}

/** `/var/log/m.log` at 2024-05-01T10:20:30.400Z -> `/var/log/m-2024-05-01T10-20-30.400.log`. */
export function backupName(file: string, at: Date): string {
  const ext = extname(file);
  const base = basename(file, ext);
  const stamp = at.toISOString().replace(/:/g, '-').replace(/Z$/, '');
  return join(dirname(file), `${base}-${stamp}${ext}`);
}

const STAMP = /^\d{4}-\d{2}-\d{2}T\d{2}-\d{2}-\d{2}\.\d{3}$/;

/** Rotated files of `file`, oldest first (their names sort by time). */
export function listBackups(file: string): string[] {
  const ext = extname(file);
  const prefix = `${basename(file, ext)}-`;
  let names: string[];
  try {
    names = readdirSync(dirname(file));
  } catch {
    return [];
  }
  return names
    .filter((name) => name.startsWith(prefix) && name.endsWith(ext) && STAMP.test(name.slice(prefix.length, name.length - ext.length)))
    .sort()
    .map((name) => join(dirname(file), name));
}

function pruneBackups(file: string, options: LoggingOptions, now: Date): void {
  const backups = listBackups(file);
  const doomed = new Set<string>();
  if (options.maxBackups > 0) for (const old of backups.slice(0, Math.max(0, backups.length - options.maxBackups))) doomed.add(old);
  if (options.maxAgeDays > 0) {
    const oldestKept = now.getTime() - options.maxAgeDays * 86_400_000;
    for (const backup of backups) {
      try {
        if (statSync(backup).mtimeMs < oldestKept) doomed.add(backup);
      } catch {
        // Gone already.
      }
    }
  }
  for (const backup of doomed) {
    try {
      unlinkSync(backup);
    } catch {
      // Gone already.
    }
  }
}

// ---------------------------------------------------------------- console format

const LEVEL_NAMES: Record<number, string> = { 10: 'TRACE', 20: 'DEBUG', 30: 'INFO', 40: 'WARN', 50: 'ERROR', 60: 'FATAL' };
const HIDDEN = new Set(['level', 'time', 'msg', 'pid', 'hostname', 'name', 'component', 'err']);

function fieldValue(value: unknown): string {
  if (typeof value === 'string') return /[\s"=]/.test(value) || value === '' ? JSON.stringify(value) : value;
  return JSON.stringify(value) ?? String(value);
}

/**
 * One pino JSON line as `<ISO time> <LEVEL> [component] message key=value ...`, with an error's
 * stack on the following lines. A line that is not JSON passes through unchanged.
 */
export function formatConsoleLine(line: string): string {
  let entry: Record<string, unknown>;
  try {
    entry = JSON.parse(line) as Record<string, unknown>;
  } catch {
    return line;
  }
  const time = typeof entry.time === 'number' ? new Date(entry.time).toISOString() : String(entry.time ?? '');
  const level = LEVEL_NAMES[entry.level as number] ?? String(entry.level);
  let out = `${time} ${level.padEnd(5)}`;
  if (entry.component !== undefined) out += ` [${String(entry.component)}]`;
  if (entry.msg !== undefined) out += ` ${String(entry.msg)}`;
  for (const [key, value] of Object.entries(entry)) {
    if (!HIDDEN.has(key)) out += ` ${key}=${fieldValue(value)}`;
  }
  const err = entry.err as { message?: unknown; stack?: unknown } | undefined;
  if (err !== undefined) {
    out += ` err=${fieldValue(err.message ?? err)}`;
    if (typeof err.stack === 'string') out += `\n    ${err.stack.split('\n').join('\n    ')}`;
  }
  return `${out}\n`;
}

// ---------------------------------------------------------------- root logger

export function createLogging(options: LoggingOptions): Logging {
  const level = options.level === 'panic' ? 'fatal' : options.level;
  const file = options.output === 'stdout' || options.output === 'stderr' ? undefined : options.output;
  const dest = options.output === 'stdout' ? 1 : options.output === 'stderr' ? 2 : options.output;
  const boom = pino.destination({ dest, sync: false, mkdir: file !== undefined, append: true });
  const sink = new LogSink(boom, file, options, options.format === 'console' ? formatConsoleLine : undefined);
  const logger = pino({ level, base: options.base ?? {} }, sink);
  return {
    logger,
    reopen: () => sink.reopen(),
    flushSync: () => sink.flushSync(),
    flushInOrder: (maxWaitMs) => sink.flushInOrder(maxWaitMs),
    get rotations() {
      return sink.rotations;
    },
  };
}

// ---------------------------------------------------------------- slow requests

const MAX_KEY_CHARS = 256;

function printableKey(key: unknown): string | undefined {
  if (!Buffer.isBuffer(key) && !(key instanceof Uint8Array)) return undefined;
  const text = Buffer.from(key.buffer, key.byteOffset, Math.min(key.byteLength, MAX_KEY_CHARS)).toString('utf8');
  return key.byteLength > MAX_KEY_CHARS ? `${text}...` : text;
}

/**
 * The key range a request touches, for the slow-request log line: `key` and `rangeEnd` of
 * Range, Put, DeleteRange (and a Txn's first compare or operation), plus a Txn's op count.
 */
export function slowRequestFields(request: unknown): { key?: string; rangeEnd?: string; ops?: number } {
  if (typeof request !== 'object' || request === null) return {};
  let target = request as Record<string, unknown>;
  const fields: { key?: string; rangeEnd?: string; ops?: number } = {};
  const compare = target.compare;
  const success = target.success;
  const failure = target.failure;
  if (Array.isArray(compare) || Array.isArray(success)) {
    const ops = [...(Array.isArray(success) ? success : []), ...(Array.isArray(failure) ? failure : [])] as Array<Record<string, unknown>>;
    fields.ops = ops.length;
    const first =
      (Array.isArray(compare) ? (compare[0] as Record<string, unknown> | undefined) : undefined) ??
      (ops[0] ? ((ops[0].requestRange ?? ops[0].requestPut ?? ops[0].requestDeleteRange) as Record<string, unknown> | undefined) : undefined);
    if (first === undefined) return fields;
    target = first;
  }
  const key = printableKey(target.key);
  if (key !== undefined) fields.key = key;
  const rangeEnd = printableKey(target.rangeEnd);
  if (rangeEnd !== undefined && rangeEnd !== '') fields.rangeEnd = rangeEnd;
  return fields;
}
