// A client flood past --max-connections must not flood the log too: at most one warning per
// interval about refused connections, carrying how many were refused since the last one.

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
  private lastLogMs = 0;
  private readonly intervalMs: number;
  private readonly nowMs: () => number;

  constructor(private readonly options: RefusedConnectionLogOptions) {
    this.intervalMs = options.intervalMs ?? 1000;
    this.nowMs = options.nowMs ?? Date.now;
  }

  /** Counts one refused connection; warns if the last warning is at least an interval old. */
  refused(remoteAddress: string | undefined): void {
    this.refusedSinceLog++;
    const now = this.nowMs();
    if (now - this.lastLogMs < this.intervalMs) return;
    const fields = { remoteAddress, refused: this.refusedSinceLog, maxConnections: this.options.maxConnections };
    this.options.logger.warn(fields, 'refused client connection: max_connections reached');
    this.refusedSinceLog = 0;
    this.lastLogMs = now;
  }
}
