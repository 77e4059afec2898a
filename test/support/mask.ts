// Masking of run-specific values in etcdctl output, so that transcripts from two servers (or
// two runs) can be compared byte for byte.
//
// maskIds masks exactly the identities that differ between clusters: cluster IDs, member IDs
// (also as "leader" and as hex in simple/table output) and raft terms. Everything else —
// revisions, versions, counts, values — stays, because those are what a differential test is
// about. Zero values are never masked: etcd puts zero IDs/terms in the headers nested inside
// a txn response, and a server that filled them in would differ from etcd.
//
// maskVolatile masks what differs between any two etcdctl runs: log timestamps, the client's
// random UUID, the server's endpoint address and measured durations.

const PLACEHOLDER = {
  cluster: '<cluster_id>',
  member: '<member_id>',
  term: '<raft_term>',
} as const;

const nonZero = (digits: string): boolean => !/^0+$/.test(digits);

function maskIf(digits: string, placeholder: string): string {
  return nonZero(digits) ? placeholder : digits;
}

// -w json (etcdctl prints uint64 IDs as bare JSON numbers).
const JSON_KEYS: ReadonlyArray<[RegExp, string]> = [
  [/"cluster_id":(\d+)/g, PLACEHOLDER.cluster],
  [/"member_id":(\d+)/g, PLACEHOLDER.member],
  [/"raft_term":(\d+)/g, PLACEHOLDER.term],
  // endpoint status: Status.leader / Status.raftTerm
  [/"leader":(\d+)/g, PLACEHOLDER.member],
  [/"raftTerm":(\d+)/g, PLACEHOLDER.term],
  // alarm list
  [/"memberID":(\d+)/g, PLACEHOLDER.member],
  // member list/add: {"ID":…,"name":…} or, unstarted, {"ID":…,"peerURLs":…}; lease IDs
  // ({"ID":…,"TTL":…}) are not member IDs and stay.
  [/"ID":(\d+)(?=,"(?:name|peerURLs)")/g, PLACEHOLDER.member],
];

// -w fields: one `"Name" : value` per line.
const FIELD_KEYS: ReadonlyArray<[RegExp, string]> = [
  [/^("ClusterID" : )(\d+)$/gm, PLACEHOLDER.cluster],
  [/^("MemberID" : )(\d+)$/gm, PLACEHOLDER.member],
  [/^("RaftTerm" : )(\d+)$/gm, PLACEHOLDER.term],
  [/^("Leader" : )(\d+)$/gm, PLACEHOLDER.member],
  // member list: "ID" is followed by "Name"; lease output's "ID" is followed by "TTL".
  [/^("ID" : )(\d+)(?=\n"Name" : )/gm, PLACEHOLDER.member],
];

// Table columns (by header text) holding member IDs in hex or raft terms.
const TABLE_COLUMNS: ReadonlyMap<string, string> = new Map([
  ['ID', PLACEHOLDER.member],
  ['MEMBER ID', PLACEHOLDER.member],
  ['MEMBERID', PLACEHOLDER.member],
  ['RAFT TERM', PLACEHOLDER.term],
]);

function maskSimple(text: string): string {
  return (
    text
      // member list: "<hex>, started, <name>, <peer urls>, <client urls>, <is learner>"
      .replace(/^([0-9a-f]+)(, (?:started|unstarted), )/gm, (_m, id: string, rest: string) => maskIf(id, PLACEHOLDER.member) + rest)
      // endpoint status: "<endpoint>, <hex id>, <version>, <db size>, <leader>, <learner>, <term>, …"
      .replace(
        /^([^,\s]+, )([0-9a-f]+)(, \d+\.\d+\.\d+[^,]*, [^,]*, (?:true|false), (?:true|false), )(\d+)(?=, )/gm,
        (_m, a: string, id: string, b: string, term: string) => a + maskIf(id, PLACEHOLDER.member) + b + maskIf(term, PLACEHOLDER.term),
      )
      // member add/remove/update/promote
      .replace(
        /\bMember +([0-9a-f]+) (added to|removed from|updated in|promoted in) cluster +([0-9a-f]+)/g,
        (_m, id: string, verb: string, cluster: string) => `Member ${maskIf(id, PLACEHOLDER.member)} ${verb} cluster ${maskIf(cluster, PLACEHOLDER.cluster)}`,
      )
      // move-leader
      .replace(
        /\bLeadership transferred from ([0-9a-f]+) to ([0-9a-f]+)/g,
        (_m, from: string, to: string) => `Leadership transferred from ${maskIf(from, PLACEHOLDER.member)} to ${maskIf(to, PLACEHOLDER.member)}`,
      )
      // alarm list: "memberID:<decimal> alarm:NOSPACE"
      .replace(/\bmemberID:(\d+)/g, (_m, id: string) => `memberID:${maskIf(id, PLACEHOLDER.member)}`)
  );
}

