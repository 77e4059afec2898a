// Pipelined Readies: a second Ready taken before the first is persisted hands out only what the
// first did not, writes are acknowledged in order, and durableIndex() never claims an entry
// whose write was not acknowledged (so a driver that applies only durable entries loses, in a
// crash between writes, only what was never acknowledged).

import { describe, expect, it } from 'vitest';
import { TestCluster, enc } from '../../test/raft/test-harness.js';
import { RawNode } from './raw-node.js';
import { MemoryStorage } from './storage.js';
import { EntryType, MessageType, makeMessage, type Entry, type Ready } from './types.js';
import { SeededRandom } from '../util/random.js';

const indexes = (entries: Entry[]): number[] => entries.map((e) => e.index);

/** A lone voter that has elected itself and settled (its bootstrap and no-op applied). */
function loneLeader(): { node: RawNode; storage: MemoryStorage } {
  const cluster = new TestCluster([1n]);
  cluster.campaign(1n);
  const { node, storage } = cluster.get(1n);
  expect(node.isLeader).toBe(true);
  expect(node.hasReady()).toBe(false);
  return { node, storage };
}

/** Writes a Ready to storage, as a driver's write would once it lands. */
function write(storage: MemoryStorage, rd: Ready): void {
  storage.append(rd.entries);
  if (rd.hardState) storage.setHardState(rd.hardState);
}

