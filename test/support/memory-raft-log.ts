// A durable raft log kept in memory, for tests of the Raft driver: the core reads it at once
// (as it reads RaftLogStore), and "durable" moves only when a save completes. hold() keeps
// saves from completing until release(), so a test can look at what the driver does while a
// write is still in flight.

import { MemoryStorage } from '../../src/raft/storage.js';
import type { InitialState, Storage } from '../../src/raft/storage.js';
import { NONE, type ConfState, type Entry, type HardState, type Snapshot } from '../../src/raft/types.js';
import type { DurableRaftLog } from '../../src/server/member/raft-node.js';

export class MemoryRaftLog implements Storage, DurableRaftLog {
  private readonly storage = new MemoryStorage();
  /** The last entry index and the hard state whose saves have completed. */
  durableIndex = 0;
  durableHardState: HardState = { term: 0, vote: NONE, commit: 0 };
  /** Completed saves, in order. */
  saves = 0;
  /** Completed saves that carried entries. */
  entrySaves = 0;
  private held: Array<() => void> | undefined;
  /** The driver's last word on the lowest index it will still read (retainFrom); 0 until it says. */
  retainedFrom = 0;

  save(hardState: HardState | undefined, entries: Entry[], snapshot: Snapshot | undefined, _options: { sync: boolean }): Promise<void> {
    if (snapshot !== undefined && snapshot.metadata.index > this.storage.snapshot().metadata.index) this.storage.applySnapshot(snapshot);
    this.storage.append(entries);
    if (hardState !== undefined) this.storage.setHardState(hardState);
    const lastIndex = entries.length > 0 ? entries[entries.length - 1]!.index : snapshot?.metadata.index;
    const complete = (): void => {
      if (lastIndex !== undefined) this.durableIndex = lastIndex;
      if (hardState !== undefined) this.durableHardState = { ...hardState };
      this.saves++;
      if (entries.length > 0) this.entrySaves++;
    };
    return new Promise((resolve) => {
      const finish = () => {
        complete();
        resolve();
      };
      if (this.held !== undefined) this.held.push(finish);
      else queueMicrotask(finish);
    });
  }

  /** Saves from now on stay in flight until release(). */
  hold(): void {
    this.held ??= [];
  }

  /** Completes the held saves, in order, and stops holding. */
  release(): void {
    const held = this.held ?? [];
    this.held = undefined;
    for (const finish of held) finish();
  }

  async createSnapshot(index: number, confState: ConfState, data: Uint8Array): Promise<Snapshot> {
    return this.storage.createSnapshot(index, confState, data);
  }

  async compact(index: number): Promise<void> {
    this.storage.compact(index);
  }

  initialState(): InitialState {
    return this.storage.initialState();
  }

  entries(lo: number, hi: number, maxSizeBytes: number): Entry[] {
    return this.storage.entries(lo, hi, maxSizeBytes);
  }

  term(index: number): number {
    return this.storage.term(index);
  }

  retainFrom(index: number): void {
    this.retainedFrom = index;
  }

  firstIndex(): number {
    return this.storage.firstIndex();
  }

  lastIndex(): number {
    return this.storage.lastIndex();
  }

  snapshot(): Snapshot {
    return this.storage.snapshot();
  }
}
