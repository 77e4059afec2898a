// Process signals. SIGTERM and SIGINT shut the member down gracefully, in an order that loses
// no client and leaves no cluster without a leader:
//   readiness 503 (a balancer drains the member) -> stop the timers that act on their own ->
//   hand leadership over -> close the client port (edge processes first; in-flight calls
//   finish within the grace period) -> close the side ports -> close the member (flush, close the database) -> close
//   the peer transport -> exit 0.
// A second signal during that is ignored. SIGHUP (logrotate's postrotate) reopens the log file.

import type { Logging } from '../logging/logging.js';

export interface ShutdownSteps {
  /** From here on /readiness answers 503. */
  markNotReady(): void;
  /** The compactor and the periodic corruption check. */
  stopTimers(): void;
  handOffLeadership(): Promise<void>;
  closeClientPort(): Promise<void>;
  closeSidePorts(): Promise<void>;
  closeMember(): Promise<void>;
  closeTransport(): Promise<void>;
}

export interface ShutdownOptions {
  logger: { info(fields: object, message: string): void; info(message: string): void };
  /** Writes out the log, in order (may wait for a write in flight). */
  flushLog(): Promise<void> | void;
  exit(code: number): void;
}

/** The shutdown sequence, run once whichever signal comes first. */
export function gracefulShutdown(steps: ShutdownSteps, options: ShutdownOptions): (signal: string) => Promise<void> {
  let started = false;
  return async (signal) => {
    if (started) return;
    started = true;
    steps.markNotReady();
    options.logger.info({ signal }, 'shutting down; readiness reports not ready');
    steps.stopTimers();
    await steps.handOffLeadership();
    await steps.closeClientPort();
    options.logger.info('client port closed');
    await steps.closeSidePorts();
    await steps.closeMember();
    await steps.closeTransport();
    options.logger.info('stopped');
    await options.flushLog();
    options.exit(0);
  };
}

export function shutdownOnSignals(steps: ShutdownSteps, options: ShutdownOptions): void {
  const shutdown = gracefulShutdown(steps, options);
  process.on('SIGTERM', () => void shutdown('SIGTERM'));
  process.on('SIGINT', () => void shutdown('SIGINT'));
}

/** Asks this process to shut down as an operator's SIGTERM would (e.g. once removed from the cluster). */
export function stopSelf(): void {
  process.kill(process.pid, 'SIGTERM');
}

/** logrotate's postrotate sends SIGHUP: reopen the log file at its configured path. */
export function reopenLogOnHangup(logging: Logging, output: string): void {
  process.on('SIGHUP', () => {
    logging.reopen();
    logging.logger.info({ output }, 'reopened log output on SIGHUP');
  });
}
