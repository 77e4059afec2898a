// A client flood past --max-connections must not flood the log too: at most one warning per
// interval about refused connections, carrying how many were refused since the last one.

import { LogBudget } from '../logging/log-budget.js';

export interface RefusalLogger {
  warn(fields: object, message: string): void;
}

export interface RefusedConnectionLogOptions {
  logger: RefusalLogger;
  maxConnections: number;
  intervalMs?: number;
  nowMs?: () => number;
}

export class RefusedConnectionLog {
  private refusedSinceLog = 0;
  private readonly budget: LogBudget;

  constructor(private readonly options: RefusedConnectionLogOptions) {
    this.budget = new LogBudget({ linesPerInterval: 1, intervalMs: options.intervalMs, nowMs: options.nowMs });
  }

  /** Counts one refused connection; warns if the last warning is at least an interval old. */
  refused(remoteAddress: string | undefined): void {
    this.refusedSinceLog++;
    if (this.budget.take() === undefined) return;
    const fields = { remoteAddress, refused: this.refusedSinceLog, maxConnections: this.options.maxConnections };
    this.options.logger.warn(fields, 'refused client connection: max_connections reached');
    this.refusedSinceLog = 0;
  }
}
