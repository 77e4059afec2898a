// Differential test: one etcdctl 3.4.23 KV session, run against a fresh real etcd 3.4.23 and
// a fresh MetaStore, must produce identical transcripts step by step (exit code, stdout,
// stderr), after masking cluster/member IDs and raft terms (maskIds) and per-run noise such
// as log timestamps, client UUIDs and the endpoint address (maskVolatile).
//
// Both servers start empty, so revisions line up and stay in the comparison: a server that
// bumps the revision on a no-op delete, or reports the wrong header revision, differs here.
//
// Set KV_DIFF_SELF_CHECK=1 to run the session against a second fresh etcd instead of
// MetaStore: that must pass, and proves the session is deterministic and the masking right.
// Set KV_DIFF_DUMP=<file> to write both masked transcripts (<file>.etcd, <file>.candidate).
import fs from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { maskIds, maskVolatile } from '../support/mask.js';
import { startEtcd, startMetaStore } from '../support/servers.js';
import { etcdctl } from '../support/tools.js';

interface Step {
  /** etcdctl arguments after --endpoints. */
  args: string[];
  /** Standard input (txn). */
  stdin?: string;
  /** Why this step is here, shown in failures. */
  note?: string;
}

/** A txn on stdin: compares, blank line, success ops, blank line, failure ops, blank line.
 * (etcdctl 3.4 reads each section up to an empty line; EOF instead is "Error: EOF".) */
function txn(compares: string[], success: string[], failure: string[]): string {
  const section = (lines: string[]): string => `${lines.map((l) => `${l}\n`).join('')}\n`;
  return section(compares) + section(success) + section(failure);
}

const W = (format: 'json' | 'fields'): string[] => ['-w', format];

