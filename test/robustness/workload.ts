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
const FAILURE_BACKOFF_MS = 50;
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
  private readonly leases = new Map<number, string>();
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
    for (let seq = 0; !this.stopped; seq++) {
      const member = Math.floor(Math.random() * this.cluster.members.length);
      const key = this.options.keys[Math.floor(Math.random() * this.options.keys.length)]!;
      const value = `c${id}-${seq}`;
      const succeeded = await this.operation(id, member, key, value, lastSeen);
      // Like a real client, back off after a failure instead of spinning on a dead member.
      if (!succeeded) await new Promise((resolve) => setTimeout(resolve, FAILURE_BACKOFF_MS));
    }
  }

  /** One random operation; true if it succeeded. */
  private async operation(id: number, member: number, key: string, value: string, lastSeen: Map<string, string | null>): Promise<boolean> {
    const stubs = this.cluster.members[member]!.clients;
    const r = Math.random();
    if (r < 0.4) return this.get(id, member, stubs, key, lastSeen);
    if (r < 0.6) return this.put(id, member, stubs, key, value);
    if (r < 0.8) return this.cas(id, member, stubs, key, lastSeen.get(key) ?? 'none', value, lastSeen);
    if (r < 0.9) {
      if (!this.leases.has(id)) await this.grantLease(id, stubs);
      const lease = this.leases.get(id);
      return lease !== undefined && this.put(id, member, stubs, key, value, lease);
    }
    const other = this.options.keys.find((k) => k !== key)!;
    return this.putPair(id, member, stubs, [key, other], value);
  }

  /** Completes `op`; false when it did not succeed (the client then backs off a little). */
  private settle(op: Operation, outcome: Outcome): boolean {
    this.history.complete(op, outcome);
    return outcome.status === 'ok';
  }

  private full(key: string): Buffer {
    return Buffer.from(`${this.options.prefix}${key}`);
  }

  private async get(id: number, member: number, stubs: MemberClients, key: string, lastSeen: Map<string, string | null>): Promise<boolean> {
    const op = this.history.invoke(id, member, key, { kind: 'get' });
    const { error, response } = await call(stubs.kv, 'Range', { key: this.full(key) }, this.options.deadlineMs);
    if (error) return this.settle(op, classify(error));
    const value = firstValue(response.kvs);
    lastSeen.set(key, value);
    return this.settle(op, { status: 'ok', value, revision: Number(response.header.revision) });
  }

  private async put(id: number, member: number, stubs: MemberClients, key: string, value: string, lease?: string): Promise<boolean> {
    const op = this.history.invoke(id, member, key, { kind: 'put', value });
    const request = { key: this.full(key), value: Buffer.from(value), ...(lease === undefined ? {} : { lease }) };
    const { error, response } = await call(stubs.kv, 'Put', request, this.options.deadlineMs);
    return this.settle(op, error ? classify(error) : { status: 'ok', revision: Number(response.header.revision) });
  }

  private async cas(
    id: number,
    member: number,
    stubs: MemberClients,
    key: string,
    expected: string,
    value: string,
    lastSeen: Map<string, string | null>,
  ): Promise<boolean> {
    const op = this.history.invoke(id, member, key, { kind: 'cas', expected, value });
    const request = {
      compare: [{ key: this.full(key), target: COMPARE_VALUE, result: COMPARE_EQUAL, value: Buffer.from(expected) }],
      success: [{ requestPut: { key: this.full(key), value: Buffer.from(value) } }],
      failure: [{ requestRange: { key: this.full(key) } }],
    };
    const { error, response } = await call(stubs.kv, 'Txn', request, this.options.deadlineMs);
    if (error) return this.settle(op, classify(error));
    const revision = Number(response.header.revision);
    if (response.succeeded) {
      lastSeen.set(key, value);
      return this.settle(op, { status: 'ok', swapped: true, revision });
    }
    const seen = firstValue(response.responses[0]?.responseRange?.kvs);
    lastSeen.set(key, seen);
    return this.settle(op, { status: 'ok', swapped: false, value: seen, revision });
  }

  /** One transaction writing two keys: one revision with two events, for the watch checks. */
  private async putPair(id: number, member: number, stubs: MemberClients, keys: readonly [string, string], value: string): Promise<boolean> {
    const ops: Operation[] = keys.map((key, i) => this.history.invoke(id, member, key, { kind: 'put', value: `${value}.${i}` }));
    const request = { success: keys.map((key, i) => ({ requestPut: { key: this.full(key), value: Buffer.from(`${value}.${i}`) } })) };
    const { error, response } = await call(stubs.kv, 'Txn', request, this.options.deadlineMs);
    for (const op of ops) this.history.complete(op, error ? classify(error) : { status: 'ok', revision: Number(response.header.revision) });
    return error === null;
  }

  /** Grants the client its lease (one per client, reused for every put with a lease). */
  private async grantLease(id: number, stubs: MemberClients): Promise<void> {
    const { error, response } = await call(stubs.lease, 'LeaseGrant', { TTL: LEASE_TTL_S }, this.options.deadlineMs);
    if (error) {
      this.leaseGrants.failed++;
      return;
    }
    this.leaseGrants.ok++;
    this.leases.set(id, String(response.ID));
  }
}
