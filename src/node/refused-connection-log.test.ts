import { describe, expect, it } from 'vitest';
import { RefusedConnectionLog } from './refused-connection-log.js';

function setup() {
  let nowMs = 10_000;
  const lines: Array<{ fields: Record<string, unknown>; message: string }> = [];
  const log = new RefusedConnectionLog({
    logger: { warn: (fields, message) => lines.push({ fields: fields as Record<string, unknown>, message }) },
    maxConnections: 3,
    nowMs: () => nowMs,
  });
  return { log, lines, advance: (ms: number) => (nowMs += ms) };
}

describe('refused-connection log limiter', () => {
  it('warns at once for the first refusal, naming the limit and the address', () => {
    const { log, lines } = setup();
    log.refused('127.0.0.1:5000');
    expect(lines).toEqual([
      { fields: { remoteAddress: '127.0.0.1:5000', refused: 1, maxConnections: 3 }, message: 'refused client connection: max_connections reached' },
    ]);
  });

  it('stays quiet within the interval, then reports every refusal since the last warning', () => {
    const { log, lines, advance } = setup();
    log.refused('a');
    for (let i = 0; i < 5; i++) {
      advance(100);
      log.refused('b');
    }
    expect(lines).toHaveLength(1);
    advance(500); // 1000 ms after the first warning
    log.refused('c');
    expect(lines).toHaveLength(2);
    expect(lines[1]!.fields).toEqual({ remoteAddress: 'c', refused: 6, maxConnections: 3 });
  });

  it('starts counting afresh after each warning', () => {
    const { log, lines, advance } = setup();
    log.refused('a');
    advance(1000);
    log.refused('b');
    advance(1000);
    log.refused('c');
    expect(lines.map((l) => l.fields.refused)).toEqual([1, 1, 1]);
  });
});
