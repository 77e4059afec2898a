// A small Wing–Gong style linearizability checker for a key-value store of registers.
// Linearizability is compositional, so each key's history is checked on its own, which keeps
// the search small. Operations that never returned (ret = Infinity) may or may not have taken
// effect; the search may place them anywhere after their call, or leave them out.
//
// Invariant of the search: an operation may be linearized next only if its call precedes the
// earliest return among the operations not yet linearized (real-time order).

export interface KvOp {
  kind: 'put' | 'get';
  key: string;
  /** put: value written; get: value observed (null = absent). */
  value: string | null;
  call: number;
  ret: number;
  client: number;
}

export interface CheckResult {
  ok: boolean;
  key?: string;
  detail?: string;
}

export function checkLinearizable(ops: KvOp[], maxOpsPerKey = 400): CheckResult {
  const byKey = new Map<string, KvOp[]>();
  for (const op of ops) {
    let list = byKey.get(op.key);
    if (list === undefined) {
      list = [];
      byKey.set(op.key, list);
    }
    list.push(op);
  }
  for (const [key, list] of byKey) {
    if (list.length > maxOpsPerKey) return { ok: false, key, detail: `history too long to check (${list.length} ops)` };
    if (!checkRegister(list)) {
      const lines = list
        .slice()
        .sort((a, b) => a.call - b.call)
        .map((o) => `  c${o.client} ${o.kind}(${o.value}) [${o.call}, ${o.ret === Infinity ? '∞' : o.ret}]`);
      return { ok: false, key, detail: `no linearization for key ${key}:\n${lines.join('\n')}` };
    }
  }
  return { ok: true };
}

function checkRegister(ops: KvOp[]): boolean {
  const n = ops.length;
  const sorted = ops.slice().sort((a, b) => a.call - b.call);
  const mustFinish = sorted.filter((o) => o.ret !== Infinity).length;
  const seen = new Set<string>();
  const done = new Uint8Array(n);

  const search = (state: string | null, finished: number): boolean => {
    if (finished === mustFinish) return true;
    const key = `${done.join('')}|${state}`;
    if (seen.has(key)) return false;
    seen.add(key);
    let minRet = Infinity;
    for (let i = 0; i < n; i++) if (!done[i]) minRet = Math.min(minRet, (sorted[i] as KvOp).ret);
    for (let i = 0; i < n; i++) {
      if (done[i]) continue;
      const op = sorted[i] as KvOp;
      if (op.call > minRet) break; // sorted by call: nothing later may go first
      let next: string | null;
      if (op.kind === 'put') next = op.value;
      else if (op.value === state) next = state;
      else continue;
      done[i] = 1;
      const ok = search(next, finished + (op.ret === Infinity ? 0 : 1));
      done[i] = 0;
      if (ok) return true;
    }
    return false;
  };
  return search(null, 0);
}
