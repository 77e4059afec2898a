// The control messages between the primary and its edge processes (node:cluster IPC; the calls
// themselves travel on the binary channel, src/grpc/edge). Shared by node/edge-pool.ts and
// edge-main.ts.

/** The edge's end of its binary channel: the fifth stdio entry of the fork. */
export const EDGE_CHANNEL_FD = 4;

/** JSON gateway bodies are larger than the protobuf they carry (base64, names): the gateway
 * reads up to this multiple of --max-request-bytes (plus headroom), leaving the exact limit to
 * the same size check gRPC requests pass. */
export const GATEWAY_BODY_FACTOR = 4;
export const GATEWAY_BODY_HEADROOM = 2 * 1024 * 1024;

export type EdgeMessage =
  /** primary -> edge: a client connection (the handle rides along), accepted on a TLS address or not. */
  | { kind: 'connection'; connection: number; secure: boolean }
  /** edge -> primary: that connection closed (the primary's connection count drops). */
  | { kind: 'closed'; connection: number }
  /** primary -> edge: stop serving; running calls get up to graceMs. */
  | { kind: 'stop'; graceMs: number }
  /** edge -> primary: serving; connections may be handed over. */
  | { kind: 'ready' }
  /** edge -> primary: one pino JSON log line. */
  | { kind: 'log'; line: string };
