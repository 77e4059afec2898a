// gRPC's message framing on an HTTP/2 stream: each message is a 1-byte compressed flag (always 0
// here: MetaStore sends no compressed messages, as grpc-js does not), a 4-byte big-endian
// length, then the protobuf bytes. Several framed messages may travel in one HTTP/2 write, so a
// stream with many responses ready (a watch stream's watchers after one revision) frames them
// into one buffer here and hands it over in one write (batch-writer.ts).

import { assert } from '../util/assert.js';

export const MESSAGE_PREFIX_BYTES = 5;

/** What a writer of framed messages offers its caller (the watch service, an edge). */
export interface BatchWriter {
  /**
   * Writes `framed` (one or more whole framed messages) after everything written before, as one
   * write; `sent` runs once it has left for the client. false: wait for onDrain before more.
   */
  write(framed: Buffer, sent: () => void): boolean;
  onDrain(listener: () => void): void;
}

/** A piece of a message: bytes, or a short array of byte values (an envelope of a few varints). */
export type MessagePart = Uint8Array | readonly number[];

/**
 * The messages, each with its prefix, back to back in one buffer. A message may be given as its
 * parts (concatenated, they are the message), so that it is copied once, here.
 */
export function frameMessages(messages: readonly (Buffer | readonly MessagePart[])[]): Buffer {
  let total = 0;
  for (const message of messages) total += MESSAGE_PREFIX_BYTES + lengthOf(message);
  const out = Buffer.allocUnsafe(total);
  let at = 0;
  for (const message of messages) {
    out[at] = 0;
    out.writeUInt32BE(lengthOf(message), at + 1);
    at += MESSAGE_PREFIX_BYTES;
    if (Buffer.isBuffer(message)) {
      out.set(message, at);
      at += message.length;
      continue;
    }
    // TypedArray.set: for the small parts of a watch response far cheaper than Buffer.copy.
    for (const part of message as readonly MessagePart[]) {
      out.set(part, at);
      at += part.length;
    }
  }
  return out;
}

function lengthOf(message: Buffer | readonly MessagePart[]): number {
  if (Buffer.isBuffer(message)) return message.length;
  let length = 0;
  for (const part of message as readonly MessagePart[]) length += part.length;
  return length;
}

/** The messages of a buffer frameMessages made (views into it, no copies). */
export function unframeMessages(framed: Buffer): Buffer[] {
  const messages: Buffer[] = [];
  let at = 0;
  while (at < framed.length) {
    const end = at + MESSAGE_PREFIX_BYTES + messageLengthAt(framed, at);
    assert(end <= framed.length, `framed messages: message at ${at} runs past the end (${end} > ${framed.length})`);
    messages.push(framed.subarray(at + MESSAGE_PREFIX_BYTES, end));
    at = end;
  }
  return messages;
}

/** The length of the framed message starting at `at` (its prefix's length field). */
export function messageLengthAt(framed: Buffer, at: number): number {
  assert(at + MESSAGE_PREFIX_BYTES <= framed.length && framed[at] === 0, `framed messages: no message prefix at ${at}`);
  return framed.readUInt32BE(at + 1);
}

/** The first message of `framed` over a send limit (-1 = none, as grpc-js's), by offset and length. */
export function firstOversized(framed: Buffer, maxBytes: number): { at: number; length: number } | undefined {
  if (maxBytes === -1 || framed.length - MESSAGE_PREFIX_BYTES <= maxBytes) return undefined;
  for (let at = 0; at < framed.length; ) {
    const length = messageLengthAt(framed, at);
    if (length > maxBytes) return { at, length };
    at += MESSAGE_PREFIX_BYTES + length;
  }
  return undefined;
}
