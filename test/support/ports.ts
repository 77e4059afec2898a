// Free loopback TCP ports for end-to-end tests.
//
// A port is "free" when the kernel hands it out for an ephemeral bind on 127.0.0.1. We close
// the probe socket before returning, so another process could in principle grab the port
// before our server binds it; binding all probes of one call at the same time at least makes
// the ports of one call distinct, and the `handedOut` set keeps one worker from handing the
// same port out twice.
import net from 'node:net';

const handedOut = new Set<number>();

function probe(): Promise<net.Server> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.once('error', reject);
    server.listen({ host: '127.0.0.1', port: 0, exclusive: true }, () => resolve(server));
  });
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
