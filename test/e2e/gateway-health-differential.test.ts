// Differential test of the curl health probes on the client port against etcd 3.4.23:
// /health (also with ?exclude=NOSPACE), /version, a wrong method, then the
// same probes with a NOSPACE alarm raised through the gateway ({"health":"false"}, 503), and
// after it is disarmed. Status, content type and body are compared; member IDs are masked.
// /readyz and /livez are left out: etcd 3.4.23 answers them 404 on the client port, MetaStore
// serves them there on purpose (README, "HTTP/1.1 beside gRPC"; 3.5's probes).

import { describe, it } from 'vitest';
import { expectSameAsEtcd } from '../support/differential.js';

const b64 = (text: string): string => Buffer.from(text).toString('base64');

async function step(endpoint: string, path: string, init: RequestInit = {}): Promise<string> {
  const response = await fetch(`${endpoint}${path}`, init);
  const body = (await response.text()).replace(
    /"(member_id|memberID|cluster_id|leader|raft_term|revision|raft_index|dbSize|dbSizeInUse|raftIndex|raftTerm|raftAppliedIndex)":"?\d+"?/g,
    '"$1":<masked>',
  );
  return `${init.method ?? 'GET'} ${path} -> ${response.status} ${response.headers.get('content-type')} ${JSON.stringify(body)}`;
}

async function probes(endpoint: string): Promise<string[]> {
  return [await step(endpoint, '/health'), await step(endpoint, '/health?exclude=NOSPACE'), await step(endpoint, '/version')];
}

async function alarm(endpoint: string, action: 'ACTIVATE' | 'DEACTIVATE' | 'GET', memberID: string): Promise<string> {
  return step(endpoint, '/v3/maintenance/alarm', { method: 'POST', body: JSON.stringify({ action, memberID, alarm: action === 'GET' ? 'NONE' : 'NOSPACE' }) });
}

async function session(endpoint: string): Promise<string[]> {
  const out = await probes(endpoint);
  out.push(await step(endpoint, '/health', { method: 'POST' }));
  const status = await fetch(`${endpoint}/v3/maintenance/status`, { method: 'POST', body: '{}' });
  const memberID = ((await status.json()) as { header: { member_id: string } }).header.member_id;
  out.push(await alarm(endpoint, 'ACTIVATE', memberID));
  out.push(...(await probes(endpoint)));
  out.push(await alarm(endpoint, 'GET', '0'));
  out.push(await step(endpoint, '/v3/kv/put', { method: 'POST', body: JSON.stringify({ key: b64('k'), value: b64('v') }) }));
  out.push(await alarm(endpoint, 'DEACTIVATE', memberID));
  out.push(...(await probes(endpoint)));
  return out;
}

describe('health probes on the client port (differential against etcd 3.4.23)', () => {
  it('answer as etcd does, {"health":"false"} while a NOSPACE alarm is raised', async () => {
    await expectSameAsEtcd(session);
  }, 120_000);
});
