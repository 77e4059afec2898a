import { EventEmitter } from 'node:events';
import * as grpc from '@grpc/grpc-js';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { LeaderGuard, MAX_LEADERLESS_CHECKS } from './require-leader.js';

const NO_LEADER = { code: grpc.status.UNAVAILABLE, details: 'etcdserver: no leader' };
const UNARY = { requestStream: false, responseStream: false } as grpc.MethodDefinition<unknown, unknown>;
const BIDI = { requestStream: true, responseStream: true } as grpc.MethodDefinition<unknown, unknown>;
const SERVER_STREAM = { requestStream: false, responseStream: true } as grpc.MethodDefinition<unknown, unknown>;
const CHECK_MS = 1000;

function metadata(hasLeader?: string): grpc.Metadata {
  const md = new grpc.Metadata();
  if (hasLeader !== undefined) md.set('hasleader', hasLeader);
  return md;
}

/** A stand-in for a grpc-js server stream: metadata and the events the guard uses. */
function fakeStream(md: grpc.Metadata): EventEmitter & { metadata: grpc.Metadata; errors: unknown[] } {
  const call = Object.assign(new EventEmitter(), { metadata: md, errors: [] as unknown[] });
  call.on('error', (e) => call.errors.push(e));
  return call;
}

describe('LeaderGuard (etcd hasleader metadata)', () => {
  let leader = true;
  let guard: LeaderGuard;
  beforeEach(() => {
    vi.useFakeTimers();
    leader = true;
    guard = new LeaderGuard({ hasLeader: () => leader, checkIntervalMs: CHECK_MS });
  });
  afterEach(() => {
    guard.close();
    vi.useRealTimers();
  });

  it('refuses a unary call asking for a leader while there is none; serves the others', () => {
    const served: string[] = [];
    const handler = vi.fn((call: { metadata: grpc.Metadata }, callback: grpc.sendUnaryData<unknown>) => {
      served.push(String(call.metadata.get('hasleader')[0]));
      callback(null, {});
    });
    const wrapped = guard.wrap('Range', UNARY, handler as unknown as grpc.UntypedHandleCall) as unknown as (
      call: object,
      cb: grpc.sendUnaryData<unknown>,
    ) => void;
    const answers: unknown[] = [];
    const answer: grpc.sendUnaryData<unknown> = (error) => answers.push(error);
    leader = false;
    wrapped({ metadata: metadata('true') }, answer);
    wrapped({ metadata: metadata() }, answer);
    wrapped({ metadata: metadata('false') }, answer);
    leader = true;
    wrapped({ metadata: metadata('true') }, answer);
    expect(answers).toEqual([expect.objectContaining(NO_LEADER), null, null, null]);
    expect(served).toEqual(['undefined', 'false', 'true']);
  });

  it('refuses a stream asking for a leader at its start when there is none', () => {
    const handler = vi.fn();
    const wrapped = guard.wrap('Watch', BIDI, handler as unknown as grpc.UntypedHandleCall) as unknown as (call: object) => void;
    leader = false;
    const call = fakeStream(metadata('true'));
    wrapped(call);
    expect(call.errors).toEqual([expect.objectContaining(NO_LEADER)]);
    expect(handler).not.toHaveBeenCalled();
  });

  it(`ends open Watch/LeaseKeepAlive streams that asked, after ${MAX_LEADERLESS_CHECKS} leaderless checks in a row`, () => {
    const wrap = (method: string, definition: grpc.MethodDefinition<unknown, unknown>) =>
      guard.wrap(method, definition, (() => {}) as unknown as grpc.UntypedHandleCall) as unknown as (call: object) => void;
    const watch = fakeStream(metadata('true'));
    const keepAlive = fakeStream(metadata('true'));
    const plainWatch = fakeStream(metadata());
    const snapshot = fakeStream(metadata('true'));
    wrap('Watch', BIDI)(watch);
    wrap('LeaseKeepAlive', BIDI)(keepAlive);
    wrap('Watch', BIDI)(plainWatch);
    wrap('Snapshot', SERVER_STREAM)(snapshot);
    leader = false;
    vi.advanceTimersByTime(CHECK_MS * 2);
    leader = true; // a leader again: the count starts over
    vi.advanceTimersByTime(CHECK_MS);
    leader = false;
    vi.advanceTimersByTime(CHECK_MS * (MAX_LEADERLESS_CHECKS - 1));
    expect(watch.errors).toEqual([]);
    vi.advanceTimersByTime(CHECK_MS);
    expect(watch.errors).toEqual([expect.objectContaining(NO_LEADER)]);
    expect(keepAlive.errors).toEqual([expect.objectContaining(NO_LEADER)]);
    expect(plainWatch.errors).toEqual([]);
    expect(snapshot.errors).toEqual([]);
    vi.advanceTimersByTime(CHECK_MS * 3); // each stream is ended once
    expect(watch.errors.length).toBe(1);
  });

  it('forgets streams that ended on their own', () => {
    const watch = fakeStream(metadata('true'));
    (guard.wrap('Watch', BIDI, (() => {}) as unknown as grpc.UntypedHandleCall) as unknown as (call: object) => void)(watch);
    watch.emit('cancelled');
    leader = false;
    vi.advanceTimersByTime(CHECK_MS * MAX_LEADERLESS_CHECKS);
    expect(watch.errors).toEqual([]);
  });
});
