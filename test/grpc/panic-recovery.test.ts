// server.reliability.enable_panic_recovery through the client edge (startClientEdge, as main.ts
// starts it): a planted bug in a request handler is logged and answered INTERNAL with recovery
// on; with recovery off the member stops (the fail-stop hook) after one fatal log line.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import * as grpc from '@grpc/grpc-js';
import pino from 'pino';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { DEFAULTS, type Config } from '../../src/config/schema.js';
import { MemberDialer } from '../../src/grpc/member-dialer.js';
import { setCallHooks } from '../../src/grpc/handler.js';
import { clients } from '../../src/grpc/proto.js';
import { bindClientPort, startClientEdge } from '../../src/node/client-edge.js';
import { NodeStatus, opsSources } from '../../src/node/ops-sources.js';
import { KvServer } from '../../src/server/member/kv-server.js';
import { Backend } from '../../src/storage/backend.js';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  setCallHooks(undefined, undefined);
});

async function edgeWithPlantedBug(enablePanicRecovery: boolean) {
  const dataDir = mkdtempSync(join(tmpdir(), 'metastore-panic-'));
  cleanups.push(() => rmSync(dataDir, { recursive: true, force: true }));
  const kv = await KvServer.open(await Backend.open(dataDir));
  cleanups.push(() => kv.close());
  await kv.start();
  vi.spyOn(kv, 'range').mockImplementation(() => {
    throw new TypeError('planted bug');
  });
  const lines: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk, _encoding, done) {
      lines.push(JSON.parse(String(chunk)));
      done();
    },
  });
  const failStop = vi.fn();
  const config: Config = { ...DEFAULTS, dataDir, grpc: { ...DEFAULTS.grpc, port: 0 }, reliability: { ...DEFAULTS.reliability, enablePanicRecovery } };
  const logger = pino({ level: 'info' }, sink);
  const dialer = new MemberDialer();
  cleanups.push(() => dialer.close());
  const edge = await startClientEdge({
    config,
    bound: await bindClientPort(config, logger),
    kv,
    identity: { memberId: 1n, clusterId: 2n },
    metrics: undefined,
    sources: opsSources(kv, new NodeStatus()),
    logger,
    memberDialer: dialer,
    failStop: failStop as unknown as () => never,
  });
  cleanups.push(() => edge.close(1000));
  const client = new clients.KV(`127.0.0.1:${edge.port}`, grpc.credentials.createInsecure());
  cleanups.push(() => client.close());
  const range = () =>
    new Promise<grpc.ServiceError>((resolve, reject) =>
      (client as any).Range({ key: Buffer.from('k') }, (error: grpc.ServiceError | null) => (error ? resolve(error) : reject(new Error('Range succeeded')))),
    );
  return { range, lines, failStop };
}

describe('server.reliability.enable_panic_recovery', () => {
  it('true: the bug is logged and answered INTERNAL; the member keeps serving', async () => {
    const { range, lines, failStop } = await edgeWithPlantedBug(true);
    const error = await range();
    expect([error.code, error.details]).toEqual([grpc.status.INTERNAL, 'etcdserver: internal error in Range']);
    expect(failStop).not.toHaveBeenCalled();
    expect(lines.filter((l) => l.level === 50)).toEqual([expect.objectContaining({ method: 'Range', msg: 'internal error in request handler' })]);
    expect((await range()).code).toBe(grpc.status.INTERNAL); // still answering
  });

  it('false: the member stops after one fatal log line naming the method and the error', async () => {
    const { range, lines, failStop } = await edgeWithPlantedBug(false);
    await range(); // the fail-stop hook here returns, so the call is still answered
    expect(failStop).toHaveBeenCalledTimes(1);
    const fatal = lines.filter((l) => l.level === 60);
    expect(fatal).toHaveLength(1);
    expect(fatal[0]).toMatchObject({ method: 'Range', err: expect.objectContaining({ message: 'planted bug' }) });
    expect(String(fatal[0]!.msg)).toMatch(/enable_panic_recovery is false/);
  });
});
