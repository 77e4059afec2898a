// Preloaded into a benchmarked member (`--node-args '-r bench/heap-sample.cjs'`): bytes allocated
// per applied proposal (a put, on every member of a cluster). V8's sampling heap profiler runs for
// BENCH_HEAP_SAMPLE_MS (default 4000) from BENCH_HEAP_SAMPLE_DELAY_MS (default 8000) after the
// member starts (set it to land in the measured run), keeping the objects minor and major GCs
// collected (so it counts every allocation, not what survived). The proposals applied over the
// same window come from the member's own metrics port (etcd_server_proposals_applied_total; the
// bench launchers set METASTORE_SERVER_MONITORING_PROMETHEUS_PORT). The result (bytes per
// proposal, in all, by the module of the allocating function, and the top functions of src/)
// goes to $BENCH_HEAP_SAMPLE_DIR/heap-<pid>.json.
// (Until session 15 the window started at the first HTTP/2 stream of Node's http2 server, which
// the client port no longer uses.)
const inspector = require('node:inspector');
const { writeFileSync } = require('node:fs');
const path = require('node:path');

const dir = process.env.BENCH_HEAP_SAMPLE_DIR;
if (dir) {
  const delayMs = Number(process.env.BENCH_HEAP_SAMPLE_DELAY_MS ?? 8000);
  const windowMs = Number(process.env.BENCH_HEAP_SAMPLE_MS ?? 4000);
  const metricsUrl = `http://127.0.0.1:${process.env.METASTORE_SERVER_MONITORING_PROMETHEUS_PORT}/metrics`;
  const session = new inspector.Session();
  session.connect();
  const applied = async () => {
    const text = await (await fetch(metricsUrl)).text();
    return Number(/^etcd_server_proposals_applied_total (\S+)$/m.exec(text)?.[1] ?? Number.NaN);
  };
  let appliedAtStart = 0;
  const start = async () => {
    appliedAtStart = await applied();
    const options = { samplingInterval: 1024, includeObjectsCollectedByMajorGC: true, includeObjectsCollectedByMinorGC: true };
    session.post('HeapProfiler.startSampling', options, () => setTimeout(stop, windowMs).unref());
  };
  const stop = () => {
    session.post('HeapProfiler.stopSampling', async (error, result) => {
      if (error) throw error;
      const calls = (await applied()) - appliedAtStart;
      const byModule = {};
      const byFunction = {};
      let total = 0;
      // Builtins (no URL) are charged to the module and function that called them.
      const walk = (node, caller) => {
        total += node.selfSize;
        const own =
          node.callFrame.url === '' && caller !== undefined
            ? caller
            : { module: moduleOf(node.callFrame.url, node.callFrame.functionName), fn: functionOf(node.callFrame) };
        byModule[own.module] = (byModule[own.module] ?? 0) + node.selfSize;
        byFunction[own.fn] = (byFunction[own.fn] ?? 0) + node.selfSize;
        for (const child of node.children) walk(child, own);
      };
      walk(result.profile.head, undefined);
      const perCall = (table, limit) =>
        Object.fromEntries(
          Object.entries(table)
            .sort((a, b) => b[1] - a[1])
            .slice(0, limit)
            .map(([key, bytes]) => [key, Math.round(bytes / calls)]),
        );
      const srcFunctions = Object.fromEntries(Object.entries(byFunction).filter(([key]) => key.includes('src/')));
      const report = { calls, bytesPerCall: Math.round(total / calls), perCall: perCall(byModule, 40), srcFunctions: perCall(srcFunctions, 30) };
      writeFileSync(path.join(dir, `heap-${process.pid}.json`), JSON.stringify(report, null, 1));
    });
  };
  setTimeout(() => void start(), delayMs).unref();
}

function functionOf(frame) {
  const at = frame.url.includes('/src/') ? frame.url.slice(frame.url.indexOf('/src/') + 1) : frame.url.replace(/^.*node_modules\//, '');
  return `${frame.functionName || '(anonymous)'} ${at}:${frame.lineNumber + 1}`;
}

function moduleOf(url, functionName) {
  if (url.includes('@grpc/grpc-js')) return 'grpc-js';
  if (url.includes('/src/'))
    return url
      .slice(url.indexOf('/src/') + 1)
      .split('/')
      .slice(0, 3)
      .join('/');
  if (url.includes('node_modules')) return url.replace(/^.*node_modules\//, '').split('/')[0];
  if (url.startsWith('node:')) return `node ${url.slice(5).split('/').slice(0, 2).join('/')}`;
  return url === '' ? `(root) ${functionName}` : url;
}
