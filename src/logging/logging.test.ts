// Logging: file output reopened after a logrotate-style rename, size rotation with backup
// pruning, and the console line format.

import { existsSync, mkdtempSync, readFileSync, renameSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { pbkdf2 } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterEach, describe, expect, it } from 'vitest';
import { waitFor } from '../../test/support/wait.js';
import { backupName, createLogging, formatConsoleLine, listBackups, type LoggingOptions } from './logging.js';

const dirs: string[] = [];
function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'metastore-log-'));
  dirs.push(dir);
  return dir;
}
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

/** Waits (bounded) until `file` exists and contains `text` (pino writes asynchronously). */
async function waitForText(file: string, text: string): Promise<string> {
  return waitFor(() => (existsSync(file) ? readFileSync(file, 'utf8') : ''), {
    what: `${file} to contain ${JSON.stringify(text)}`,
    until: (content) => content.includes(text),
    timeoutMs: 5000,
    intervalMs: 10,
  });
}

/** libuv's thread pool size (UV_THREADPOOL_SIZE, default 4). */
function poolThreads(): number {
  return Number(process.env.UV_THREADPOOL_SIZE ?? 4);
}

function options(output: string, extra: Partial<LoggingOptions> = {}): LoggingOptions {
  return { level: 'info', format: 'json', output, maxSizeBytes: 0, maxBackups: 0, maxAgeDays: 0, ...extra };
}

describe('logging', () => {
  it('reopen() after a rename sends new lines to a new file at the configured path', async () => {
    const file = join(tempDir(), 'sub', 'metastore.log');
    const logging = createLogging(options(file));
    logging.logger.info('before rotation');
    await waitForText(file, 'before rotation');
    renameSync(file, `${file}.1`);
    logging.logger.info('still the old descriptor');
    await waitForText(`${file}.1`, 'still the old descriptor');
    logging.reopen();
    logging.logger.info('after reopen');
    const fresh = await waitForText(file, 'after reopen');
    expect(fresh).not.toContain('before rotation');
    expect(readFileSync(`${file}.1`, 'utf8')).not.toContain('after reopen');
    logging.flushSync();
  });

  it('flushInOrder() lands lines in the order logged while an asynchronous write is in flight', async () => {
    const file = join(tempDir(), 'ordered.log');
    const logging = createLogging(options(file));
    logging.logger.info('opened');
    await waitForText(file, 'opened');
    for (let round = 0; round < 3; round++) {
      // Every libuv pool thread busy for a while: the first line's asynchronous write waits
      // behind them, the other lines wait in the buffer. flushSync alone would write those at
      // once, ahead of the first (what a CI run saw at shutdown).
      const busy = Array.from({ length: poolThreads() }, () => promisify(pbkdf2)('p', 's', 20_000, 32, 'sha256'));
      for (let i = 0; i < 5; i++) logging.logger.info({ round, i }, 'line');
      await logging.flushInOrder(5000);
      await Promise.all(busy);
    }
    const order = readFileSync(file, 'utf8')
      .trim()
      .split('\n')
      .slice(1)
      .map((line) => JSON.parse(line) as { round: number; i: number })
      .map((entry) => entry.round * 5 + entry.i);
    expect(order).toEqual(Array.from({ length: 15 }, (_, n) => n));
  });

  it('rotates by size, naming backups by time, and keeps max_backups of them', async () => {
    const dir = tempDir();
    const file = join(dir, 'm.log');
    let clock = Date.parse('2024-05-01T10:00:00.000Z');
    const logging = createLogging(
      options(file, {
        maxSizeBytes: 1000,
        maxBackups: 2,
        now: () => {
          clock += 1000;
          return new Date(clock);
        },
      }),
    );
    for (let i = 0; i < 40; i++) {
      logging.logger.info({ i, pad: 'x'.repeat(100) }, 'line');
      await waitForText(file, `"i":${i},`);
    }
    expect(logging.rotations).toBeGreaterThanOrEqual(3);
    const backups = listBackups(file);
    expect(backups).toHaveLength(2);
    for (const backup of backups) expect(readFileSync(backup, 'utf8').length).toBeLessThanOrEqual(1000);
    expect(readFileSync(file, 'utf8').length).toBeLessThanOrEqual(1000);
    // The newest backup holds the lines just before the current file's first line.
    const firstCurrent = JSON.parse(readFileSync(file, 'utf8').split('\n')[0]!) as { i: number };
    expect(readFileSync(backups[1]!, 'utf8')).toContain(`"i":${firstCurrent.i - 1},`);
  });

  it('removes backups older than max_age days at the next rotation', async () => {
    const dir = tempDir();
    const file = join(dir, 'm.log');
    const now = Date.parse('2024-05-10T00:00:00.000Z');
    const old = backupName(file, new Date(now - 40 * 86_400_000));
    writeFileSync(old, 'old\n');
    const oldSeconds = (now - 40 * 86_400_000) / 1000;
    utimesSync(old, oldSeconds, oldSeconds);
    const logging = createLogging(options(file, { maxSizeBytes: 200, maxAgeDays: 30, now: () => new Date(now) }));
    logging.logger.info({ pad: 'x'.repeat(150) }, 'first');
    await waitForText(file, 'first');
    logging.logger.info({ pad: 'y'.repeat(150) }, 'second');
    await waitForText(file, 'second');
    expect(existsSync(old)).toBe(false);
    expect(listBackups(file)).toHaveLength(1);
  });

  it('console format: time, level, component, message, fields and the error stack', () => {
    const line = JSON.stringify({
      level: 40,
      time: Date.parse('2024-05-01T10:20:30.400Z'),
      pid: 1,
      name: 'm1',
      component: 'grpc',
      method: 'Put',
      key: 'a b',
      tookMs: 12.5,
      msg: 'slow request',
      err: { message: 'boom', stack: 'Error: boom\n    at x' },
    });
    expect(formatConsoleLine(line)).toBe(
      '2024-05-01T10:20:30.400Z WARN  [grpc] slow request method=Put key="a b" tookMs=12.5 err=boom\n    Error: boom\n        at x\n',
    );
    expect(formatConsoleLine('not json\n')).toBe('not json\n');
  });
});
