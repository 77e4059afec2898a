// The fuzz test's engine: rounds of concurrent requests against a live member, each answer
// checked as it arrives, the KV model checked against the whole store after every round.
//
// Round discipline (what keeps the model exact while many requests are in flight):
// - each lane (key prefix "f/<lane>/") gets at most one KV request per round, so a lane's
//   state is known when its request is answered, whatever the other lanes do;
// - reads never name a revision between the round's start and its end (only current, past,
//   negative or far-future ones), so "future" and "compacted" have one right answer;
// - every write that changed something took a distinct revision, and together they are
//   exactly the next n revisions; a refused request changed nothing (the sweep at the end of
//   the round compares every key and the revision);
// - Compact runs in rounds of its own, without lane traffic.

import * as grpc from '@grpc/grpc-js';
import { decodeMessage, encodeMessage, messageType } from '../../src/grpc/proto.js';
import type { EtcdErrorCode } from '../../src/grpc/errors.js';
import { ETCD_ERRORS } from '../../src/grpc/errors.js';
import { confined, rangeProblem, writeProblem } from './fuzz-checks.js';
import { Dice, laneDeleteRange, laneEnd, lanePrefix, lanePut, laneRange, laneTxn, mutate, randomMessage, type LaneContext } from './fuzz-generators.js';
import { KvModel, int64, type Wire } from './fuzz-model.js';
import { errorProblem, methodTable, RawClient, UNDECODABLE, type Answer, type MethodInfo } from './fuzz-wire.js';

export interface FuzzOptions {
  seed: number;
  endpoint: string;
  memberId: string;
  maxTxnOps: number;
  maxRequestBytes: number;
  /** An answer later than this is a hang. */
  deadlineMs: number;
  lanes: number;
}

/** How often the whole KV space is compared with the model (each phase also ends with a sweep). */
const SWEEP_EVERY_ROUNDS = 4;

/** Leases the KV lanes attach keys to: granted once with a long TTL, never revoked by the fuzzer. */
const STABLE_LEASES = ['700000000001', '700000000002', '700000000003'];
/** Lease IDs nobody grants. */
const MISSING_LEASES = ['700000000099', '9223372036854775807', '-1'];

export class Fuzzer {
  readonly dice: Dice;
  readonly client: RawClient;
  readonly methods: Map<string, MethodInfo>;
  /** Requests sent, per "Service.Method". */
  readonly sent = new Map<string, number>();
  readonly failures: string[] = [];
  model!: KvModel;
  private roundStart = 0;
  private roundWrites: number[] = [];
  private roundReads: number[] = [];
  private rounds = 0;

  constructor(readonly options: FuzzOptions) {
    this.dice = new Dice(options.seed);
    this.client = new RawClient(options.endpoint);
    this.methods = new Map(methodTable().map((m) => [`${m.service}.${m.method}`, m]));
  }

  get total(): number {
    let n = 0;
    for (const count of this.sent.values()) n += count;
    return n;
  }

  info(name: string): MethodInfo {
    const info = this.methods.get(name);
    if (info === undefined) throw new Error(`no method ${name}`);
    return info;
  }

  fail(problem: string): void {
    if (this.failures.length < 20) this.failures.push(problem);
  }

  async init(): Promise<void> {
    for (const id of STABLE_LEASES) {
      const answer = await this.unary('Lease.LeaseGrant', { ID: id, TTL: '100000' });
      if (answer.code !== grpc.status.OK) throw new Error(`stable lease ${id}: ${answer.details}`);
    }
    const range = await this.unary('KV.Range', { key: Buffer.from('f/'), rangeEnd: Buffer.from('f0') });
    this.model = new KvModel(Number(range.messages[0]!.header.revision));
    for (const id of STABLE_LEASES) this.model.leases.add(BigInt(id));
  }

  // ---------------------------------------------------------------- calls

