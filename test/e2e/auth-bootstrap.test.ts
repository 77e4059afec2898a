// server.auth.root_password and server.auth.enabled in the YAML: the member creates user root
// (role root) at start and switches auth on, so the first client must log in as root. The
// password never appears in the member's log; a failed login does (user and reason only).

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { startMetaStore } from '../support/servers.js';
import { etcdctl } from '../support/tools.js';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'metastore-auth-boot-'));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

describe('auth bootstrap from the YAML', () => {
  it('creates root with the configured password and enables auth', async () => {
    const config = path.join(dir, 'auth.yaml');
    fs.writeFileSync(config, 'server:\n  auth:\n    enabled: true\n    root_password: "s3cret-boot"\n');
    const member = await startMetaStore({ extraArgs: ['--config', config] });
    try {
      const anonymous = await etcdctl(member.endpoint, ['put', 'k', 'v']);
      expect(anonymous.stderr).toContain('etcdserver: user name is empty');
      const wrong = await etcdctl(member.endpoint, ['--user=root:nope', 'get', 'k']);
      expect(wrong.stderr).toContain('etcdserver: authentication failed, invalid user ID or password');
      const root = await etcdctl(member.endpoint, ['--user=root:s3cret-boot', 'put', 'k', 'v']);
      expect(root.code).toBe(0);
      const roles = await etcdctl(member.endpoint, ['--user=root:s3cret-boot', 'user', 'get', 'root']);
      expect(roles.stdout).toBe('User: root\nRoles: root\n');
      const logs = member.logs();
      expect(logs).not.toContain('s3cret-boot');
      expect(logs).toMatch(/"user":"root".*authentication failed|authentication failed.*"user":"root"/);
    } finally {
      await member.destroy();
    }
  }, 60_000);
});
