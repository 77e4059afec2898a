// Architecture guard: functions stay short enough to read in one screen. A function over
// MAX_LINES in src/ fails this test unless it is listed in LONG_FUNCTIONS with the reason it
// stays whole (docs/ARCHITECTURE.md names the same few).

import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';

const SRC = resolve(dirname(fileURLToPath(import.meta.url)), '../../src');
const MAX_LINES = 80;

/** `file:function` -> why it stays one function. */
const LONG_FUNCTIONS: Record<string, string> = {};

function sourceFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return sourceFiles(path);
    return path.endsWith('.ts') && !path.endsWith('.test.ts') ? [path] : [];
  });
}

function nameOf(node: ts.Node): string {
  if ((ts.isFunctionDeclaration(node) || ts.isMethodDeclaration(node) || ts.isGetAccessor(node)) && node.name) return node.name.getText();
  if (ts.isConstructorDeclaration(node)) return 'constructor';
  const parent = node.parent;
  if (parent && ts.isVariableDeclaration(parent)) return parent.name.getText();
  if (parent && ts.isPropertyAssignment(parent)) return parent.name.getText();
  if (parent && ts.isPropertyDeclaration(parent)) return parent.name.getText();
  if (parent && ts.isCallExpression(parent)) {
    // A handler passed to unary('Name', ...) and the like: name it after its call.
    const first = parent.arguments[0];
    return first && ts.isStringLiteral(first) ? `${parent.expression.getText()}(${first.text})` : `${parent.expression.getText()}(callback)`;
  }
  return '(anonymous)';
}

/** Every function-like node longer than `max` lines in a source text. */
function longFunctions(fileName: string, text: string, max: number): Array<{ name: string; lines: number }> {
  const source = ts.createSourceFile(fileName, text, ts.ScriptTarget.ES2022, true);
  const found: Array<{ name: string; lines: number }> = [];
  const visit = (node: ts.Node): void => {
    if (ts.isFunctionLike(node) && 'body' in node && node.body) {
      const start = source.getLineAndCharacterOfPosition(node.getStart()).line;
      const end = source.getLineAndCharacterOfPosition(node.getEnd()).line;
      if (end - start + 1 > max) found.push({ name: nameOf(node), lines: end - start + 1 });
    }
    ts.forEachChild(node, visit);
  };
  visit(source);
  return found;
}

describe('function length', () => {
  it(`no function in src is over ${MAX_LINES} lines, except the documented few`, () => {
    const over: string[] = [];
    for (const file of sourceFiles(SRC)) {
      for (const { name, lines } of longFunctions(file, readFileSync(file, 'utf8'), MAX_LINES)) {
        const key = `${relative(SRC, file)}:${name}`;
        if (LONG_FUNCTIONS[key] === undefined) over.push(`${key} (${lines} lines)`);
      }
    }
    expect(over).toEqual([]);
  });

  it('finds a planted long function', () => {
    const body = Array.from({ length: MAX_LINES }, (_, i) => `  const v${i} = ${i};`).join('\n');
    expect(longFunctions('x.ts', `function planted() {\n${body}\n}\n`, MAX_LINES)).toEqual([{ name: 'planted', lines: MAX_LINES + 2 }]);
  });

  it('every allowed long function still exists and is still long (the list never goes stale)', () => {
    const present = new Set<string>();
    for (const file of sourceFiles(SRC)) {
      for (const { name } of longFunctions(file, readFileSync(file, 'utf8'), MAX_LINES)) present.add(`${relative(SRC, file)}:${name}`);
    }
    expect(Object.keys(LONG_FUNCTIONS).filter((key) => !present.has(key))).toEqual([]);
  });
});
