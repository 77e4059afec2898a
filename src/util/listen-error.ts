// A listening socket that could not be opened: the port is taken, or the address is not one of
// this machine's. Typed so that start-up can name the config key and exit with one line.

export class ListenError extends Error {
  override name = 'ListenError';

  constructor(
    readonly host: string,
    readonly port: number,
    /** The system error code (EADDRINUSE, EADDRNOTAVAIL, EACCES), when known. */
    readonly code: string | undefined,
    detail: string,
    /** The unix socket file, for a unix or unixs URL (host and port are then its name's parts). */
    readonly socketPath?: string,
  ) {
    super(
      socketPath === undefined
        ? `cannot listen on ${host.includes(':') ? `[${host}]` : host}:${port}: ${describe(code, port) ?? detail}`
        : `cannot listen on unix socket ${socketPath}: ${describeSocket(code) ?? detail}`,
    );
  }
}

function describeSocket(code: string | undefined): string | undefined {
  switch (code) {
    case 'EADDRINUSE':
      return 'the socket file already exists (in use, or left by a process that did not stop cleanly: remove it)';
    case 'EACCES':
      return 'no permission to create the socket file';
    case 'ENOENT':
      return 'its directory does not exist';
    default:
      return undefined;
  }
}

function describe(code: string | undefined, port: number): string | undefined {
  switch (code) {
    case 'EADDRINUSE':
      return `port ${port} is already in use`;
    case 'EADDRNOTAVAIL':
      return "the address is not one of this machine's";
    case 'EACCES':
      return `no permission to listen on port ${port}`;
    default:
      return undefined;
  }
}

/** Turns a listen() failure into a ListenError (anything without a code is passed through). */
export function listenErrorOf(error: unknown, host: string, port: number): unknown {
  const code = (error as { code?: unknown } | null)?.code;
  if (typeof code !== 'string') return error;
  return new ListenError(host, port, code, error instanceof Error ? error.message : String(error));
}

/** listenErrorOf for a unix socket file. */
export function socketListenErrorOf(error: unknown, socketPath: string): unknown {
  const code = (error as { code?: unknown } | null)?.code;
  if (typeof code !== 'string') return error;
  return new ListenError(socketPath, 0, code, error instanceof Error ? error.message : String(error), socketPath);
}
