// End to end: rate limiting switched on through the METASTORE_* environment, as an operator
// would (server.grpc.enable_rate_limit, rate_limit_qps, rate_limit_burst), seen by the real
// etcdctl: beyond the bucket, a request fails with ResourceExhausted and the clear message,
// and Prometheus sees the refusals under code RESOURCE_EXHAUSTED.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startMetaStore, type MetaStoreHandle } from '../support/servers.js';
import { etcdctl } from '../support/tools.js';

describe('ops: rate limiting', () => {
  let server: MetaStoreHandle;

  beforeAll(async () => {
    server = await startMetaStore({
      env: {
        METASTORE_SERVER_GRPC_ENABLE_RATE_LIMIT: 'true',
        METASTORE_SERVER_GRPC_RATE_LIMIT_QPS: '1',
        METASTORE_SERVER_GRPC_RATE_LIMIT_BURST: '1',
      },
    });
  });

  afterAll(async () => {
    await server?.destroy();
  });

  it('refuses requests beyond qps/burst with ResourceExhausted and says why', async () => {
    // Four puts at once against a bucket of one token refilled once a second: one passes at
    // once, at most one more per second the processes take to start; the rest are refused.
    const results = await Promise.all([0, 1, 2, 3].map((i) => etcdctl(server.endpoint, ['put', `rl${i}`, 'v'])));
    const refused = results.filter((r) => r.code !== 0);
    expect(results.filter((r) => r.code === 0).length).toBeGreaterThanOrEqual(1);
    expect(refused.length).toBeGreaterThanOrEqual(1);
    for (const r of refused) {
      expect(r.stderr).toContain('code = ResourceExhausted');
      expect(r.stderr).toContain('too many requests: rate limit of 1 requests/s (burst 1) exceeded');
    }
    const metrics = await (await fetch(`http://127.0.0.1:${server.metricsPort}/metrics`)).text();
    expect(metrics).toContain(`grpc_server_request_total{method="Put",code="RESOURCE_EXHAUSTED"} ${refused.length}`);
  });
});
