// The v3election Election service over gRPC on an in-process member: campaign order,
// proclaim, leader, observe (the leader's value, its changes, the next leader, waiting for a
// first leader), resign, a cancelled campaign leaving no key, and etcd's error codes and texts
// (all of them codes.Unknown, as etcd sends them). No sleeps: observations are awaited on the stream.

import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { clients } from '../../src/grpc/proto.js';
import { HubWatch } from '../../src/server/recipes/lock-wait.js';
import { Inbox, within } from '../support/wait.js';
import { startInProcessMember, type InProcessMember } from './in-process.js';

let member: InProcessMember;
let election: grpc.Client & Record<string, any>;

beforeAll(async () => {
  member = await startInProcessMember();
  election = new clients.Election(member.endpoint, grpc.credentials.createInsecure()) as any;
});
afterAll(async () => {
  election.close();
  await member.close();
});

const b = (text: string): Buffer => Buffer.from(text);
const hex = (id: string): string => BigInt(id).toString(16);

async function grant(ttl = 60): Promise<string> {
  return (await member.call('Lease', 'LeaseGrant', { TTL: ttl })).ID;
}

function startCampaign(name: string, lease: string, value: string) {
  let settled = false;
  let call!: grpc.ClientUnaryCall;
  const result = new Promise<any>((resolve, reject) => {
    call = election.Campaign({ name: b(name), lease, value: b(value) }, (error: grpc.ServiceError | null, response: any) => {
      settled = true;
      if (error) reject(error);
      else resolve(response);
    });
  });
  result.catch(() => undefined);
  return { result, call, isSettled: () => settled };
}

/** An Observe stream whose messages can be awaited one by one. */
function startObserve(name: string) {
  const messages = new Inbox<any>();
  const stream: grpc.ClientReadableStream<any> = election.Observe({ name: b(name) });
  stream.on('data', (message: any) => messages.push(message));
  stream.on('error', () => undefined);
  return {
    stream,
    async next(): Promise<any> {
      const [message] = await messages.take(1, { what: `the next Observe message on ${name}`, timeoutMs: 15_000 });
      return message;
    },
    pending: () => messages.pending,
  };
}

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

const unknown = (details: string) => ({ code: grpc.status.UNKNOWN, details });

