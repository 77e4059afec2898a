// The two ways to put the writer's output somewhere (see writer.ts on why the meta pages come
// last): into a file, with the meta pages written last at offset 0; or as one ordered stream
// (a network stream, a hash), by running the writer twice over the same input.

import { open } from 'node:fs/promises';
import { assert } from '../util/assert.js';
import { DEFAULT_PAGE_SIZE } from './format.js';
import { writeBbolt, type BboltSource, type BboltWriteOptions, type BboltWriteResult } from './writer.js';

/** Writes a bbolt database file at `path` (created or truncated). */
export async function writeBboltFile(path: string, buckets: BboltSource, options: BboltWriteOptions = {}): Promise<BboltWriteResult> {
  const file = await open(path, 'w');
  try {
    let offset: number | undefined;
    const result = await writeBbolt(
      buckets,
      async (pages) => {
        offset ??= 2 * (options.pageSize ?? DEFAULT_PAGE_SIZE); // data pages start at page 2
        await file.write(pages, 0, pages.length, offset);
        offset += pages.length;
      },
      options,
    );
    await file.write(result.metaPages, 0, result.metaPages.length, 0);
    await file.sync();
    return result;
  } finally {
    await file.close();
  }
}

export interface BboltStream {
  /** The whole database's size in bytes, known before the first byte. */
  readonly sizeBytes: number;
  /** The database from page 0 on, in chunks. */
  chunks(): AsyncGenerator<Buffer>;
}

/**
 * Plans a database by a first run of the writer (pages discarded), then streams it in order:
 * the meta pages, then the second run's pages. `buckets` is called once per run and must give
 * the same entries both times (e.g. both runs read one pinned snapshot).
 */
export async function bboltStream(buckets: () => BboltSource, options: BboltWriteOptions = {}): Promise<BboltStream> {
  const plan = await writeBbolt(buckets(), () => {}, options);
  return {
    sizeBytes: plan.pageCount * plan.meta.pageSize,
    async *chunks() {
      yield plan.metaPages;
      const handoff = new Handoff();
      const run = writeBbolt(buckets(), (pages) => handoff.put(pages), options).then(
        (result) => handoff.end(result),
        (error: unknown) => handoff.fail(error),
      );
      try {
        for (let chunk = await handoff.take(); chunk !== undefined; chunk = await handoff.take()) yield chunk;
      } finally {
        handoff.abandon();
        await run;
      }
      const second = handoff.result();
      assert(second.metaPages.equals(plan.metaPages), 'bbolt stream: the second run laid the database out differently');
    },
  };
}

/** Thrown into the writer when the consumer stops reading early. */
class StreamAbandoned extends Error {
  override name = 'StreamAbandoned';
}

/**
 * One chunk at a time from the writer (producer) to the generator (consumer): the writer's
 * sink resolves only when the consumer asks for the next chunk, which is the backpressure.
 */
class Handoff {
  private chunk: Buffer | undefined;
  private finished: BboltWriteResult | undefined;
  private failure: { error: unknown } | undefined;
  private abandoned = false;
  private wakeConsumer: (() => void) | undefined;
  private wakeProducer: (() => void) | undefined;

  put(chunk: Buffer): Promise<void> {
    if (this.abandoned) throw new StreamAbandoned('bbolt stream abandoned by its reader');
    this.chunk = chunk;
    this.wake();
    return new Promise<void>((resolve) => (this.wakeProducer = resolve));
  }

  end(result: BboltWriteResult): void {
    this.finished = result;
    this.wake();
  }

  fail(error: unknown): void {
    this.failure = { error };
    this.wake();
  }

  /** The next chunk, or undefined once the writer is done; rethrows the writer's failure. */
  async take(): Promise<Buffer | undefined> {
    this.releaseProducer();
    for (;;) {
      if (this.chunk !== undefined) {
        const chunk = this.chunk;
        this.chunk = undefined;
        return chunk;
      }
      if (this.failure !== undefined) throw this.failure.error;
      if (this.finished !== undefined) return undefined;
      await new Promise<void>((resolve) => (this.wakeConsumer = resolve));
    }
  }

  abandon(): void {
    if (this.finished !== undefined || this.failure !== undefined) return;
    this.abandoned = true;
    this.releaseProducer();
  }

  result(): BboltWriteResult {
    assert(this.finished !== undefined, 'bbolt stream: result asked before the writer finished');
    return this.finished;
  }

  private releaseProducer(): void {
    const wake = this.wakeProducer;
    this.wakeProducer = undefined;
    wake?.();
  }

  private wake(): void {
    const wake = this.wakeConsumer;
    this.wakeConsumer = undefined;
    wake?.();
  }
}
