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
  ) {
    super(`cannot listen on ${host.includes(':') ? `[${host}]` : host}:${port}: ${describe(code, port) ?? detail}`);
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
