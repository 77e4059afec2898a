// Watchers for a fault run and the checks of etcd's watch guarantees on what they received.
//
// A watcher watches the workload's key prefix on one member; when its stream ends (member
// killed, "no leader" cancel, connection lost) it reconnects to the next member with
// start_revision = last revision seen + 1, as clientv3 does. Every response is recorded.
// Afterwards each watcher's record is checked against the reference event log (one watch from
// revision 1 on a healthy cluster, itself checked against every acknowledged write):
// - ordered: revisions increase from response to response (and never go down inside one);
// - unique: no (revision, key) delivered twice;
// - atomic: all events of a revision arrive in one response, exactly the reference's;
// - resumable and complete: from its first start revision to the last one it saw, the watcher
//   saw every revision the reference has; a reconnect resumes at last + 1.

import * as grpc from '@grpc/grpc-js';
import type { FaultCluster } from './fault-cluster.js';
import type { Operation } from './history.js';

export interface WatchEvent {
  readonly type: 'PUT' | 'DELETE';
  readonly key: string;
  readonly value: string;
  readonly revision: number;
}

export interface WatchSegment {
  readonly member: number;
  readonly startRevision: number;
  readonly responses: WatchEvent[][];
  end?: string;
}

function prefixEnd(prefix: string): Buffer {
  const end = Buffer.from(prefix);
  end[end.length - 1]! += 1;
  return end;
}

function requireLeader(): grpc.Metadata {
  const metadata = new grpc.Metadata();
  metadata.set('hasleader', 'true'); // clientv3's WithRequireLeader: cancelled when the member loses its leader
  return metadata;
}

export class Watcher {
  readonly segments: WatchSegment[] = [];
  lastRevision: number;
  private stopped = false;
  private active: grpc.ClientDuplexStream<object, any> | undefined;
  private loop: Promise<void> | undefined;

  constructor(
    private readonly cluster: FaultCluster,
    private readonly prefix: string,
    startRevision: number,
    private member: number,
  ) {
    this.lastRevision = startRevision - 1;
  }

  start(): void {
    this.loop = (async () => {
      while (!this.stopped) {
        await this.watchOnce();
        this.member = (this.member + 1) % this.cluster.members.length;
        // Give a killed member's replacement a moment instead of spinning through refusals.
        if (!this.stopped) await new Promise((resolve) => setTimeout(resolve, 200));
      }
    })();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.active?.cancel();
    await this.loop;
  }

  /** One stream: until it ends (or the watcher stops). */
  private watchOnce(): Promise<void> {
    const segment: WatchSegment = { member: this.member, startRevision: this.lastRevision + 1, responses: [] };
    this.segments.push(segment);
    return new Promise((resolve) => {
      const stream = this.cluster.members[this.member]!.clients.watch.watch(requireLeader()) as grpc.ClientDuplexStream<object, any>;
      this.active = stream;
      const finish = (why: string): void => {
        segment.end ??= why;
        stream.cancel();
        resolve();
      };
      stream.on('data', (response: any) => {
        if (response.canceled) return finish(`canceled: ${response.cancelReason}`);
        if (response.events.length === 0) return;
        const events = response.events.map(
          (e: any): WatchEvent => ({
            type: e.type === 1 ? 'DELETE' : 'PUT',
            key: e.kv.key.toString(),
            value: e.kv.value.toString(),
            revision: Number(e.kv.modRevision),
          }),
        );
        segment.responses.push(events);
        this.lastRevision = Math.max(this.lastRevision, ...events.map((e: WatchEvent) => e.revision));
      });
      stream.on('error', (error: Error) => finish(error.message));
      stream.on('end', () => finish('ended'));
      stream.write({ createRequest: { key: Buffer.from(this.prefix), rangeEnd: prefixEnd(this.prefix), startRevision: segment.startRevision } });
      if (this.stopped) finish('stopped');
    });
  }
}

