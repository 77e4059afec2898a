// Architecture guard (DESIGN.md §2): imports point one way, down the module map, and the pure
// cores (raft, mvcc, lease, auth) touch no clock, no randomness, no timers and no Node APIs —
// that is what lets the simulator drive them deterministically.

import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const SRC = resolve(dirname(fileURLToPath(import.meta.url)), '../../src');

/**
 * Higher may import lower; equal ranks are siblings and may not import each other. The rooms of
 * src/server are ranked one by one (`server/apply`, ...), so the member's insides are checked too.
 */
const RANK: Record<string, number> = {
  util: 0,
  raft: 1,
  mvcc: 1,
  lease: 1,
  auth: 1,
  bbolt: 1,
  storage: 2,
  logging: 2,
  'server/apply': 3,
  'server/membership': 3,
  config: 3,
  'server/watch': 4,
  'server/maintenance': 4,
  'server/recipes': 5,
  'server/member': 6,
  grpc: 7,
  http: 7,
  transport: 7,
  metrics: 7,
  tls: 7,
  // The units main.ts starts (storage, member, peers, client edge, side ports, signals).
  node: 8,
  'cli.ts': 8,
  'main.ts': 9,
  // An edge process's entry point (server.grpc.workers > 0), beside main.ts.
  'edge-main.ts': 9,
};

/** Edges the ranks would allow but the design forbids (docs/ARCHITECTURE.md). */
const FORBIDDEN: Array<[from: string, to: string, why: string]> = [
  ['grpc', 'storage', 'the client edge goes through the member, never to the database'],
  ['transport', 'server/member', 'peer messages reach the member through the callbacks main wires'],
  ['http', 'server/member', 'the side ports read the member through HealthSources'],
  ['metrics', 'server/member', 'metrics read the member through MetricsSources'],
  ['tls', 'server/member', 'TLS set-up knows nothing of the member'],
];
const PURE = new Set(['raft', 'mvcc', 'lease', 'auth']);

function sourceFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return sourceFiles(path);
    return path.endsWith('.ts') && !path.endsWith('.test.ts') ? [path] : [];
  });
}

function moduleOf(path: string): string {
  const parts = relative(SRC, path).split('/');
  if (parts[0] === 'server' && parts.length > 2) return `server/${parts[1]}`;
  return parts[0]!.replace(/\.js$/, '.ts');
}

/** Every relative import of every source file, resolved to the imported file's .ts path. */
function importGraph(): Map<string, string[]> {
  const graph = new Map<string, string[]>();
  for (const file of files) {
    const targets = imports(readFileSync(file, 'utf8'))
      .filter((spec) => spec.startsWith('.'))
      .map((spec) => resolve(dirname(file), spec).replace(/\.js$/, '.ts'));
    graph.set(file, targets);
  }
  return graph;
}

/** The import cycles of a graph, each as the list of files around it (depth-first search). */
function cycles(graph: Map<string, string[]>): string[][] {
  const found: string[][] = [];
  const state = new Map<string, 'open' | 'done'>();
  const stack: string[] = [];
  const visit = (file: string): void => {
    state.set(file, 'open');
    stack.push(file);
    for (const next of graph.get(file) ?? []) {
      if (state.get(next) === 'open') found.push(stack.slice(stack.indexOf(next)).map((f) => relative(SRC, f)));
      else if (!state.has(next)) visit(next);
    }
    stack.pop();
    state.set(file, 'done');
  };
  for (const file of graph.keys()) if (!state.has(file)) visit(file);
  return found;
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

  it('no import cycles between files (type-only imports included)', () => {
    expect(cycles(importGraph())).toEqual([]);
  });

  it('the cycle finder sees a planted cycle', () => {
    const a = join(SRC, 'a.ts');
    const b = join(SRC, 'b.ts');
    expect(
      cycles(
        new Map([
          [a, [b]],
          [b, [a]],
        ]),
      ),
    ).toEqual([['a.ts', 'b.ts']]);
  });

  it('forbidden edges: the gRPC edge never imports storage; transport, http, metrics and tls never import the member', () => {
    const violations: string[] = [];
    for (const [file, targets] of importGraph()) {
      for (const target of targets) {
        const rule = FORBIDDEN.find(([from, to]) => moduleOf(file) === from && moduleOf(target) === to);
        if (rule) violations.push(`${relative(SRC, file)} imports ${relative(SRC, target)}: ${rule[2]}`);
      }
    }
    expect(violations).toEqual([]);
  });

  it('pure cores use no clock, randomness, timers or Node APIs', () => {
    const violations: string[] = [];
    const forbidden = [
      /\bDate\.now\b/,
      /\bnew Date\(/,
      /\bMath\.random\b/,
      /\bsetTimeout\b/,
      /\bsetInterval\b/,
      /\bsetImmediate\b/,
      /\bprocess\./,
      /\bperformance\.now\b/,
    ];
    for (const file of files.filter((f) => PURE.has(moduleOf(f)))) {
      const text = readFileSync(file, 'utf8')
        .replace(/\/\/.*$/gm, '')
        .replace(/\/\*[\s\S]*?\*\//g, '');
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
