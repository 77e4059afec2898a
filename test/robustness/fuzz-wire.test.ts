// The fuzz test's client (fuzz-wire.ts) against the limit that once closed its connections:
// Node's HTTP/2 server (nghttp2 >= 1.57, CVE-2023-44487) answers a connection whose client
// resets streams faster than a token bucket allows (1,000 at once, then 33 a second) with
// GOAWAY INTERNAL_ERROR, failing every call open on it. The fuzzer ends each watch stream by
// cancelling it (an RST_STREAM), tens of thousands of times in a 100,000-request run, so it
// must spread those streams over connections of their own; grpc-js shares one connection
// between clients with the same target and options unless told not to.

import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeMessage } from '../../src/grpc/proto.js';
import { startInProcessMember, type InProcessMember } from '../grpc/in-process.js';
import { methodTable, RawClient } from './fuzz-wire.js';

/** More resets than nghttp2's burst, sent faster than its refill rate. */
const CANCELLED_STREAMS = 2000;
const CONCURRENT = 100;

let member: InProcessMember;

beforeAll(async () => {
  member = await startInProcessMember();
});

afterAll(async () => {
  await member?.close();
});

const watch = methodTable().find((m) => m.path === '/etcdserverpb.Watch/Watch')!;
const create = encodeMessage(watch.requestType, { createRequest: { key: Buffer.from('w') } });

/** Opens `count` watch streams, `CONCURRENT` at a time, each cancelled once it is created. */
async function cancelledWatches(client: RawClient, count: number): Promise<Array<{ code: grpc.status; details: string }>> {
  const answers: Array<{ code: grpc.status; details: string }> = [];
  for (let sent = 0; sent < count; sent += CONCURRENT) {
    const batch = Array.from({ length: Math.min(CONCURRENT, count - sent) }, () =>
      client.stream(watch, [create], { deadlineMs: 20_000, until: (messages) => messages.some((m) => m.created) }),
    );
    answers.push(...(await Promise.all(batch)));
  }
  return answers;
}

describe('the fuzz client and the HTTP/2 stream-reset limit', () => {
  it(`${CANCELLED_STREAMS} watch streams cancelled in a burst all end cleanly, and unary calls keep working`, async () => {
    const client = new RawClient(member.endpoint);
    try {
      const answers = await cancelledWatches(client, CANCELLED_STREAMS);
      const failed = answers.filter((a) => a.code !== grpc.status.OK);
      expect(failed.slice(0, 3), `${failed.length} of ${answers.length} streams failed`).toEqual([]);
      const range = methodTable().find((m) => m.path === '/etcdserverpb.KV/Range')!;
      const answer = await client.unary(range, encodeMessage(range.requestType, { key: Buffer.from('w') }), { deadlineMs: 20_000 });
      expect({ code: grpc.status[answer.code], details: answer.details }).toEqual({ code: 'OK', details: '' });
    } finally {
      client.close();
    }
  });
});
