// `etcdctl snapshot status`'s output, byte for byte, in its three formats: simple (the default),
// table and json. Hash in hex without padding; size in SI units as go-humanize's Bytes writes it.

import type { EtcdSnapshotStatus } from './etcd-snapshot.js';

export type StatusFormat = 'simple' | 'table' | 'json';

const SI_UNITS = ['B', 'kB', 'MB', 'GB', 'TB', 'PB', 'EB'];

/** go-humanize Bytes: "16 kB", "2.1 MB", "9 B". */
export function humanBytes(bytes: number): string {
  if (bytes < 10) return `${bytes} B`;
  const exponent = Math.floor(Math.log(bytes) / Math.log(1000));
  const value = Math.floor((bytes / 1000 ** exponent) * 10 + 0.5) / 10;
  return `${value < 10 ? value.toFixed(1) : String(roundHalfEven(value))} ${SI_UNITS[exponent]}`;
}

/** Go's %.0f: to nearest, ties to even (18.5 -> 18), where toFixed(0) rounds ties up. */
function roundHalfEven(value: number): number {
  const floor = Math.floor(value);
  const fraction = value - floor;
  if (fraction !== 0.5) return Math.round(value);
  return floor % 2 === 0 ? floor : floor + 1;
}

export function formatSnapshotStatus(status: EtcdSnapshotStatus, format: StatusFormat): string {
  if (format === 'json') {
    return `${JSON.stringify({ hash: status.hash, revision: status.revision, totalKey: status.totalKey, totalSize: status.totalSize })}\n`;
  }
  const row = [status.hash.toString(16), String(status.revision), String(status.totalKey), humanBytes(status.totalSize)];
  if (format === 'simple') return `${row.join(', ')}\n`;
  // olekukonko/tablewriter as etcdctl sets it up: upper-case centred header, right-aligned cells.
  const header = ['HASH', 'REVISION', 'TOTAL KEYS', 'TOTAL SIZE'];
  const widths = header.map((h, i) => Math.max(h.length, row[i]!.length));
  const rule = `+${widths.map((w) => '-'.repeat(w + 2)).join('+')}+`;
  const center = (text: string, width: number): string => {
    const gap = width - text.length;
    return ' '.repeat(Math.floor(gap / 2)) + text + ' '.repeat(gap - Math.floor(gap / 2));
  };
  const line = (cells: string[]): string => `| ${cells.join(' | ')} |`;
  return [rule, line(header.map((h, i) => center(h, widths[i]!))), rule, line(row.map((c, i) => c.padStart(widths[i]!))), rule, ''].join('\n');
}
