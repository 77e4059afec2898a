// Command-line flags of the benchmark scripts, given as `--name value`.

/** A numeric flag's value, or `fallback` when it is not given. */
export function numberFlag(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : fallback;
}

/** A flag's text, or `fallback` when it is not given (or has no value). */
export function textFlag(name: string): string | undefined;
export function textFlag(name: string, fallback: string): string;
export function textFlag(name: string, fallback?: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? (process.argv[i + 1] ?? fallback) : fallback;
}
