// Renders configs/metastore.yaml, the reference config documenting every key with its default
// and a one-line comment, from the key table. A test compares the committed file with this
// output, so the file cannot drift from the schema. To regenerate after changing keys:
//   node --import tsx -e "import('./src/config/reference-yaml.ts').then(m => process.stdout.write(m.renderReferenceYaml()))" > configs/metastore.yaml

import { stringify } from 'yaml';
import { CONFIG_KEYS, type KeySpec } from './schema.js';

function scalar(value: unknown): string {
  return stringify(value, { lineWidth: 0 }).trimEnd();
}

function renderValue(spec: KeySpec): string {
  const value = spec.default;
  if (Array.isArray(value)) return value.length === 0 ? '[]' : `[${value.map((v) => scalar(v)).join(', ')}]`;
  // Strings are always quoted so that a value like "0" or "" keeps its type when read back.
  if (typeof value === 'string') return JSON.stringify(value);
  return scalar(value);
}

export function renderReferenceYaml(): string {
  const lines: string[] = [
    '# MetaStore reference configuration: every key, set to its default.',
    '# Generated from the key table in src/config/schema.ts; src/config/reference-yaml.test.ts keeps it in sync.',
    '# Any key can also be set by environment variable, METASTORE_ + the upper-cased path with dots as',
    '# underscores (server.grpc.port -> METASTORE_SERVER_GRPC_PORT), or by flag (see metastore --help).',
    '# Durations: "100ms", "30s", "5m", "1h" or integer milliseconds. Sizes: integer bytes or "4MiB".',
  ];
  let openSections: string[] = [];
  for (const spec of CONFIG_KEYS) {
    const parts = spec.path.split('.');
    const sections = parts.slice(0, -1);
    let common = 0;
    while (common < sections.length && common < openSections.length && sections[common] === openSections[common]) common++;
    for (let depth = common; depth < sections.length; depth++) {
      lines.push(`${'  '.repeat(depth)}${sections[depth]}:`);
    }
    openSections = sections;
    const indent = '  '.repeat(sections.length);
    lines.push(`${indent}# ${spec.description}`);
    lines.push(`${indent}${parts[parts.length - 1]}: ${renderValue(spec)}`);
  }
  return `${lines.join('\n')}\n`;
}
