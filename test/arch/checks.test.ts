// The checks `npm test` runs before the tests (tsc over src, test and bench; Biome's formatter
// and linter over every file) catch what they are there for: each is run on a planted error
// in a scratch directory that uses the project's own configuration.

import { execFileSync, spawnSync } from 'node:child_process';
import { cpSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const BIN = join(ROOT, 'node_modules', '.bin');
const scratch = mkdtempSync(join(tmpdir(), 'metastore-checks-'));
cpSync(join(ROOT, 'biome.json'), join(scratch, 'biome.json'));
cpSync(join(ROOT, 'tsconfig.json'), join(scratch, 'tsconfig.json'));
symlinkSync(join(ROOT, 'node_modules'), join(scratch, 'node_modules'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

function run(tool: string, args: string[]): { status: number | null; output: string } {
  // The scratch directory is no git repository: Biome's VCS integration is off there.
  const extra = tool === 'biome' ? ['--vcs-enabled=false', '--colors=off'] : [];
  const result = spawnSync(join(BIN, tool), [...args, ...extra], { cwd: scratch, encoding: 'utf8' });
  return { status: result.status, output: `${result.stdout}${result.stderr}` };
}

function plant(dir: string, file: string, text: string): void {
  rmSync(join(scratch, 'src'), { recursive: true, force: true });
  rmSync(join(scratch, 'test'), { recursive: true, force: true });
  execFileSync('mkdir', ['-p', join(scratch, dir)]);
  writeFileSync(join(scratch, dir, file), text);
}

describe('the checks before the tests', () => {
  it('tsc fails on a type error in a test file (tests are type-checked too)', () => {
    plant('test', 'planted.test.ts', "const port: number = 'not a number';\nexport { port };\n");
    const result = run('tsc', ['-p', 'tsconfig.json', '--noEmit']);
    expect(result.status).not.toBe(0);
    expect(result.output).toContain('TS2322');
  });

  it("Biome's formatter fails on a misformatted file", () => {
    plant('src', 'planted.ts', 'export const answer   =  42\n');
    const result = run('biome', ['ci', '.', '--linter-enabled=false']);
    expect(result.status).not.toBe(0);
    expect(result.output).toContain('format');
  });

  it("Biome's linter fails on a lint error", () => {
    plant('src', 'planted.ts', 'export function twice(x: number): number {\n  let y = x;\n  y = y;\n  return y * 2;\n}\n');
    const result = run('biome', ['ci', '.', '--formatter-enabled=false']);
    expect(result.status).not.toBe(0);
    expect(result.output).toContain('noSelfAssign');
  });

  it('a clean file passes both (the planted errors are what fails)', () => {
    plant('src', 'planted.ts', 'export const answer = 42;\n');
    expect(run('biome', ['ci', '.']).status).toBe(0);
  });
});
