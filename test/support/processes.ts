// Child-process plumbing shared by the etcd and MetaStore launchers.
//
// Invariants:
// - Every server process a test starts is in `live` until it has exited and its data dir is
//   gone. Processes started inside a test (or its beforeEach) are disposed when that test
//   finishes; processes started in beforeAll are disposed in this module's afterAll; a
//   synchronous process 'exit' handler SIGKILLs whatever is left, so a crashed or aborted test
//   run does not leave servers listening on loopback.
// - Readiness is an event (a log line), never a sleep; waiting is bounded by a timeout whose
//   error carries the log tail, so a server that never comes up fails the test with its reason.
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import { afterAll, onTestFinished } from 'vitest';

export interface ExitInfo {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** Something the registry must tear down: a server process and/or its temp data dir. */
export interface Disposable {
  readonly label: string;
  /** Stops the process (if running) and removes its data dir. Idempotent. */
  dispose(): Promise<void>;
  /** Last-resort, synchronous variant used from process.on('exit'). */
  disposeSync(): void;
}

const live = new Set<Disposable>();

/**
 * Registers `resource` for cleanup: at the end of the current test when called inside one,
 * otherwise at the end of the file. Returns a function that unregisters it (call it once the
 * resource has cleaned up after itself).
 */
export function trackForCleanup(resource: Disposable): () => void {
  live.add(resource);
  try {
    onTestFinished(async () => {
      await resource.dispose();
    });
  } catch {
    // Not inside a test (e.g. beforeAll): the file-level afterAll below handles it.
  }
  return () => {
    live.delete(resource);
  };
}

/** Disposes every tracked resource; errors are collected and rethrown together. */
export async function disposeAll(): Promise<void> {
  const resources = [...live];
  const results = await Promise.allSettled(resources.map((r) => r.dispose()));
  const failures = results.flatMap((r, i) => (r.status === 'rejected' ? [`${resources[i]?.label}: ${String(r.reason)}`] : []));
  if (failures.length > 0) throw new Error(`cleanup failed:\n${failures.join('\n')}`);
}

// Under vitest, a file-level afterAll disposes whatever the file started; scripts that reuse the
// harness outside vitest (bench/) call disposeAll() themselves.
if (process.env.VITEST) {
  afterAll(async () => {
    await disposeAll();
  }, 60_000);
}

process.on('exit', () => {
  for (const resource of live) {
    try {
      resource.disposeSync();
    } catch {
      // Best effort: the process is exiting anyway.
    }
  }
});

/** Removes a directory tree; used for temp data dirs. */
export function removeDirSync(dir: string): void {
  fs.rmSync(dir, { recursive: true, force: true });
}

const LOG_LIMIT_CHARS = 2_000_000;
const READY_SCAN_CHARS = 8_192;

/** A running (or exited) server child process with captured output. */
export class ServerProcess {
  readonly child: ChildProcess;
  readonly label: string;
  /** Settles when the process has exited (never rejects). */
  readonly exited: Promise<ExitInfo>;
  private exitInfo: ExitInfo | undefined;
  private logText = '';
  private readonly scan = { stdout: '', stderr: '' };
  private readonly listeners = new Set<() => void>();

  /** `cwd`: the working directory (default ours); unix socket URLs are relative to it. */
  constructor(label: string, command: string, args: readonly string[], env: NodeJS.ProcessEnv, cwd?: string) {
    this.label = label;
    this.child = spawn(command, args, { env, stdio: ['ignore', 'pipe', 'pipe'], ...(cwd !== undefined && { cwd }) });
    this.exited = new Promise<ExitInfo>((resolve) => {
      // 'close' fires after the exit AND after stdio drained, so logs() is complete by then.
      this.child.once('close', (code, signal) => {
        this.exitInfo = { code, signal };
        this.notify();
        resolve(this.exitInfo);
      });
      this.child.once('error', (error) => {
        this.append('stderr', `\n[harness] spawn error: ${error.message}\n`);
        if (this.child.pid === undefined) {
          this.exitInfo = { code: null, signal: null };
          this.notify();
          resolve(this.exitInfo);
        }
      });
    });
    this.child.stdout?.setEncoding('utf8').on('data', (chunk: string) => this.append('stdout', chunk));
    this.child.stderr?.setEncoding('utf8').on('data', (chunk: string) => this.append('stderr', chunk));
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  isRunning(): boolean {
    return this.exitInfo === undefined && this.child.pid !== undefined;
  }

  logs(): string {
    return this.logText;
  }

  logTail(lines = 40): string {
    return this.logText.split('\n').slice(-lines).join('\n');
  }

  /**
   * Resolves when `line` has appeared on stdout or stderr; rejects (with the log tail) when the
   * process exits first or `timeoutMs` passes.
   */
  waitForLog(line: string, timeoutMs: number): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const check = (): void => {
        if (this.scan.stdout.includes(line) || this.scan.stderr.includes(line)) {
          finish();
          resolve();
        } else if (this.exitInfo !== undefined) {
          finish();
          reject(
            new Error(
              `${this.label} exited (code ${this.exitInfo.code}, signal ${this.exitInfo.signal}) ` + `before logging "${line}". Log tail:\n${this.logTail()}`,
            ),
          );
        }
      };
      const timer = setTimeout(() => {
        finish();
        reject(new Error(`${this.label} did not log "${line}" within ${timeoutMs} ms. Log tail:\n${this.logTail()}`));
      }, timeoutMs);
      const finish = (): void => {
        clearTimeout(timer);
        this.listeners.delete(check);
      };
      this.listeners.add(check);
      check();
    });
  }

  /**
   * Sends `signal` and waits for the exit. If the process is still alive after `graceMs`,
   * it is SIGKILLed (and that is reported as an error only through the returned ExitInfo).
   */
  async terminate(signal: NodeJS.Signals, graceMs = 15_000): Promise<ExitInfo> {
    if (!this.isRunning()) return this.exitInfo ?? (await this.exited);
    this.child.kill(signal);
    let timer: NodeJS.Timeout | undefined;
    const escalate = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, graceMs);
    });
    const outcome = await Promise.race([this.exited.then(() => 'exited' as const), escalate.then(() => 'timeout' as const)]);
    clearTimeout(timer);
    if (outcome === 'timeout') {
      this.append('stderr', `\n[harness] ${this.label} ignored ${signal} for ${graceMs} ms; sending SIGKILL\n`);
      this.child.kill('SIGKILL');
    }
    return await this.exited;
  }

  /** Synchronous SIGKILL for the process 'exit' safety net. */
  killSync(): void {
    if (this.isRunning()) {
      try {
        this.child.kill('SIGKILL');
      } catch {
        // Already gone.
      }
    }
  }

  private append(stream: 'stdout' | 'stderr', chunk: string): void {
    this.logText += chunk;
    if (this.logText.length > LOG_LIMIT_CHARS) this.logText = this.logText.slice(-LOG_LIMIT_CHARS);
    this.scan[stream] = (this.scan[stream] + chunk).slice(-READY_SCAN_CHARS);
    this.notify();
  }

  private notify(): void {
    for (const listener of [...this.listeners]) listener();
  }
}

/** True when a process with this pid exists (signal 0 probe). */
export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}
