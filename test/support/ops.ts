// Helpers for the operations tests (backup, image, chart, runbook): polling for a condition,
// cluster status and HashKV through the real etcdctl, and a background writer that keeps a
// cluster busy while an operation runs.
import * as grpc from '@grpc/grpc-js';
import { clients } from '../../src/grpc/proto.js';
import { etcdctl } from './tools.js';

/** Polls `probe` every 100 ms until `check` holds; throws with the last value on timeout. */
export async function until<T>(what: string, probe: () => Promise<T>, check: (value: T) => boolean, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: T = await probe();
  while (!check(last)) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; last: ${JSON.stringify(last)}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
    last = await probe();
  }
  return last;
}

export interface EndpointStatus {
  endpoint: string;
  memberId: string;
  leader: string;
  revision: number;
}

/** `etcdctl endpoint status -w json` per endpoint; 64-bit IDs kept exact as strings. */
export async function endpointStatuses(endpoints: string, extraArgs: readonly string[] = []): Promise<EndpointStatus[]> {
  const result = await etcdctl(endpoints, [...extraArgs, 'endpoint', 'status', '-w', 'json', '--command-timeout=2s']);
  if (!result.stdout.trim().startsWith('[')) return [];
  const exact = result.stdout.replace(/"(member_id|leader|cluster_id|raft_term)":(\d+)/g, '"$1":"$2"');
  return (JSON.parse(exact) as Array<{ Endpoint: string; Status: any }>).map((e) => ({
    endpoint: e.Endpoint,
    memberId: e.Status.header.member_id,
    leader: e.Status.leader ?? '0',
    revision: e.Status.header.revision,
  }));
}

/** Every one of `count` members answers and names the same leader. */
export const settledOn = (count: number) => (s: EndpointStatus[]) => s.length === count && s.every((m) => m.leader !== '0' && m.leader === s[0]!.leader);

export interface HashKv {
  hash: number;
  revision: number;
}

/** `etcdctl endpoint hashkv [--rev=R] -w json` per endpoint. */
export async function hashKvs(endpoints: string, revision?: number): Promise<HashKv[]> {
  const args = ['endpoint', 'hashkv', '-w', 'json', '--command-timeout=5s'];
  if (revision !== undefined) args.push(`--rev=${revision}`);
  const result = await etcdctl(endpoints, args);
  if (!result.stdout.trim().startsWith('[')) return [];
  return (JSON.parse(result.stdout) as Array<{ HashKV: any }>).map((e) => ({ hash: e.HashKV.hash, revision: e.HashKV.header.revision }));
}

export interface Writer {
  /** Acknowledged puts so far. */
  readonly count: () => number;
  /** Stops writing and waits for the put in flight; rejects if any put failed. */
  stop(): Promise<number>;
}

/** Puts `load/<n>` keys one after another, round-robin over `endpoints`, until stopped. */
export function startWriter(endpoints: readonly string[]): Writer {
  const kvs = endpoints.map((e) => new clients.KV(e, grpc.credentials.createInsecure()) as any);
  let acknowledged = 0;
  let stopping = false;
  const loop = (async () => {
    for (let n = 0; !stopping; n++) {
      const kv = kvs[n % kvs.length];
      await new Promise<void>((resolve, reject) =>
        kv.Put({ key: Buffer.from(`load/${n % 500}`), value: Buffer.from(`v${n}`) }, (error: Error | null) => (error ? reject(error) : resolve())),
      );
      acknowledged++;
    }
  })();
  return {
    count: () => acknowledged,
    stop: async () => {
      stopping = true;
      try {
        await loop;
      } finally {
        for (const kv of kvs) kv.close();
      }
      return acknowledged;
    },
  };
}
