// The unary wrapper's request timeout: one timer for every call in flight (DeadlineList), so
// these check that each call still times out at its own deadline, once, and only if unanswered.
import * as grpc from '@grpc/grpc-js';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { setRequestLimits, unary } from './handler.js';

type Answer = { error: Partial<grpc.ServiceError> | null; response?: unknown };

let nextWork: Promise<unknown>;
const handler = unary('/test/Call', () => nextWork);

/** Starts a call whose body returns `work`; its answers are collected. */
function start(work: Promise<unknown>): Answer[] {
  nextWork = work;
  const answers: Answer[] = [];
  const call = { request: {} } as grpc.ServerUnaryCall<unknown, unknown>;
  handler(call, (error, response) => answers.push({ error: error as Partial<grpc.ServiceError> | null, response }));
  return answers;
}

const never = new Promise<unknown>(() => {});
const TIMED_OUT = { error: expect.objectContaining({ code: grpc.status.UNAVAILABLE, details: 'etcdserver: request timed out' }), response: undefined };

describe('unary(): the request timeout', () => {
  beforeEach(() => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'performance'] });
  });
  afterEach(() => {
    setRequestLimits(undefined);
    vi.useRealTimers();
  });

  it('answers each unanswered call at its own deadline, and a call answered in time never', async () => {
    setRequestLimits({ timeoutMs: 1000, slowMs: 0 });
    const first = start(never);
    await vi.advanceTimersByTimeAsync(500);
    let finish: (value: unknown) => void = () => {};
    const answered = start(
      new Promise((resolve) => {
        finish = resolve;
      }),
    );
    const third = start(never);
    finish({ ok: true });
    await vi.advanceTimersByTimeAsync(499);
    expect(first).toEqual([]);
    expect(answered).toEqual([{ error: null, response: { ok: true } }]);
    await vi.advanceTimersByTimeAsync(1);
    expect(first).toEqual([TIMED_OUT]);
    expect(third).toEqual([]);
    await vi.advanceTimersByTimeAsync(500);
    expect(third).toEqual([TIMED_OUT]);
    expect(answered).toHaveLength(1);
  });

  it('drops the work finishing after the timeout answered (one answer per call)', async () => {
    setRequestLimits({ timeoutMs: 100, slowMs: 0 });
    let finish: (value: unknown) => void = () => {};
    const answers = start(
      new Promise((resolve) => {
        finish = resolve;
      }),
    );
    await vi.advanceTimersByTimeAsync(100);
    finish({ late: true });
    await vi.advanceTimersByTimeAsync(0);
    expect(answers).toEqual([TIMED_OUT]);
  });

  it('times a call out at its deadline when a shorter timeout was configured after a longer one', async () => {
    setRequestLimits({ timeoutMs: 10_000, slowMs: 0 });
    const long = start(never);
    setRequestLimits({ timeoutMs: 100, slowMs: 0 });
    const short = start(never);
    await vi.advanceTimersByTimeAsync(100);
    expect(short).toEqual([TIMED_OUT]);
    expect(long).toEqual([]);
    await vi.advanceTimersByTimeAsync(9900);
    expect(long).toEqual([TIMED_OUT]);
  });
});
