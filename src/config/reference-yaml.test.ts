// configs/metastore.yaml must document exactly the keys of the table with their defaults: it is
// compared with the generated text, and also read back as a config to be sure it means DEFAULTS.

import { readFileSync } from 'node:fs';
import { parse } from 'yaml';
import { describe, expect, it } from 'vitest';
import { parseYamlConfig } from './parse-config.js';
import { renderReferenceYaml } from './reference-yaml.js';
import { CONFIG_KEYS, DEFAULTS } from './schema.js';

const FILE = new URL('../../configs/metastore.yaml', import.meta.url);

function flatten(node: unknown, prefix = ''): string[] {
  if (node === null || typeof node !== 'object' || Array.isArray(node)) return [prefix];
  return Object.entries(node).flatMap(([k, v]) => flatten(v, prefix === '' ? k : `${prefix}.${k}`));
}

describe('configs/metastore.yaml', () => {
  const text = readFileSync(FILE, 'utf8');

  it('is the output of renderReferenceYaml (regenerate it if this fails)', () => {
    expect(text).toBe(renderReferenceYaml());
  });

  it('lists exactly the keys of the table, each under a comment', () => {
    expect(flatten(parse(text)).sort()).toEqual(CONFIG_KEYS.map((k) => k.path).sort());
    const lines = text.split('\n');
    lines.forEach((line, i) => {
      if (/^\s+[a-z_]+: \S/.test(line)) expect(lines[i - 1], line).toMatch(/^\s+# \S/);
    });
  });

  it('reads back as exactly the defaults', () => {
    expect(parseYamlConfig(text, 'configs/metastore.yaml')).toEqual(DEFAULTS);
  });
});