  /** Sends `bytes` (or `request` encoded) to a method; streams are handled by the caller. */
  async unary(name: string, request: Wire | Buffer, token?: string): Promise<Answer> {
    const info = this.info(name);
    const bytes = Buffer.isBuffer(request) ? request : encodeMessage(info.requestType, request);
    this.count(name);
    const answer = await this.client.unary(info, bytes, { deadlineMs: this.options.deadlineMs, token });
    this.checkAnswer(info, answer);
    return answer;
  }

  count(name: string): void {
    this.sent.set(name, (this.sent.get(name) ?? 0) + 1);
  }

  /** What holds for every answer: in time, an etcd error or a response with our header. */
  checkAnswer(info: MethodInfo, answer: Answer, mayBlock = false): void {
    if (answer.code === grpc.status.DEADLINE_EXCEEDED && !mayBlock) {
      this.fail(`${info.path}: no answer within ${this.options.deadlineMs} ms (hang)`);
      return;
    }
    if (answer.code !== grpc.status.OK && answer.code !== grpc.status.DEADLINE_EXCEEDED) {
      const problem = errorProblem(info, answer);
      if (problem) this.fail(problem);
    }
    for (const message of answer.messages) {
      if (message.header !== null && message.header !== undefined && String(message.header.memberId) !== this.options.memberId) {
        this.fail(`${info.path}: header names member ${message.header.memberId}`);
      }
    }
  }

  // ---------------------------------------------------------------- rounds

  laneContext(lane: number): LaneContext {
    return { lane, roundRevision: this.model.revision, liveLeases: STABLE_LEASES, missingLeases: MISSING_LEASES };
  }

  /** Runs `shots` concurrently as one round, then checks the revisions and sweeps the store
   * (as `token`'s user while auth is on: without one the member rightly refuses the sweep). */
  async round(shots: Array<() => Promise<void>>, token?: string): Promise<void> {
    this.roundStart = this.model.revision;
    this.roundWrites = [];
    this.roundReads = [];
    await Promise.all(shots.map((shot) => shot()));
    const writes = [...this.roundWrites].sort((a, b) => a - b);
    const expected = writes.map((_, i) => this.roundStart + i + 1);
    if (writes.join() !== expected.join())
      this.fail(`round from revision ${this.roundStart}: writes took revisions ${writes.join()}, expected ${expected.join()}`);
    const end = this.roundStart + writes.length;
    for (const read of this.roundReads)
      if (read < this.roundStart || read > end) this.fail(`a read answered at revision ${read}, outside ${this.roundStart}..${end}`);
    // Every answer was checked on arrival; the whole store every few rounds (and at the end).
    if (++this.rounds % SWEEP_EVERY_ROUNDS === 0) await this.sweep(token);
  }

  /** The whole "f/" space and the revision, against the model. */
  async sweep(token?: string): Promise<void> {
    const answer = await this.unary('KV.Range', { key: Buffer.from('f/'), rangeEnd: Buffer.from('f0'), serializable: true }, token);
    if (answer.code !== grpc.status.OK) {
      this.fail(`sweep refused: ${answer.details}`);
      return;
    }
    const response = answer.messages[0]!;
    if (Number(response.header.revision) !== this.model.revision) {
      this.fail(`store at revision ${response.header.revision}, model at ${this.model.revision}`);
      this.model.revision = Number(response.header.revision);
    }
    const expected = this.model.evaluate('Range', { key: Buffer.from('f/'), rangeEnd: Buffer.from('f0') }, 0, {
      maxTxnOps: this.options.maxTxnOps,
      roundRevision: this.model.revision,
    });
    const problem = rangeProblem(response, expected.response!, 'sweep');
    if (problem) this.fail(problem);
  }

  // ---------------------------------------------------------------- lane requests

