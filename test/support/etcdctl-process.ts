// Long-running etcdctl commands (watch, lock, elect) as child processes whose output a test
// awaits as it arrives, plus counting what `etcdctl watch` has printed completely.
//
// etcdctl writes each line of an event with its own write (header, then key, then value), so
// output can stop between the lines of one event: conditions count only complete lines, and a
// watcher is stopped only once the whole last event is out.
import { spawn, type ChildProcess } from 'node:child_process';
import { trackForCleanup } from './processes.js';
import { requireTool } from './tools.js';
import { Notifier } from './wait.js';

const DEFAULT_WAIT_MS = 20_000;

export class EtcdctlProcess {
  out = '';
  err = '';
  /** The exit code once exited (null when killed by a signal); undefined while running. */
  code: number | null | undefined = undefined;
  private readonly child: ChildProcess;
  private readonly changes = new Notifier();

  /** Starts `etcdctl --endpoints=<endpoint> <args...>`; `stdin` is written to it (interactive mode). */
  static async start(endpoint: string, args: readonly string[], options: { stdin?: string } = {}): Promise<EtcdctlProcess> {
    return new EtcdctlProcess(await requireTool('etcdctl', 'etcd-client'), endpoint, args, options);
  }

  private constructor(
    binary: string,
    endpoint: string,
    readonly args: readonly string[],
    options: { stdin?: string },
  ) {
    const env: NodeJS.ProcessEnv = { ...process.env, ETCDCTL_API: '3' };
    // Inherited ETCDCTL_* settings (e.g. ETCDCTL_ENDPOINTS) would change what we test.
    for (const key of Object.keys(env)) if (key.startsWith('ETCDCTL_') && key !== 'ETCDCTL_API') delete env[key];
    const stdin = options.stdin === undefined ? 'ignore' : 'pipe';
    this.child = spawn(binary, [`--endpoints=${endpoint}`, ...args], { env, stdio: [stdin, 'pipe', 'pipe'] });
    if (options.stdin !== undefined) this.child.stdin!.write(options.stdin);
    this.child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
      this.out += chunk;
      this.changes.notify();
    });
    this.child.stderr!.setEncoding('utf8').on('data', (chunk: string) => {
      this.err += chunk;
    });
    // 'close' comes after the exit and after stdout drained, so `out` is complete by then.
    this.child.on('close', (code) => {
      this.code = code;
      untrack();
      this.changes.notify();
    });
    const untrack = trackForCleanup({
      label: `etcdctl ${args.join(' ')}`,
      dispose: async () => {
        await this.stop('SIGKILL');
      },
      disposeSync: () => {
        if (this.code === undefined) this.child.kill('SIGKILL');
      },
    });
  }

  /** Resolves once `ready(stdout)` holds; fails with the output if the process exits first or
   * `timeoutMs` passes. */
  async until(what: string, ready: (out: string) => boolean, timeoutMs = DEFAULT_WAIT_MS): Promise<void> {
    const described = `etcdctl ${this.args.join(' ')}: ${what}`;
    await this.changes.until(
      () => {
        if (ready(this.out)) return true;
        if (this.code !== undefined) throw new Error(`${described}: exited (${this.code}) before that\n${this.output()}`);
        return false;
      },
      { what: described, timeoutMs, detail: () => this.output() },
    );
  }

  /** Waits until `count` complete lines are on stdout. */
  async lines(what: string, count: number, timeoutMs?: number): Promise<void> {
    await this.until(`${what} (${count} lines)`, (out) => completeLines(out).length >= count, timeoutMs);
  }

  async exit(): Promise<number | null> {
    if (this.code === undefined) await new Promise<void>((resolve) => this.child.once('close', () => resolve()));
    return this.code ?? null;
  }

  /** SIGTERM by default (etcdctl's ordinary shutdown: unlock / resign), then the exit code. */
  async stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<number | null> {
    if (this.code === undefined) this.child.kill(signal);
    return this.exit();
  }

  private output(): string {
    return `stdout:\n${this.out}\nstderr:\n${this.err}`;
  }
}

/** The newline-terminated lines of `out` (a line still being written is left out). */
export function completeLines(out: string): string[] {
  const end = out.lastIndexOf('\n');
  return end < 0 ? [] : out.slice(0, end).split('\n');
}

/**
 * Events completely printed by `etcdctl watch` in its simple format WITHOUT --prev-kv: each is
 * three lines (PUT or DELETE, key, value). With --prev-kv an event has two or four lines after
 * its header, which the output alone cannot tell apart: count expected lines instead.
 */
export function simpleWatchEvents(out: string): number {
  const lines = completeLines(out);
  let events = 0;
  for (let i = 0; i < lines.length; i++) {
    if ((lines[i] === 'PUT' || lines[i] === 'DELETE') && i + 2 < lines.length) {
      events++;
      i += 2;
    }
  }
  return events;
}

/** Events printed by `etcdctl watch -w json`: one response per complete line. */
export function jsonWatchEvents(out: string): any[] {
  return completeLines(out)
    .filter((line) => line.startsWith('{'))
    .flatMap((line) => JSON.parse(line).Events ?? []);
}
