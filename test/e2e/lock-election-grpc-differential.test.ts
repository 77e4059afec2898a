// Differential test of the server-side v3lock and v3election services (which etcdctl does
// not use): the same gRPC calls against a fresh real etcd 3.4.23 and a fresh MetaStore must
// give the same transcript: response header revisions, keys, leader keys and kvs, observed
// leadership, and error codes with their texts. Cluster/member IDs and raft terms are left
// out; lease IDs are named L1, L2, ... in order of first appearance (in keys as hex too).
//
// Waiting is event-driven: a queued Lock/Campaign is known to be queued once a Watch stream on
// the prefix shows its key; a cancelled waiter is known to be gone once the Watch shows the
// delete. No sleeps. A Campaign that must outlast MetaStore's request timeout (set to 1 s here)
// waits for a 3 s lease to expire.

import * as grpc from '@grpc/grpc-js';
import { describe, it } from 'vitest';
import { clients } from '../../src/grpc/proto.js';
import { expectSameAsEtcd } from '../support/differential.js';
import { Inbox } from '../support/wait.js';

type Client = grpc.Client & Record<string, any>;
const WAIT_MS = 20_000;
const b = (text: string): Buffer => Buffer.from(text);

function unary(client: Client, method: string, request: object): Promise<any> {
  return new Promise((resolve, reject) =>
    client[method](request, (error: grpc.ServiceError | null, response: any) => (error ? reject(error) : resolve(response))),
  );
}

/** A call left running (Lock, Campaign) that can be cancelled; never an unhandled rejection. */
function pending(client: Client, method: string, request: object) {
  let call!: grpc.ClientUnaryCall;
  const result = new Promise<any>((resolve, reject) => {
    call = client[method](request, { deadline: Date.now() + WAIT_MS }, (error: grpc.ServiceError | null, response: any) =>
      error ? reject(error) : resolve(response),
    );
  });
  result.catch(() => undefined);
  return { result, call };
}

/** A prefix watch whose events can be awaited by count. */
function prefixWatch(watchClient: Client, prefix: string, startRevision: number) {
  const events = new Inbox<any>();
  const stream = watchClient.Watch();
  stream.on('data', (response: any) => events.push(...response.events));
  stream.on('error', () => undefined);
  const end = Buffer.from(prefix);
  end[end.length - 1]! += 1;
  stream.write({ createRequest: { key: b(prefix), rangeEnd: end, startRevision } });
  return {
    events: (count: number): Promise<any[]> => events.atLeast(count, { what: `${count} events on ${prefix}`, timeoutMs: WAIT_MS }),
    close: () => stream.cancel(),
  };
}

/** Observe messages, awaited by count. */
function observeStream(election: Client, name: string) {
  const messages = new Inbox<any>();
  const stream = election.Observe({ name: b(name) });
  stream.on('data', (message: any) => messages.push(message));
  stream.on('error', () => undefined);
  return {
    count: (n: number): Promise<any[]> => messages.atLeast(n, { what: `${n} Observe messages on ${name}`, timeoutMs: WAIT_MS }),
    close: () => stream.cancel(),
  };
}

