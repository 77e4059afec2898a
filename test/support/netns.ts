// Network namespaces for tests that need real addresses, links that can be cut and processes
// that can be frozen: one "switch" namespace holding a bridge, and one namespace per host with a
// veth link onto that bridge. Needs root (ip netns, tc).
//
// Optionally the root namespace gets a link onto the bridge too (`hostIp`), so the test process
// itself can talk to the hosts; everything else stays inside the namespaces. remove() deletes the
// namespaces, which takes every veth end, qdisc and route inside them along; the root-side link
// goes with its peer in the switch namespace.

import { execFileSync } from 'node:child_process';
import { run, type RunResult } from './tools.js';

export interface NetHost {
  readonly ns: string;
  readonly ip: string;
}

export interface NetworkPlan {
  /** Namespace holding the bridge. */
  readonly switchNs: string;
  readonly hosts: readonly NetHost[];
  /** Namespaces with loopback only (no link onto the bridge). */
  readonly loopbackOnly?: readonly string[];
  /** When set, a link from the root namespace onto the bridge with this address (/24). */
  readonly hostIp?: string;
  /** Name of the root namespace's end of that link (<= 15 characters). */
  readonly hostLink?: string;
}

export function ip(...args: string[]): void {
  execFileSync('ip', args, { stdio: ['ignore', 'ignore', 'pipe'] });
}

function namespaces(plan: NetworkPlan): string[] {
  return [plan.switchNs, ...(plan.loopbackOnly ?? []), ...plan.hosts.map((h) => h.ns)];
}

function tc(ns: string, ...args: string[]): void {
  execFileSync('ip', ['netns', 'exec', ns, 'tc', ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
}

export function requireRoot(what: string): void {
  if (process.getuid?.() !== 0) throw new Error(`${what} needs root: it creates network namespaces (ip netns); run the tests as root`);
}

/** Deletes every namespace of the plan (and so everything inside); missing ones are skipped. */
export function removeNetwork(plan: NetworkPlan): void {
  for (const ns of namespaces(plan)) {
    try {
      ip('netns', 'del', ns); // takes the veth ends and the bridge inside with it
    } catch {
      // Not created (or already gone): nothing to remove.
    }
  }
  if (plan.hostLink !== undefined) {
    try {
      ip('link', 'del', plan.hostLink);
    } catch {
      // Went with its peer in the switch namespace.
    }
  }
}

/** The switch namespace with a bridge, and one veth link per host namespace onto it. */
export function createNetwork(plan: NetworkPlan): void {
  for (const ns of namespaces(plan)) {
    ip('netns', 'add', ns);
    ip('-n', ns, 'link', 'set', 'lo', 'up');
  }
  ip('-n', plan.switchNs, 'link', 'add', 'br0', 'type', 'bridge');
  ip('-n', plan.switchNs, 'link', 'set', 'br0', 'up');
  for (const [i, host] of plan.hosts.entries()) {
    // Created inside the switch namespace, so neither end ever exists in the root namespace.
    ip('-n', plan.switchNs, 'link', 'add', `p${i}`, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', host.ns);
    ip('-n', plan.switchNs, 'link', 'set', `p${i}`, 'master', 'br0', 'up');
    ip('-n', host.ns, 'addr', 'add', `${host.ip}/24`, 'dev', 'eth0');
    ip('-n', host.ns, 'link', 'set', 'eth0', 'up');
  }
  if (plan.hostIp !== undefined && plan.hostLink !== undefined) {
    ip('-n', plan.switchNs, 'link', 'add', 'host0', 'type', 'veth', 'peer', 'name', plan.hostLink, 'netns', '1');
    ip('-n', plan.switchNs, 'link', 'set', 'host0', 'master', 'br0', 'up');
    ip('addr', 'add', `${plan.hostIp}/24`, 'dev', plan.hostLink);
    ip('link', 'set', plan.hostLink, 'up');
  }
}

/**
 * Drops, silently, every packet `host` sends to each of `peers`: an htb root qdisc whose default
 * class passes traffic, plus one class with a zero-length pfifo that u32 filters on the peer's
 * address send packets into (so they are dropped as if lost on the wire; the sender sees no
 * error). Cutting a link both ways takes this on both ends.
 */
export function dropTraffic(host: NetHost, peers: readonly string[]): void {
  healTraffic(host);
  tc(host.ns, 'qdisc', 'add', 'dev', 'eth0', 'root', 'handle', '1:', 'htb', 'default', '1');
  tc(host.ns, 'class', 'add', 'dev', 'eth0', 'parent', '1:', 'classid', '1:1', 'htb', 'rate', '10gbit');
  tc(host.ns, 'class', 'add', 'dev', 'eth0', 'parent', '1:', 'classid', '1:2', 'htb', 'rate', '10gbit');
  tc(host.ns, 'qdisc', 'add', 'dev', 'eth0', 'parent', '1:2', 'handle', '20:', 'pfifo', 'limit', '0');
  for (const peer of peers) {
    tc(host.ns, 'filter', 'add', 'dev', 'eth0', 'protocol', 'ip', 'parent', '1:', 'prio', '1', 'u32', 'match', 'ip', 'dst', `${peer}/32`, 'flowid', '1:2');
  }
}

/** Removes whatever dropTraffic installed on `host` (no-op when nothing is). */
export function healTraffic(host: NetHost): void {
  try {
    tc(host.ns, 'qdisc', 'del', 'dev', 'eth0', 'root');
  } catch {
    // No root qdisc installed: nothing to heal.
  }
}

export function inNamespace(ns: string, command: string, args: readonly string[], timeoutMs = 30_000): Promise<RunResult> {
  return run('ip', ['netns', 'exec', ns, command, ...args], { timeoutMs, env: { ...process.env, ETCDCTL_API: '3' } });
}
