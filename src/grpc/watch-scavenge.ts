// A young-generation collection (scavenge) when the member goes idle after a watch fan-out, so
// that the one V8 would start when the young generation fills does not land inside the next
// revision's path.
//
// Why: at 100 watchers and 100 puts/s a scavenge comes every ~1.2 s and stops the main thread
// for 2-6 ms; V8 starts it where the young generation runs out, which is where the member
// allocates most: inside a put's fan-out (framing the streams' responses). A put it lands in
// has all its events late together (bench/RESULTS.md, "Watch latency at 100 watchers: the p99
// tail"), and its helper threads take the cores the clients read the events with.
//
// Invariants:
// - Armed by every flush round of the watch service; it fires only after IDLE_DELAY_MS without
//   another flush round, so a member fanning out continuously (the 1,000-watcher rows) is never
//   collected by it, and a member without watchers never arms it (the put rows).
// - It collects only when the young generation is at least FILL_FRACTION full: below that, the
//   next allocation-started scavenge is still far off, and an early one would be work for
//   nothing. A scavenge costs what survives it, not the garbage, so one taken early costs
//   about what the allocation-started one would have.
// - Without a way to start a minor collection (see minorCollector) it does nothing.
// - The timer is unref'd: it never keeps a closing process alive.

import { getHeapSpaceStatistics, setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

/** How long after the last flush round the member counts as idle. */
export const IDLE_DELAY_MS = 2;
/** How full the young generation must be for an idle scavenge. */
export const FILL_FRACTION = 0.5;

export interface IdleScavengerOptions {
  /** The young generation's fill, 0..1. */
  youngFill: () => number;
  /** Runs one young-generation collection, synchronously. */
  scavenge: () => void;
  delayMs?: number;
  fillFraction?: number;
}

/** Scavenges once the member has been idle IDLE_DELAY_MS after a fan-out (see the header). */
export class IdleScavenger {
  private timer: NodeJS.Timeout | undefined;
  private readonly delayMs: number;
  private readonly fillFraction: number;
  /** Collections it ran (tests, the bench's probes). */
  scavenges = 0;

  constructor(private readonly options: IdleScavengerOptions) {
    this.delayMs = options.delayMs ?? IDLE_DELAY_MS;
    this.fillFraction = options.fillFraction ?? FILL_FRACTION;
  }

  /** A flush round ran: (re)starts the idle delay. */
  afterFanOut(): void {
    if (this.timer !== undefined) {
      this.timer.refresh();
      return;
    }
    this.timer = setTimeout(this.onIdle, this.delayMs);
    this.timer.unref();
  }

  /** Stops the timer (tests; a closing process needs nothing, the timer is unref'd). */
  stop(): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
  }

  private readonly onIdle = (): void => {
    if (this.options.youngFill() < this.fillFraction) return;
    this.scavenges++;
    this.options.scavenge();
  };
}

/** The young generation's fill (used over capacity), from V8's heap space statistics. */
export function youngGenerationFill(): number {
  for (const space of getHeapSpaceStatistics()) {
    if (space.space_name !== 'new_space') continue;
    const capacity = space.space_used_size + space.space_available_size;
    return capacity > 0 ? space.space_used_size / capacity : 0;
  }
  return 0;
}

/**
 * A function that runs one minor (young-generation) collection, or undefined when V8 offers
 * none. V8's gc() is installed in contexts created while --expose-gc is set: the flag is set
 * for one new context and cleared again, so no other context gets a `gc` global.
 */
export function minorCollector(): (() => void) | undefined {
  try {
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as unknown;
    setFlagsFromString('--no-expose-gc');
    if (typeof gc !== 'function') return undefined;
    return () => (gc as (options: { type: 'minor' }) => void)({ type: 'minor' });
  } catch {
    return undefined;
  }
}

/** The watch service's scavenger: V8's own collector, or one that never collects. */
export function processIdleScavenger(): IdleScavenger {
  const scavenge = minorCollector();
  return new IdleScavenger({ youngFill: scavenge === undefined ? () => 0 : youngGenerationFill, scavenge: scavenge ?? (() => {}) });
}