/** The session. Revisions in comments are those etcd assigns from a fresh start. */
function buildSession(): Step[] {
  const steps: Step[] = [];
  const add = (args: string[], extra: Omit<Step, 'args'> = {}): void => {
    steps.push({ args, ...extra });
  };
  /** The same command in simple, json and fields output. */
  const all3 = (args: string[], note?: string): void => {
    add(args, { note });
    add([...args, ...W('json')], { note });
    add([...args, ...W('fields')], { note });
  };

  // --- put -----------------------------------------------------------------------------
  all3(['get', 'a'], 'missing key in an empty store');
  add(['put', 'a', '1']); // rev 2
  add(['put', 'b', '2']); // 3
  add(['put', 'c', '3']); // 4
  add(['put', 'foo/1', 'x']); // 5
  add(['put', 'foo/2', 'yy']); // 6
  add(['put', 'foo/3', 'zzz']); // 7
  add(['put', 'fop', '0']); // 8
  add(['put', 'a', '11', '--prev-kv'], { note: 'overwrite, prev kv in simple output' }); // 9
  add(['put', 'a', '111', '--prev-kv', ...W('json')]); // 10
  add(['put', 'a', '1111', '--prev-kv', ...W('fields')]); // 11
  add(['put', 'new', 'n', '--prev-kv'], { note: '--prev-kv on a new key prints nothing extra' }); // 12
  add(['put', 'new2', 'n', '--prev-kv', ...W('json')]); // 13
  add(['put', 'b', '22', ...W('json')]); // 14
  add(['put', 'b', '222', ...W('fields')]); // 15
  add(['put', 'sp ace', 'hello world'], { note: 'key and value with spaces' }); // 16
  add(['put', 'tab', 'tab\there\tand\nnewline'], { note: 'control characters in the value' }); // 17
  add(['put', 'uni', 'ünïcödé ✓ 日本'], { note: 'UTF-8 value' }); // 18
  add(['put', 'empty', ''], { note: 'empty value' }); // 19
  add(['put', 'pad', '  padded  ']); // 20
  add(['put', '--', 'dash', '-leading-dash'], { note: 'value starting with "-" after --' }); // 21
  add(['put', 'dash', '-leading-dash'], { note: 'same without --: client-side flag error' });
  add(['put', 'a', '1'], { note: 'back to a=1' }); // 22

  // --- get -------------------------------------------------------------------------------
  all3(['get', 'a']);
  all3(['get', 'sp ace']);
  all3(['get', 'tab']);
  all3(['get', 'uni']);
  all3(['get', 'empty']);
  all3(['get', 'foo', '--prefix']);
  all3(['get', 'a', 'c'], 'range [a, c)');
  all3(['get', 'foo/2', '--from-key']);
  all3(['get', '', '--prefix'], 'everything');
  add(['get', '', '--from-key']);
  add(['get', 'c', 'a'], { note: 'empty range (end < key)' });
  add(['get', 'zzz', '--from-key'], { note: 'from-key past the last key' });
  add(['get', 'foo/', '--prefix', '--keys-only']);
  add(['get', 'foo/', '--prefix', '--keys-only', ...W('json')]);
  add(['get', 'foo/', '--prefix', '--print-value-only']);
  add(['get', 'foo/', '--prefix', '--print-value-only', ...W('json')], { note: 'print-value-only only affects simple' });
  add(['get', 'foo/', '--prefix', '--keys-only', '--print-value-only'], { note: 'keys-only + print-value-only' });
  all3(['get', 'foo/', '--prefix', '--limit', '2'], 'limit → more: true');
  add(['get', 'foo/', '--prefix', '--limit', '3', ...W('json')], { note: 'limit = count → more: false' });
  add(['get', 'foo/', '--prefix', '--limit', '0']);
  add(['get', 'foo/', '--prefix', '--limit', '-1'], { note: 'negative limit' });
  for (const order of ['ASCEND', 'DESCEND']) {
    add(['get', '', '--prefix', '--order', order], { note: 'order with the default sort target (KEY)' });
  }
  add(['get', '', '--prefix', '--sort-by', 'KEY', '--order', 'DESCEND', '--limit', '3', ...W('json')]);
  // (Sorting by VERSION/CREATE/MODIFY/VALUE is exercised at the end of the session on at most
  // 12 keys; see the sort section.)
  add(['get', 'foo/', '--prefix', '--order', 'descend'], { note: 'lower-case order is accepted by etcdctl' });
  add(['get', 'foo/', '--prefix', '--order', 'SIDEWAYS'], { note: 'client-side error' });
  add(['get', 'foo/', '--prefix', '--sort-by', 'SIZE'], { note: 'client-side error' });
  add(['get', 'a', '--consistency', 's']);
  add(['get', 'a', '--consistency', 's', ...W('json')]);
  add(['get', 'a', '--consistency', 'l', ...W('json')]);
  add(['get', 'a', '--consistency', 'x'], { note: 'client-side error' });
  all3(['get', 'a', '--rev', '2'], 'history: first version of a');
  all3(['get', 'a', '--rev', '10'], 'history: a=111 at rev 10');
  add(['get', 'a', '--rev', '1'], { note: 'rev 1: before any key' });
  add(['get', '', '--prefix', '--rev', '6', ...W('json')]);
  add(['get', 'a', '--rev', '0'], { note: '0 = current' });
  all3(['get', 'a', '--rev', '1000'], 'future revision');
  add(['--hex', 'get', 'foo', '--prefix'], { note: '--hex output' });
  add(['get', 'a', '-w', 'table'], { note: 'table is not supported for get' });
  add(['get', 'a', '--count-only'], { note: 'etcdctl 3.4 has no --count-only: client-side error' });
  add(['get'], { note: 'no key: client-side error' });
  add(['get', 'a', 'b', 'c'], { note: 'too many args: client-side error' });

  // --- error cases -----------------------------------------------------------------------
  all3(['get', ''], 'empty key');
  add(['put', '', 'v'], { note: 'put of an empty key' });
  add(['del', '']);
  add(['put', 'a', 'v', '--ignore-value'], { note: 'value with --ignore-value: client-side error' });
  add(['put', 'a', '--ignore-value'], { note: 'keeps the value, bumps version' }); // 23
  add(['put', 'a', '--ignore-value', ...W('json')]); // 24
  add(['put', 'missing', '--ignore-value'], { note: 'key not found' });
  add(['put', 'a', '--ignore-lease'], { note: 'value required without --ignore-value' });
  add(['put', 'a', 'lease-kept', '--ignore-lease']); // 25
  add(['put', 'missing', 'v', '--ignore-lease'], { note: 'key not found' });
  add(['put', 'a', '--ignore-value', '--ignore-lease'], { note: 'both: a no-op write that still bumps' }); // 26
  add(['put', 'a', 'v', '--lease', '1234abcd'], { note: 'unknown lease' });
  add(['put', 'a', 'v', '--lease', 'zz'], { note: 'bad lease hex: client-side error' });
  add(['put', 'a', '--ignore-value', '--lease', '1234abcd'], { note: 'lease + ignore-value' });
  add(['put'], { note: 'no args' });
  add(['put', 'onlykey'], { note: 'no value' });
  add(['get', 'a', ...W('fields')], { note: 'a after the error cases' });

  // --- del -------------------------------------------------------------------------------
  add(['put', 'x1', '1']); // 27
  add(['put', 'x2', '2']); // 28
  add(['put', 'x3', '3']); // 29
  add(['put', 'y1', '1']); // 30
  add(['put', 'y2', '2']); // 31
  add(['del', 'fop']); // 32
  add(['del', 'fop'], { note: 'deleting nothing: 0, no new revision' });
  add(['del', 'nothing-here', ...W('json')], { note: 'deleting nothing, header revision unchanged' });
  add(['del', 'nothing-here', ...W('fields')]);
  add(['del', 'new', '--prev-kv']); // 33
  add(['del', 'new2', '--prev-kv', ...W('json')]); // 34
  add(['del', 'x1', 'x3', '--prev-kv', ...W('fields')], { note: 'range [x1, x3)' }); // 35
  add(['get', 'x', '--prefix']);
  add(['del', 'foo/', '--prefix', '--prev-kv', ...W('json')]); // 36
  add(['del', 'foo/', '--prefix'], { note: 'prefix matching nothing' });
  add(['del', 'y2', '--from-key', '--prev-kv']); // 37
  add(['del', 'zzz', '--from-key'], { note: 'from-key matching nothing' });
  add(['del', 'b', 'a'], { note: 'empty range' });
  add(['del'], { note: 'no key: client-side error' });
  add(['del', 'a', 'b', 'c'], { note: 'too many args: client-side error' });
  add(['del', 'a', 'b', '--prefix'], { note: 'prefix with range_end: client-side error' });
  all3(['get', '', '--prefix'], 'state after deletes');

  // --- txn -------------------------------------------------------------------------------
  add(['txn'], {
    stdin: txn(['val("a") = "v"', 'ver("a") > "1"'], ['put t1 yes', 'get a', 'del nosuch'], ['put t1 no']),
    note: 'success branch: value =, version >',
  }); // 38
  add(['txn'], {
    stdin: txn(['val("a") != "v"'], ['put t2 yes'], ['put t2 no', 'get t2', 'get t1']),
    note: 'failure branch: value !=',
  }); // 39
  add(['txn', ...W('json')], {
    stdin: txn(['mod("t1") < "1000"', 'create("t1") > "0"'], ['put t3 yes --prev-kv', 'get t --prefix'], ['put t3 no']),
    note: 'mod <, create >',
  }); // 40
  add(['txn', ...W('json')], {
    stdin: txn(['create("missing") = "0"', 'ver("missing") = "0"', 'mod("missing") = "0"'], ['get missing'], ['put never x']),
    note: 'a missing key compares as zeros',
  });
  add(['txn', ...W('fields')], {
    stdin: txn(['val("missing") = ""'], ['put never x'], ['get t --prefix --keys-only', 'del t3 --prev-kv']),
    note: 'value compare on a missing key is false',
  }); // 41
  add(['txn'], {
    stdin: txn(['ver("a") < "3"'], ['put never x'], ['del t --prefix']),
    note: 'failure branch deletes',
  }); // 42
  add(['txn'], {
    stdin: txn(['val("a") = "v"'], [], []),
    note: 'no ops: read-only, no new revision',
  });
  add(['txn', ...W('json')], { stdin: txn([], ['put t4 4', 'get t4'], []), note: 'no compares → success' }); // 43
  add(['txn'], { stdin: txn([], [], []), note: 'empty txn' });
  add(['txn', ...W('fields')], {
    stdin: txn(['val("t4") = "4"'], ['put t5 5', 'put t6 6', 'del t4 --prev-kv', 'get t', '--prefix'], []),
    note: 'malformed op line ("--prefix" alone)',
  });
  add(['txn'], {
    stdin: txn(['val("t4") = "4"'], ['put t5 5', 'put t5 6'], []),
    note: 'duplicate key in txn',
  });
  add(['txn'], { stdin: txn(['bogus'], [], []), note: 'malformed comparison' });
  add(['txn'], { stdin: txn(['ver("a") = "x"'], [], []), note: 'non-numeric version' });
  // (An unknown operator such as ">=" makes etcdctl 3.4 itself panic, with pointer values in
  // the trace: client-only and not reproducible, so it is not part of the session.)
  add(['txn'], { stdin: 'val("a") = "v"\n', note: 'stdin ends early: EOF' });
  add(['txn', 'extra'], { stdin: txn([], [], []), note: 'txn takes no args' });
  all3(['get', '', '--prefix'], 'state after txns');

  // --- compaction ------------------------------------------------------------------------
  add(['put', 'h', 'h1']); // 44
  add(['put', 'h', 'h2']); // 45
  add(['put', 'h', 'h3']); // 46
  add(['put', 'h', 'h4']); // 47
  add(['compaction', '45']);
  add(['compaction', '45'], { note: 'same revision again: compacted' });
  add(['compaction', '44'], { note: 'below the compacted revision' });
  add(['compaction', '1000'], { note: 'future revision' });
  add(['compaction', '0'], { note: 'revision 0' });
  add(['compaction', 'abc'], { note: 'client-side error' });
  add(['compaction'], { note: 'no revision: client-side error' });
  all3(['get', 'h', '--rev', '44'], 'below the compacted revision');
  all3(['get', 'h', '--rev', '45'], 'at the compacted revision');
  all3(['get', 'h', '--rev', '46'], 'above the compacted revision');
  add(['get', 'h', '--rev', '47']);
  add(['get', 'h', '--rev', '48'], { note: 'one past current: future' });
  add(['get', '', '--prefix', '--rev', '1', ...W('json')], { note: 'rev 1 after compaction' });
  add(['txn'], {
    stdin: txn([], ['get h --rev 44'], []),
    note: 'compacted revision inside a txn',
  });
  add(['compaction', '46', '--physical']);
  add(['compaction', '46', '--physical'], { note: 'physical, already compacted' });
  add(['compaction', '47', '--physical', ...W('json')], { note: 'compaction ignores -w' });
  add(['get', 'h', '--rev', '46'], { note: 'now compacted' });
  add(['get', 'h', '--rev', '47', ...W('json')]);
  add(['put', 'h', 'h5', '--prev-kv', ...W('json')]); // 48
  all3(['get', 'h']);
  add(['get', 'h', '--rev', '1000'], { note: 'still future' });

  // --- sort ------------------------------------------------------------------------------
  // etcd sorts with Go's sort.Sort, which is not stable: for more than 12 results the order
  // of ties follows Go's pdqsort. With at most 12 it is an insertion sort, i.e. stable, so
  // ties stay in key order (also for DESCEND). These keys have ties on every target: VERSION
  // (a, d, e, f = 1), CREATE (b, c, d created by one txn), MODIFY, VALUE (c, f = "2").
  add(['put', 's/a', '3']); // 49
  add(['txn'], { stdin: txn([], ['put s/b 1', 'put s/c 2', 'put s/d 3'], []) }); // 50
  add(['put', 's/e', '1']); // 51
  add(['put', 's/b', '9']); // 52
  add(['put', 's/f', '2']); // 53
  add(['put', 's/c', '2']); // 54
  add(['txn'], { stdin: txn([], ['put s/g 0', 'put s/a 3'], []), note: 'MODIFY tie' }); // 55
  for (const target of ['KEY', 'VERSION', 'CREATE', 'MODIFY', 'VALUE']) {
    add(['get', 's/', '--prefix', '--sort-by', target], { note: 'sort target alone: ascending' });
    add(['get', 's/', '--prefix', '--sort-by', target, '--order', 'DESCEND']);
    add(['get', 's/', '--prefix', '--sort-by', target, '--order', 'ASCEND', '--limit', '3', ...W('json')], {
      note: 'sort first, then limit',
    });
  }
  add(['get', 's/', '--prefix', '--sort-by', 'MODIFY', '--order', 'DESCEND', '--keys-only', '--limit', '4', ...W('fields')]);
  add(['get', 's/', '--prefix', '--sort-by', 'VALUE', '--print-value-only']);
  add(['get', 's/a', 's/e', '--sort-by', 'VERSION', '--order', 'DESCEND', '--rev', '53', ...W('json')], {
    note: 'sorted historical range',
  });

  return steps;
}

