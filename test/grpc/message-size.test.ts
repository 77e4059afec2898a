// server.grpc.max_recv_msg_size and max_send_msg_size on the client port: a request message over
// the receive limit is refused with grpc-go's RESOURCE_EXHAUSTED text, one under it but over
// max_request_bytes keeps etcd's own "request is too large"; a response over the send limit
// fails its call with RESOURCE_EXHAUSTED while smaller ones pass.

import * as grpc from '@grpc/grpc-js';
import { status } from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { clients } from '../../src/grpc/proto.js';
import { startInProcessMember, type InProcessMember } from './in-process.js';

const b = (s: string) => Buffer.from(s);
let member: InProcessMember;

beforeAll(async () => {
  member = await startInProcessMember({ maxRequestBytes: 2000, grpc: { maxReceiveMessageBytes: 5000, maxSendMessageBytes: 3000 } });
});
afterAll(async () => {
  await member.close();
});

describe('gRPC message size limits', () => {
  it("a request under max_recv_msg_size but over max_request_bytes: etcd's request is too large", async () => {
    const error = await member.call('KV', 'Put', { key: b('k'), value: Buffer.alloc(3000) }).catch((e) => e);
    expect([error.code, error.details]).toEqual([status.INVALID_ARGUMENT, 'etcdserver: request is too large']);
  });

  it("a request over max_recv_msg_size: grpc-go's RESOURCE_EXHAUSTED text naming the limit", async () => {
    const error = await member.call('KV', 'Put', { key: b('k'), value: Buffer.alloc(6000) }).catch((e) => e);
    expect(error.code).toBe(status.RESOURCE_EXHAUSTED);
    expect(error.details).toMatch(/^grpc: received message larger than max \(60\d\d vs\. 5000\)$/);
  });

  it('a response over max_send_msg_size fails with RESOURCE_EXHAUSTED; a smaller one is sent', async () => {
    await member.call('KV', 'Put', { key: b('a'), value: Buffer.alloc(1800) });
    await member.call('KV', 'Put', { key: b('b'), value: Buffer.alloc(1800) });
    const one = await member.call('KV', 'Range', { key: b('a') });
    expect(one.kvs[0].value).toHaveLength(1800);
    const error = await member.call('KV', 'Range', { key: b('a'), rangeEnd: b('c') }).catch((e) => e);
    expect(error.code).toBe(status.RESOURCE_EXHAUSTED);
    expect(error.details).toMatch(/larger than max \(\d+ vs\. 3000\)/);
  });

  it('a watch request over max_recv_msg_size ends the stream with the same text', async () => {
    const client = new clients.Watch(member.endpoint, grpc.credentials.createInsecure());
    const stream = (client as any).Watch() as grpc.ClientDuplexStream<object, object>;
    const ended = new Promise<{ code: number; details: string }>((resolve) => stream.on('error', resolve));
    stream.write({ createRequest: { key: Buffer.alloc(6000) } });
    const error = await ended;
    client.close();
    expect(error.code).toBe(status.RESOURCE_EXHAUSTED);
    expect(error.details).toMatch(/^grpc: received message larger than max \(60\d\d vs\. 5000\)$/);
  });
});
