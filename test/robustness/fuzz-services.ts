// Requests for the services other than KV: random messages of each method's type (some
// damaged at the byte level), checked by the error oracle, plus the streams (Watch,
// LeaseKeepAlive). Which methods run alongside the KV lanes, and which need a phase of their
// own because they change what the KV model relies on, is decided here: `PHASED` lists the
// latter, and the test fails if a loaded method is in neither list or was never sent.

import * as grpc from '@grpc/grpc-js';
import { encodeMessage, messageType } from '../../src/grpc/proto.js';
import type { Fuzzer } from './fuzz-engine.js';
import { tryDecode } from './fuzz-engine.js';
import { mutate, randomMessage } from './fuzz-generators.js';
import { int64, type Wire } from './fuzz-model.js';
import type { MethodInfo } from './fuzz-wire.js';

const STABLE = new Set(['700000000001', '700000000002', '700000000003']);
const RESERVED = new Set([...STABLE, '700000000099', '9223372036854775807', '-1']);

/** Methods fuzzed next to the KV lanes, with weights (the cheap ones more often) and what a
 * request must not do there. bcrypt (cost 10, etcd's default) makes UserAdd and
 * UserChangePassword cost the member tens of milliseconds each, and Hash and HashKV read the
 * whole store: they come rarely (each still a few dozen times per 100,000 requests). */
export const ALONGSIDE: Record<string, { weight: number; safe?: (r: Wire, self: string) => boolean }> = {
  'KV.Range': { weight: 4 },
  'Watch.Watch': { weight: 4 },
  'Lease.LeaseGrant': { weight: 3, safe: (r) => !RESERVED.has(int64(r.ID).toString()) },
  'Lease.LeaseRevoke': { weight: 3, safe: (r) => !STABLE.has(int64(r.ID).toString()) },
  'Lease.LeaseKeepAlive': { weight: 3 },
  'Lease.LeaseTimeToLive': { weight: 3 },
  'Lease.LeaseLeases': { weight: 1 },
  'Cluster.MemberList': { weight: 2 },
  'Cluster.MemberUpdate': { weight: 1, safe: (r, self) => String(r.ID) !== self },
  'Cluster.MemberRemove': { weight: 1, safe: (r, self) => String(r.ID) !== self },
  'Cluster.MemberPromote': { weight: 1 },
  'Maintenance.Alarm': { weight: 2, safe: (r) => (r.action ?? 0) === 0 },
  'Maintenance.Status': { weight: 2 },
  'Maintenance.Hash': { weight: 0.3 },
  'Maintenance.HashKV': { weight: 0.3 },
  'Maintenance.Downgrade': { weight: 1 },
  'Auth.AuthDisable': { weight: 1 },
  'Auth.AuthStatus': { weight: 2 },
  'Auth.Authenticate': { weight: 2 },
  'Auth.UserAdd': { weight: 0.05 },
  'Auth.UserGet': { weight: 2 },
  'Auth.UserList': { weight: 1 },
  'Auth.UserDelete': { weight: 1 },
  'Auth.UserChangePassword': { weight: 0.05 },
  'Auth.UserGrantRole': { weight: 1, safe: (r) => r.role !== 'root' },
  'Auth.UserRevokeRole': { weight: 1 },
  'Auth.RoleAdd': { weight: 1, safe: (r) => r.name !== 'root' },
  'Auth.RoleGet': { weight: 1 },
  'Auth.RoleList': { weight: 1 },
  'Auth.RoleDelete': { weight: 1 },
  'Auth.RoleGrantPermission': { weight: 1 },
  'Auth.RoleRevokePermission': { weight: 1 },
};

/** Methods with phases of their own (fuzz.test.ts), or run through the KV lanes. */
export const PHASED = new Set([
  'KV.Put',
  'KV.DeleteRange',
  'KV.Txn',
  'KV.Compact',
  'Auth.AuthEnable',
  'Maintenance.Defragment',
  'Maintenance.Snapshot',
  'Maintenance.MoveLeader',
  'Cluster.MemberAdd',
  'Lock.Lock',
  'Lock.Unlock',
  'Election.Campaign',
  'Election.Proclaim',
  'Election.Leader',
  'Election.Resign',
  'Election.Observe',
]);

const WEIGHTED = Object.entries(ALONGSIDE);
const TOTAL_WEIGHT = WEIGHTED.reduce((sum, [, w]) => sum + w.weight, 0);

function pickAlongside(fuzzer: Fuzzer): string {
  let x = fuzzer.dice.float() * TOTAL_WEIGHT;
  for (const [name, { weight }] of WEIGHTED) {
    x -= weight;
    if (x < 0) return name;
  }
  return WEIGHTED[0]![0];
}

/** A random request for `info` (damaged at the byte level with probability `mutation`) that
 * passes `safe`; undefined when none was found in a few tries. */
export function randomBytes(fuzzer: Fuzzer, info: MethodInfo, mutation: number, safe?: (r: Wire) => boolean): Buffer | undefined {
  const type = messageType(info.requestType);
  for (let attempt = 0; attempt < 5; attempt++) {
    let bytes = encodeMessage(info.requestType, randomMessage(fuzzer.dice, type));
    if (fuzzer.dice.chance(mutation)) bytes = mutate(fuzzer.dice, bytes, type).bytes;
    const decoded = tryDecode(info, bytes);
    if (decoded === undefined || safe === undefined || safe(decoded)) return bytes;
  }
  return undefined;
}

