// Invariant checks that are always on. A failed assertion is a bug in MetaStore, never an
// expected condition: it throws AssertionError, which nothing may catch and swallow.

export class AssertionError extends Error {
  override name = 'AssertionError';
}

export function assert(condition: unknown, message = 'assertion failed'): asserts condition {
  if (!condition) throw new AssertionError(message);
}

export function assertSafeInteger(value: number, what: string): void {
  if (!Number.isSafeInteger(value)) throw new AssertionError(`${what} is not a safe integer: ${value}`);
}

export function unreachable(value: never, what = 'value'): never {
  throw new AssertionError(`unexpected ${what}: ${String(value)}`);
}
