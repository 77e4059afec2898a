// Fuzzes every RPC of every service against live members (bin/metastore, so a crash is seen
// as the process dying): structured requests with valid and out-of-range values, oversized
// ones, and protobuf damaged at the byte level (truncated, flipped, wrong wire types, unknown
// fields). Oracles: the process stays up; every call answers before its deadline; every error
// is one etcd gives (src/grpc/errors.ts, i.e. the project's shared/etcd-errors.tsv, plus the few texts
// etcd sends outside that table); KV answers equal a model of the store's history, and every few
// rounds the whole KV space and the revision equal the model (a refused request changed
// nothing). Calls that change what the model relies on (auth, alarms, member changes,
// defragment, snapshot, move-leader, lock and election keys) run in phases of their own; the
// member must serve correctly after each.
//
// Modes (environment):
//   METASTORE_FUZZ_REQUESTS  requests in the main phase (default 100000: npm test, CI's
//                            short mode); e.g. 1000000 for a long run
//   METASTORE_FUZZ_SEED      the seed (default: a fixed one, so npm test is repeatable; set
//                            it, or METASTORE_FUZZ_SEED=random, to explore; the test prints
//                            the seed it used).
//   A seed replays the same requests; answers that race (which of two concurrent writes took
//   the lower revision) can still steer later rounds differently.
// Requires the build (dist/): `npx tsc -p tsconfig.build.json` (npm test and npm run fuzz do
// it first).

import { createHash, randomInt } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { ETCD_ERRORS, type EtcdErrorCode } from '../../src/grpc/errors.js';
import { encodeMessage } from '../../src/grpc/proto.js';
import { freePorts } from '../support/ports.js';
import { startMetaStore, type MetaStoreHandle } from '../support/servers.js';
import { Fuzzer } from './fuzz-engine.js';
import { lanePrefix, lanePut, laneRange } from './fuzz-generators.js';
import { ALONGSIDE, PHASED, alongsideShot, crossReadShot, randomBytes } from './fuzz-services.js';
import { recipePhase } from './fuzz-recipes.js';
import { methodTable } from './fuzz-wire.js';
import type { Wire } from './fuzz-model.js';

// 100,000 by default (npm test, CI's short mode); e.g. METASTORE_FUZZ_REQUESTS=1000000 for a
// long run.
const REQUESTS = Number(process.env.METASTORE_FUZZ_REQUESTS ?? 100_000);
/** The default seed: fixed, so a run is repeatable; METASTORE_FUZZ_SEED=random explores. */
const DEFAULT_SEED = 20261206;
const seedSetting = process.env.METASTORE_FUZZ_SEED;
const SEED = seedSetting === 'random' ? randomInt(2 ** 31) : Number(seedSetting ?? DEFAULT_SEED);
/**
 * The main phase runs this many members, each with an engine of its own (seeds SEED, SEED+1,
 * ...), side by side: one engine and its member mostly take turns (each waits for the other
 * about 40% of the time in a profile), so two pairs can keep two cores busy. The later
 * phases use the first member.
 */
const ENGINES = 2;
const MAX_TXN_OPS = 8;
const MAX_REQUEST_BYTES = 8192;
const ROUND_SIZE = 192;
const LANES = 128;
const DEADLINE_MS = 20_000;
const REPLAY = `seed ${SEED} (replay: METASTORE_FUZZ_SEED=${SEED} METASTORE_FUZZ_REQUESTS=${REQUESTS} npx vitest run test/robustness/fuzz.test.ts)`;

interface Pair {
  server: MetaStoreHandle;
  fuzzer: Fuzzer;
}

const pairs: Pair[] = [];
/** Every member started, stopped at the end even if its engine never got going. */
const members: MetaStoreHandle[] = [];
/** The first member's engine: every phase after the main one uses it (and that member). */
let fuzzer: Fuzzer;

async function startPair(seed: number): Promise<Pair> {
  const started = await startMetaStore({ extraArgs: ['--max-txn-ops', String(MAX_TXN_OPS), '--max-request-bytes', String(MAX_REQUEST_BYTES)] });
  members.push(started);
  const options = {
    seed,
    endpoint: `127.0.0.1:${started.clientPort}`,
    maxTxnOps: MAX_TXN_OPS,
    maxRequestBytes: MAX_REQUEST_BYTES,
    deadlineMs: DEADLINE_MS,
    lanes: LANES,
  };
  const probe = new Fuzzer({ ...options, memberId: '' });
  const status = await probe.client.unary(probe.info('Maintenance.Status'), encodeMessage('etcdserverpb.StatusRequest', {}), { deadlineMs: DEADLINE_MS });
  probe.client.close();
  const engine = new Fuzzer({ ...options, memberId: String(status.messages[0]?.header.memberId) });
  await engine.init();
  return { server: started, fuzzer: engine };
}

