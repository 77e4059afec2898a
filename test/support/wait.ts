// The one way tests wait. Every wait is bounded and fails with a message naming what it waited
// for, so a stuck test says why instead of timing out silently.
//
// - `Notifier.until` re-checks a condition each time its source reports a change (a stream's
//   data, a process's output or exit): waiting on an event, no polling.
// - `Inbox` collects what a stream delivers and awaits it by count.
// - `within` bounds a promise that settles on its own (a call, an event).
// - `waitFor` polls a condition that nothing announces (cluster state, a file's content, an
//   external tool's view).
// - `holdFor` is the only deliberate pause: for "nothing happens during X" (or "X has passed")
//   where X is the point of the test. Its reason is required, so every pause is greppable and
//   justified.

export interface WaitOptions {
  /** What is awaited, as it reads after "waiting for" (e.g. "a leader"). */
  what: string;
  /** Give up after this long (default 30 s). */
  timeoutMs?: number;
}

const DEFAULT_TIMEOUT_MS = 30_000;

function timeoutError(what: string, timeoutMs: number, detail?: string): Error {
  return new Error(`timed out after ${timeoutMs} ms waiting for ${what}${detail ? `\n${detail}` : ''}`);
}

/** Short printable form of a probe's last value for failure messages. */
function describeValue(value: unknown): string {
  if (value instanceof Error) return value.message;
  let text: string;
  try {
    text = typeof value === 'string' ? value : (JSON.stringify(value) ?? String(value));
  } catch {
    text = String(value);
  }
  return text.length > 2000 ? `${text.slice(0, 2000)}...` : text;
}

export interface PollOptions extends WaitOptions {
  /** Pause between probes (default 100 ms). */
  intervalMs?: number;
}

/**
 * Polls `probe` until `until(value)` holds (by default: the value is truthy) and returns that
 * value. For conditions no event announces. A probe that throws counts as "not yet"; the last
 * value or error is in the failure message.
 */
export function waitFor<T, U extends T>(probe: () => T | Promise<T>, options: PollOptions & { until: (value: T) => value is U }): Promise<U>;
export function waitFor<T>(probe: () => T | Promise<T>, options: PollOptions & { until: (value: T) => boolean }): Promise<T>;
export function waitFor<T>(probe: () => T | Promise<T>, options: PollOptions): Promise<NonNullable<T>>;
export async function waitFor<T>(probe: () => T | Promise<T>, options: PollOptions & { until?: (value: T) => boolean }): Promise<T> {
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const holds = options.until ?? ((value: T) => Boolean(value));
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    let last: unknown;
    try {
      const value = await probe();
      if (holds(value)) return value;
      last = value;
    } catch (error) {
      last = error;
    }
    if (performance.now() >= deadline) throw timeoutError(options.what, timeoutMs, `last: ${describeValue(last)}`);
    await pause(Math.min(options.intervalMs ?? 100, Math.max(0, deadline - performance.now())));
  }
}

/** Awaits `promise`, failing with a message naming `what` if it has not settled in time. */
export async function within<T>(promise: Promise<T>, options: WaitOptions): Promise<T> {
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(timeoutError(options.what, timeoutMs)), timeoutMs);
  });
  try {
    return await Promise.race([promise, expired]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * A deliberate pause, for tests whose point is that something does NOT happen during `ms` (a
 * lease must not expire before its TTL) or that a period with no observable end has passed.
 * `why` says which; never use this to wait for something that can be awaited.
 */
export async function holdFor(ms: number, why: string): Promise<void> {
  if (why.trim() === '') throw new Error('holdFor needs a reason');
  await pause(ms);
}

function pause(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * Wakes waiters when something they watch may have changed. The owner calls notify() on every
 * change (data arrived, a process exited); `until` re-checks its condition then.
 */
export class Notifier {
  private readonly listeners = new Set<() => void>();

  notify(): void {
    for (const listener of [...this.listeners]) listener();
  }

  /**
   * Resolves once `check()` holds. `check` may throw to give up early (e.g. the process it
   * reads exited); `detail` adds context (output so far) to a timeout's message.
   */
  until(check: () => boolean, options: WaitOptions & { detail?: () => string }): Promise<void> {
    const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    return new Promise<void>((resolve, reject) => {
      const finish = (outcome: () => void): void => {
        clearTimeout(timer);
        this.listeners.delete(listener);
        outcome();
      };
      const listener = (): void => {
        try {
          if (check()) finish(resolve);
        } catch (error) {
          finish(() => reject(error));
        }
      };
      const timer = setTimeout(() => finish(() => reject(timeoutError(options.what, timeoutMs, options.detail?.()))), timeoutMs);
      this.listeners.add(listener);
      listener();
    });
  }
}

/** What a stream delivered, in order, awaited by count. */
export class Inbox<T> {
  readonly items: T[] = [];
  private readonly changes = new Notifier();
  private taken = 0;

  push(...items: T[]): void {
    this.items.push(...items);
    this.changes.notify();
  }

  /** Resolves with every item so far once there are at least `count`. */
  async atLeast(count: number, options: WaitOptions): Promise<T[]> {
    await this.changes.until(() => this.items.length >= count, {
      ...options,
      detail: () => `${this.items.length}/${count} received: ${describeValue(this.items)}`,
    });
    return this.items;
  }

  /** The next `count` items not taken before (in arrival order). */
  async take(count: number, options: WaitOptions): Promise<T[]> {
    await this.atLeast(this.taken + count, options);
    const items = this.items.slice(this.taken, this.taken + count);
    this.taken += count;
    return items;
  }

  /** Items not taken yet. */
  get pending(): number {
    return this.items.length - this.taken;
  }
}
