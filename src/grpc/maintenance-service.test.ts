// The Maintenance service over gRPC on an in-process member: the Snapshot stream's shape
// (32 KiB blobs counting down remaining_bytes, then the SHA-256 of all blobs), HashKV and Hash
// answers and errors with etcd's codes and texts, and MoveLeader on a single member.

import { createHash } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startInProcessMember, type InProcessMember } from '../../test/grpc/in-process.js';
import { clients } from './proto.js';

let member: InProcessMember;

beforeAll(async () => {
  member = await startInProcessMember();
  for (let i = 0; i < 200; i++) {
    await member.call('KV', 'Put', { key: Buffer.from(`key/${i % 50}`), value: Buffer.alloc(400, i) });
  }
});

afterAll(async () => {
  await member?.close();
});

function snapshotMessages(): Promise<Array<{ remainingBytes: string; blob: Buffer }>> {
  const client = new clients.Maintenance(member.endpoint, grpc.credentials.createInsecure()) as any;
  return new Promise((resolve, reject) => {
    const messages: Array<{ remainingBytes: string; blob: Buffer }> = [];
    const stream = client.Snapshot({});
    stream.on('data', (m: { remainingBytes: string; blob: Buffer }) => messages.push(m));
    stream.on('error', (e: Error) => {
      client.close();
      reject(e);
    });
    stream.on('end', () => {
      client.close();
      resolve(messages);
    });
  });
}

async function rejection(promise: Promise<unknown>): Promise<grpc.ServiceError> {
  try {
    await promise;
  } catch (error) {
    return error as grpc.ServiceError;
  }
  throw new Error('expected the call to fail');
}

describe('Maintenance.Snapshot', () => {
  it('streams 32 KiB blobs counting down to 0, then the SHA-256 of everything sent', async () => {
    const messages = await snapshotMessages();
    expect(messages.length).toBeGreaterThan(3);
    const data = messages.slice(0, -1);
    const trailer = messages.at(-1)!;
    for (const m of data.slice(0, -1)) expect(m.blob.length).toBe(32 * 1024);
    const total = data.reduce((sum, m) => sum + m.blob.length, 0);
    let left = total;
    for (const m of data) {
      left -= m.blob.length;
      expect(Number(m.remainingBytes)).toBe(left);
    }
    expect(total % 512).toBe(0);
    expect(Number(trailer.remainingBytes)).toBe(0);
    expect(
      trailer.blob.equals(
        createHash('sha256')
          .update(Buffer.concat(data.map((m) => m.blob)))
          .digest(),
      ),
    ).toBe(true);
  });
});

describe('Maintenance.HashKV and Hash', () => {
  it('answers with the hash, the revisions, and stays stable without writes', async () => {
    const first = await member.call('Maintenance', 'HashKV', { revision: 0 });
    const again = await member.call('Maintenance', 'HashKV', { revision: 0 });
    expect(first.hash).toBe(again.hash);
    expect(first.header.revision).toBe('201');
    expect(first.hashRevision).toBe('201');
    const older = await member.call('Maintenance', 'HashKV', { revision: 100 });
    expect(older.hash).not.toBe(first.hash);
    expect(older.hashRevision).toBe('100');
    const hash = await member.call('Maintenance', 'Hash', {});
    expect(hash.hash).toBeGreaterThan(0);
  });

  it('future and compacted revisions fail like a Range', async () => {
    const future = await rejection(member.call('Maintenance', 'HashKV', { revision: 10_000 }));
    expect(future.code).toBe(grpc.status.OUT_OF_RANGE);
    expect(future.details).toBe('etcdserver: mvcc: required revision is a future revision');
    await member.call('KV', 'Compact', { revision: 50, physical: true });
    const compacted = await rejection(member.call('Maintenance', 'HashKV', { revision: 40 }));
    expect(compacted.code).toBe(grpc.status.OUT_OF_RANGE);
    expect(compacted.details).toBe('etcdserver: mvcc: required revision has been compacted');
    const after = await member.call('Maintenance', 'HashKV', { revision: 60 });
    expect(after.compactRevision).toBe('50');
  });
});

describe('Maintenance.MoveLeader on a single member', () => {
  it('to itself succeeds; to anyone else is a bad leader transferee', async () => {
    await member.call('Maintenance', 'MoveLeader', { targetID: '2' });
    const bad = await rejection(member.call('Maintenance', 'MoveLeader', { targetID: '99' }));
    expect(bad.code).toBe(grpc.status.FAILED_PRECONDITION);
    expect(bad.details).toBe('etcdserver: bad leader transferee');
  });
});
