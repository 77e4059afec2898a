// Free loopback TCP ports for end-to-end tests.
//
// Ports come from a slice of 10000-29999 that belongs to this test worker alone (vitest's
// VITEST_POOL_ID), below Linux's ephemeral range (32768+). That matters because servers are
// killed and restarted on the same ports: a port the kernel handed out as "ephemeral free"
// could be handed to another worker while our member is down, and the restart would then
// fail with EADDRINUSE. A port is checked free by binding it; the `handedOut` set keeps this
// process from handing the same port out twice.
//
// Two vitest runs on one machine (two worktrees) have the same pool IDs, so the same slices:
// a port is also claimed across processes by a file named after it in a shared directory,
// holding the claiming process's pid. A file whose process is gone is taken over (vitest
// ends its workers without 'exit' handlers, so files outlive them); a normal exit removes
// this process's files. A restarted member's port thus stays ours while it is down, whoever
// else is testing.
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { pidAlive } from './processes.js';

const handedOut = new Set<number>();
const CLAIMS_DIR = path.join(os.tmpdir(), 'metastore-test-ports');
const claimed: string[] = [];

/** A claim file's age after which one without a pid (its writer died mid-write) is stale. */
const UNFINISHED_CLAIM_MS = 10_000;

/** Claims `port` for this process across processes; false when a live process holds it. */
export function claimAcrossProcesses(port: number): boolean {
  const file = path.join(CLAIMS_DIR, String(port));
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      fs.writeFileSync(file, String(process.pid), { flag: 'wx' });
      if (claimed.length === 0) process.once('exit', releaseClaims);
      claimed.push(file);
      return true;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') {
        fs.mkdirSync(CLAIMS_DIR, { recursive: true });
        continue;
      }
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      const owner = Number(fs.readFileSync(file, 'latin1'));
      const written = Number.isSafeInteger(owner) && owner > 0;
      // An empty file may be a claim being written right now.
      if (!written && Date.now() - fs.statSync(file).mtimeMs < UNFINISHED_CLAIM_MS) return false;
      if (owner === process.pid || (written && pidAlive(owner))) return false;
      fs.rmSync(file, { force: true });
    }
  }
  return false;
}

function releaseClaims(): void {
  for (const file of claimed) fs.rmSync(file, { force: true });
}
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
    if (server === undefined) continue;
    if (claimAcrossProcesses(port)) return server;
    handedOut.add(port);
    await close(server);
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
