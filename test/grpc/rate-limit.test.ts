// Rate limiting over real gRPC: with the admission hook installed as main.ts installs it, a
// burst beyond the bucket gets RESOURCE_EXHAUSTED with the clear message, is counted by the
// call observer under that code, and changes nothing; once refilled, requests pass again.

import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { setAdmission, setCallHooks } from '../../src/grpc/handler.js';
import { TokenBucket, rateLimitMessage } from '../../src/grpc/rate-limit.js';
import { startInProcessMember, type InProcessMember } from './in-process.js';

describe('rate limiting (server.grpc.enable_rate_limit)', () => {
  let member: InProcessMember;
  let now = 0;
  const codes: number[] = [];

  beforeAll(async () => {
    member = await startInProcessMember();
    const limit = { qps: 1, burst: 3 };
    const bucket = new TokenBucket({ ...limit, nowMs: () => now });
    const refusal = rateLimitMessage(limit);
    setAdmission(() => (bucket.tryTake() ? undefined : refusal));
    setCallHooks((_method, code) => codes.push(code), undefined);
  });

  afterAll(async () => {
    setAdmission(undefined);
    setCallHooks(undefined, undefined);
    await member?.close();
  });

  it('refuses requests beyond the burst with RESOURCE_EXHAUSTED and changes nothing', async () => {
    const key = Buffer.from('rl');
    const results = await Promise.allSettled(Array.from({ length: 5 }, (_, i) => member.call('KV', 'Put', { key, value: Buffer.from(String(i)) })));
    const refused = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(3);
    expect(refused).toHaveLength(2);
    for (const r of refused) {
      expect((r.reason as grpc.ServiceError).code).toBe(grpc.status.RESOURCE_EXHAUSTED);
      expect((r.reason as grpc.ServiceError).details).toBe(rateLimitMessage({ qps: 1, burst: 3 }));
    }
    expect(member.kv.currentRevision).toBe(1 + 3);
    expect(codes.filter((c) => c === grpc.status.RESOURCE_EXHAUSTED)).toHaveLength(2);
  });

  it('admits again once the bucket refills', async () => {
    now += 1000;
    const range = await member.call<{ count: string }>('KV', 'Range', { key: Buffer.from('rl') });
    expect(Number(range.count)).toBe(1);
    await expect(member.call('KV', 'Range', { key: Buffer.from('rl') })).rejects.toMatchObject({ code: grpc.status.RESOURCE_EXHAUSTED });
  });
});
