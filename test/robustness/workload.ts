// Client traffic for a fault run: workers sending get / put / compare-and-set / put-with-lease /
// two-key transactions to random members of the cluster, every register operation recorded in
// a History with its invoke and complete times and outcome. Values are unique per write
// ("c<client>-<seq>"), which is what lets the checker tell every write apart.

import * as grpc from '@grpc/grpc-js';
import type { FaultCluster, MemberClients } from './fault-cluster.js';
import { History, type Operation, type Outcome } from './history.js';

export interface WorkloadOptions {
  readonly clients: number;
  /** Keys are `${prefix}${name}`; a small set so operations contend. */
  readonly prefix: string;
  readonly keys: readonly string[];
  /** Per-request deadline; an expired request is "unknown". */
  readonly deadlineMs: number;
}

// etcd's Compare enums.
const COMPARE_VALUE = 3;
const COMPARE_EQUAL = 0;
const LEASE_TTL_S = 3600; // outlives any run: a put with this lease is a plain write here

type Callback = (error: grpc.ServiceError | null, response: any) => void;

/** Calls `method` with a deadline; resolves with the response or the error. */
export function call(stub: any, method: string, request: object, deadlineMs: number): Promise<{ error: grpc.ServiceError | null; response: any }> {
  return new Promise((resolve) => {
    const done: Callback = (error, response) => resolve({ error, response });
    stub[method](request, { deadline: Date.now() + deadlineMs }, done);
  });
}

/** A failure proves the request was never applied only when it never left this process. */
export function classify(error: grpc.ServiceError): Outcome {
  const text = `${error.code} ${error.details}`;
  if (error.code === grpc.status.UNAVAILABLE && /ECONNREFUSED|No connection established/.test(error.details)) return { status: 'failed', error: text };
  return { status: 'unknown', error: text };
}

function firstValue(kvs: Array<{ value: Buffer }> | undefined): string | null {
  const kv = kvs?.[0];
  return kv === undefined ? null : kv.value.toString();
}

export class Workload {
  readonly history = new History();
  leaseGrants = { ok: 0, failed: 0 };
  private stopped = false;
  private running: Promise<void>[] = [];

  constructor(
    private readonly cluster: FaultCluster,
    private readonly options: WorkloadOptions,
  ) {}

  start(): void {
    this.running = Array.from({ length: this.options.clients }, (_, i) => this.client(i));
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await Promise.all(this.running);
  }

  private async client(id: number): Promise<void> {
    const lastSeen = new Map<string, string | null>();
    let lease: string | undefined;
    for (let seq = 0; !this.stopped; seq++) {
      const member = Math.floor(Math.random() * this.cluster.members.length);
      const stubs = this.cluster.members[member]!.clients;
      const key = this.options.keys[Math.floor(Math.random() * this.options.keys.length)]!;
      const value = `c${id}-${seq}`;
      const r = Math.random();
      if (r < 0.4) await this.get(id, member, stubs, key, lastSeen);
      else if (r < 0.6) await this.put(id, member, stubs, key, value);
      else if (r < 0.8) await this.cas(id, member, stubs, key, lastSeen.get(key) ?? 'none', value, lastSeen);
      else if (r < 0.9) {
        lease ??= await this.grantLease(stubs);
        if (lease !== undefined) await this.put(id, member, stubs, key, value, lease);
      } else {
        const other = this.options.keys.find((k) => k !== key)!;
        await this.putPair(id, member, stubs, [key, other], value);
      }
    }
  }

  private full(key: string): Buffer {
    return Buffer.from(`${this.options.prefix}${key}`);
  }

  private async get(id: number, member: number, stubs: MemberClients, key: string, lastSeen: Map<string, string | null>): Promise<void> {
    const op = this.history.invoke(id, member, key, { kind: 'get' });
    const { error, response } = await call(stubs.kv, 'Range', { key: this.full(key) }, this.options.deadlineMs);
    if (error) return this.history.complete(op, classify(error));
    const value = firstValue(response.kvs);
    lastSeen.set(key, value);
    this.history.complete(op, { status: 'ok', value, revision: Number(response.header.revision) });
  }

  private async put(id: number, member: number, stubs: MemberClients, key: string, value: string, lease?: string): Promise<void> {
    const op = this.history.invoke(id, member, key, { kind: 'put', value });
    const request = { key: this.full(key), value: Buffer.from(value), ...(lease === undefined ? {} : { lease }) };
    const { error, response } = await call(stubs.kv, 'Put', request, this.options.deadlineMs);
    this.history.complete(op, error ? classify(error) : { status: 'ok', revision: Number(response.header.revision) });
  }

  private async cas(
    id: number,
    member: number,
    stubs: MemberClients,
    key: string,
    expected: string,
    value: string,
    lastSeen: Map<string, string | null>,
  ): Promise<void> {
    const op = this.history.invoke(id, member, key, { kind: 'cas', expected, value });
    const request = {
      compare: [{ key: this.full(key), target: COMPARE_VALUE, result: COMPARE_EQUAL, value: Buffer.from(expected) }],
      success: [{ requestPut: { key: this.full(key), value: Buffer.from(value) } }],
      failure: [{ requestRange: { key: this.full(key) } }],
    };
    const { error, response } = await call(stubs.kv, 'Txn', request, this.options.deadlineMs);
    if (error) return this.history.complete(op, classify(error));
    const revision = Number(response.header.revision);
    if (response.succeeded) {
      lastSeen.set(key, value);
      return this.history.complete(op, { status: 'ok', swapped: true, revision });
    }
    const seen = firstValue(response.responses[0]?.responseRange?.kvs);
    lastSeen.set(key, seen);
    this.history.complete(op, { status: 'ok', swapped: false, value: seen, revision });
  }

  /** One transaction writing two keys: one revision with two events, for the watch checks. */
  private async putPair(id: number, member: number, stubs: MemberClients, keys: readonly [string, string], value: string): Promise<void> {
    const ops: Operation[] = keys.map((key, i) => this.history.invoke(id, member, key, { kind: 'put', value: `${value}.${i}` }));
    const request = { success: keys.map((key, i) => ({ requestPut: { key: this.full(key), value: Buffer.from(`${value}.${i}`) } })) };
    const { error, response } = await call(stubs.kv, 'Txn', request, this.options.deadlineMs);
    for (const op of ops) this.history.complete(op, error ? classify(error) : { status: 'ok', revision: Number(response.header.revision) });
  }

  private async grantLease(stubs: MemberClients): Promise<string | undefined> {
    const { error, response } = await call(stubs.lease, 'LeaseGrant', { TTL: LEASE_TTL_S }, this.options.deadlineMs);
    if (error) {
      this.leaseGrants.failed++;
      return undefined;
    }
    this.leaseGrants.ok++;
    return String(response.ID);
  }
}
