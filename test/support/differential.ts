// Differential sessions: the same scenario against a fresh real etcd 3.4.23 and a fresh
// MetaStore, one after the other, compared step by step.

import { expect } from 'vitest';
import { startEtcd, startMetaStore, type ServerOptions } from './servers.js';

/**
 * Runs `session` (which returns one transcript entry per step) against etcd, then MetaStore,
 * and expects identical transcripts; both servers get `options.extraArgs` (etcd server flags).
 * SHOW_TRANSCRIPT=1 prints etcd's, to read what is compared.
 */
export async function expectSameAsEtcd(
  session: (endpoint: string) => Promise<string[]>,
  options: Pick<ServerOptions, 'extraArgs' | 'clientScheme'> & { metastoreEnv?: Record<string, string> } = {},
): Promise<void> {
  const etcd = await startEtcd({ extraArgs: options.extraArgs, clientScheme: options.clientScheme });
  let expected: string[];
  try {
    expected = await session(etcd.endpoint);
  } finally {
    await etcd.stop();
  }
  const metastore = await startMetaStore({ extraArgs: options.extraArgs, clientScheme: options.clientScheme, env: options.metastoreEnv });
  let actual: string[];
  try {
    actual = await session(metastore.endpoint);
  } finally {
    await metastore.destroy();
  }
  if (process.env.SHOW_TRANSCRIPT) console.log(expected.join('\n---\n'));
  for (let i = 0; i < expected.length; i++) expect(actual[i], `step ${i + 1}`).toBe(expected[i]);
  expect(actual.length).toBe(expected.length);
}
