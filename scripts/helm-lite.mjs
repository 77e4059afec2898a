#!/usr/bin/env node
// helm-lite: renders deploy/helm/metastore the way `helm template` does, for the subset of
// Go templates and Helm functions the chart uses. Real helm is not packaged by Debian and no
// other registry is reachable here, so the chart tests and deploy/k8s/ use this; anything
// outside the subset is an error naming it (the chart must stay inside it, or real helm and
// this renderer could disagree silently).
//
//   node scripts/helm-lite.mjs CHART_DIR [--name RELEASE] [--namespace NS] [--set a.b=v ...]
//
// Supported: {{ }} with -trim markers, comments, define/include/template, if/else if/else,
// range (with `$i :=` / `$k, $v :=`), with/else, `$x :=` variables, pipelines, parentheses,
// and the functions in FUNCTIONS below. Output: every template (files starting with "_" are
// helpers only), each introduced by "---\n# Source: <chart>/templates/<file>", like helm.
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { parse as parseYaml, stringify as stringifyYaml } from 'yaml';

// ---- lexing: text and actions, trim markers applied ------------------------------------
function lex(source, file) {
  const tokens = [];
  let at = 0;
  while (at < source.length) {
    const open = source.indexOf('{{', at);
    if (open < 0) {
      tokens.push({ text: source.slice(at) });
      break;
    }
    tokens.push({ text: source.slice(at, open) });
    const close = source.indexOf('}}', open);
    if (close < 0) throw new Error(`${file}: unclosed action`);
    let inner = source.slice(open + 2, close);
    const trimLeft = /^-\s/.test(inner);
    const trimRight = /\s-$/.test(inner);
    if (trimLeft) inner = inner.slice(1);
    if (trimRight) inner = inner.slice(0, -1);
    tokens.push({ action: inner.trim(), trimLeft, trimRight });
    at = close + 2;
  }
  for (let i = 0; i < tokens.length; i++) {
    const t = tokens[i];
    if (t.action === undefined) continue;
    if (t.trimLeft && tokens[i - 1]?.text !== undefined) tokens[i - 1].text = tokens[i - 1].text.trimEnd();
    if (t.trimRight && tokens[i + 1]?.text !== undefined) tokens[i + 1].text = tokens[i + 1].text.trimStart();
  }
  return tokens.filter((t) => t.action === undefined || !t.action.startsWith('/*'));
}

// ---- parsing actions into a tree ---------------------------------------------------------
function parseBlocks(tokens, defines, file) {
  let i = 0;
  const block = (closers) => {
    const nodes = [];
    while (i < tokens.length) {
      const t = tokens[i];
      if (t.text !== undefined) {
        nodes.push({ kind: 'text', text: t.text });
        i++;
        continue;
      }
      const [word] = t.action.split(/\s+/, 1);
      if (closers.includes(word)) return { nodes, closer: t.action };
      i++;
      const rest = t.action.slice(word.length).trim();
      if (word === 'define') {
        const body = block(['end']);
        i++;
        defines.set(JSON.parse(rest), body.nodes);
      } else if (word === 'if' || word === 'with' || word === 'range') {
        nodes.push(conditional(word, rest));
      } else nodes.push({ kind: 'output', expr: t.action });
    }
    if (closers.length > 0) throw new Error(`${file}: missing {{ end }}`);
    return { nodes };
  };
  const conditional = (kind, head) => {
    const then = block(['else', 'end']);
    const node = { kind, head, body: then.nodes, otherwise: [] };
    const closer = then.closer;
    i++;
    if (closer.startsWith('else if ')) node.otherwise = [conditional('if', closer.slice(8).trim())];
    else if (closer === 'else') {
      node.otherwise = block(['end']).nodes;
      i++;
    }
    return node;
  };
  return block([]).nodes;
}