async function session(endpoint: string): Promise<string[]> {
  const address = endpoint.replace(/^http:\/\//, '');
  const creds = grpc.credentials.createInsecure();
  const connect = (service: keyof typeof clients): Client => new clients[service](address, creds) as Client;
  const [lock, election, lease, kv, watch] = [connect('Lock'), connect('Election'), connect('Lease'), connect('KV'), connect('Watch')];
  const out: string[] = [];
  const leaseNames = new Map<string, string>();
  const leaseName = (id: string): string => {
    if (id === '0') return '0';
    let n = leaseNames.get(id);
    if (n === undefined) {
      n = `L${leaseNames.size + 1}`;
      leaseNames.set(id, n);
    }
    return n;
  };
  const text = (value: Buffer): string => value.toString().replace(/\/([0-9a-f]+)$/, (_m, hex: string) => `/${leaseName(BigInt(`0x${hex}`).toString())}`);
  const normalize = (value: unknown): unknown => {
    if (Buffer.isBuffer(value)) return text(value);
    if (Array.isArray(value)) return value.map(normalize);
    if (value !== null && typeof value === 'object') {
      const result: Record<string, unknown> = {};
      for (const [k, v] of Object.entries(value)) {
        if (k === 'header') result[k] = { revision: (v as { revision: string }).revision };
        else if (k === 'lease' && typeof v === 'string') result[k] = leaseName(v);
        else result[k] = normalize(v);
      }
      return result;
    }
    return value;
  };
  const log = (label: string, value: unknown): void => {
    out.push(`${label}: ${JSON.stringify(normalize(value))}`);
  };
  const call = async (client: Client, method: string, request: object, label = method): Promise<any> => {
    try {
      const response = await unary(client, method, request);
      log(label, response);
      return response;
    } catch (error) {
      const e = error as grpc.ServiceError;
      log(label, { code: grpc.status[e.code], details: e.details });
      return undefined;
    }
  };
  const grant = async (): Promise<string> => {
    const { ID } = await unary(lease, 'LeaseGrant', { TTL: 60 });
    leaseName(ID);
    return ID;
  };
  const revision = async (): Promise<number> => Number((await unary(kv, 'Range', { key: b('x') })).header.revision);

  try {
    const [l1, l2, l3, l4, l5, l6] = [await grant(), await grant(), await grant(), await grant(), await grant(), await grant()];

    // ---- Lock
    const held = await call(lock, 'Lock', { name: b('lk'), lease: l1 });
    await call(lock, 'Lock', { name: b('lk'), lease: l1 }, 'Lock again (same lease)');
    await call(lock, 'Lock', { name: b('lk'), lease: '12345' }, 'Lock (unknown lease)');
    await call(lock, 'Unlock', { key: held.key });
    await call(lock, 'Unlock', {}, 'Unlock (empty key)');
    await call(lock, 'Unlock', { key: b('lk/none') }, 'Unlock (missing key)');
    const anonymous = await call(lock, 'Lock', { name: b('anon') }, 'Lock (lease 0)');
    const anonymousLease = (await unary(kv, 'Range', { key: anonymous.key })).kvs[0].lease;
    log('session lease', await unary(lease, 'LeaseTimeToLive', { ID: anonymousLease }).then((r) => ({ grantedTTL: r.grantedTTL })));

    const lockWatch = prefixWatch(watch, 'lk/', (await revision()) + 1);
    const holder = await call(lock, 'Lock', { name: b('lk'), lease: l2 }, 'Lock holder');
    const waiter = pending(lock, 'Lock', { name: b('lk'), lease: l3 });
    await lockWatch.events(2);
    const quitter = pending(lock, 'Lock', { name: b('lk'), lease: l4 });
    await lockWatch.events(3);
    quitter.call.cancel();
    await quitter.result.catch((e: grpc.ServiceError) => log('Lock cancelled', { code: grpc.status[e.code] }));
    await lockWatch.events(4);
    await call(lock, 'Unlock', { key: holder.key }, 'Unlock holder');
    log('Lock waiter', await waiter.result);
    await call(lock, 'Unlock', { key: (await waiter.result).key }, 'Unlock waiter');
    log(
      'lock queue events',
      (await lockWatch.events(6)).map((e) => ({ type: e.type, key: e.kv.key, rev: e.kv.modRevision })),
    );
    lockWatch.close();

    // ---- Election
    await call(election, 'Leader', { name: b('el') }, 'Leader (none)');
    const observer = observeStream(election, 'el');
    const won = await call(election, 'Campaign', { name: b('el'), lease: l5, value: b('a') });
    await observer.count(1);
    await call(election, 'Campaign', { name: b('el'), lease: l5, value: b('a2') }, 'Campaign again (same lease, new value)');
    await call(election, 'Proclaim', { leader: won.leader, value: b('a3') });
    await call(election, 'Leader', { name: b('el') });
    const electWatch = prefixWatch(watch, 'el/', (await revision()) + 1);
    const second = pending(election, 'Campaign', { name: b('el'), lease: l6, value: b('b') });
    await electWatch.events(1);
    await call(election, 'Resign', { leader: won.leader });
    log('Campaign second', await second.result);
    await call(election, 'Proclaim', { leader: won.leader, value: b('stale') }, 'Proclaim (stale)');
    await call(election, 'Resign', { leader: won.leader }, 'Resign (stale)');
    await call(election, 'Proclaim', { value: b('x') }, 'Proclaim (no leader key)');
    await call(election, 'Resign', { leader: { name: b('el'), rev: 1 } }, 'Resign (empty key)');
    await call(election, 'Campaign', { name: b('el'), lease: '12345', value: b('x') }, 'Campaign (unknown lease)');
    await call(election, 'Leader', { name: b('el') });
    log('observed', await observer.count(4));
    observer.close();
    electWatch.close();
    await call(election, 'Resign', { leader: (await second.result).leader }, 'Resign second');
    await call(election, 'Leader', { name: b('el') }, 'Leader (none again)');

    // ---- Campaign with lease 0 (a session lease made by the server) while another candidate
    // leads: it waits, past MetaStore's request timeout (1 s in this test), until the leader's
    // 3 s lease expires, as etcd's does; no request timeout ends it.
    const { ID: shortLease } = await unary(lease, 'LeaseGrant', { TTL: 3 });
    leaseName(shortLease);
    await call(election, 'Campaign', { name: b('el0'), lease: shortLease, value: b('first') }, 'Campaign (3 s lease)');
    const anonymousCandidate = pending(election, 'Campaign', { name: b('el0'), value: b('anonymous') });
    await anonymousCandidate.result.then(
      (won) => log('Campaign (lease 0) elected after the leader expired', won),
      (e: grpc.ServiceError) => log('Campaign (lease 0) failed', { code: grpc.status[e.code], details: e.details }),
    );
    await call(election, 'Leader', { name: b('el0') }, 'Leader (the lease-0 candidate)');
  } finally {
    for (const client of [lock, election, lease, kv, watch]) client.close();
  }
  return out;
}

describe('v3lock / v3election gRPC services: MetaStore vs etcd 3.4.23', () => {
  it('lock queue with a cancelled waiter, election with proclaim/resign/observe, and the errors', async () => {
    // A short request timeout: Lock and Campaign must not be bound by it (etcd's are not).
    await expectSameAsEtcd(session, { metastoreEnv: { METASTORE_SERVER_LIMITS_REQUEST_TIMEOUT: '1s' } });
  }, 120_000);
});
