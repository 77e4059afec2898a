// The lock and election phase of the fuzz test. Recipe keys live outside the KV lanes, and
// every name is fresh, so no call waits for another: each Lock and Campaign is granted at
// once, and a call that blocks anyway is a hang. Random and damaged requests whose name could
// collide (or that would touch the lanes) are not sent. At the end every lease but the lanes'
// stable ones is revoked, which removes the session keys the recipes left.

import * as grpc from '@grpc/grpc-js';
import { encodeMessage } from '../../src/grpc/proto.js';
import { tryDecode, type Fuzzer } from './fuzz-engine.js';
import { randomBytes } from './fuzz-services.js';
import type { Wire } from './fuzz-model.js';

const STABLE = ['700000000001', '700000000002', '700000000003'];
/** How long a random Observe (of an election that may have no leader, so it waits by design)
 * is left open before the client ends it. */
const OBSERVE_WAIT_MS = 500;
const RECIPE_METHODS = ['Lock.Lock', 'Lock.Unlock', 'Election.Campaign', 'Election.Proclaim', 'Election.Leader', 'Election.Resign', 'Election.Observe'];

async function call(
  fuzzer: Fuzzer,
  name: string,
  request: Wire,
  problem: (answer: { code: number; details: string; messages: Wire[] }) => string | undefined,
): Promise<Wire | undefined> {
  const info = fuzzer.info(name);
  fuzzer.count(name);
  const bytes = encodeMessage(info.requestType, request);
  const answer = info.responseStream
    ? await fuzzer.client.stream(info, [bytes], { deadlineMs: fuzzer.options.deadlineMs, until: (m) => m.length >= 1 })
    : await fuzzer.client.unary(info, bytes, { deadlineMs: fuzzer.options.deadlineMs });
  fuzzer.checkAnswer(info, answer);
  const wrong = problem(answer);
  if (wrong) fuzzer.fail(`${name} ${JSON.stringify(request)}: ${wrong}`);
  return answer.messages[0];
}

const ok = (a: { code: number; details: string }): string | undefined =>
  a.code === grpc.status.OK ? undefined : `answered ${grpc.status[a.code]} "${a.details}"`;

/** Lock then Unlock on a fresh name; the key is the name's queue key. */
async function lockCycle(fuzzer: Fuzzer, name: string): Promise<void> {
  const lease = fuzzer.dice.pick(['0', ...STABLE]);
  const locked = await call(fuzzer, 'Lock.Lock', { name: Buffer.from(name), lease }, ok);
  const key = Buffer.from(locked?.key ?? []);
  if (!key.toString('latin1').startsWith(`${name}/`)) fuzzer.fail(`Lock ${name}: key ${key.toString('latin1')} is not under the name`);
  await call(fuzzer, 'Lock.Unlock', { key }, ok);
}

/** Campaign, Proclaim, Leader, Observe, Resign on a fresh name, then "no leader". */
async function electionCycle(fuzzer: Fuzzer, name: string): Promise<void> {
  const lease = fuzzer.dice.pick(['0', ...STABLE]);
  const campaign = await call(fuzzer, 'Election.Campaign', { name: Buffer.from(name), lease, value: Buffer.from('first') }, ok);
  const leader = campaign?.leader;
  if (leader === undefined || leader === null) return;
  await call(fuzzer, 'Election.Proclaim', { leader, value: Buffer.from('second') }, ok);
  const current = await call(fuzzer, 'Election.Leader', { name: Buffer.from(name) }, ok);
  if (Buffer.from(current?.kv?.value ?? []).toString() !== 'second') fuzzer.fail(`Election ${name}: leader value ${current?.kv?.value}, proclaimed "second"`);
  const observed = await call(fuzzer, 'Election.Observe', { name: Buffer.from(name) }, (a) =>
    a.messages.length > 0 ? undefined : `no leader observed (${a.details})`,
  );
  if (Buffer.from(observed?.kv?.value ?? []).toString() !== 'second') fuzzer.fail(`Election ${name}: observed ${observed?.kv?.value}`);
  await call(fuzzer, 'Election.Resign', { leader }, ok);
  await call(fuzzer, 'Election.Leader', { name: Buffer.from(name) }, (a) =>
    a.details === 'election: no leader' ? undefined : `after resign: ${a.details || 'OK'}`,
  );
}

/** A random or damaged recipe request that names a fresh election or lock (or none at all). */
async function randomRecipeCall(fuzzer: Fuzzer, fresh: string): Promise<void> {
  const name = fuzzer.dice.pick(RECIPE_METHODS);
  const info = fuzzer.info(name);
  const safe = (r: Wire): boolean => {
    const names = [r.name, r.key, r.leader?.name, r.leader?.key].filter((v) => v !== undefined && v !== null).map((v) => Buffer.from(v).toString('latin1'));
    // Blocking calls only on the fresh name; nothing that reaches into the KV lanes.
    const blocking = name === 'Lock.Lock' || name === 'Election.Campaign' || name === 'Election.Observe';
    return names.every((n) => !n.startsWith('f/') && !n.startsWith('f')) && (!blocking || Buffer.from(r.name ?? []).toString('latin1') === fresh);
  };
  const bytes = randomBytes(fuzzer, info, 0.2, (r) => {
    if (name === 'Lock.Lock' || name === 'Election.Campaign' || name === 'Election.Observe') r.name = Buffer.from(fresh);
    return safe(r);
  });
  if (bytes === undefined) return;
  const withName = rewriteName(fuzzer, info.requestType, bytes, fresh, name);
  if (withName === undefined) return;
  fuzzer.count(name);
  const answer = info.responseStream
    ? await fuzzer.client.stream(info, [withName], { deadlineMs: OBSERVE_WAIT_MS, until: (m) => m.length >= 1 })
    : await fuzzer.client.unary(info, withName, { deadlineMs: fuzzer.options.deadlineMs });
  // Observe of an election nobody campaigns in waits by design.
  fuzzer.checkAnswer(info, answer, name === 'Election.Observe');
}

/** Blocking recipes get the fresh name written into the (decoded) request; damaged bytes that
 * do not decode go as they are. */
function rewriteName(fuzzer: Fuzzer, type: string, bytes: Buffer, fresh: string, name: string): Buffer | undefined {
  if (name !== 'Lock.Lock' && name !== 'Election.Campaign' && name !== 'Election.Observe') return bytes;
  const decoded = tryDecode(fuzzer.info(name), bytes);
  if (decoded === undefined) return bytes;
  return encodeMessage(type, { ...decoded, name: Buffer.from(fresh) });
}

export async function recipePhase(fuzzer: Fuzzer): Promise<void> {
  for (let round = 0; round < 20; round++) {
    await Promise.all(
      Array.from({ length: 16 }, async (_, i) => {
        const fresh = `r/${round}/${i}`;
        const kind = fuzzer.dice.int(3);
        if (kind === 0) await lockCycle(fuzzer, fresh);
        else if (kind === 1) await electionCycle(fuzzer, fresh);
        else await randomRecipeCall(fuzzer, `${fresh}/x`);
      }),
    );
  }
  // Revoke the session leases (and the keys on them) so none expires in a later phase.
  const leases = await fuzzer.unary('Lease.LeaseLeases', {});
  for (const { ID } of leases.messages[0]?.leases ?? []) {
    if (!STABLE.includes(String(ID))) await fuzzer.unary('Lease.LeaseRevoke', { ID });
  }
}
