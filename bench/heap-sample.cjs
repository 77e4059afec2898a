// Preloaded into a benchmarked member (`--node-args '-r bench/heap-sample.cjs'`): bytes allocated
// per client call. V8's sampling heap profiler runs for BENCH_HEAP_SAMPLE_MS (default 4000) from
// BENCH_HEAP_SAMPLE_DELAY_MS (default 2000) after the first HTTP/2 stream, keeping the objects
// minor and major GCs collected (so it counts every allocation, not what survived); client
// streams are counted over the same window. The result (bytes per stream, in all and by the
// module of the allocating function) goes to $BENCH_HEAP_SAMPLE_DIR/heap-<pid>.json.
const inspector = require('node:inspector');
const http2 = require('node:http2');
const { writeFileSync } = require('node:fs');
const path = require('node:path');

const dir = process.env.BENCH_HEAP_SAMPLE_DIR;
if (dir) {
  const delayMs = Number(process.env.BENCH_HEAP_SAMPLE_DELAY_MS ?? 2000);
  const windowMs = Number(process.env.BENCH_HEAP_SAMPLE_MS ?? 4000);
  const session = new inspector.Session();
  session.connect();
  let streams = 0;
  let startedAt;
  const countStreams = (server) => {
    // Counted on each session: the servers' own 'stream' listeners are policed (grpc-server.ts).
    server.on('session', (s) => s.on('stream', onStream));
    return server;
  };
  const onStream = () => {
    streams++;
    if (startedAt !== undefined) return;
    startedAt = 0;
    setTimeout(start, delayMs).unref();
  };
  for (const name of ['createServer', 'createSecureServer']) {
    const original = http2[name];
    http2[name] = (...args) => countStreams(original(...args));
  }
  const start = () => {
    session.post(
      'HeapProfiler.startSampling',
      { samplingInterval: 1024, includeObjectsCollectedByMajorGC: true, includeObjectsCollectedByMinorGC: true },
      () => {
        startedAt = streams;
        setTimeout(stop, windowMs).unref();
      },
    );
  };
  const stop = () => {
    const calls = streams - startedAt;
    session.post('HeapProfiler.stopSampling', (error, result) => {
      if (error) throw error;
      const byModule = {};
      let total = 0;
      // Builtins (no URL) are charged to the module that called them.
      const walk = (node, callerKey) => {
        total += node.selfSize;
        const key = node.callFrame.url === '' && callerKey !== undefined ? callerKey : moduleOf(node.callFrame.url, node.callFrame.functionName);
        byModule[key] = (byModule[key] ?? 0) + node.selfSize;
        for (const child of node.children) walk(child, key);
      };
      walk(result.profile.head, undefined);
      const perCall = {};
      for (const [key, bytes] of Object.entries(byModule).sort((a, b) => b[1] - a[1])) perCall[key] = Math.round(bytes / calls);
      writeFileSync(path.join(dir, `heap-${process.pid}.json`), JSON.stringify({ calls, bytesPerCall: Math.round(total / calls), perCall }, null, 1));
    });
  };
}

function moduleOf(url, functionName) {
  if (url.includes('@grpc/grpc-js')) return 'grpc-js';
  if (url.includes('/src/grpc/')) return `ours: ${url.slice(url.indexOf('/src/grpc/') + 10)}`;
  if (url.includes('/src/')) return 'write path (src/ outside grpc)';
  if (url.includes('node_modules')) return 'other node_modules';
  if (url.startsWith('node:internal/http2') || url.includes('internal/http2')) return 'node http2';
  if (url.startsWith('node:')) return `node ${url.slice(5).split('/').slice(0, 2).join('/')}`;
  return url === '' ? `(root) ${functionName}` : url;
}
