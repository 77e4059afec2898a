// The v3lock Lock service over gRPC on an in-process member: the key layout and header,
// FIFO order of several lockers, release by Unlock, by lease revoke and by lease expiry, a
// waiter that cancels leaving no key, lease 0 and unknown leases, re-locking with the same
// lease, and etcd's errors (codes.Unknown with etcd's text). No sleeps: the test awaits watch
// events on the member's hub (bounded), and checks "still waiting" only at points where
// nothing could have released the waiter.

import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { clients } from '../../src/grpc/proto.js';
import { HubWatch } from '../../src/server/recipes/lock-wait.js';
import { within } from '../support/wait.js';
import { startInProcessMember, type InProcessMember } from './in-process.js';

let member: InProcessMember;
let lockClient: grpc.Client & Record<string, any>;

beforeAll(async () => {
  member = await startInProcessMember();
  lockClient = new clients.Lock(member.endpoint, grpc.credentials.createInsecure()) as any;
});
afterAll(async () => {
  lockClient.close();
  await member.close();
});

const b = (text: string): Buffer => Buffer.from(text);

async function grant(ttl = 60): Promise<string> {
  return (await member.call('Lease', 'LeaseGrant', { TTL: ttl })).ID;
}

const hex = (id: string): string => BigInt(id).toString(16);

/** A Lock call that can be cancelled, with its settlement observable without awaiting it. */
function startLock(name: string, lease: string) {
  let settled = false;
  let call!: grpc.ClientUnaryCall;
  const result = new Promise<any>((resolve, reject) => {
    call = lockClient.Lock({ name: b(name), lease }, (error: grpc.ServiceError | null, response: any) => {
      settled = true;
      if (error) reject(error);
      else resolve(response);
    });
  });
  result.catch(() => undefined);
  return { result, call, isSettled: () => settled };
}

/** The next event of `type` on `key` at or after `fromRevision` (bounded by 15 s). */
async function nextEvent(key: string, type: 'put' | 'delete', fromRevision: number) {
  const abort = new AbortController();
  const watch = new HubWatch(member.kv.watchHub, { key: b(key), rangeEnd: Buffer.alloc(0), startRevision: fromRevision }, abort.signal);
  const found = (async () => {
    for (;;) {
      const delivery = await watch.next();
      const event = delivery.events.find((e) => e.type === type);
      if (event !== undefined) return event;
    }
  })();
  try {
    return await within(found, { what: `a ${type} event on ${key} from revision ${fromRevision}`, timeoutMs: 15_000 });
  } finally {
    abort.abort();
    watch.close();
  }
}

async function get(key: string): Promise<any[]> {
  return (await member.call('KV', 'Range', { key: b(key) })).kvs;
}