// ---- expressions -----------------------------------------------------------------------
function splitWords(text) {
  const words = [];
  let at = 0;
  while (at < text.length) {
    const c = text[at];
    if (/\s/.test(c)) {
      at++;
    } else if (c === '"') {
      let end = at + 1;
      while (text[end] !== '"') end += text[end] === '\\' ? 2 : 1;
      words.push(text.slice(at, end + 1));
      at = end + 1;
    } else if (c === '(') {
      let depth = 0;
      let end = at;
      for (; end < text.length; end++) {
        if (text[end] === '(') depth++;
        if (text[end] === ')' && --depth === 0) break;
      }
      words.push(text.slice(at, end + 1));
      at = end + 1;
    } else if (c === '|') {
      words.push('|');
      at++;
    } else {
      const match = /^[^\s|()]+/.exec(text.slice(at));
      words.push(match[0]);
      at += match[0].length;
    }
  }
  return words;
}

function field(value, path) {
  let node = value;
  for (const segment of path.split('.').filter(Boolean)) node = node?.[segment];
  return node;
}

function operand(word, scope) {
  if (word.startsWith('"')) return JSON.parse(word);
  if (word.startsWith('(')) return pipeline(word.slice(1, -1), scope);
  if (/^-?\d+$/.test(word)) return Number(word);
  if (word === 'true' || word === 'false') return word === 'true';
  if (word === '.') return scope.dot;
  if (word.startsWith('.')) return field(scope.dot, word);
  if (word.startsWith('$')) {
    const [name, ...path] = word.split('.');
    if (!scope.vars.has(name)) throw new Error(`undefined variable ${name}`);
    return field(scope.vars.get(name), path.join('.'));
  }
  throw new Error(`unsupported function or operand "${word}"`);
}

function pipeline(text, scope) {
  const commands = [];
  let current = [];
  for (const word of splitWords(text)) {
    if (word === '|') {
      commands.push(current);
      current = [];
    } else current.push(word);
  }
  commands.push(current);
  let piped;
  commands.forEach((words, n) => {
    const [head, ...rest] = words;
    const args = rest.map((w) => operand(w, scope));
    if (n > 0) args.push(piped);
    if (FUNCTIONS[head] !== undefined) piped = FUNCTIONS[head](scope, ...args);
    else if (words.length === 1 && n === 0) piped = operand(head, scope);
    else throw new Error(`unsupported function or operand "${head}" in "${text}"`);
  });
  return piped;
}

const truthy = (v) => !(v === undefined || v === null || v === false || v === 0 || v === '' || (typeof v === 'object' && Object.keys(v).length === 0));

function toYaml(value) {
  if (value === undefined || value === null) return 'null';
  return stringifyYaml(value, { sortMapEntries: true, lineWidth: 0 }).replace(/\n$/, '');
}

const indentBy = (n, text) =>
  String(text)
    .split('\n')
    .map((line) => ' '.repeat(n) + line)
    .join('\n');

const FUNCTIONS = {
  include: (scope, name, dot) => render(scope.defines.get(name) ?? missing(name), { ...scope, dot, vars: new Map([['$', dot]]) }),
  toYaml: (_s, v) => toYaml(v),
  nindent: (_s, n, text) => `\n${indentBy(n, text)}`,
  indent: (_s, n, text) => indentBy(n, text),
  quote: (_s, v) => JSON.stringify(String(v ?? '')),
  default: (_s, fallback, v) => (truthy(v) ? v : fallback),
  required: (_s, message, v) => (truthy(v) ? v : fail(message)),
  printf: (_s, format, ...args) => format.replace(/%[sdv]/g, () => String(args.shift())),
  trunc: (_s, n, text) => String(text).slice(0, n),
  trimSuffix: (_s, suffix, text) => (String(text).endsWith(suffix) ? String(text).slice(0, -suffix.length) : String(text)),
  int: (_s, v) => Math.trunc(Number(v)),
  add: (_s, ...vs) => vs.reduce((a, b) => a + Number(b), 0),
  sub: (_s, a, b) => a - b,
  div: (_s, a, b) => Math.trunc(a / b),
  until: (_s, n) => Array.from({ length: n }, (_, i) => i),
  eq: (_s, a, b) => a === b,
  ne: (_s, a, b) => a !== b,
  gt: (_s, a, b) => a > b,
  ge: (_s, a, b) => a >= b,
  lt: (_s, a, b) => a < b,
  and: (_s, ...vs) => vs.every(truthy),
  or: (_s, ...vs) => vs.find(truthy) ?? vs.at(-1),
  not: (_s, v) => !truthy(v),
};

