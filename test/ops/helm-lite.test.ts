// scripts/helm-lite.mjs renders the chart's Go-template subset the way helm does, and refuses
// anything outside it (so the chart cannot silently use a function helm-lite would misrender).
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
// @ts-expect-error: a plain .mjs script without type declarations
import { renderChart } from '../../scripts/helm-lite.mjs';

const root = mkdtempSync(join(tmpdir(), 'helm-lite-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

function chart(template: string, values = 'n: 3\nname: demo\nlist: [a, b]\n'): string {
  const dir = mkdtempSync(join(root, 'chart-'));
  mkdirSync(join(dir, 'templates'));
  writeFileSync(join(dir, 'Chart.yaml'), 'apiVersion: v2\nname: demo\nversion: 1.0.0\nappVersion: "2.0"\n');
  writeFileSync(join(dir, 'values.yaml'), values);
  writeFileSync(join(dir, 'templates', '_helpers.tpl'), '{{- define "demo.name" -}}{{ .Values.name }}-x{{- end -}}\n');
  writeFileSync(join(dir, 'templates', 'a.yaml'), template);
  return dir;
}

const body = (text: string) => text.split('\n').slice(2).join('\n').trimEnd();

describe('helm-lite', () => {
  it('trims around {{- -}}, ranges with an index, includes helpers, pipes into the last argument', () => {
    const dir = chart(
      'peers: {{ range $i := until (int .Values.n) }}{{ if $i }},{{ end }}{{ include "demo.name" $ }}-{{ $i }}{{ end }}\nlabels:\n  {{- toYaml (dict) | default "none" | nindent 2 }}\n',
      undefined,
    );
    expect(() => renderChart(dir, {})).toThrow('unsupported function or operand "dict"');
    const ok = chart(
      'peers: {{ range $i := until (int .Values.n) }}{{ if $i }},{{ end }}{{ include "demo.name" $ }}-{{ $i }}{{ end }}\nmin: {{ add (div .Values.n 2) 1 }}\nv: {{ .Chart.AppVersion | quote }}\nitems:\n  {{- toYaml .Values.list | nindent 2 }}\n',
    );
    expect(body(renderChart(ok, {}))).toBe('peers: demo-x-0,demo-x-1,demo-x-2\nmin: 2\nv: "2.0"\nitems:\n  - a\n  - b');
  });

  it('applies --set values with numbers as numbers, and fails on required values that are missing', () => {
    const dir = chart('n: {{ .Values.n }}\nname: {{ required "name is required" .Values.other }}\n');
    expect(() => renderChart(dir, { set: ['n=5'] })).toThrow('execution error: name is required');
    expect(body(renderChart(dir, { set: ['n=5', 'other=x'] }))).toBe('n: 5\nname: x');
  });
});