  /** One KV request in `lane`: structured, mutated at the byte level, or oversized. */
  laneShot(lane: number, variant: 'structured' | 'mutated' | 'oversized'): () => Promise<void> {
    const c = this.laneContext(lane);
    const dice = this.dice;
    const method = dice.pick(['Range', 'Range', 'Range', 'Put', 'Put', 'Put', 'DeleteRange', 'Txn', 'Txn', 'Txn']);
    const make = { Range: laneRange, Put: lanePut, DeleteRange: laneDeleteRange, Txn: laneTxn }[method]!;
    const request = make(dice, c);
    if (variant === 'oversized') {
      const size = dice.chance(0.8) ? this.options.maxRequestBytes + 1 + dice.int(this.options.maxRequestBytes) : this.options.maxRequestBytes + 600 * 1024;
      if (method === 'Put') request.value = Buffer.alloc(size, 0x61);
      else if (method === 'Txn') request.success = [{ requestPut: { key: Buffer.from(`${lanePrefix(lane)}big`), value: Buffer.alloc(size, 0x62) } }];
      else request.rangeEnd = Buffer.concat([Buffer.from(lanePrefix(lane)), Buffer.alloc(size, 0x63)]);
    }
    const info = this.info(`KV.${method}`);
    let bytes = encodeMessage(info.requestType, request);
    if (variant === 'mutated') {
      const mutated = mutate(dice, bytes, messageType(info.requestType)).bytes;
      const decoded = tryDecode(info, mutated);
      // A mutation that moves the request out of its lane would race other lanes: keep it in.
      const keepsLane = decoded !== undefined && confined(method, decoded, Buffer.from(lanePrefix(lane)), Buffer.from(laneEnd(lane))) && knownLeases(decoded);
      if (decoded === undefined || (keepsLane && !namesRoundRevision(decoded, this.model.revision))) bytes = mutated;
    }
    return this.kvShot(method, bytes);
  }

  /** A KV request whose keys stay in one lane, checked against the model (optionally as a user). */
  kvShot(method: string, request: Wire | Buffer, token?: string): () => Promise<void> {
    const info = this.info(`KV.${method}`);
    const sent = Buffer.isBuffer(request) ? request : encodeMessage(info.requestType, request);
    return async () => {
      this.count(`KV.${method}`);
      const answer = await this.client.unary(info, sent, { deadlineMs: this.options.deadlineMs, token });
      this.checkAnswer(info, answer);
      this.checkLaneAnswer(info, method, sent, answer);
    };
  }

  /** Takes the store's revision as the model's after writes outside the KV lanes (recipes),
   * having checked that the lanes themselves are as the model says. */
  async rebase(): Promise<void> {
    const answer = await this.unary('KV.Range', { key: Buffer.from('f/'), rangeEnd: Buffer.from('f0'), countOnly: true });
    this.model.revision = Number(answer.messages[0]!.header.revision);
    await this.sweep();
  }

  private checkLaneAnswer(info: MethodInfo, method: string, bytes: Buffer, answer: Answer): void {
    // Described only when something is wrong: decoding and printing every request costs.
    const where = (): string => `${method} ${describeRequest(info, bytes)}`;
    const decoded = tryDecode(info, bytes);
    if (decoded === undefined) {
      if (answer.code !== UNDECODABLE.code || answer.details !== UNDECODABLE.details)
        this.fail(`${where()}: undecodable bytes answered ${answer.code} ${answer.details}`);
      return;
    }
    if (bytes.length > this.options.maxRequestBytes + 512 * 1024) {
      if (answer.code !== grpc.status.RESOURCE_EXHAUSTED) this.fail(`${where()}: a message over the gRPC limit answered ${answer.code} ${answer.details}`);
      return;
    }
    const sizeLimited = bytes.length > this.options.maxRequestBytes && method !== 'Range' && !(method === 'Txn' && readOnlyTxn(decoded));
    const limits = { maxTxnOps: this.options.maxTxnOps, roundRevision: this.roundStart };
    if (answer.code !== grpc.status.OK) {
      const errors = this.model.evaluate(method, decoded, this.model.revision + 1, limits).errors;
      const allowed: EtcdErrorCode[] = sizeLimited ? [...errors, 'RequestTooLarge'] : errors;
      if (!allowed.some((code) => ETCD_ERRORS[code].code === answer.code && ETCD_ERRORS[code].message === answer.details)) {
        this.fail(`${where()}: answered ${grpc.status[answer.code]} "${answer.details}", model expects ${allowed.join('|') || 'success'}`);
      }
      return;
    }
    if (sizeLimited) this.fail(`${where()}: accepted ${bytes.length} bytes over --max-request-bytes`);
    const response = answer.messages[0]!;
    const revision = Number(response.header.revision);
    const outcome = this.model.evaluate(method, decoded, revision, limits);
    if (outcome.errors.length > 0) {
      this.fail(`${where()}: accepted, model expects ${outcome.errors.join('|')}`);
      return;
    }
    if (outcome.changes.length > 0) {
      this.roundWrites.push(revision);
      this.model.apply(outcome.changes, revision);
    } else this.roundReads.push(revision);
    const problem = writeProblem(method, response, outcome.response!, method);
    if (problem) this.fail(`${where()}: ${problem}`);
  }