/** Reference log: revision -> its events under the prefix. */
export type EventLog = Map<number, WatchEvent[]>;

export function eventLog(watcher: Pick<Watcher, 'segments'>): EventLog {
  const log: EventLog = new Map();
  for (const segment of watcher.segments)
    for (const response of segment.responses) for (const e of response) log.set(e.revision, [...(log.get(e.revision) ?? []), e]);
  return log;
}

/** The acknowledged writes that are not in the log at their revision with their value. */
export function missingWrites(log: EventLog, operations: readonly Operation[], prefix: string): Operation[] {
  return operations.filter((o) => {
    const { op, outcome } = o;
    if (outcome.status !== 'ok' || op.kind === 'get' || (op.kind === 'cas' && !outcome.swapped)) return false;
    const events = log.get(writeRevision(o)) ?? [];
    return !events.some((e) => e.key === `${prefix}${o.key}` && e.value === op.value);
  });
}

/** Every acknowledged write is in the log at its revision with its value. */
export function checkAcknowledgedWrites(log: EventLog, operations: readonly Operation[], prefix: string): string[] {
  return missingWrites(log, operations, prefix).map((o) => {
    const revision = writeRevision(o);
    const events = log.get(revision) ?? [];
    const held = events.length === 0 ? 'nothing' : events.map((e) => `${e.key}=${e.value}`).join(' ');
    const value = o.op.kind === 'get' ? '' : o.op.value;
    return `acknowledged write #${o.id} ${o.key}=${value} at revision ${revision} is not in the event log (it holds ${held} there)`;
  });
}

/** The revision an acknowledged write reported (-1 for anything else). */
export function writeRevision(o: Operation): number {
  return o.outcome.status === 'ok' ? (o.outcome.revision ?? -1) : -1;
}

function same(a: readonly WatchEvent[], b: readonly WatchEvent[]): boolean {
  return a.length === b.length && a.every((e, i) => e.key === b[i]!.key && e.value === b[i]!.value && e.type === b[i]!.type);
}

/** The guarantees above for one watcher; returns the violations found (empty: all hold). */
export function checkWatcher(name: string, watcher: Pick<Watcher, 'segments'>, reference: EventLog): string[] {
  const problems: string[] = [];
  const seen = new Set<string>();
  const revisions = new Set<number>();
  let last = 0;
  let expectedStart = watcher.segments[0]?.startRevision ?? 1;
  for (const segment of watcher.segments) {
    if (segment.startRevision !== expectedStart) problems.push(`${name}: resumed at ${segment.startRevision}, not at last seen + 1 = ${expectedStart}`);
    for (const response of segment.responses) {
      for (const e of response) {
        if (e.revision < last) problems.push(`${name}: revision ${e.revision} delivered after ${last}`);
        last = Math.max(last, e.revision);
        const id = `${e.revision}/${e.key}`;
        if (seen.has(id)) problems.push(`${name}: event ${id} delivered twice`);
        seen.add(id);
      }
      for (const revision of new Set(response.map((e) => e.revision))) {
        revisions.add(revision);
        const delivered = response.filter((e) => e.revision === revision);
        if (!same(delivered, reference.get(revision) ?? []))
          problems.push(`${name}: revision ${revision} delivered as ${JSON.stringify(delivered)}, reference ${JSON.stringify(reference.get(revision))}`);
      }
      if (segment.startRevision > (response[0]?.revision ?? Number.POSITIVE_INFINITY))
        problems.push(`${name}: event before start revision ${segment.startRevision}`);
    }
    expectedStart = Math.max(last + 1, expectedStart);
  }
  const first = watcher.segments[0]?.startRevision ?? 1;
  const missed = [...reference.keys()].filter((r) => r >= first && r <= last && !revisions.has(r));
  if (missed.length > 0) problems.push(`${name}: missed revisions ${missed.slice(0, 10).join(', ')}${missed.length > 10 ? ` (${missed.length} in all)` : ''}`);
  return problems;
}
