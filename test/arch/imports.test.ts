// Architecture guard (DESIGN.md §2): imports point one way, down the module map, and the pure
// cores (raft, mvcc, lease, auth) touch no clock, no randomness, no timers and no Node APIs —
// that is what lets the simulator drive them deterministically.

import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const SRC = resolve(dirname(fileURLToPath(import.meta.url)), '../../src');

/** Higher may import lower; equal ranks are siblings and may not import each other. */
const RANK: Record<string, number> = {
  util: 0,
  raft: 1,
  mvcc: 1,
  lease: 1,
  auth: 1,
  storage: 2,
  server: 3,
  config: 3,
  grpc: 4,
  http: 4,
  transport: 4,
  metrics: 4,
  tls: 4,
  'cli.ts': 5,
  'main.ts': 6,
};
const PURE = new Set(['raft', 'mvcc', 'lease', 'auth']);

function sourceFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return sourceFiles(path);
    return path.endsWith('.ts') && !path.endsWith('.test.ts') ? [path] : [];
  });
}

function moduleOf(path: string): string {
  return relative(SRC, path).split('/')[0]!.replace(/\.js$/, '.ts');
}

function imports(text: string): string[] {
  const found: string[] = [];
  for (const match of text.matchAll(/^\s*(?:import|export)\s[^'"]*?from\s+['"]([^'"]+)['"]/gm)) found.push(match[1]!);
  for (const match of text.matchAll(/^\s*import\s+['"]([^'"]+)['"]/gm)) found.push(match[1]!);
  return found;
}

const files = sourceFiles(SRC);

describe('architecture', () => {
  it('every module under src/ has a rank in the module map', () => {
    const unknown = [...new Set(files.map(moduleOf))].filter((m) => RANK[m] === undefined);
    expect(unknown).toEqual([]);
  });

  it('imports point down the module map (never up, never sideways between siblings)', () => {
    const violations: string[] = [];
    for (const file of files) {
      const from = moduleOf(file);
      for (const spec of imports(readFileSync(file, 'utf8'))) {
        if (!spec.startsWith('.')) continue;
        const to = moduleOf(resolve(dirname(file), spec));
        if (to === from) continue;
        if (!(RANK[to]! < RANK[from]!)) violations.push(`${relative(SRC, file)} imports ${spec} (${from} -> ${to})`);
      }
    }
    expect(violations).toEqual([]);
  });

  it('pure cores use no clock, randomness, timers or Node APIs', () => {
    const violations: string[] = [];
    const forbidden = [/\bDate\.now\b/, /\bnew Date\(/, /\bMath\.random\b/, /\bsetTimeout\b/, /\bsetInterval\b/, /\bsetImmediate\b/, /\bprocess\./, /\bperformance\.now\b/];
    for (const file of files.filter((f) => PURE.has(moduleOf(f)))) {
      const text = readFileSync(file, 'utf8').replace(/\/\/.*$/gm, '').replace(/\/\*[\s\S]*?\*\//g, '');
      for (const spec of imports(text)) {
        if (spec.startsWith('node:') || ['fs', 'path', 'crypto', 'os', 'net', 'child_process', 'timers'].includes(spec)) {
          violations.push(`${relative(SRC, file)} imports ${spec}`);
        }
        if (!spec.startsWith('.') && !spec.startsWith('node:')) violations.push(`${relative(SRC, file)} imports package ${spec}`);
      }
      for (const pattern of forbidden) if (pattern.test(text)) violations.push(`${relative(SRC, file)} uses ${pattern.source}`);
    }
    expect(violations).toEqual([]);
  });
});