describe('RawNode: more than one Ready in flight', () => {
  it('a second Ready before the first is persisted repeats neither its entries nor its committed entries', () => {
    const { node, storage } = loneLeader();
    const last = node.status().lastIndex;
    node.proposeBatch([enc('a'), enc('b')]);
    const first = node.ready();
    expect(indexes(first.entries)).toEqual([last + 1, last + 2]);
    // Even a lone voter commits its entries only once its own write of them lands.
    expect(indexes(first.committedEntries)).toEqual([]);
    expect(node.hasReady()).toBe(false);

    node.propose(enc('c'));
    const second = node.ready();
    expect(indexes(second.entries)).toEqual([last + 3]);
    expect(indexes(second.committedEntries)).toEqual([]);
    expect(node.readiesInFlight).toBe(2);

    // Nothing of either write is acknowledged: nothing new is durable, nothing new committed.
    expect(node.durableIndex).toBe(last);
    expect(node.status().commit).toBe(last);
    write(storage, first);
    node.persisted();
    expect(node.durableIndex).toBe(last + 2);
    expect(node.status().commit).toBe(last + 2);
    const third = node.ready();
    expect(indexes(third.entries)).toEqual([]);
    expect(indexes(third.committedEntries)).toEqual([last + 1, last + 2]);
    write(storage, second);
    node.persisted();
    expect(node.durableIndex).toBe(last + 3);
    expect(node.status().commit).toBe(last + 3);
    write(storage, third);
    node.persisted();
    node.appliedTo(last + 2);
    const fourth = node.ready();
    expect(indexes(fourth.committedEntries)).toEqual([last + 3]);
    write(storage, fourth);
    node.persisted();
    node.appliedTo(last + 3);
    expect(node.status().applied).toBe(last + 3);
    expect(node.readiesInFlight).toBe(0);
    expect(node.hasReady()).toBe(false);
  });

  it('a lone voter with one write in flight commits and applies its entries once the write lands', () => {
    const { node, storage } = loneLeader();
    const last = node.status().lastIndex;
    for (const data of ['a', 'b']) {
      node.propose(enc(data));
      const rd = node.ready();
      expect(rd.committedEntries).toEqual([]);
      write(storage, rd);
      node.advance();
      const next = node.ready();
      expect(next.committedEntries.map((e) => new TextDecoder().decode(e.data))).toEqual([data]);
      write(storage, next);
      node.advance();
    }
    expect(node.status().commit).toBe(last + 2);
    expect(node.status().applied).toBe(last + 2);
    expect(node.hasReady()).toBe(false);
  });

  it('a crash between two writes loses only entries whose write was never acknowledged', () => {
    const { node, storage } = loneLeader();
    const last = node.status().lastIndex;
    node.proposeBatch([enc('a'), enc('b')]);
    const first = node.ready();
    node.propose(enc('c'));
    const second = node.ready();
    expect(indexes(second.entries)).toEqual([last + 3]);
    write(storage, first);
    node.persisted();
    // The second write never lands: the member crashes here.
    const durable = node.durableIndex;
    expect(durable).toBe(last + 2);
    const restarted = new RawNode({ id: 1n, electionTick: 10, heartbeatTick: 1, storage, random: new SeededRandom(9) });
    expect(restarted.status().lastIndex).toBe(durable);
    expect(storage.entries(last + 1, durable + 1, Number.MAX_SAFE_INTEGER).map((e) => new TextDecoder().decode(e.data))).toEqual(['a', 'b']);
  });

  it('entries replaced while their write is in flight are handed out again and become durable only with their replacement', () => {
    const storage = new MemoryStorage();
    const follower = new RawNode({ id: 2n, electionTick: 10, heartbeatTick: 1, storage, random: new SeededRandom(2), peers: [1n, 2n, 3n] });
    const bootstrap = follower.ready();
    write(storage, bootstrap);
    follower.advance();
    const base = bootstrap.entries.length; // the configuration entries, term 1
    const entry = (index: number, term: number): Entry => ({ index, term, type: EntryType.Normal, data: enc(`${index}@${term}`) });
    const append = (term: number, index: number, logTerm: number, entries: Entry[], commit: number) =>
      follower.step(makeMessage({ type: MessageType.MsgApp, from: 1n, to: 2n, term, index, logTerm, entries, commit }));

    append(2, base, 1, [entry(base + 1, 2), entry(base + 2, 2), entry(base + 3, 2)], base);
    const first = follower.ready();
    expect(indexes(first.entries)).toEqual([base + 1, base + 2, base + 3]);
    // A new leader (term 3) replaces the last two before the first write is acknowledged.
    append(3, base + 1, 2, [entry(base + 2, 3), entry(base + 3, 3)], base + 2);
    const second = follower.ready();
    expect(indexes(second.entries)).toEqual([base + 2, base + 3]);
    expect(second.entries.map((e) => e.term)).toEqual([3, 3]);
    expect(indexes(second.committedEntries)).toEqual([base + 1, base + 2]);

    // The first write landed, but its last entry is no longer in the log: nothing of it counts.
    follower.persisted();
    expect(follower.durableIndex).toBe(base);
    follower.persisted();
    expect(follower.durableIndex).toBe(base + 3);
    follower.appliedTo(base + 2);
    expect(follower.status().applied).toBe(base + 2);
  });

  it('acknowledgements beyond the Readies handed out are refused', () => {
    const { node, storage } = loneLeader();
    expect(() => node.persisted()).toThrow(/without a Ready in flight/);
    node.propose(enc('a'));
    write(storage, node.ready());
    node.persisted();
    const rd = node.ready();
    const lastCommitted = rd.committedEntries[rd.committedEntries.length - 1]!.index;
    expect(() => node.appliedTo(lastCommitted + 1)).toThrow(/beyond the entries handed out/);
  });

  it("with three voters a follower's ack does not commit entries the leader has not made durable", () => {
    // The leader's write W2 is in flight when follower 2 acknowledges it: counting the leader's
    // own unstable copy would commit W2 (leader + 2), and a leader crash before W2 lands could
    // then lose entries a member already applied and answered for.
    const cluster = new TestCluster([1n, 2n, 3n]);
    cluster.campaign(1n);
    const leader = cluster.get(1n);
    const follower = cluster.get(2n);
    const last = leader.node.status().lastIndex;
    expect(leader.node.status().commit).toBe(last);

    leader.node.propose(enc('a'));
    const w1 = leader.node.ready();
    leader.node.propose(enc('b'));
    const w2 = leader.node.ready();
    expect(indexes(w2.entries)).toEqual([last + 2]);
    expect(leader.node.readiesInFlight).toBe(2);
    // Follower 2 (only) receives both appends, writes them and acknowledges.
    cluster.deliver([...w1.messages, ...w2.messages].filter((m) => m.to === 2n));
    const frd = follower.node.ready();
    write(follower.storage, frd);
    follower.node.advance();
    cluster.deliver(frd.messages);
    expect(leader.node.raft.prs.progress.get(2n)?.match).toBe(last + 2);

    // Neither of the leader's writes landed: no commit, and nothing it sends says otherwise.
    expect(leader.node.status().commit).toBe(last);
    const w3 = leader.node.ready();
    expect(w3.hardState?.commit ?? last).toBe(last);
    expect(w3.committedEntries).toEqual([]);
    for (const m of w3.messages) expect(m.commit).toBeLessThanOrEqual(last);

    // W1 lands: entry last+1 is on the leader and on 2.
    write(leader.storage, w1);
    leader.node.persisted();
    expect(leader.node.status().commit).toBe(last + 1);
    // W2 lands: last+2 commits, and the next Ready tells the followers.
    write(leader.storage, w2);
    leader.node.persisted();
    expect(leader.node.status().commit).toBe(last + 2);
    const w4 = leader.node.ready();
    expect(indexes(w4.committedEntries)).toEqual([last + 1, last + 2]);
    const commits = w4.messages.filter((m) => m.type === MessageType.MsgApp).map((m) => [m.to, m.commit]);
    expect(commits).toEqual([
      [2n, last + 2],
      [3n, last + 2],
    ]);
  });
});

