// Differential test of etcdctl's auth, user and role commands (3.4.23): the same session
// against a fresh real etcd 3.4.23 and a fresh MetaStore must print identical transcripts.
// It covers user and role management, `auth enable`, prefix and single-key permissions,
// denied and allowed writes and reads, a txn under auth, revoke-permission, a password change,
// the refusals etcd gives root's own entries, and `auth disable`.

import { describe, it } from 'vitest';
import { maskIds, maskVolatile } from '../support/mask.js';
import { expectSameAsEtcd } from '../support/differential.js';
import { etcdctl } from '../support/tools.js';

async function session(endpoint: string): Promise<string[]> {
  const lines: string[] = [];
  const run = async (args: string[], stdin?: string): Promise<void> => {
    const r = await etcdctl(endpoint, args, stdin === undefined ? {} : { stdin });
    // etcdctl's retry warnings are zap lines on stderr; keep only the final "Error:" line.
    const stderr = r.stderr
      .split('\n')
      .filter((l) => !l.startsWith('{'))
      .join('\n');
    lines.push(maskVolatile(maskIds(`$ etcdctl ${args.join(' ')}\n[${r.code}]\n${r.stdout}${stderr}`), [endpoint]));
  };
  const root = '--user=root:rootpw';
  const alice = '--user=alice:alicepw';

  await run(['auth', 'enable']);
  await run(['user', 'add', 'root:rootpw']);
  await run(['role', 'add', 'root']);
  await run(['user', 'grant-role', 'root', 'root']);
  await run(['user', 'grant-role', 'root', 'root']);
  await run(['user', 'add', 'alice:alicepw']);
  await run(['user', 'add', 'alice:again']);
  await run(['role', 'add', 'foo-rw']);
  await run(['role', 'grant-permission', 'foo-rw', 'readwrite', 'foo', '--prefix=true']);
  await run(['role', 'grant-permission', 'foo-rw', 'read', 'pub']);
  await run(['role', 'grant-permission', 'foo-rw', 'write', 'single']);
  await run(['role', 'grant-permission', 'foo-rw', 'read', 'range-a', 'range-m']);
  await run(['user', 'grant-role', 'alice', 'foo-rw']);
  await run(['user', 'grant-role', 'alice', 'missing']);
  await run(['role', 'get', 'foo-rw']);
  await run(['user', 'get', 'alice']);
  await run(['user', 'list']);
  await run(['role', 'list']);
  await run(['auth', 'enable']);

  await run(['put', 'foo1', 'v']);
  await run(['get', 'foo1']);
  await run([alice, 'put', 'foo1', 'v1']);
  await run([alice, 'get', 'foo1']);
  await run([alice, 'get', 'foo', '--prefix']);
  await run([alice, 'put', 'bar', 'v']);
  await run([alice, 'get', 'bar']);
  await run([root, 'put', 'pub', 'public']);
  await run([alice, 'get', 'pub']);
  await run([alice, 'put', 'pub', 'mine']);
  await run([alice, 'put', 'single', 'x']);
  await run([alice, 'get', 'single']);
  await run([alice, 'get', 'range-b']);
  await run([alice, 'get', 'range-a', 'range-z']);
  await run([alice, 'del', 'foo1']);
  await run([alice, 'del', 'bar']);
  await run(['--user=alice:wrong', 'get', 'foo1']);
  await run(['--user=nobody:x', 'get', 'foo1']);
  await run([alice, 'user', 'list']);
  await run([alice, 'role', 'add', 'sneaky']);

  // A txn: every compare and op must be permitted.
  await run([alice, 'txn'], 'value("pub") = "public"\n\nput foo-txn ok\n\nput foo-txn failed\n\n');
  await run([alice, 'get', 'foo-txn']);
  await run([alice, 'txn'], 'value("pub") = "public"\n\nput bar from-txn\n\n\n');
  await run([alice, 'txn'], 'value("bar") = "x"\n\nput foo-txn2 v\n\n\n');

  await run([root, 'role', 'revoke-permission', 'foo-rw', 'foo', '--prefix=true']);
  await run([root, 'role', 'revoke-permission', 'foo-rw', 'nothing']);
  await run([alice, 'put', 'foo2', 'v']);
  await run([alice, 'get', 'pub']);
  await run([root, 'role', 'get', 'foo-rw']);

  await run([root, 'user', 'passwd', 'alice', '--interactive=false'], 'newpw\n');
  await run([alice, 'get', 'pub']);
  await run(['--user=alice:newpw', 'get', 'pub']);

  await run([root, 'user', 'delete', 'root']);
  await run([root, 'user', 'revoke-role', 'root', 'root']);
  await run([root, 'role', 'delete', 'root']);
  await run([root, 'user', 'revoke-role', 'alice', 'foo-rw']);
  await run(['--user=alice:newpw', 'get', 'pub']);
  await run([root, 'auth', 'disable']);
  await run(['put', 'bar', 'open']);
  await run(['get', 'bar']);
  await run(['user', 'delete', 'alice']);
  await run(['role', 'delete', 'foo-rw']);
  await run(['user', 'list']);
  await run(['role', 'list']);
  await run(['auth', 'disable']);
  return lines;
}

describe('etcdctl auth differential (etcd 3.4.23 vs MetaStore)', () => {
  it('users, roles, permissions, enable/disable, txn, revoke, password change: identical transcripts', async () => {
    await expectSameAsEtcd(session);
  }, 180_000);
});
