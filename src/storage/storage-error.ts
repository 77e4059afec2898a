// What the storage layer says when the disk, not MetaStore, is the problem. A failed LevelDB
// write (disk full, I/O error) leaves the database's log file in a state no later write may
// follow, and a failed read means a damaged file: either way the member cannot go on in a
// known state. Both reach the caller's failure sink (the fail-stop path) and are thrown as a
// typed error; neither is ever answered as a per-request error while the member keeps going.

/** `write`: a write or fsync failed (ENOSPC, EIO); `damaged`: a file is damaged or unreadable. */
export type StorageFailureKind = 'write' | 'damaged';

export class StorageError extends Error {
  override name = 'StorageError';

  constructor(
    readonly kind: StorageFailureKind,
    /** The LevelDB directory (data dir's db, or the wal dir). */
    readonly dir: string,
    /** What LevelDB (or our own check) said, usually naming the file. */
    readonly detail: string,
  ) {
    super(storageFailureMessage(kind, dir, detail));
  }
}

/** Told of every storage failure before it is thrown; the member's fail-stop in production. */
export type StorageFailureSink = (error: StorageError) => void;

function storageFailureMessage(kind: StorageFailureKind, dir: string, detail: string): string {
  if (kind === 'write') {
    return (
      `storage write failed in ${dir}: ${detail}; stopping the member (nothing that failed to write was acknowledged). ` +
      'Free disk space or fix the device, then restart the member: it serves again with its data'
    );
  }
  return (
    `storage in ${dir} is damaged: ${detail}; refusing to serve a state that may be wrong. ` +
    'Recover by restoring a snapshot into a new data dir (`metastore snapshot restore`), ' +
    'or remove this member (`etcdctl member remove`) and add it back with an empty data dir'
  );
}

/** The text of whatever LevelDB threw (its Error, or the cause of classic-level's wrapper). */
export function levelErrorDetail(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  const cause = (error as { cause?: unknown }).cause;
  if (cause instanceof Error && cause.message !== '') return cause.message;
  return error.message;
}

/** Whether `error` came from LevelDB (classic-level's codes, on the error or its cause). */
export function isLevelError(error: unknown): boolean {
  const code = (error as { code?: unknown } | undefined)?.code;
  const causeCode = (error as { cause?: { code?: unknown } } | undefined)?.cause?.code;
  return [code, causeCode].some((c) => typeof c === 'string' && c.startsWith('LEVEL_'));
}
