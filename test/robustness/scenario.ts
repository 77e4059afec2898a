// One fault scenario end to end: client traffic and watchers on a fresh key prefix, the nemesis
// for the given time, then the checks: linearizability of the register history, every
// acknowledged write in the event log, the watch guarantees per watcher, and equal HashKV on
// every member at one revision.

import type { FaultCluster } from './fault-cluster.js';
import type { History, Operation } from './history.js';
import { checkHistory, describeVerdict, type Verdict } from './linearizability.js';
import { runNemesis, type NemesisLog, type Scenario } from './nemesis.js';
import { checkAcknowledgedWrites, checkWatcher, eventLog, missingWrites, Watcher, writeRevision } from './watch-checker.js';
import { call, Workload } from './workload.js';
import { waitFor } from '../support/wait.js';

export interface ScenarioReport {
  readonly scenario: Scenario;
  readonly nemesis: NemesisLog;
  readonly history: History;
  readonly verdict: Verdict;
  /** Violations of the watch guarantees and acknowledged writes missing from the event log. */
  readonly watchProblems: string[];
  /** Each member's HashKV at the final revision, as "hash@revision". */
  readonly hashes: string[];
  readonly summary: string;
}

let runs = 0;

/** A write through whichever member answers; returns its revision. */
async function writeMarker(cluster: FaultCluster, key: string): Promise<number> {
  return waitFor(
    async () => {
      for (const m of cluster.members) {
        const { error, response } = await call(m.clients.kv, 'Put', { key: Buffer.from(key), value: Buffer.from('marker') }, 5000);
        if (error === null) return Number(response.header.revision);
      }
      return undefined;
    },
    { what: `a write of ${key}`, timeoutMs: 60_000 },
  );
}

/** What each member's store says of the first missing write's key at its revision: tells a
 * member that lost history apart from a watch that skipped it. */
async function storesAt(cluster: FaultCluster, prefix: string, missing: Operation | undefined): Promise<string[]> {
  if (missing === undefined) return [];
  const revision = writeRevision(missing);
  return Promise.all(
    cluster.members.map(async (m, i) => {
      const { error, response } = await call(m.clients.kv, 'Range', { key: Buffer.from(`${prefix}${missing.key}`), revision, serializable: true }, 5000);
      if (error) return `  m${i + 1} at ${revision}: ${error.message}`;
      const kv = response.kvs[0];
      return `  m${i + 1} at ${revision}: ${kv === undefined ? 'no value' : `${kv.value.toString()} (mod ${kv.modRevision})`}, store at ${response.header.revision}`;
    }),
  );
}

async function hashesAt(cluster: FaultCluster, revision: number): Promise<string[]> {
  return waitFor(
    () =>
      Promise.all(
        cluster.members.map(async (m) => {
          const { error, response } = await call(m.clients.maintenance, 'HashKV', { revision }, 5000);
          return error ? undefined : `${response.hash}@${revision}`;
        }),
      ),
    { what: `HashKV at revision ${revision} from every member`, timeoutMs: 60_000, until: (h) => h.every((x) => x !== undefined) },
  ) as Promise<string[]>;
}

export async function runScenario(cluster: FaultCluster, scenario: Scenario, seconds: number): Promise<ScenarioReport> {
  const prefix = `${scenario}/${runs++}/`;
  const start = (await writeMarker(cluster, `${prefix}!start`)) + 1;
  const workload = new Workload(cluster, { clients: 6, prefix, keys: ['a', 'b', 'c', 'd'], deadlineMs: 5000 });
  const watchers = [new Watcher(cluster, prefix, start, 0), new Watcher(cluster, prefix, start, 1)];
  workload.start();
  for (const w of watchers) w.start();
  let nemesis: NemesisLog;
  try {
    nemesis = await runNemesis(cluster, scenario, seconds);
  } finally {
    await workload.stop();
  }
  const end = await writeMarker(cluster, `${prefix}~end`);
  const reference = new Watcher(cluster, prefix, start, 2);
  reference.start();
  const all = [...watchers, reference];
  try {
    // The probe's value (each watcher's last revision and streams) is in the message on a timeout.
    await waitFor(
      () => all.map((w) => ({ last: w.lastRevision, streams: w.segments.map((s) => `m${s.member + 1} from ${s.startRevision}: ${s.end ?? 'open'}`) })),
      {
        what: `every watcher to reach revision ${end}`,
        timeoutMs: 60_000,
        until: (states) => states.every((state) => state.last >= end),
      },
    );
  } finally {
    await Promise.all(all.map((w) => w.stop()));
  }
  const log = eventLog(reference);
  const missing = checkAcknowledgedWrites(log, workload.history.operations, prefix);
  const broken = [...checkWatcher('reference watcher', reference, log), ...watchers.flatMap((w, i) => checkWatcher(`watcher ${i + 1}`, w, log))];
  // Some of each kind first: a failure shows the first 20.
  const watchProblems = [...missing.slice(0, 10), ...broken.slice(0, 10), ...missing.slice(10), ...broken.slice(10)];
  const stores = await storesAt(cluster, prefix, missingWrites(log, workload.history.operations, prefix)[0]);
  const verdict = checkHistory(workload.history.operations);
  const hashes = await hashesAt(cluster, end);
  const h = workload.history;
  const reconnects = watchers.map((w) => w.segments.length - 1).join('+');
  // Where each watcher's streams ran: enough to tell a member's bad catch-up from a lost stream.
  const streams = [...watchers, reference].map(
    (w, i) =>
      `  ${i < watchers.length ? `watcher ${i + 1}` : 'reference'}: ${w.segments.map((s) => `m${s.member + 1} from ${s.startRevision} (${s.responses.length} responses${s.end ? `, ${s.end}` : ''})`).join('; ')}`,
  );
  // Catch-ups by snapshot (this incarnation of each member): each replaces a member's store under its watchers.
  const installs = cluster.members.map((m) => `m${m.index + 1} ${(m.process?.logs() ?? '').split('installed snapshot from leader').length - 1}`).join(', ');
  const summary = [
    `${scenario} for ${seconds} s: ${h.operations.length} operations (${h.count('ok')} ok, ${h.count('failed')} failed, ${h.count('unknown')} unknown), ` +
      `lease grants ${workload.leaseGrants.ok} ok / ${workload.leaseGrants.failed} failed, ${log.size} revisions watched, watcher reconnects ${reconnects}`,
    ...nemesis.events.map((e) => `  nemesis ${e}`),
    ...streams,
    ...(watchProblems.length > 0 ? [`  ${watchProblems.length} watch problems, the first: ${watchProblems[0]}`] : []),
    ...stores,
    `  snapshots installed from the leader: ${installs}`,
    describeVerdict(verdict),
  ].join('\n');
  return { scenario, nemesis, history: h, verdict, watchProblems, hashes, summary };
}
