// MetaStore's own version (package.json's), for `metastore --version`.

import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** Levels above this file searched for package.json: from src/node here, or dist/src/node when built. */
const SEARCH_LEVELS = 5;

export function packageVersion(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < SEARCH_LEVELS; i++) {
    try {
      return (JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { version: string }).version;
    } catch {
      dir = dirname(dir);
    }
  }
  return 'unknown';
}