/** One request to a method that runs alongside the lanes. */
export function alongsideShot(fuzzer: Fuzzer, mutation: number): () => Promise<void> {
  const name = pickAlongside(fuzzer);
  const info = fuzzer.info(name);
  const rule = ALONGSIDE[name]!;
  const self = fuzzer.options.memberId;
  if (name === 'Watch.Watch') return watchShot(fuzzer, info, mutation);
  if (name === 'Lease.LeaseKeepAlive') return keepAliveShot(fuzzer, info, mutation);
  const bytes = randomBytes(fuzzer, info, mutation, rule.safe && ((r) => rule.safe!(r, self)));
  if (bytes === undefined) return async () => undefined;
  return async () => {
    fuzzer.count(name);
    const answer = await fuzzer.client.unary(info, bytes, { deadlineMs: fuzzer.options.deadlineMs });
    fuzzer.checkAnswer(info, answer);
  };
}

/**
 * A watch stream: a create request (random, or damaged, followed by a plain one), then, once
 * the stream has answered, a few random requests. The stream must answer the create; the client
 * then cancels it (etcd keeps a watch stream open after a half-close).
 */
function watchShot(fuzzer: Fuzzer, info: MethodInfo, mutation: number): () => Promise<void> {
  const dice = fuzzer.dice;
  const create = randomMessage(dice, messageType('etcdserverpb.WatchCreateRequest'));
  if (dice.chance(0.5)) create.startRevision = dice.pick(['0', String(fuzzer.model.revision), '-5', '9223372036854775807']);
  const first = encodeMessage(info.requestType, { createRequest: create });
  const requests = dice.chance(mutation)
    ? [mutate(dice, first, messageType(info.requestType)).bytes, encodeMessage(info.requestType, { createRequest: { key: Buffer.from('w') } })]
    : [first];
  const extras = Array.from({ length: dice.int(3) }, () => encodeMessage(info.requestType, randomMessage(dice, messageType(info.requestType))));
  return async () => {
    fuzzer.count('Watch.Watch');
    const answer = await fuzzer.client.stream(info, requests, {
      deadlineMs: fuzzer.options.deadlineMs,
      afterFirst: extras,
      until: (messages) => messages.some((m) => m.created),
    });
    fuzzer.checkAnswer(info, answer);
    if (answer.code === grpc.status.OK && !answer.messages.some((m) => m.created)) fuzzer.fail(`Watch: stream ended without a created response`);
  };
}

/** A keep-alive stream: one answer per request, in order, with the lease's ID; a stable lease
 * has time left, a lease nobody granted has TTL 0. */
function keepAliveShot(fuzzer: Fuzzer, info: MethodInfo, mutation: number): () => Promise<void> {
  const dice = fuzzer.dice;
  const ids = Array.from({ length: 1 + dice.int(3) }, () => dice.pick([...STABLE, '700000000099', '0', String(dice.int(1 << 30))]));
  const damaged = dice.chance(mutation);
  const requests = ids.map((ID) => encodeMessage(info.requestType, { ID }));
  if (damaged) requests[0] = mutate(dice, requests[0]!, messageType(info.requestType)).bytes;
  return async () => {
    fuzzer.count('Lease.LeaseKeepAlive');
    const answer = await fuzzer.client.stream(info, requests, {
      deadlineMs: fuzzer.options.deadlineMs,
      until: damaged ? undefined : (m) => m.length >= ids.length,
    });
    fuzzer.checkAnswer(info, answer);
    if (damaged || answer.code !== grpc.status.OK) return;
    if (answer.messages.length !== ids.length) return fuzzer.fail(`LeaseKeepAlive: ${answer.messages.length} answers to ${ids.length} requests`);
    answer.messages.forEach((m, i) => {
      const id = ids[i]!;
      const ttl = Number(m.TTL);
      if (String(m.ID) !== id) fuzzer.fail(`LeaseKeepAlive: answer ${i} names lease ${m.ID}, asked ${id}`);
      if (STABLE.has(id) && ttl <= 0) fuzzer.fail(`LeaseKeepAlive: stable lease ${id} has TTL ${ttl}`);
      if (id === '700000000099' && ttl !== 0) fuzzer.fail(`LeaseKeepAlive: lease nobody granted has TTL ${ttl}`);
    });
  };
}

/** A Range across lanes (or everything): the content races other lanes, the answer must not. */
export function crossReadShot(fuzzer: Fuzzer): () => Promise<void> {
  const dice = fuzzer.dice;
  const request = {
    key: dice.pick([Buffer.from([0]), Buffer.from('f/'), Buffer.from('a')]),
    rangeEnd: dice.pick([Buffer.from([0]), Buffer.from('f0'), Buffer.alloc(0)]),
    limit: dice.pick(['0', '3', '-1']),
    serializable: dice.chance(0.5),
    countOnly: dice.chance(0.2),
  };
  return async () => {
    await fuzzer.unary('KV.Range', request);
  };
}
