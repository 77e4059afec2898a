// End to end: the HTTP/JSON gateway calls the same service implementations as gRPC, so its
// requests are counted in the gRPC metrics by method and code, and the gRPC rate limit
// (server.grpc.enable_rate_limit) refuses them too, as HTTP 429 with the gateway's error body.

import { describe, expect, it } from 'vitest';
import { startMetaStore } from '../support/servers.js';

const b64 = (text: string): string => Buffer.from(text).toString('base64');

/** The value of one sample `series value` in Prometheus text, or undefined. */
function sample(text: string, series: string): number | undefined {
  for (const line of text.split('\n')) {
    if (line.startsWith(`${series} `)) return Number(line.slice(series.length + 1));
  }
  return undefined;
}

async function post(endpoint: string, path: string, body: object): Promise<{ status: number; body: string }> {
  const response = await fetch(`${endpoint}${path}`, { method: 'POST', body: JSON.stringify(body) });
  return { status: response.status, body: await response.text() };
}

describe('gateway requests in the gRPC metrics', () => {
  it('are counted by method and code', async () => {
    const server = await startMetaStore();
    try {
      for (const key of ['m1', 'm2', 'm3']) expect((await post(server.endpoint, '/v3/kv/put', { key: b64(key), value: b64('v') })).status).toBe(200);
      expect((await post(server.endpoint, '/v3/kv/range', { key: b64('m1') })).status).toBe(200);
      expect((await post(server.endpoint, '/v3beta/kv/range', { key: b64('m2') })).status).toBe(200);
      const future = await post(server.endpoint, '/v3/kv/range', { key: b64('m1'), revision: 1000 });
      expect(future.status).toBe(400);
      expect((await post(server.endpoint, '/v3/lease/grant', { TTL: 30 })).status).toBe(200);
      const metrics = await (await fetch(`http://127.0.0.1:${server.metricsPort}/metrics`)).text();
      expect(sample(metrics, 'grpc_server_request_total{method="Put",code="OK"}')).toBe(3);
      expect(sample(metrics, 'grpc_server_request_total{method="Range",code="OK"}')).toBe(2);
      expect(sample(metrics, 'grpc_server_request_total{method="Range",code="OUT_OF_RANGE"}')).toBe(1);
      expect(sample(metrics, 'grpc_server_request_total{method="LeaseGrant",code="OK"}')).toBe(1);
      expect(sample(metrics, 'grpc_server_request_duration_seconds_count{method="Put"}')).toBe(3);
    } finally {
      await server.destroy();
    }
  }, 60_000);
});

describe('gateway requests and the rate limit', () => {
  it('are refused beyond qps/burst with 429 and the limit named, and counted as refused', async () => {
    const server = await startMetaStore({
      env: {
        METASTORE_SERVER_GRPC_ENABLE_RATE_LIMIT: 'true',
        METASTORE_SERVER_GRPC_RATE_LIMIT_QPS: '1',
        METASTORE_SERVER_GRPC_RATE_LIMIT_BURST: '1',
      },
    });
    try {
      // Six puts at once against a bucket of one token refilled once a second: the first
      // passes, the ones sent within the same second are refused.
      const results = await Promise.all([0, 1, 2, 3, 4, 5].map((i) => post(server.endpoint, '/v3/kv/put', { key: b64(`rl${i}`), value: b64('v') })));
      const refused = results.filter((r) => r.status !== 200);
      expect(results.length - refused.length).toBeGreaterThanOrEqual(1);
      expect(refused.length).toBeGreaterThanOrEqual(1);
      const message =
        'etcdserver: too many requests: rate limit of 1 requests/s (burst 1) exceeded; retry later (server.grpc.rate_limit_qps, server.grpc.rate_limit_burst)';
      for (const r of refused) expect([r.status, JSON.parse(r.body)]).toEqual([429, { error: message, code: 8, message }]);
      const metrics = await (await fetch(`http://127.0.0.1:${server.metricsPort}/metrics`)).text();
      expect(sample(metrics, 'grpc_server_request_total{method="Put",code="RESOURCE_EXHAUSTED"}')).toBe(refused.length);
    } finally {
      await server.destroy();
    }
  }, 60_000);
});
