// docs/operations/configuration.md is exactly what scripts/config-reference.ts generates from
// the schema: a key added, renamed or given a new default without regenerating fails here.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { configReference } from '../../scripts/config-reference.js';
import { CONFIG_KEYS } from '../../src/config/schema.js';
import { REPO_ROOT } from '../support/servers.js';

describe('configuration reference', () => {
  it('the committed page equals the generator output (regenerate: node --import tsx scripts/config-reference.ts > docs/operations/configuration.md)', () => {
    const committed = readFileSync(join(REPO_ROOT, 'docs', 'operations', 'configuration.md'), 'utf8');
    expect(committed).toBe(configReference());
  });

  it('lists every key with its environment variable', () => {
    const page = configReference();
    for (const spec of CONFIG_KEYS) expect(page).toContain(`| \`${spec.path}\` |`);
    expect(page).toContain('`METASTORE_SERVER_GRPC_PORT`');
    expect(page).toContain('| `--initial-cluster` |');
  });
});