beforeAll(async () => {
  pairs.push(...(await Promise.all(Array.from({ length: ENGINES }, (_, i) => startPair(SEED + i)))));
  fuzzer = pairs[0]!.fuzzer;
});

beforeEach(() => {
  // Each phase is judged on its own findings.
  for (const pair of pairs) pair.fuzzer.failures.length = 0;
});

afterAll(async () => {
  for (const pair of pairs) pair.fuzzer.client.close();
  await Promise.all(members.map((member) => member.destroy()));
});

/** Fails the test with what went wrong, the seed, and the member's state. */
async function verdict(phase: string, pair: Pair = pairs[0]!): Promise<void> {
  if (pair.server.isRunning()) await pair.fuzzer.sweep();
  if (!pair.server.isRunning()) {
    // Slow-request warnings would hide the reason under load.
    const log = pair.server
      .logs()
      .split('\n')
      .filter((line) => !line.includes('"slow request"'))
      .join('\n');
    pair.fuzzer.failures.unshift(`the member exited during ${phase}; its log ends:\n${log.slice(-4000)}`);
  }
  expect(pair.fuzzer.failures, `${phase} (engine seed ${pair.fuzzer.options.seed}): ${REPLAY}`).toEqual([]);
}

/** CPU seconds the member process has used so far (Linux /proc). */
function memberCpuSeconds(member: MetaStoreHandle): number {
  if (!existsSync(`/proc/${member.pid}/stat`)) return Number.NaN;
  const fields = readFileSync(`/proc/${member.pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

function shuffledLanes(engine: Fuzzer): number[] {
  const lanes = Array.from({ length: LANES }, (_, i) => i);
  for (let i = lanes.length - 1; i > 0; i--) {
    const j = engine.dice.int(i + 1);
    [lanes[i], lanes[j]] = [lanes[j]!, lanes[i]!];
  }
  return lanes;
}

/** One round of the main mix: lane KV requests (some damaged or oversized), cross-lane reads,
 * and calls to every other service that can run alongside. */
function mixedRound(engine: Fuzzer): Array<() => Promise<void>> {
  const lanes = shuffledLanes(engine);
  return Array.from({ length: ROUND_SIZE }, () => {
    const x = engine.dice.float();
    if (x < 0.45) {
      const y = engine.dice.float();
      return engine.laneShot(lanes.pop()!, y < 0.82 ? 'structured' : y < 0.995 ? 'mutated' : 'oversized');
    }
    if (x < 0.5) return crossReadShot(engine);
    return alongsideShot(engine, 0.2);
  });
}

/** The main phase's rounds on one member until `requests` were sent (or something failed). */
async function mainRounds({ server: member, fuzzer: engine }: Pair, requests: number): Promise<void> {
  for (let round = 1; engine.total < requests && engine.failures.length === 0; round++) {
    const shots = round % 25 === 0 ? [engine.compactShot(), ...Array.from({ length: 16 }, () => alongsideShot(engine, 0.2))] : mixedRound(engine);
    await engine.round(shots);
    if (!member.isRunning()) break;
  }
}

function laneRound(count: number): Array<() => Promise<void>> {
  const lanes = shuffledLanes(fuzzer);
  return Array.from({ length: count }, () => fuzzer.laneShot(lanes.pop()!, 'structured'));
}

async function expectRefused(name: string, request: object, codes: EtcdErrorCode[], token?: string): Promise<void> {
  const answer = await fuzzer.unary(name, request, token);
  const ok = codes.some((c) => ETCD_ERRORS[c].code === answer.code && ETCD_ERRORS[c].message === answer.details);
  if (!ok) fuzzer.fail(`${name} ${JSON.stringify(request)}: answered ${grpc.status[answer.code]} "${answer.details}", expected ${codes.join('|')}`);
}

async function expectOk(name: string, request: object, token?: string) {
  const answer = await fuzzer.unary(name, request, token);
  if (answer.code !== grpc.status.OK) fuzzer.fail(`${name} ${JSON.stringify(request)}: answered ${grpc.status[answer.code]} "${answer.details}"`);
  return answer.messages[0];
}

/** `count` random requests to `name` (a fifth damaged), each checked by the error oracle. */
async function randomCalls(name: string, count: number, token?: string, safe?: (r: Wire) => boolean): Promise<void> {
  const info = fuzzer.info(name);
  await Promise.all(
    Array.from({ length: count }, async () => {
      const bytes = randomBytes(fuzzer, info, 0.2, safe);
      if (bytes === undefined) return;
      fuzzer.count(name);
      fuzzer.checkAnswer(info, await fuzzer.client.unary(info, bytes, { deadlineMs: fuzzer.options.deadlineMs, token }));
    }),
  );
}

describe(`fuzz every RPC (${REQUESTS} requests, seed ${SEED})`, () => {
  it(
    'main phase: KV lanes checked against the model, every other service alongside',
    async () => {
      const started = performance.now();
      const cpuBefore = process.cpuUsage();
      await Promise.all(pairs.map((pair) => mainRounds(pair, Math.ceil(REQUESTS / ENGINES))));
      const seconds = (performance.now() - started) / 1000;
      const cpu = process.cpuUsage(cpuBefore);
      const total = pairs.reduce((sum, pair) => sum + pair.fuzzer.total, 0);
      const members = pairs.map((pair) => memberCpuSeconds(pair.server).toFixed(1)).join(' + ');
      console.log(
        `fuzz main phase: ${total} requests on ${ENGINES} members in ${seconds.toFixed(1)} s (${Math.round(total / seconds)}/s; CPU: test ${((cpu.user + cpu.system) / 1e6).toFixed(1)} s, members ${members} s), ${REPLAY}`,
      );
      for (const pair of pairs) await verdict('main phase', pair);
      expect(total).toBeGreaterThanOrEqual(REQUESTS);
    },
    // A generous bound (a loaded machine is slow); every call has its own deadline (a hang).
    120_000 + REQUESTS * 10,
  );

  it('lock and election: random and damaged requests, then the recipes work and leave the KV lanes alone', async () => {
    await recipePhase(fuzzer);
    await fuzzer.rebase();
    await verdict('recipe phase');
  });

  it('alarms: NOSPACE refuses writes and changes nothing; random alarm requests; disarmed, writes work again', async () => {
    const self = fuzzer.options.memberId;
    await expectOk('Maintenance.Alarm', { action: 1, memberID: self, alarm: 1 });
    const put = lanePut(fuzzer.dice, fuzzer.laneContext(0));
    await expectRefused(
      'KV.Put',
      { ...put, key: Buffer.from(`${lanePrefix(0)}a`), lease: '0', ignoreValue: false, ignoreLease: false, value: Buffer.from('x') },
      ['NoSpace'],
    );
    await expectRefused('Lease.LeaseGrant', { TTL: '100' }, ['NoSpace']);
    await fuzzer.round([fuzzer.kvShot('Range', laneRange(fuzzer.dice, fuzzer.laneContext(1)))]);
    await randomCalls('Maintenance.Alarm', 60);
    const listed = await expectOk('Maintenance.Alarm', { action: 0 });
    for (const alarm of listed?.alarms ?? []) await expectOk('Maintenance.Alarm', { action: 2, memberID: alarm.memberID, alarm: alarm.alarm });
    const after = await expectOk('Maintenance.Alarm', { action: 0 });
    expect(after?.alarms ?? []).toEqual([]);
    await fuzzer.round(laneRound(32));
    await verdict('alarm phase');
  });

  it('defragment, snapshot and move-leader: the member keeps serving and the data stays', async () => {
    const defrag = fuzzer.info('Maintenance.Defragment');
    await fuzzer.round([
      ...laneRound(24),
      ...Array.from({ length: 2 }, () => async () => {
        fuzzer.count('Maintenance.Defragment');
        const answer = await fuzzer.client.unary(defrag, Buffer.alloc(0), { deadlineMs: fuzzer.options.deadlineMs });
        fuzzer.checkAnswer(defrag, answer);
        if (answer.code !== grpc.status.OK) fuzzer.fail(`Defragment: ${answer.details}`);
      }),
    ]);
    await randomCalls('Maintenance.Defragment', 3);
    const snapshot = fuzzer.info('Maintenance.Snapshot');
    fuzzer.count('Maintenance.Snapshot');
    const answer = await fuzzer.client.stream(snapshot, [Buffer.alloc(0)], { deadlineMs: 60_000 });
    fuzzer.checkAnswer(snapshot, answer);
    expect(answer.code).toBe(grpc.status.OK);
    const blobs = answer.messages.map((m) => Buffer.from(m.blob));
    const digest = createHash('sha256')
      .update(Buffer.concat(blobs.slice(0, -1)))
      .digest();
    expect(blobs.at(-1)!.equals(digest), 'the last snapshot message carries the SHA-256 of the rest').toBe(true);
    for (const target of [fuzzer.options.memberId, '0', '12345', '18446744073709551615']) {
      const info = fuzzer.info('Maintenance.MoveLeader');
      fuzzer.count('Maintenance.MoveLeader');
      fuzzer.checkAnswer(
        info,
        await fuzzer.client.unary(info, encodeMessage(info.requestType, { targetID: target }), { deadlineMs: fuzzer.options.deadlineMs }),
      );
    }
    await randomCalls('Maintenance.MoveLeader', 10);
    await fuzzer.round(laneRound(32));
    await verdict('defragment/snapshot/move-leader phase');
  });

  it('membership: a learner added, updated, refused promotion, removed; random member requests; still one member', async () => {
    // No voter is added: etcd lets a one-member cluster add its second voter, which then has no
    // quorum until that member starts.
    const [learnerPort, otherPort] = await freePorts(2);
    const added = await expectOk('Cluster.MemberAdd', { peerURLs: [`http://127.0.0.1:${learnerPort}`], isLearner: true });
    const learner = String(added?.member?.ID);
    await expectRefused('Cluster.MemberAdd', { peerURLs: [`http://127.0.0.1:${learnerPort}`], isLearner: true }, ['PeerURLExist']);
    await expectRefused('Cluster.MemberAdd', { peerURLs: ['127.0.0.1:2380'], isLearner: true }, ['MemberBadURLs']);
    await expectOk('Cluster.MemberUpdate', { ID: learner, peerURLs: [`http://127.0.0.1:${otherPort}`] });
    await expectRefused('Cluster.MemberPromote', { ID: learner }, ['LearnerNotReady']);
    await randomCalls('Cluster.MemberAdd', 30, undefined, (r) => r.isLearner === true);
    await expectOk('Cluster.MemberRemove', { ID: learner });
    await expectRefused('Cluster.MemberRemove', { ID: fuzzer.options.memberId }, ['MemberNotEnoughStarted']);
    const list = await expectOk('Cluster.MemberList', {});
    expect((list?.members ?? []).map((m: { ID: string }) => String(m.ID))).toEqual([fuzzer.options.memberId]);
    await fuzzer.round(laneRound(32));
    await verdict('membership phase');
  });

  it('auth: enabled, every request without a valid token refused and nothing changed; root writes; disabled', async () => {
    await fuzzer.unary('Auth.UserDelete', { name: 'root' });
    await expectOk('Auth.UserAdd', { name: 'root', password: 'fuzz' });
    await fuzzer.unary('Auth.RoleAdd', { name: 'root' });
    await expectOk('Auth.UserGrantRole', { user: 'root', role: 'root' });
    await expectOk('Auth.AuthEnable', {});
    // Once enabled, enabling again needs root: etcd answers "user name is empty" without a token.
    await randomCalls('Auth.AuthEnable', 3);
    const refusals: EtcdErrorCode[] = ['UserEmpty', 'InvalidAuthToken', 'PermissionDenied'];
    for (const token of [undefined, 'not-a-token']) {
      await expectRefused('KV.Put', { key: Buffer.from(`${lanePrefix(2)}a`), value: Buffer.from('x') }, refusals, token);
      await expectRefused('KV.Range', { key: Buffer.from(`${lanePrefix(2)}a`) }, refusals, token);
      await expectRefused('Auth.AuthDisable', {}, refusals, token);
    }
    for (const name of Object.keys(ALONGSIDE)) if (name !== 'Watch.Watch' && name !== 'Lease.LeaseKeepAlive') await randomCalls(name, 3, 'not-a-token');
    const login = await expectOk('Auth.Authenticate', { name: 'root', password: 'fuzz' });
    const token = String(login?.token);
    // The round's sweep goes as root too: every fourth round sweeps, and a sweep without a token
    // while auth is on is refused "user name is empty", as etcd refuses it.
    await fuzzer.round(
      Array.from({ length: 8 }, (_, i) => fuzzer.kvShot('Put', { key: Buffer.from(`${lanePrefix(i)}auth`), value: Buffer.from('v') }, token)),
      token,
    );
    await expectOk('Auth.AuthDisable', {}, token);
    await fuzzer.round(laneRound(32));
    await verdict('auth phase');
  });

  it('every method of every loaded service was fuzzed', () => {
    const missing = methodTable()
      .map((m) => `${m.service}.${m.method}`)
      .filter((name) => !(name in ALONGSIDE) && !PHASED.has(name));
    expect(missing, 'methods the fuzz test does not know: add them to ALONGSIDE or a phase').toEqual([]);
    const unsent = methodTable()
      .map((m) => `${m.service}.${m.method}`)
      .filter((name) => pairs.every((pair) => (pair.fuzzer.sent.get(name) ?? 0) === 0));
    expect(unsent, 'methods never sent').toEqual([]);
  });
});