const isBorder = (line: string): boolean => /^\+[-+]+\+$/.test(line);
const isRow = (line: string): boolean => line.length >= 2 && line.startsWith('|') && line.endsWith('|');

function cellsOf(row: string): string[] {
  return row
    .slice(1, -1)
    .split('|')
    .map((cell) => cell.trim());
}

/**
 * Masks ID/term columns of tablewriter tables. Masking changes cell widths, and the column
 * width depends on the longest cell, so a masked table is re-rendered with single-space
 * padding: two tables with equal cells still compare equal, as they did before.
 */
function maskTables(text: string): string {
  const lines = text.split('\n');
  let i = 0;
  while (i < lines.length) {
    const first = lines[i] ?? '';
    if (!isBorder(first)) {
      i++;
      continue;
    }
    let end = i;
    while (end < lines.length && (isBorder(lines[end] ?? '') || isRow(lines[end] ?? ''))) end++;
    const block = lines.slice(i, end);
    const headerIndex = block.findIndex(isRow);
    if (headerIndex >= 0) {
      const header = cellsOf(block[headerIndex] ?? '');
      const masks = header.map((name) => TABLE_COLUMNS.get(name));
      if (masks.some((m) => m !== undefined)) {
        const rendered = block.map((line, k) => {
          if (isBorder(line)) return '+-+';
          const cells = cellsOf(line);
          const out =
            k === headerIndex
              ? cells
              : cells.map((cell, c) => {
                  const mask = masks[c];
                  return mask !== undefined && /^[0-9a-f]+$/.test(cell) ? maskIf(cell, mask) : cell;
                });
          return `| ${out.join(' | ')} |`;
        });
        lines.splice(i, block.length, ...rendered);
      }
    }
    i = end;
  }
  return lines.join('\n');
}

/** Masks cluster IDs, member IDs and raft terms in etcdctl output of any -w format. */
export function maskIds(text: string): string {
  let out = text;
  for (const [pattern, placeholder] of JSON_KEYS) {
    out = out.replace(pattern, (match: string, digits: string) =>
      nonZero(digits) ? `${match.slice(0, match.length - digits.length)}"${placeholder}"` : match,
    );
  }
  for (const [pattern, placeholder] of FIELD_KEYS) {
    out = out.replace(pattern, (_m, prefix: string, digits: string) => prefix + maskIf(digits, placeholder));
  }
  out = maskSimple(out);
  out = maskTables(out);
  return out;
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/**
 * Masks values that differ between any two etcdctl invocations: zap log timestamps, the
 * client UUID in gRPC targets, the given endpoints (http://host:port and host:port) and
 * measured durations ("took").
 */
export function maskVolatile(text: string, endpoints: readonly string[] = []): string {
  let out = text
    .replace(/"ts":"[^"]*"/g, '"ts":"<ts>"')
    .replace(/endpoint:\/\/client-[0-9a-f-]+\//g, 'endpoint://client-<uuid>/')
    .replace(/\btook = [0-9.]+[a-zµ]*s\b/g, 'took = <took>')
    .replace(/"took":"[^"]*"/g, '"took":"<took>"')
    .replace(/^("Took" : )\S+$/gm, '$1<took>');
  for (const endpoint of endpoints) {
    const hostPort = endpoint.replace(/^[a-z]+:\/\//, '');
    out = out.replace(new RegExp(escapeRegExp(endpoint), 'g'), '<endpoint>');
    out = out.replace(new RegExp(escapeRegExp(hostPort), 'g'), '<endpoint-host>');
  }
  return out;
}