function missing(name) {
  throw new Error(`template "${name}" is not defined`);
}
function fail(message) {
  throw new Error(`execution error: ${message}`);
}

// ---- rendering ---------------------------------------------------------------------------
function render(nodes, scope) {
  let out = '';
  for (const node of nodes) {
    if (node.kind === 'text') out += node.text;
    else if (node.kind === 'output') {
      const assign = /^(\$\w+)\s*:?=\s*(.*)$/.exec(node.expr);
      if (assign) scope.vars.set(assign[1], pipeline(assign[2], scope));
      else {
        const value = pipeline(node.expr, scope);
        out += value === undefined || value === null ? '' : String(value);
      }
    } else if (node.kind === 'if') {
      out += render(truthy(pipeline(node.head, scope)) ? node.body : node.otherwise, scope);
    } else if (node.kind === 'with') {
      const value = pipeline(node.head, scope);
      out += truthy(value) ? render(node.body, { ...scope, dot: value }) : render(node.otherwise, scope);
    } else if (node.kind === 'range') {
      const m = /^(?:(\$\w+)\s*(?:,\s*(\$\w+)\s*)?:=\s*)?(.*)$/.exec(node.head);
      const items = pipeline(m[3], scope) ?? [];
      const entries = Array.isArray(items) ? items.map((v, i) => [i, v]) : Object.entries(items).sort(([a], [b]) => (a < b ? -1 : 1));
      if (entries.length === 0) out += render(node.otherwise, scope);
      for (const [key, value] of entries) {
        const vars = new Map(scope.vars);
        if (m[2]) {
          vars.set(m[1], key);
          vars.set(m[2], value);
        } else if (m[1]) vars.set(m[1], value);
        out += render(node.body, { ...scope, dot: value, vars });
      }
    }
  }
  return out;
}

/** --set a.b=v: numbers and booleans as helm parses them, the rest as strings. */
function applySet(values, assignment) {
  const eq = assignment.indexOf('=');
  const path = assignment.slice(0, eq).split('.');
  const raw = assignment.slice(eq + 1);
  const value = /^-?\d+$/.test(raw) ? Number(raw) : raw === 'true' || raw === 'false' ? raw === 'true' : raw;
  let node = values;
  for (const key of path.slice(0, -1)) node = node[key] ??= {};
  node[path.at(-1)] = value;
}

export function renderChart(chartDir, options = {}) {
  const chart = parseYaml(readFileSync(join(chartDir, 'Chart.yaml'), 'utf8'));
  const values = parseYaml(readFileSync(join(chartDir, 'values.yaml'), 'utf8'));
  for (const assignment of options.set ?? []) applySet(values, assignment);
  const root = {
    Values: values,
    Release: { Name: options.name ?? 'metastore', Namespace: options.namespace ?? 'default', Service: 'Helm' },
    Chart: { Name: chart.name, Version: chart.version, AppVersion: chart.appVersion },
  };
  const defines = new Map();
  const files = readdirSync(join(chartDir, 'templates')).sort();
  const parsed = files.map((file) => [file, parseBlocks(lex(readFileSync(join(chartDir, 'templates', file), 'utf8'), file), defines, file)]);
  let out = '';
  for (const [file, nodes] of parsed) {
    if (file.startsWith('_') || !/\.ya?ml$/.test(file)) continue;
    const text = render(nodes, { dot: root, vars: new Map([['$', root]]), defines }).trim();
    if (text !== '') out += `---\n# Source: ${chart.name}/templates/${file}\n${text}\n`;
  }
  return out;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const [chartDir, ...args] = process.argv.slice(2);
  const options = { set: [] };
  for (let i = 0; i < args.length; i += 2) {
    if (args[i] === '--set') options.set.push(args[i + 1]);
    else if (args[i] === '--name') options.name = args[i + 1];
    else if (args[i] === '--namespace') options.namespace = args[i + 1];
    else throw new Error(`unknown argument ${args[i]}`);
  }
  process.stdout.write(renderChart(chartDir, options));
}