/** Member 2 of three, its bootstrap written; `entry(i)` is a term-2 entry a leader 1 sends. */
function bootstrappedFollower(): { follower: RawNode; storage: MemoryStorage; base: number; entry: (index: number) => Entry } {
  const storage = new MemoryStorage();
  const follower = new RawNode({ id: 2n, electionTick: 10, heartbeatTick: 1, storage, random: new SeededRandom(2), peers: [1n, 2n, 3n] });
  const bootstrap = follower.ready();
  write(storage, bootstrap);
  follower.advance();
  const entry = (index: number): Entry => ({ index, term: 2, type: EntryType.Normal, data: enc(`${index}`) });
  return { follower, storage, base: bootstrap.entries.length, entry };
}

describe('RawNode: forwarded proposals ahead of the next Ready', () => {
  it("a follower's forwarded proposals are taken alone; its ack stays for the next Ready; a leader's outbox is left whole", () => {
    const { follower, base, entry } = bootstrappedFollower();
    follower.step(makeMessage({ type: MessageType.MsgApp, from: 1n, to: 2n, term: 2, index: base, logTerm: 1, entries: [entry(base + 1)], commit: base }));
    const first = follower.ready(); // its write in flight
    expect(first.entries.length).toBe(1);
    follower.step(makeMessage({ type: MessageType.MsgApp, from: 1n, to: 2n, term: 2, index: base + 1, logTerm: 2, entries: [entry(base + 2)], commit: base }));
    follower.propose(enc('p'));
    const taken = follower.takeForwardedProposals();
    expect(taken.map((m) => [m.type, m.to, m.term])).toEqual([[MessageType.MsgProp, 1n, 0]]);
    expect(follower.takeForwardedProposals()).toEqual([]);
    const next = follower.ready();
    expect(next.messages.map((m) => [m.type, m.index])).toEqual([[MessageType.MsgAppResp, base + 2]]);

    const { node } = loneLeader();
    node.propose(enc('a'));
    expect(node.takeForwardedProposals()).toEqual([]);
    expect(node.hasReady()).toBe(true);
  });
});

describe('RawNode: durable committed entries ahead of the next Ready', () => {
  it('a commit learned during a write hands out only the entries durable already, once; the Ready keeps the commit', () => {
    const { follower, storage, base, entry } = bootstrappedFollower();
    const append = (index: number, commit: number) =>
      follower.step(
        makeMessage({
          type: MessageType.MsgApp,
          from: 1n,
          to: 2n,
          term: 2,
          index: index - 1,
          logTerm: index - 1 > base ? 2 : 1,
          entries: [entry(index)],
          commit,
        }),
      );
    append(base + 1, base);
    const first = follower.ready();
    write(storage, first);
    follower.persisted();
    append(base + 2, base);
    const second = follower.ready(); // its write in flight
    expect(follower.takeDurableCommitted()).toEqual([]);
    follower.step(makeMessage({ type: MessageType.MsgHeartbeat, from: 1n, to: 2n, term: 2, commit: base + 2 }));
    // Both committed; only the first is durable.
    expect(indexes(follower.takeDurableCommitted())).toEqual([base + 1]);
    expect(follower.takeDurableCommitted()).toEqual([]);
    follower.appliedTo(base + 1);
    write(storage, second);
    follower.persisted();
    const next = follower.ready();
    expect(next.hardState?.commit).toBe(base + 2);
    expect(indexes(next.committedEntries)).toEqual([base + 2]);
  });
});