interface Transcript {
  text: string;
  error?: string;
}

function describeStep(step: Step): string {
  const quoted = step.args.map((a) => (a === '' || /[\s"'\\$]/.test(a) ? JSON.stringify(a) : a));
  return `etcdctl ${quoted.join(' ')}${step.stdin !== undefined ? ' <<stdin' : ''}`;
}

async function runSession(endpoint: string, steps: readonly Step[]): Promise<Transcript[]> {
  const out: Transcript[] = [];
  for (const step of steps) {
    try {
      const r = await etcdctl(endpoint, step.args, { stdin: step.stdin });
      const mask = (s: string): string => maskVolatile(maskIds(s), [endpoint]);
      out.push({
        text:
          `$ ${describeStep(step)}\n` +
          (step.stdin !== undefined ? `--- stdin\n${step.stdin}` : '') +
          `--- exit ${r.code}\n--- stdout\n${mask(r.stdout)}\n--- stderr\n${mask(r.stderr)}\n`,
      });
    } catch (error) {
      out.push({ text: `$ ${describeStep(step)}\n--- harness error\n${String(error)}\n`, error: String(error) });
    }
  }
  return out;
}

/** Two transcripts in columns, differing lines marked with "≠". */
function sideBySide(leftTitle: string, left: string, rightTitle: string, right: string): string {
  const a = left.split('\n');
  const b = right.split('\n');
  const width = Math.min(90, Math.max(leftTitle.length, ...a.map((l) => l.length)));
  const cell = (s: string): string => (s.length > width ? `${s.slice(0, width - 1)}…` : s.padEnd(width));
  const rows = [`  ${cell(leftTitle)} | ${rightTitle}`, `  ${'-'.repeat(width)} | ${'-'.repeat(20)}`];
  for (let i = 0; i < Math.max(a.length, b.length); i++) {
    const l = a[i];
    const r = b[i];
    rows.push(`${l === r ? ' ' : '≠'} ${cell(l ?? '')} | ${r ?? ''}`);
  }
  // Long lines are cut in the columns; print both full texts too so nothing is hidden.
  return `${rows.join('\n')}\n\n=== ${leftTitle} (full)\n${left}\n=== ${rightTitle} (full)\n${right}`;
}

function dump(suffix: string, transcripts: readonly Transcript[]): void {
  const file = process.env.KV_DIFF_DUMP;
  if (file === undefined || file === '') return;
  fs.writeFileSync(`${file}.${suffix}`, transcripts.map((t, i) => `### step ${i + 1}\n${t.text}`).join('\n'));
}

const selfCheck = process.env.KV_DIFF_SELF_CHECK === '1';
const candidateName = selfCheck ? 'second etcd (self-check)' : 'MetaStore';
const STEPS = buildSession();

describe('etcdctl KV session: MetaStore matches etcd 3.4.23', () => {
  let expected: Transcript[] = [];
  let actual: Transcript[] | undefined;
  let candidateStartError: string | undefined;
  let stopAll: Array<() => Promise<void>> = [];

  beforeAll(async () => {
    const etcd = await startEtcd();
    stopAll.push(() => etcd.stop());
    expected = await runSession(etcd.endpoint, STEPS);
    dump('etcd', expected);
    const broken = expected.find((t) => t.error !== undefined);
    if (broken !== undefined) throw new Error(`the session itself failed against etcd:\n${broken.text}`);
    try {
      const candidate = selfCheck ? await startEtcd() : await startMetaStore();
      stopAll.push(() => (selfCheck ? candidate.stop() : (candidate as Awaited<ReturnType<typeof startMetaStore>>).destroy()));
      actual = await runSession(candidate.endpoint, STEPS);
      dump('candidate', actual);
    } catch (error) {
      // Not thrown: every step below then fails with this reason (a failure, never a skip).
      candidateStartError = error instanceof Error ? (error.stack ?? error.message) : String(error);
    }
  }, 600_000);

  afterAll(async () => {
    await Promise.all(stopAll.map((stop) => stop()));
    stopAll = [];
  }, 60_000);

  const candidateOrFail = (): Transcript[] => {
    if (actual === undefined) throw new Error(`${candidateName} did not start:\n${candidateStartError ?? 'unknown reason'}`);
    return actual;
  };

  it(`${candidateName} starts and the whole session matches (first difference side by side)`, () => {
    const got = candidateOrFail();
    const index = STEPS.findIndex((_step, i) => got[i]?.text !== expected[i]?.text);
    if (index < 0) return;
    const step = STEPS[index] as Step;
    throw new Error(
      `first differing step #${index + 1} of ${STEPS.length}: ${describeStep(step)}` +
        `${step.note !== undefined ? ` (${step.note})` : ''}\n\n` +
        sideBySide('etcd 3.4.23', expected[index]?.text ?? '', candidateName, got[index]?.text ?? ''),
    );
  });

  STEPS.forEach((step, i) => {
    const title = `step ${String(i + 1).padStart(3, '0')}: ${describeStep(step)}${step.note !== undefined ? ` — ${step.note}` : ''}`;
    it(title, () => {
      const got = candidateOrFail();
      expect(got[i]?.text, `${title}\n`).toBe(expected[i]?.text);
    });
  });
});
