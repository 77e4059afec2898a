// A budget of log lines per interval, for warnings a flood can repeat thousands of times a
// second (refused connections, slow requests under overload): past the budget, lines are only
// counted, and the next line written says how many were held back. Writing a line per event
// would make the flood worse: each line costs the one thread a synchronous write to stdout.

export interface LogBudgetOptions {
  /** Lines written per interval at most. */
  linesPerInterval: number;
  intervalMs?: number;
  nowMs?: () => number;
}

export class LogBudget {
  private intervalStartMs = Number.NEGATIVE_INFINITY;
  private writtenInInterval = 0;
  private heldBack = 0;
  private readonly intervalMs: number;
  private readonly nowMs: () => number;

  constructor(private readonly options: LogBudgetOptions) {
    this.intervalMs = options.intervalMs ?? 1000;
    this.nowMs = options.nowMs ?? Date.now;
  }

  /** undefined: hold this line back (it is counted); otherwise write it, and with it the number
   * of lines held back since the last one written. */
  take(): number | undefined {
    const now = this.nowMs();
    if (now - this.intervalStartMs >= this.intervalMs) {
      this.intervalStartMs = now;
      this.writtenInInterval = 0;
    }
    if (this.writtenInInterval >= this.options.linesPerInterval) {
      this.heldBack++;
      return undefined;
    }
    this.writtenInInterval++;
    const heldBack = this.heldBack;
    this.heldBack = 0;
    return heldBack;
  }
}
