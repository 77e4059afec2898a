// Key-range arithmetic for permissions, with etcd's conventions:
// - a permission or request with an empty range_end covers the single key;
// - range_end "\0" means "every key from `key` on" (no upper bound);
// - otherwise the half-open range [key, range_end).
// A request is permitted when the union of the granted ranges covers all of it (etcd merges
// a user's permissions into one interval set per direction, read and write).

export interface KeyInterval {
  readonly begin: Buffer;
  /** Exclusive end; null = no upper bound. */
  readonly end: Buffer | null;
}

const ZERO = Buffer.from([0]);

function isFromKey(rangeEnd: Uint8Array): boolean {
  return rangeEnd.length === 1 && rangeEnd[0] === 0;
}

/** The interval a (key, range_end) pair names, for a permission or a request alike. */
export function intervalOf(key: Uint8Array, rangeEnd: Uint8Array): KeyInterval {
  const begin = Buffer.from(key);
  if (rangeEnd.length === 0) return { begin, end: Buffer.concat([begin, ZERO]) };
  if (isFromKey(rangeEnd)) return { begin, end: null };
  return { begin, end: Buffer.from(rangeEnd) };
}

function endBefore(a: Buffer | null, b: Buffer | null): boolean {
  if (a === null) return false;
  if (b === null) return true;
  return Buffer.compare(a, b) < 0;
}

/** True when the union of `granted` covers every key of `wanted` (an empty `wanted` is covered). */
export function covers(granted: readonly KeyInterval[], wanted: KeyInterval): boolean {
  if (wanted.end !== null && Buffer.compare(wanted.begin, wanted.end) >= 0) return true;
  const sorted = granted.filter((g) => g.end === null || Buffer.compare(g.begin, g.end) < 0).sort((a, b) => Buffer.compare(a.begin, b.begin));
  // `reached`: every key in [wanted.begin, reached) is covered so far.
  let reached: Buffer | null = wanted.begin;
  for (const interval of sorted) {
    if (reached === null) return true;
    if (Buffer.compare(interval.begin, reached) > 0) break;
    if (endBefore(reached, interval.end)) reached = interval.end;
    if (!endBefore(reached, wanted.end)) return true;
  }
  return reached === null || !endBefore(reached, wanted.end);
}
