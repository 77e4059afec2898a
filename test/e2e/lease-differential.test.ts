// Differential test of etcdctl's lease commands (3.4.23): the same session against a fresh
// real etcd 3.4.23 and a fresh MetaStore must print identical transcripts once cluster/member
// IDs, raft terms, lease IDs and remaining TTLs are masked.
//
// Lease IDs are masked consistently: each distinct ID becomes L1, L2, ... in order of first
// appearance, in hex (simple output) and decimal (JSON) alike, so the transcript still shows
// which lease each line talks about. Attached keys are sorted inside "attached keys([...])"
// because etcd lists them in Go map order. No sleeps: nothing here waits for an expiry.

import { describe, it } from 'vitest';
import { maskIds, maskVolatile } from '../support/mask.js';
import { expectSameAsEtcd } from '../support/differential.js';
import { etcdctl } from '../support/tools.js';

/** Masks lease IDs (hex and decimal) and remaining TTLs; see the file header. */
function maskLeases(text: string, names: Map<bigint, string>): string {
  const name = (id: bigint): string => {
    let n = names.get(id);
    if (n === undefined) {
      n = `L${names.size + 1}`;
      names.set(id, n);
    }
    return n;
  };
  return text
    .replace(/\b([0-9a-f]{16})\b/g, (_m, hex: string) => name(BigInt(`0x${hex}`)))
    .replace(/"(ID|id|lease)":(\d+)/g, (_m, key: string, dec: string) => `"${key}":"${name(BigInt(dec))}"`)
    .replace(/remaining\(\d+s\)/g, 'remaining(<n>s)')
    .replace(/"ttl":\d+/g, '"ttl":<n>')
    .replace(/attached keys\(\[([^\]]*)\]\)/g, (_m, keys: string) => `attached keys([${keys.split(' ').sort().join(' ')}])`)
    .replace(/"keys":\[([^\]]*)\]/g, (_m, keys: string) => `"keys":[${keys.split(',').sort().join(',')}]`);
}

async function session(endpoint: string): Promise<string[]> {
  const lines: string[] = [];
  const names = new Map<bigint, string>();
  const run = async (args: string[]): Promise<string> => {
    const r = await etcdctl(endpoint, args);
    // etcdctl's retry warnings are zap lines on stderr; keep only the final "Error:" line.
    const stderr = r.stderr
      .split('\n')
      .filter((l) => !l.startsWith('{'))
      .join('\n');
    lines.push(maskLeases(maskVolatile(maskIds(`$ etcdctl ${args.join(' ')}\n[${r.code}]\n${r.stdout}${stderr}`), [endpoint]), names));
    return r.stdout;
  };
  const idOf = (granted: string): string => {
    const match = /^lease ([0-9a-f]+) granted/.exec(granted);
    if (!match) throw new Error(`no lease in: ${granted}`);
    return match[1]!;
  };

  const l1 = idOf(await run(['lease', 'grant', '10']));
  // Below etcd's 2 s minimum: granted with TTL(2s). Revoked at once so it cannot expire mid-test.
  const short = idOf(await run(['lease', 'grant', '1']));
  await run(['lease', 'revoke', short]);
  await run(['put', `--lease=${l1}`, 'k1', 'v1']);
  await run(['put', `--lease=${l1}`, 'k2', 'v2']);
  await run(['put', 'k3', 'v3']);
  await run(['lease', 'timetolive', l1, '--keys']);
  await run(['lease', 'timetolive', l1]);
  await run(['lease', 'timetolive', l1, '--keys', '-w', 'json']);
  const l3 = idOf(await run(['lease', 'grant', '100']));
  await run(['put', `--lease=${l3}`, 'k3', 'v3-leased']);
  await run(['put', 'k2', 'v2-unleased']);
  await run(['lease', 'timetolive', l1, '--keys']);
  await run(['lease', 'list']);
  await run(['lease', 'keep-alive', '--once', l1]);
  await run(['lease', 'keep-alive', '--once', l1, '-w', 'json']);
  await run(['lease', 'revoke', l1]);
  await run(['get', '--prefix', 'k', '-w', 'json']);
  await run(['lease', 'timetolive', l1]);
  await run(['lease', 'timetolive', l1, '-w', 'json']);
  await run(['lease', 'revoke', l1]);
  await run(['put', `--lease=${l1}`, 'k4', 'v4']);
  await run(['lease', 'keep-alive', '--once', l1]);
  await run(['lease', 'grant', '9000000001']);
  await run(['lease', 'grant', '30', '-w', 'json']);
  await run(['lease', 'list', '-w', 'json']);
  await run(['lease', 'revoke', l3, '-w', 'json']);
  await run(['get', '--prefix', 'k']);
  return lines;
}

describe('etcdctl lease: MetaStore vs etcd 3.4.23', () => {
  it('grant/revoke/timetolive --keys/list/keep-alive --once, put --lease, get after revoke', async () => {
    await expectSameAsEtcd(session);
  });
});
