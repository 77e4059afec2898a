// Comparing the member's KV answers with the model's (fuzz-model.ts), field by field, with
// etcd's freedoms: a sort on anything but the key may order ties either way.

import { compareSortValues, inRange, sortValue, type ModelKv, type Wire } from './fuzz-model.js';

const EMPTY = Buffer.alloc(0);

function kvProblem(actual: Wire | null | undefined, expected: ModelKv | undefined, where: string): string | undefined {
  if (expected === undefined) return actual === null || actual === undefined ? undefined : `${where}: unexpected kv ${describe(actual)}`;
  if (actual === null || actual === undefined) return `${where}: missing kv ${expected.key.toString('latin1')}`;
  const same =
    Buffer.from(actual.key ?? EMPTY).equals(expected.key) &&
    Buffer.from(actual.value ?? EMPTY).equals(expected.value) &&
    String(actual.createRevision) === String(expected.createRevision) &&
    String(actual.modRevision) === String(expected.modRevision) &&
    String(actual.version) === String(expected.version) &&
    String(actual.lease) === expected.lease.toString();
  return same ? undefined : `${where}: got ${describe(actual)}, model has ${describe(expected)}`;
}

export function describe(kv: Wire | ModelKv): string {
  const key = Buffer.from(kv.key ?? EMPTY).toString('latin1');
  const value = Buffer.from(kv.value ?? EMPTY).toString('latin1');
  return JSON.stringify({ key, value, create: String(kv.createRevision), mod: String(kv.modRevision), version: String(kv.version), lease: String(kv.lease) });
}

/** A Range answer against the model's expectation (which carries every candidate before the limit). */
export function rangeProblem(actual: Wire, expected: Wire, where: string): string | undefined {
  if (String(actual.count) !== String(expected.count)) return `${where}: count ${actual.count}, model ${expected.count}`;
  if (Boolean(actual.more) !== expected.more) return `${where}: more ${actual.more}, model ${expected.more}`;
  const kvs: Wire[] = actual.kvs ?? [];
  const want: ModelKv[] = expected.kvs;
  if (kvs.length !== want.length) return `${where}: ${kvs.length} kvs, model ${want.length}: ${kvs.map(describe).join(' ')} vs ${want.map(describe).join(' ')}`;
  if (expected.sortOrder === 0 || expected.sortTarget === 0) {
    for (let i = 0; i < kvs.length; i++) {
      const problem = kvProblem(kvs[i], want[i], `${where} kvs[${i}]`);
      if (problem) return problem;
    }
    return undefined;
  }
  // Ties under a non-key sort may come in any order: the sort values must match position by
  // position, and every kv must be one of the model's candidates.
  const candidates = new Map((expected.candidates as ModelKv[]).map((kv) => [kv.key.toString('latin1'), kv] as const));
  for (let i = 0; i < kvs.length; i++) {
    const model = candidates.get(Buffer.from(kvs[i]!.key ?? EMPTY).toString('latin1'));
    const shown = model && expected.keysOnly ? { ...model, value: EMPTY } : model;
    const problem = kvProblem(kvs[i], shown, `${where} kvs[${i}]`);
    if (problem) return problem;
    if (compareSortValues(sortValue(model!, expected.sortTarget), sortValue((expected.candidates as ModelKv[])[i]!, expected.sortTarget)) !== 0) {
      return `${where}: kvs[${i}] out of sort order`;
    }
  }
  return undefined;
}

function prevKvsProblem(actual: Wire[] | undefined, expected: ModelKv[], where: string): string | undefined {
  const got = actual ?? [];
  if (got.length !== expected.length) return `${where}: ${got.length} prev kvs, model ${expected.length}`;
  for (let i = 0; i < got.length; i++) {
    const problem = kvProblem(got[i], expected[i], `${where}[${i}]`);
    if (problem) return problem;
  }
  return undefined;
}

/** A Put, DeleteRange or Txn answer against the model's. */
export function writeProblem(method: string, actual: Wire, expected: Wire, where: string): string | undefined {
  switch (method) {
    case 'Range':
      return rangeProblem(actual, expected, where);
    case 'Put':
      return kvProblem(actual.prevKv, expected.prevKv, `${where} prevKv`);
    case 'DeleteRange':
      if (String(actual.deleted) !== String(expected.deleted)) return `${where}: deleted ${actual.deleted}, model ${expected.deleted}`;
      return prevKvsProblem(actual.prevKvs, expected.prevKvs, `${where} prevKvs`);
    case 'Txn':
      return txnProblem(actual, expected, where);
  }
  return `${where}: no check for ${method}`;
}

function txnProblem(actual: Wire, expected: Wire, where: string): string | undefined {
  if (Boolean(actual.succeeded) !== expected.succeeded) return `${where}: succeeded ${actual.succeeded}, model ${expected.succeeded}`;
  const got: Wire[] = actual.responses ?? [];
  const want: Wire[] = expected.responses;
  if (got.length !== want.length) return `${where}: ${got.length} responses, model ${want.length}`;
  for (let i = 0; i < got.length; i++) {
    const [kind, body] = Object.entries(want[i]!)[0]!;
    const method = { responseRange: 'Range', responsePut: 'Put', responseDeleteRange: 'DeleteRange', responseTxn: 'Txn' }[kind]!;
    if (got[i]![kind] === undefined || got[i]![kind] === null) return `${where}[${i}]: expected ${kind}`;
    const problem = writeProblem(method, got[i]![kind], body, `${where}[${i}]`);
    if (problem) return problem;
  }
  return undefined;
}

/** Whether every key a decoded KV request can touch or read lies in [begin, end). */
export function confined(method: string, r: Wire, begin: Buffer, end: Buffer): boolean {
  const keyIn = (k: unknown): boolean => inRange(begin, end, Buffer.from((k as Buffer) ?? EMPTY)) || Buffer.from((k as Buffer) ?? EMPTY).length === 0;
  const rangeIn = (k: unknown, e: unknown): boolean => {
    const key = Buffer.from((k as Buffer) ?? EMPTY);
    const rangeEnd = Buffer.from((e as Buffer) ?? EMPTY);
    if (!keyIn(key)) return false;
    if (rangeEnd.length === 0 || key.length === 0) return true;
    if (rangeEnd.length === 1 && rangeEnd[0] === 0) return false;
    return Buffer.compare(rangeEnd, end) <= 0 || Buffer.compare(rangeEnd, key) <= 0;
  };
  switch (method) {
    case 'Range':
    case 'DeleteRange':
      return rangeIn(r.key, r.rangeEnd);
    case 'Put':
      return keyIn(r.key);
    case 'Txn':
      return (
        (r.compare ?? []).every((c: Wire) => rangeIn(c.key, c.rangeEnd)) &&
        [...(r.success ?? []), ...(r.failure ?? [])].every((op: Wire) => {
          if (op.request === undefined) return true;
          const inner = op[op.request];
          const kind = { requestRange: 'Range', requestPut: 'Put', requestDeleteRange: 'DeleteRange', requestTxn: 'Txn' }[op.request as string]!;
          return inner !== null && inner !== undefined && confined(kind, inner, begin, end);
        })
      );
  }
  return false;
}
