// The shared wait helpers: they resolve on the awaited condition or event, and a wait that
// fails says what it waited for (and what it saw last).

import { describe, expect, it } from 'vitest';
import { holdFor, Inbox, Notifier, waitFor, within } from './wait.js';

describe('waitFor', () => {
  it('returns the first value that satisfies the condition, retrying probes that throw', async () => {
    let calls = 0;
    const value = await waitFor(
      () => {
        calls++;
        if (calls === 1) throw new Error('not up yet');
        return calls;
      },
      { what: 'the third call', until: (n) => n >= 3, intervalMs: 1 },
    );
    expect(value).toBe(3);
  });

  it('fails naming what it waited for and the last value seen', async () => {
    const probe = () => ({ leader: '0' });
    await expect(waitFor(probe, { what: 'a leader', until: (s) => s.leader !== '0', timeoutMs: 30, intervalMs: 5 })).rejects.toThrow(
      /waiting for a leader\nlast: \{"leader":"0"\}/,
    );
  });
});

describe('Notifier', () => {
  it('re-checks on notify and resolves once the condition holds', async () => {
    const changes = new Notifier();
    let count = 0;
    const done = changes.until(() => count >= 2, { what: 'two changes', timeoutMs: 1000 });
    count = 1;
    changes.notify();
    count = 2;
    changes.notify();
    await expect(done).resolves.toBeUndefined();
  });

  it('gives up when the check throws, and on timeout with its detail', async () => {
    const changes = new Notifier();
    const exited = changes.until(
      () => {
        throw new Error('process exited');
      },
      { what: 'output' },
    );
    await expect(exited).rejects.toThrow('process exited');
    await expect(new Notifier().until(() => false, { what: 'output', timeoutMs: 10, detail: () => 'stdout: nothing' })).rejects.toThrow(
      /waiting for output\nstdout: nothing/,
    );
  });
});

describe('Inbox, within, holdFor', () => {
  it('hands out items in arrival order, by count', async () => {
    const inbox = new Inbox<number>();
    const first = inbox.take(2, { what: 'two items', timeoutMs: 1000 });
    inbox.push(1);
    inbox.push(2, 3);
    expect(await first).toEqual([1, 2]);
    expect(inbox.pending).toBe(1);
    expect(await inbox.take(1, { what: 'one more', timeoutMs: 1000 })).toEqual([3]);
  });

  it('within passes a settled value through and names what did not settle in time', async () => {
    expect(await within(Promise.resolve('ok'), { what: 'a reply', timeoutMs: 1000 })).toBe('ok');
    await expect(within(new Promise(() => undefined), { what: 'a reply', timeoutMs: 10 })).rejects.toThrow(/waiting for a reply/);
  });

  it('holdFor needs a reason', async () => {
    await expect(holdFor(1, ' ')).rejects.toThrow('holdFor needs a reason');
  });
});