  // ---------------------------------------------------------------- compaction

  compactShot(): () => Promise<void> {
    const dice = this.dice;
    const current = this.model.revision;
    const compacted = this.model.compacted;
    const revision = dice.pick([
      String(compacted),
      String(compacted + 1),
      String(Math.max(0, current - dice.int(40))),
      String(current),
      String(current + 1),
      '-1',
      '0',
      '9223372036854775807',
    ]);
    const request = { revision, physical: dice.chance(0.3) };
    return async () => {
      const answer = await this.unary('KV.Compact', request);
      const r = int64(revision);
      const expected: EtcdErrorCode | undefined = r <= BigInt(compacted) ? 'Compacted' : r > BigInt(current) ? 'FutureRev' : undefined;
      const got = answer.code === grpc.status.OK ? undefined : answer.details;
      if (got !== (expected && ETCD_ERRORS[expected].message))
        this.fail(`Compact ${revision} (compacted ${compacted}, current ${current}): answered "${got ?? 'OK'}", expected "${expected ?? 'OK'}"`);
      if (answer.code === grpc.status.OK) this.model.compacted = Number(r);
    };
  }
}

export function tryDecode(info: MethodInfo, bytes: Buffer): Wire | undefined {
  try {
    return decodeMessage(info.requestType, bytes);
  } catch {
    return undefined;
  }
}

/** Whether every lease the request names is one the model knows (stable, missing or none):
 * a mutation can turn an ID into one some random LeaseGrant created. */
function knownLeases(r: unknown): boolean {
  if (r === null || typeof r !== 'object' || Buffer.isBuffer(r)) return true;
  for (const [key, value] of Object.entries(r)) {
    if (key === 'lease') {
      const id = int64(value).toString();
      if (id !== '0' && !STABLE_LEASES.includes(id) && !MISSING_LEASES.includes(id)) return false;
    } else if (!knownLeases(value)) return false;
  }
  return true;
}

/** Whether a read in the request names a revision the round may reach (mutations can make one). */
function namesRoundRevision(r: unknown, roundStart: number): boolean {
  if (r === null || typeof r !== 'object' || Buffer.isBuffer(r)) return false;
  for (const [key, value] of Object.entries(r)) {
    if (key === 'revision') {
      const n = int64(value);
      if (n > BigInt(roundStart) && n <= BigInt(roundStart + 1000)) return true;
    } else if (namesRoundRevision(value, roundStart)) return true;
  }
  return false;
}

function readOnlyTxn(r: Wire): boolean {
  return [...(r.success ?? []), ...(r.failure ?? [])].every((op: Wire) =>
    op.request === 'requestRange' || op.request === undefined ? true : op.request === 'requestTxn' ? readOnlyTxn(op.requestTxn) : false,
  );
}

function describeRequest(info: MethodInfo, bytes: Buffer): string {
  const decoded = tryDecode(info, bytes);
  if (decoded === undefined) return `<${bytes.length} undecodable bytes>`;
  const text = JSON.stringify(decoded, (_k, v) => (v && v.type === 'Buffer' && Array.isArray(v.data) ? Buffer.from(v.data).toString('latin1') : v));
  return text.length > 600 ? `${text.slice(0, 600)}...` : text;
}

export { randomMessage };
