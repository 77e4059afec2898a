// Timed watch progress notifications (--experimental-watch-progress-notify-interval), compared
// with real etcd 3.4.23: both servers start with the flag at 500ms and get the same raw Watch
// requests; the responses must match once cluster/member IDs and raft terms are masked.
//
// etcdctl 3.4 cannot ask for progress notifications (its `watch --progress-notify` came in
// 3.5), so the watchers here are raw gRPC streams, as clientv3.WithProgressNotify sends them.
// What is compared: the watcher created with progress_notify gets empty responses under its
// own watch ID carrying the store's current revision, again after each write; the watcher
// without it gets only its "created" and its event. Notifications are awaited, never slept
// for; since how many fall between two writes depends on timing, repeats of the same
// notification are collapsed before comparing.

import * as grpc from '@grpc/grpc-js';
import { describe, expect, it } from 'vitest';
import { clients } from '../../src/grpc/proto.js';
import { expectSameAsEtcd } from '../support/differential.js';
import { grpcTarget, RawWatch, type Msg } from '../support/raw-watch.js';

const INTERVAL_FLAGS = ['--experimental-watch-progress-notify-interval', '500ms'];
const b = (s: string) => Buffer.from(s);

function isNote(m: Msg): boolean {
  return !m.created && !m.canceled && m.events.length === 0;
}

/** Masked, buffers as text, one line per response. */
function line(m: Msg): string {
  const masked = { ...m, header: { ...m.header, clusterId: 'X', memberId: 'X', raftTerm: 'X' } };
  return JSON.stringify(masked, (_k, v) => (v && v.type === 'Buffer' && Array.isArray(v.data) ? Buffer.from(v.data).toString('latin1') : v));
}

async function put(kv: grpc.Client, key: string, value: string): Promise<void> {
  await new Promise((resolve, reject) => (kv as any).put({ key: b(key), value: b(value) }, (e: Error | null, r: unknown) => (e ? reject(e) : resolve(r))));
}

/** Reads responses until a progress notification at `revision` has arrived; returns all read. */
async function untilNoteAt(w: RawWatch, revision: string): Promise<Msg[]> {
  const read: Msg[] = [];
  while (!read.some((m) => isNote(m) && m.header.revision === revision)) read.push(...(await w.next(1, 10_000)));
  return read;
}

async function session(endpoint: string): Promise<string[]> {
  const kv = new clients.KV(grpcTarget(endpoint), grpc.credentials.createInsecure());
  const w = new RawWatch(endpoint);
  const read: Msg[] = [];
  try {
    await put(kv, 'unwatched', '1'); // revision 2
    w.send({ createRequest: { key: b('a'), progressNotify: true, watchId: 1 } });
    w.send({ createRequest: { key: b('b'), watchId: 2 } });
    read.push(...(await w.next(2)));
    read.push(...(await untilNoteAt(w, '2')));
    read.push(...(await untilNoteAt(w, '2'))); // notifications repeat
    await put(kv, 'a', 'x'); // revision 3: an event for watcher 1
    read.push(...(await untilNoteAt(w, '3')));
    await put(kv, 'b', 'y'); // revision 4: an event for watcher 2, none for watcher 1
    read.push(...(await untilNoteAt(w, '4')));
  } finally {
    w.close();
    kv.close();
  }
  expect(read.filter((m) => m.watchId === '2').map((m) => (m.created ? 'created' : m.events.length))).toEqual(['created', 1]);
  const lines = read.map(line);
  return lines.filter((text, i) => i === 0 || text !== lines[i - 1] || !isNote(read[i]!));
}

describe('watch progress notifications on a timer, compared with etcd 3.4.23', () => {
  it('progress_notify watchers get the current revision every interval; others get nothing', async () => {
    await expectSameAsEtcd(session, { extraArgs: INTERVAL_FLAGS });
  }, 90_000);
});
