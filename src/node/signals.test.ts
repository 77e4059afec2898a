import { describe, expect, it } from 'vitest';
import { gracefulShutdown, type ShutdownSteps } from './signals.js';

function recorder() {
  const events: string[] = [];
  let finishHandOff = (): void => {};
  const steps: ShutdownSteps = {
    markNotReady: () => void events.push('not ready'),
    stopTimers: () => void events.push('timers stopped'),
    handOffLeadership: () =>
      new Promise<void>((resolve) => {
        events.push('hand-off started');
        finishHandOff = () => {
          events.push('hand-off done');
          resolve();
        };
      }),
    closeClientPort: async () => void events.push('client port'),
    closeSidePorts: async () => void events.push('side ports'),
    closeMember: async () => void events.push('member'),
    closeTransport: async () => void events.push('transport'),
  };
  const options = {
    logger: { info: (first: object | string, second?: string) => void events.push(`log: ${second ?? first}`) },
    flushLog: () => void events.push('flush'),
    exit: (code: number) => void events.push(`exit ${code}`),
  };
  return { events, steps, options, finishHandOff: () => finishHandOff() };
}

describe('graceful shutdown', () => {
  it('readiness first, then hand-off, client port, side ports, member, transport, and exit 0', async () => {
    const { events, steps, options, finishHandOff } = recorder();
    const shutdown = gracefulShutdown(steps, options);
    const done = shutdown('SIGTERM');
    // Nothing is closed while leadership is being handed over.
    expect(events).toEqual(['not ready', 'log: shutting down; readiness reports not ready', 'timers stopped', 'hand-off started']);
    finishHandOff();
    await done;
    expect(events.slice(4)).toEqual([
      'hand-off done',
      'client port',
      'log: client port closed',
      'side ports',
      'member',
      'transport',
      'log: stopped',
      'flush',
      'exit 0',
    ]);
  });

  it('a second signal during shutdown does nothing', async () => {
    const { events, steps, options, finishHandOff } = recorder();
    const shutdown = gracefulShutdown(steps, options);
    const first = shutdown('SIGTERM');
    await shutdown('SIGINT');
    finishHandOff();
    await first;
    expect(events.filter((e) => e === 'not ready' || e.startsWith('exit'))).toEqual(['not ready', 'exit 0']);
  });
});
