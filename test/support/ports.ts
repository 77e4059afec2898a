// Free loopback TCP ports for end-to-end tests.
//
// Ports come from a slice of 10000-29999 that belongs to this test worker alone (vitest's
// VITEST_POOL_ID), below Linux's ephemeral range (32768+). That matters because servers are
// killed and restarted on the same ports: a port the kernel handed out as "ephemeral free"
// could be handed to another worker while our member is down, and the restart would then
// fail with EADDRINUSE. A port is checked free by binding it; the `handedOut` set keeps this
// process from handing the same port out twice.
import net from 'node:net';

const handedOut = new Set<number>();
const SLICE = 2000;
const worker = Number(process.env.VITEST_POOL_ID ?? process.env.VITEST_WORKER_ID ?? '0') % 10;
const sliceStart = 10_000 + worker * SLICE;
let cursor = Math.floor(Math.random() * SLICE);

function tryBind(port: number): Promise<net.Server | undefined> {
  return new Promise((resolve) => {
    const server = net.createServer();
    server.unref();
    server.once('error', () => resolve(undefined));
    server.listen({ host: '127.0.0.1', port, exclusive: true }, () => resolve(server));
  });
}

async function probe(): Promise<net.Server> {
  for (let attempt = 0; attempt < SLICE; attempt++) {
    const port = sliceStart + (cursor++ % SLICE);
    if (handedOut.has(port)) continue;
    const server = await tryBind(port);
    if (server !== undefined) return server;
  }
  throw new Error(`freePorts: no free port left in ${sliceStart}-${sliceStart + SLICE - 1}`);
}

function close(server: net.Server): Promise<void> {
  return new Promise((resolve) => server.close(() => resolve()));
}

/** Returns `count` distinct free ports on 127.0.0.1, none returned before by this process. */
export async function freePorts(count: number): Promise<number[]> {
  if (!Number.isSafeInteger(count) || count < 1) throw new Error(`freePorts: bad count ${count}`);
  const held: net.Server[] = [];
  const ports: number[] = [];
  try {
    // Keep every probe open until we have enough ports, so the kernel cannot repeat one.
    while (ports.length < count) {
      const server = await probe();
      held.push(server);
      const address = server.address();
      if (address === null || typeof address === 'string') throw new Error('freePorts: no TCP address');
      if (handedOut.has(address.port)) continue;
      ports.push(address.port);
    }
  } finally {
    await Promise.all(held.map(close));
  }
  for (const port of ports) handedOut.add(port);
  return ports;
}

/** Returns one free port on 127.0.0.1. */
export async function freePort(): Promise<number> {
  const [port] = await freePorts(1);
  if (port === undefined) throw new Error('freePort: no port');
  return port;
}