describe('Election service (in-process)', () => {
  it('campaign, leader, proclaim, observe, resign: leadership passes in campaign order', async () => {
    const [la, lb] = [await grant(), await grant()];
    await expect(member.call('Election', 'Leader', { name: b('e1') })).rejects.toMatchObject(unknown('election: no leader'));

    const won = await member.call('Election', 'Campaign', { name: b('e1'), lease: la, value: b('alpha') });
    expect(won.leader.name.toString()).toBe('e1');
    expect(won.leader.key.toString()).toBe(`e1/${hex(la)}`);
    expect(won.leader.lease).toBe(la);
    expect(won.leader.rev).toBe(won.header.revision);

    const observer = startObserve('e1');
    const first = await observer.next();
    expect(first.kv.value.toString()).toBe('alpha');
    expect(first.kv.key.toString()).toBe(`e1/${hex(la)}`);

    const from = member.kv.currentRevision + 1;
    const second = startCampaign('e1', lb, 'beta');
    await nextEvent(`e1/${hex(lb)}`, 'put', from);
    expect(second.isSettled()).toBe(false);

    const proclaimed = await member.call('Election', 'Proclaim', { leader: won.leader, value: b('alpha-2') });
    const changed = await observer.next();
    expect(changed.kv.value.toString()).toBe('alpha-2');
    expect(changed.header.revision).toBe(proclaimed.header.revision);
    const current = await member.call('Election', 'Leader', { name: b('e1') });
    expect(current.kv.value.toString()).toBe('alpha-2');
    expect(current.kv.version).toBe('2');

    const resigned = await member.call('Election', 'Resign', { leader: won.leader });
    const next = await second.result;
    expect(next.leader.key.toString()).toBe(`e1/${hex(lb)}`);
    // Campaign's header is that of its own txn, not of the moment it won.
    expect(Number(next.header.revision)).toBeLessThan(Number(resigned.header.revision));
    const handedOver = await observer.next();
    expect(handedOver.kv.value.toString()).toBe('beta');
    expect((await member.call('Election', 'Leader', { name: b('e1') })).kv.value.toString()).toBe('beta');

    // The old candidacy can neither proclaim nor resign any more; resigning is not an error.
    await expect(member.call('Election', 'Proclaim', { leader: won.leader, value: b('x') })).rejects.toMatchObject(unknown('election: not leader'));
    await member.call('Election', 'Resign', { leader: won.leader });
    expect((await member.call('Election', 'Leader', { name: b('e1') })).kv.value.toString()).toBe('beta');
    await member.call('Election', 'Resign', { leader: next.leader });
    await expect(member.call('Election', 'Leader', { name: b('e1') })).rejects.toMatchObject(unknown('election: no leader'));
    observer.stream.cancel();
  });

  it('observe without a leader waits for the first candidate; a revoked leader hands over', async () => {
    const observer = startObserve('e2');
    // Observe is registered once its own read is done; a round trip through Leader makes sure
    // the stream has started before the first campaign (either order is reported the same).
    await expect(member.call('Election', 'Leader', { name: b('e2') })).rejects.toMatchObject(unknown('election: no leader'));
    const [la, lb] = [await grant(), await grant()];
    const won = await member.call('Election', 'Campaign', { name: b('e2'), lease: la, value: b('one') });
    const first = await observer.next();
    expect(first.kv.value.toString()).toBe('one');
    expect(first.header.revision).toBe(won.leader.rev);

    const from = member.kv.currentRevision + 1;
    const second = startCampaign('e2', lb, 'two');
    await nextEvent(`e2/${hex(lb)}`, 'put', from);
    await member.call('Lease', 'LeaseRevoke', { ID: la });
    expect((await second.result).leader.key.toString()).toBe(`e2/${hex(lb)}`);
    expect((await observer.next()).kv.value.toString()).toBe('two');
    expect(observer.pending()).toBe(0);
    observer.stream.cancel();
    await member.call('Lease', 'LeaseRevoke', { ID: lb });
  });

  it('campaigning again with the same lease re-proclaims the value without queueing behind itself', async () => {
    const lease = await grant();
    const first = await member.call('Election', 'Campaign', { name: b('e3'), lease, value: b('v1') });
    const again = await member.call('Election', 'Campaign', { name: b('e3'), lease, value: b('v2') });
    expect(again.leader.rev).toBe(first.leader.rev);
    expect((await member.call('Election', 'Leader', { name: b('e3') })).kv.value.toString()).toBe('v2');
    await member.call('Lease', 'LeaseRevoke', { ID: lease });
  });

  it('a campaign cancelled while waiting resigns (its key is removed)', async () => {
    const [la, lb] = [await grant(), await grant()];
    await member.call('Election', 'Campaign', { name: b('e4'), lease: la, value: b('leader') });
    let from = member.kv.currentRevision + 1;
    const waiting = startCampaign('e4', lb, 'hopeful');
    await nextEvent(`e4/${hex(lb)}`, 'put', from);
    from = member.kv.currentRevision + 1;
    waiting.call.cancel();
    await expect(waiting.result).rejects.toMatchObject({ code: grpc.status.CANCELLED });
    await nextEvent(`e4/${hex(lb)}`, 'delete', from);
    expect((await member.call('KV', 'Range', { key: b(`e4/${hex(lb)}`) })).kvs).toEqual([]);
    expect((await member.call('Election', 'Leader', { name: b('e4') })).kv.value.toString()).toBe('leader');
    await member.call('Lease', 'LeaseRevoke', { ID: la });
  });

  it("etcd's errors: missing leader key, empty key, unknown lease; lease 0 campaigns under a 60 s lease", async () => {
    await expect(member.call('Election', 'Proclaim', { value: b('x') })).rejects.toMatchObject(unknown('"leader" field must be provided'));
    await expect(member.call('Election', 'Resign', {})).rejects.toMatchObject(unknown('"leader" field must be provided'));
    await expect(member.call('Election', 'Proclaim', { leader: { name: b('e5'), rev: 3, lease: 1 }, value: b('x') })).rejects.toMatchObject({
      code: grpc.status.UNKNOWN,
      details: 'etcdserver: key is not provided',
    });
    await expect(member.call('Election', 'Campaign', { name: b('e5'), lease: '987654321', value: b('x') })).rejects.toMatchObject({
      code: grpc.status.UNKNOWN,
      details: 'etcdserver: requested lease not found',
    });
    const won = await member.call('Election', 'Campaign', { name: b('e5'), value: b('anon') });
    expect(won.leader.lease).not.toBe('0');
    expect(won.leader.key.toString()).toBe(`e5/${hex(won.leader.lease)}`);
    expect((await member.call('Lease', 'LeaseTimeToLive', { ID: won.leader.lease })).grantedTTL).toBe('60');
    await member.call('Election', 'Resign', { leader: won.leader });
  });
});