describe('Lock service (in-process)', () => {
  it('an uncontended lock answers at once with "<name>/<lease hex>", attached to the lease', async () => {
    const lease = await grant();
    const response = await member.call('Lock', 'Lock', { name: b('free'), lease });
    expect(response.key.toString()).toBe(`free/${hex(lease)}`);
    const [kv] = await get(`free/${hex(lease)}`);
    expect(kv.lease).toBe(lease);
    expect(kv.value.length).toBe(0);
    // The header is the revision of the put that queued us.
    expect(response.header.revision).toBe(kv.createRevision);
    expect(response.header.memberId).toBe('2');

    // The same lease locking again reuses its key and holds the lock at once.
    const again = await member.call('Lock', 'Lock', { name: b('free'), lease });
    expect(again.key.toString()).toBe(`free/${hex(lease)}`);
    expect((await get(`free/${hex(lease)}`))[0].createRevision).toBe(kv.createRevision);

    const unlocked = await member.call('Lock', 'Unlock', { key: response.key });
    expect(Number(unlocked.header.revision)).toBe(Number(kv.createRevision) + 1);
    expect(await get(`free/${hex(lease)}`)).toEqual([]);
  });

  it('several lockers acquire in request order, each when the previous one unlocks', async () => {
    const leases = [await grant(), await grant(), await grant()];
    const order: number[] = [];
    const first = await member.call('Lock', 'Lock', { name: b('fifo'), lease: leases[0] });
    order.push(0);
    const waiters = [];
    for (const i of [1, 2]) {
      const from = member.kv.currentRevision + 1;
      const waiter = startLock('fifo', leases[i]!);
      void waiter.result.then(() => order.push(i));
      // Queued once its key exists; only then start the next one, so the order is defined.
      await nextEvent(`fifo/${hex(leases[i]!)}`, 'put', from);
      waiters.push(waiter);
    }
    expect(waiters.map((w) => w.isSettled())).toEqual([false, false]);

    await member.call('Lock', 'Unlock', { key: first.key });
    const second = await waiters[0]!.result;
    expect(second.key.toString()).toBe(`fifo/${hex(leases[1]!)}`);
    // The header revision is that of the read that found the queue ahead empty.
    expect(Number(second.header.revision)).toBeGreaterThan(Number((await get(`fifo/${hex(leases[1]!)}`))[0].createRevision));
    expect(waiters[1]!.isSettled()).toBe(false);

    await member.call('Lock', 'Unlock', { key: second.key });
    const third = await waiters[1]!.result;
    expect(third.key.toString()).toBe(`fifo/${hex(leases[2]!)}`);
    expect(order).toEqual([0, 1, 2]);
    await member.call('Lock', 'Unlock', { key: third.key });
  });

  it('a waiter whose predecessor leaves early keeps waiting for the older holder', async () => {
    const [a, m, c] = [await grant(), await grant(), await grant()];
    const holder = await member.call('Lock', 'Lock', { name: b('mid'), lease: a });
    let from = member.kv.currentRevision + 1;
    const middle = startLock('mid', m);
    await nextEvent(`mid/${hex(m)}`, 'put', from);
    from = member.kv.currentRevision + 1;
    const last = startLock('mid', c);
    await nextEvent(`mid/${hex(c)}`, 'put', from);
    // The middle key goes away while both wait: the last waiter looks again and finds the holder.
    await member.call('Lock', 'Unlock', { key: b(`mid/${hex(m)}`) });
    await member.call('KV', 'Put', { key: b('unrelated'), value: b('x') });
    expect(last.isSettled()).toBe(false);
    await member.call('Lock', 'Unlock', { key: holder.key });
    expect((await last.result).key.toString()).toBe(`mid/${hex(c)}`);
    // As in etcd, the middle waiter also "acquires" once nothing older remains, though its own
    // key is gone: ownership is only as good as the key's existence.
    expect((await middle.result).key.toString()).toBe(`mid/${hex(m)}`);
    await member.call('Lock', 'Unlock', { key: b(`mid/${hex(c)}`) });
  });

  it("revoking the holder's lease hands the lock to the next waiter", async () => {
    const [holderLease, waiterLease] = [await grant(), await grant()];
    await member.call('Lock', 'Lock', { name: b('revoke'), lease: holderLease });
    const from = member.kv.currentRevision + 1;
    const waiter = startLock('revoke', waiterLease);
    await nextEvent(`revoke/${hex(waiterLease)}`, 'put', from);
    expect(waiter.isSettled()).toBe(false);
    await member.call('Lease', 'LeaseRevoke', { ID: holderLease });
    expect((await waiter.result).key.toString()).toBe(`revoke/${hex(waiterLease)}`);
    expect(await get(`revoke/${hex(holderLease)}`)).toEqual([]);
    await member.call('Lock', 'Unlock', { key: b(`revoke/${hex(waiterLease)}`) });
  });

  it("the holder's lease expiring hands the lock to the next waiter", async () => {
    // The minimum TTL (2 s with the default 1 s election timeout): the shortest honest wait.
    const requested = performance.now();
    const holderLease = await grant(1);
    const waiterLease = await grant();
    await member.call('Lock', 'Lock', { name: b('expire'), lease: holderLease });
    const from = member.kv.currentRevision + 1;
    const waiter = startLock('expire', waiterLease);
    await nextEvent(`expire/${hex(waiterLease)}`, 'put', from);
    const acquired = await within(waiter.result, { what: "the waiter's lock after the holder's lease expired", timeoutMs: 15_000 });
    // Not before the holder's lease could expire (its TTL runs from the grant, on this clock).
    expect(performance.now() - requested).toBeGreaterThanOrEqual(2000);
    expect(acquired.key.toString()).toBe(`expire/${hex(waiterLease)}`);
    expect((await member.call('Lease', 'LeaseTimeToLive', { ID: holderLease })).TTL).toBe('-1');
    await member.call('Lock', 'Unlock', { key: acquired.key });
  });

  it('a waiter that cancels removes its key and leaves the queue intact', async () => {
    const [holderLease, quitterLease, patientLease] = [await grant(), await grant(), await grant()];
    const holder = await member.call('Lock', 'Lock', { name: b('cancel'), lease: holderLease });
    let from = member.kv.currentRevision + 1;
    const quitter = startLock('cancel', quitterLease);
    await nextEvent(`cancel/${hex(quitterLease)}`, 'put', from);
    from = member.kv.currentRevision + 1;
    const patient = startLock('cancel', patientLease);
    await nextEvent(`cancel/${hex(patientLease)}`, 'put', from);

    from = member.kv.currentRevision + 1;
    quitter.call.cancel();
    await expect(quitter.result).rejects.toMatchObject({ code: grpc.status.CANCELLED });
    await nextEvent(`cancel/${hex(quitterLease)}`, 'delete', from);
    expect(await get(`cancel/${hex(quitterLease)}`)).toEqual([]);
    // The holder still holds; the patient waiter still waits for it.
    expect((await get(`cancel/${hex(holderLease)}`)).length).toBe(1);
    expect(patient.isSettled()).toBe(false);
    await member.call('Lock', 'Unlock', { key: holder.key });
    expect((await patient.result).key.toString()).toBe(`cancel/${hex(patientLease)}`);
    await member.call('Lock', 'Unlock', { key: b(`cancel/${hex(patientLease)}`) });
  });

  it('lease 0 runs under a fresh 60 s lease; an unknown lease is "requested lease not found"', async () => {
    const response = await member.call('Lock', 'Lock', { name: b('nolease') });
    const [kv] = await get(response.key.toString());
    expect(response.key.toString()).toBe(`nolease/${hex(kv.lease)}`);
    const ttl = await member.call('Lease', 'LeaseTimeToLive', { ID: kv.lease });
    expect(ttl.grantedTTL).toBe('60');
    await member.call('Lock', 'Unlock', { key: response.key });

    await expect(member.call('Lock', 'Lock', { name: b('nolease'), lease: '123456789' })).rejects.toMatchObject({
      code: grpc.status.UNKNOWN,
      details: 'etcdserver: requested lease not found',
    });
    expect((await member.call('KV', 'Range', { key: b('nolease/'), rangeEnd: b('nolease0') })).kvs).toEqual([]);
  });

  it('Unlock of a missing key succeeds; of an empty key is "key is not provided"', async () => {
    const before = member.kv.currentRevision;
    const response = await member.call('Lock', 'Unlock', { key: b('never/locked') });
    expect(Number(response.header.revision)).toBe(before);
    await expect(member.call('Lock', 'Unlock', {})).rejects.toMatchObject({
      code: grpc.status.UNKNOWN,
      details: 'etcdserver: key is not provided',
    });
  });
});
