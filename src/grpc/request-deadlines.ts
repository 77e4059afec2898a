// Request timeouts without a timer per call. Every unary call that may time out gets the same
// duration (the configured request timeout), so deadlines arrive in the order calls start: a
// FIFO of entries and one timer for the earliest unsettled one replace a Node Timeout object
// per call armed and cleared (a measurable share of a put's CPU; bench/RESULTS.md, "Member
// CPU per put"). Calls mostly finish in the order they started, so settled entries leave from
// the front right away and the queue stays about as long as the calls in flight.

/** One call's place in the queue. */
export interface Deadline {
  /** The call was answered: it will not time out. */
  settle(): void;
}

class Entry implements Deadline {
  settled = false;

  constructor(
    readonly at: number,
    readonly onTimeout: () => void,
    private readonly queue: DeadlineQueue,
  ) {}

  settle(): void {
    if (this.settled) return;
    this.settled = true;
    this.queue.dropSettled();
  }
}

/** Deadlines of one duration; `onTimeout` runs once the duration has passed unsettled. */
export class DeadlineQueue {
  private entries: Entry[] = [];
  private head = 0;
  private timer: ReturnType<typeof setTimeout> | undefined;

  constructor(readonly durationMs: number) {}

  add(onTimeout: () => void): Deadline {
    const entry = new Entry(performance.now() + this.durationMs, onTimeout, this);
    this.entries.push(entry);
    if (this.timer === undefined) this.arm(entry.at);
    return entry;
  }

  /** Calls in flight (unsettled, or settled behind an unsettled one). */
  get length(): number {
    return this.entries.length - this.head;
  }

  /** Forgets settled entries at the front; the timer stops once nothing is left. */
  dropSettled(): void {
    const entries = this.entries;
    while (this.head < entries.length && (entries[this.head] as Entry).settled) this.head++;
    if (this.head === entries.length) {
      this.entries = [];
      this.head = 0;
      if (this.timer !== undefined) {
        clearTimeout(this.timer);
        this.timer = undefined;
      }
    } else if (this.head > 1024 && this.head * 2 > entries.length) {
      this.entries = entries.slice(this.head);
      this.head = 0;
    }
  }

  private arm(at: number): void {
    // Node fires timers on whole milliseconds of its own clock: never early by this one's.
    this.timer = setTimeout(this.expire, Math.max(1, Math.ceil(at - performance.now())));
  }

  private readonly expire = (): void => {
    this.timer = undefined;
    const now = performance.now();
    // A timeout's handler may start or settle calls: take the due entries off the queue first.
    const due: Entry[] = [];
    const entries = this.entries;
    while (this.head < entries.length && (entries[this.head] as Entry).at <= now) {
      const entry = entries[this.head++] as Entry;
      if (!entry.settled) due.push(entry);
    }
    for (const entry of due) entry.settled = true;
    this.dropSettled();
    const next = this.entries[this.head];
    if (next !== undefined && this.timer === undefined) this.arm(next.at);
    for (const entry of due) entry.onTimeout();
  };
}
