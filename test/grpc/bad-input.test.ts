// Bad input gets etcd's exact status code and message, and changes nothing: the revision and
// the stored keys are the same after every refused request.

import { status } from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startInProcessMember, type InProcessMember } from './in-process.js';

const b = (text: string) => Buffer.from(text);

let member: InProcessMember;

async function revisionAndKeys(): Promise<{ revision: string; keys: string[] }> {
  const response = await member.call('KV', 'Range', { key: b('\0'), rangeEnd: b('\0') });
  return { revision: response.header.revision, keys: response.kvs.map((kv: { key: Buffer }) => kv.key.toString()) };
}

async function expectRefused(service: 'KV', method: string, request: object, code: status, message: string): Promise<void> {
  const before = await revisionAndKeys();
  await expect(member.call(service, method, request)).rejects.toMatchObject({ code, details: message });
  expect(await revisionAndKeys()).toEqual(before);
}

beforeAll(async () => {
  member = await startInProcessMember({ maxRequestBytes: 4096, maxTxnOps: 4 });
  await member.call('KV', 'Put', { key: b('a'), value: b('1') });
  await member.call('KV', 'Put', { key: b('b'), value: b('2') });
  await member.call('KV', 'Put', { key: b('c'), value: b('3') });
  await member.call('KV', 'Compact', { revision: 3 });
});

afterAll(async () => {
  await member?.close();
});

describe('bad input: etcd code and message, nothing changed', () => {
  it('empty key on Range, Put, DeleteRange and inside a Txn compare', async () => {
    const message = 'etcdserver: key is not provided';
    await expectRefused('KV', 'Range', { key: b('') }, status.INVALID_ARGUMENT, message);
    await expectRefused('KV', 'Put', { key: b(''), value: b('x') }, status.INVALID_ARGUMENT, message);
    await expectRefused('KV', 'DeleteRange', { key: b('') }, status.INVALID_ARGUMENT, message);
    await expectRefused('KV', 'Txn', { compare: [{ key: b(''), target: 0, result: 0, version: 1 }] }, status.INVALID_ARGUMENT, message);
  });

  it('ignore_value with a value, ignore_lease with a lease', async () => {
    await expectRefused('KV', 'Put', { key: b('a'), value: b('x'), ignoreValue: true }, status.INVALID_ARGUMENT, 'etcdserver: value is provided');
    await expectRefused('KV', 'Put', { key: b('a'), lease: 5, ignoreLease: true }, status.INVALID_ARGUMENT, 'etcdserver: lease is provided');
  });

  it('ignore_value on a missing key: key not found', async () => {
    await expectRefused('KV', 'Put', { key: b('missing'), ignoreValue: true }, status.INVALID_ARGUMENT, 'etcdserver: key not found');
  });

  it('a lease nobody granted', async () => {
    await expectRefused('KV', 'Put', { key: b('a'), value: b('x'), lease: 12345 }, status.NOT_FOUND, 'etcdserver: requested lease not found');
  });

  it('request over --max-request-bytes: request is too large', async () => {
    await expectRefused('KV', 'Put', { key: b('big'), value: Buffer.alloc(4096 + 100) }, status.INVALID_ARGUMENT, 'etcdserver: request is too large');
  });

  it('message over --max-request-bytes + 512 KiB: grpc size error as etcd sends it', async () => {
    const before = await revisionAndKeys();
    const error = await member.call('KV', 'Put', { key: b('huge'), value: Buffer.alloc(600 * 1024) }).catch((e) => e);
    expect(error.code).toBe(status.RESOURCE_EXHAUSTED);
    expect(error.details).toMatch(/^grpc: received message larger than max \(\d+ vs\. 528384\)$/);
    expect(await revisionAndKeys()).toEqual(before);
  });

  it('too many txn operations (largest of compare/success/failure counts)', async () => {
    const put = (key: string) => ({ requestPut: { key: b(key), value: b('v') } });
    await expectRefused(
      'KV',
      'Txn',
      { success: [put('t1'), put('t2'), put('t3'), put('t4'), put('t5')] },
      status.INVALID_ARGUMENT,
      'etcdserver: too many operations in txn request',
    );
  });

  it('duplicate keys in a txn: a key put twice, or put inside a deleted range, across nesting', async () => {
    const message = 'etcdserver: duplicate key given in txn request';
    const put = (key: string) => ({ requestPut: { key: b(key), value: b('v') } });
    await expectRefused('KV', 'Txn', { success: [put('x'), put('x')] }, status.INVALID_ARGUMENT, message);
    await expectRefused('KV', 'Txn', { success: [{ requestDeleteRange: { key: b('a'), rangeEnd: b('z') } }, put('m')] }, status.INVALID_ARGUMENT, message);
    await expectRefused('KV', 'Txn', { success: [put('x'), { requestTxn: { success: [put('x')] } }] }, status.INVALID_ARGUMENT, message);
  });

  it('then/else branches of one nested txn may put the same key', async () => {
    const put = (key: string) => ({ requestPut: { key: b(key), value: b('v') } });
    const response = await member.call('KV', 'Txn', { success: [{ requestTxn: { success: [put('n')], failure: [put('n')] } }] });
    expect(response.succeeded).toBe(true);
  });

  it('future and compacted revisions on Range and Compact', async () => {
    const { revision } = await revisionAndKeys();
    const future = String(Number(revision) + 10);
    await expectRefused('KV', 'Range', { key: b('a'), revision: future }, status.OUT_OF_RANGE, 'etcdserver: mvcc: required revision is a future revision');
    await expectRefused('KV', 'Range', { key: b('a'), revision: 2 }, status.OUT_OF_RANGE, 'etcdserver: mvcc: required revision has been compacted');
    await expectRefused('KV', 'Compact', { revision: future }, status.OUT_OF_RANGE, 'etcdserver: mvcc: required revision is a future revision');
    await expectRefused('KV', 'Compact', { revision: 3 }, status.OUT_OF_RANGE, 'etcdserver: mvcc: required revision has been compacted');
    // Reading at exactly the compacted revision is allowed.
    const atCompacted = await member.call('KV', 'Range', { key: b('a'), revision: 3 });
    expect(atCompacted.kvs[0].value.toString()).toBe('1');
  });

  it('unknown sort order or target: invalid sort option (etcd 3.6 text)', async () => {
    await expectRefused('KV', 'Range', { key: b('a'), sortOrder: 7 }, status.INVALID_ARGUMENT, 'etcdserver: invalid sort option');
    await expectRefused('KV', 'Range', { key: b('a'), sortTarget: 9 }, status.INVALID_ARGUMENT, 'etcdserver: invalid sort option');
  });

  it('an empty txn op: key not found (etcd checkRequestOp)', async () => {
    await expectRefused('KV', 'Txn', { success: [{}] }, status.INVALID_ARGUMENT, 'etcdserver: key not found');
  });
});
