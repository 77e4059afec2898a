// Wire-level vocabulary of the Raft core: message types, entries, snapshots, hard/soft state
// and the Ready batch handed to the driver. Everything here is plain data so that the peer
// transport can encode it without knowing the core. Numeric values of the message and entry
// type enumerations follow etcd-io/raft's raftpb so that a protobuf encoding can reuse them.
//
// Invariants: member IDs are bigint (full 64-bit values, 0n means "none"); terms and indexes are
// non-negative safe integers; `entries` is always an array (possibly empty), never undefined.

/** Member ID meaning "nobody" (no leader, no vote). */
export const NONE = 0n;

export const MessageType = {
  MsgHup: 0,
  MsgBeat: 1,
  MsgProp: 2,
  MsgApp: 3,
  MsgAppResp: 4,
  MsgVote: 5,
  MsgVoteResp: 6,
  MsgSnap: 7,
  MsgHeartbeat: 8,
  MsgHeartbeatResp: 9,
  MsgUnreachable: 10,
  MsgSnapStatus: 11,
  MsgCheckQuorum: 12,
  MsgTransferLeader: 13,
  MsgTimeoutNow: 14,
  MsgReadIndex: 15,
  MsgReadIndexResp: 16,
  MsgPreVote: 17,
  MsgPreVoteResp: 18,
} as const;
export type MessageType = (typeof MessageType)[keyof typeof MessageType];

const messageTypeNames: string[] = [];
for (const [name, value] of Object.entries(MessageType)) messageTypeNames[value] = name;
export function messageTypeName(t: MessageType): string {
  return messageTypeNames[t] ?? `MsgUnknown(${t})`;
}

export const EntryType = {
  Normal: 0,
  ConfChange: 1,
} as const;
export type EntryType = (typeof EntryType)[keyof typeof EntryType];

export interface Entry {
  term: number;
  index: number;
  type: EntryType;
  /** Opaque payload; empty for the no-op entry a new leader appends. */
  data: Uint8Array;
}

export const ConfChangeType = {
  /** Adds a voter, or promotes an existing learner to voter. */
  AddNode: 0,
  RemoveNode: 1,
  /** Carries only context for the application; the core changes nothing. */
  UpdateNode: 2,
  AddLearnerNode: 3,
} as const;
export type ConfChangeType = (typeof ConfChangeType)[keyof typeof ConfChangeType];

/** A single-member configuration change (no joint consensus: one change at a time). */
export interface ConfChange {
  type: ConfChangeType;
  nodeId: bigint;
  /** Opaque to the core, e.g. the new member's peer URLs. */
  context?: Uint8Array;
}

export interface ConfState {
  voters: bigint[];
  learners: bigint[];
}

export interface SnapshotMetadata {
  index: number;
  term: number;
  confState: ConfState;
}

export interface Snapshot {
  metadata: SnapshotMetadata;
  /** Application state at metadata.index; the transport chunks it, the core never looks inside. */
  data: Uint8Array;
}

export interface HardState {
  term: number;
  vote: bigint;
  commit: number;
}

export const StateRole = {
  Follower: 0,
  Candidate: 1,
  Leader: 2,
  PreCandidate: 3,
} as const;
export type StateRole = (typeof StateRole)[keyof typeof StateRole];
const roleNames = ['Follower', 'Candidate', 'Leader', 'PreCandidate'];
export function roleName(r: StateRole): string {
  return roleNames[r] ?? `Role(${r})`;
}

/** Volatile state worth telling the driver about; never persisted. */
export interface SoftState {
  lead: bigint;
  role: StateRole;
}

/** Answer to readIndex(ctx): the request is linearizable once applied >= index. */
export interface ReadState {
  index: number;
  requestCtx: Uint8Array;
}

export interface Message {
  type: MessageType;
  to: bigint;
  from: bigint;
  /** 0 for local messages and for forwarded MsgProp / MsgReadIndex. */
  term: number;
  /** Term of the entry at `index` (MsgApp), of the candidate's last entry (votes), or the
   *  follower's hint term (rejecting MsgAppResp). */
  logTerm: number;
  index: number;
  entries: Entry[];
  commit: number;
  snapshot?: Snapshot;
  reject: boolean;
  rejectHint: number;
  /** ReadIndex request context, heartbeat read context, or the leader-transfer campaign marker. */
  context?: Uint8Array;
}

/** Builds a message with every field defaulted; callers set only what matters. */
export function makeMessage(fields: Partial<Message> & { type: MessageType }): Message {
  return {
    to: NONE,
    from: NONE,
    term: 0,
    logTerm: 0,
    index: 0,
    entries: [],
    commit: 0,
    reject: false,
    rejectHint: 0,
    ...fields,
  };
}

/**
 * One batch of work for the driver. Order of handling: persist hardState + entries (+ snapshot),
 * synced when mustSync; only then send messages; apply committedEntries; call advance(). A
 * pipelining driver may take the next Ready first (see raw-node.ts: persisted(), appliedTo()).
 */
export interface Ready {
  softState?: SoftState;
  hardState?: HardState;
  /** Entries to append to stable storage (may overwrite a conflicting suffix). */
  entries: Entry[];
  snapshot?: Snapshot;
  committedEntries: Entry[];
  messages: Message[];
  readStates: ReadState[];
  mustSync: boolean;
}

export function isLocalMessage(t: MessageType): boolean {
  return (
    t === MessageType.MsgHup ||
    t === MessageType.MsgBeat ||
    t === MessageType.MsgUnreachable ||
    t === MessageType.MsgSnapStatus ||
    t === MessageType.MsgCheckQuorum
  );
}

export function isResponseMessage(t: MessageType): boolean {
  return (
    t === MessageType.MsgAppResp ||
    t === MessageType.MsgVoteResp ||
    t === MessageType.MsgHeartbeatResp ||
    t === MessageType.MsgUnreachable ||
    t === MessageType.MsgPreVoteResp
  );
}

/** Rough in-memory/wire size of an entry, used for maxSizePerMsg and uncommitted limits. */
export function entrySize(e: Entry): number {
  return e.data.length + 24;
}

// ConfChange payload encoding (inside Entry.data of a ConfChange entry):
// byte 0 = type, bytes 1..8 = node ID big-endian, rest = context. Fixed and tiny so that the
// apply path can decode it without a protobuf dependency in the core.
export function encodeConfChange(cc: ConfChange): Uint8Array {
  const ctx = cc.context ?? new Uint8Array(0);
  const out = new Uint8Array(9 + ctx.length);
  out[0] = cc.type;
  let id = BigInt.asUintN(64, cc.nodeId);
  for (let i = 8; i >= 1; i--) {
    out[i] = Number(id & 0xffn);
    id >>= 8n;
  }
  out.set(ctx, 9);
  return out;
}

export function decodeConfChange(data: Uint8Array): ConfChange {
  if (data.length < 9) throw new Error(`conf change payload too short: ${data.length} bytes`);
  const type = data[0] as number;
  if (type > 3) throw new Error(`unknown conf change type ${type}`);
  let id = 0n;
  for (let i = 1; i <= 8; i++) id = (id << 8n) | BigInt(data[i] as number);
  const cc: ConfChange = { type: type as ConfChangeType, nodeId: id };
  if (data.length > 9) cc.context = data.slice(9);
  return cc;
}
