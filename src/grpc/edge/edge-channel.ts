// One edge process's binary channel to the primary (a socket pair made at fork): frames out are
// collected during an event-loop turn and written together (one write per turn however many
// calls answered), frames in are decoded from whatever chunks arrive (frames.ts).

import type { Duplex } from 'node:stream';
import { type Frame, FrameReader, frameHeader } from './frames.js';

export class EdgeChannel {
  private queued: Buffer[] = [];
  private queuedBytes = 0;
  private flushScheduled = false;
  private closed = false;

  constructor(
    private readonly socket: Duplex,
    onFrame: (frame: Frame) => void,
    onClose: () => void,
  ) {
    const reader = new FrameReader();
    socket.on('data', (chunk: Buffer) => {
      for (const frame of reader.push(chunk)) onFrame(frame);
    });
    const closeOnce = (): void => {
      if (this.closed) return;
      this.closed = true;
      onClose();
    };
    socket.on('close', closeOnce);
    // A broken pair ends with 'close' too; the error itself says nothing more.
    socket.on('error', () => socket.destroy());
  }

  get isClosed(): boolean {
    return this.closed;
  }

  /** Queues one frame; it leaves with the others of this turn. */
  send(callId: number, kind: number, body: Buffer = EMPTY): void {
    if (this.closed) return;
    this.queued.push(frameHeader(callId, kind, body.length), body);
    this.queuedBytes += 9 + body.length;
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(this.flush);
    }
  }

  close(): void {
    this.socket.destroy();
  }

  private readonly flush = (): void => {
    this.flushScheduled = false;
    if (this.closed || this.queued.length === 0) return;
    const batch = Buffer.concat(this.queued, this.queuedBytes);
    this.queued = [];
    this.queuedBytes = 0;
    this.socket.write(batch);
  };
}

const EMPTY = Buffer.alloc(0);
