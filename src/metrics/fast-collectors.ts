// Hot-path metric collectors: counters and histograms whose recording is a few array stores,
// rendered through a prom-client Registry only when Prometheus scrapes.
//
// Why not prom-client's own Counter/Histogram on the hot path: every `inc(labels)` or
// `observe(labels, v)` there validates the label object and hashes it into a string key, which
// costs hundreds of nanoseconds and allocates. Here a recording is one Map lookup by method
// name (for labelled collectors), a linear scan of a short bucket list, and typed-array
// increments: no allocation, no string building.
//
// Invariants:
// - Bucket bounds are strictly increasing and finite; `+Inf` is implicit (the total count).
// - Bucket cells hold per-bucket counts; they are made cumulative only when rendered.
// - A collector implements the part of prom-client's metric contract the Registry uses
//   (`name`, `help`, `type`, `aggregator`, `get()`, `reset()`), so it is registered beside
//   prom-client's own metrics and rendered by the same text formatter.

import type { Metric, Registry } from 'prom-client';
import { assert } from '../util/assert.js';

/** gRPC status code names by number (the codes are fixed by the gRPC spec). */
export const GRPC_CODE_NAMES: readonly string[] = [
  'OK',
  'CANCELLED',
  'UNKNOWN',
  'INVALID_ARGUMENT',
  'DEADLINE_EXCEEDED',
  'NOT_FOUND',
  'ALREADY_EXISTS',
  'PERMISSION_DENIED',
  'RESOURCE_EXHAUSTED',
  'FAILED_PRECONDITION',
  'ABORTED',
  'OUT_OF_RANGE',
  'UNIMPLEMENTED',
  'INTERNAL',
  'UNAVAILABLE',
  'DATA_LOSS',
  'UNAUTHENTICATED',
];
const UNKNOWN_CODE = 2;

/** `count` bounds starting at `start`, each `factor` times the previous (Prometheus' helper). */
export function exponentialBuckets(start: number, factor: number, count: number): number[] {
  assert(start > 0 && factor > 1 && count >= 1, 'exponentialBuckets: bad parameters');
  const bounds: number[] = [];
  for (let i = 0, b = start; i < count; i++, b *= factor) bounds.push(Number(b.toPrecision(12)));
  return bounds;
}

function checkBounds(bounds: readonly number[]): void {
  for (let i = 0; i < bounds.length; i++) {
    assert(Number.isFinite(bounds[i]), 'histogram bounds must be finite');
    if (i > 0) assert(bounds[i]! > bounds[i - 1]!, 'histogram bounds must increase');
  }
}

/** The value rows prom-client's Registry renders. */
interface Row {
  value: number;
  labels: Record<string, string | number>;
  metricName?: string;
}

interface RenderedMetric {
  name: string;
  help: string;
  type: 'counter' | 'histogram';
  aggregator: 'sum';
  values: Row[];
}

/** One histogram's state: per-bucket counts, total count and sum. */
class HistogramCells {
  readonly buckets: Float64Array;
  count = 0;
  sum = 0;

  constructor(private readonly bounds: readonly number[]) {
    this.buckets = new Float64Array(bounds.length);
  }

  observe(value: number): void {
    const bounds = this.bounds;
    for (let i = 0; i < bounds.length; i++) {
      if (value <= bounds[i]!) {
        this.buckets[i]!++;
        break;
      }
    }
    this.count++;
    this.sum += value;
  }

  render(name: string, labels: Record<string, string>, out: Row[]): void {
    let cumulative = 0;
    for (let i = 0; i < this.bounds.length; i++) {
      cumulative += this.buckets[i]!;
      out.push({ value: cumulative, labels: { ...labels, le: this.bounds[i]! }, metricName: `${name}_bucket` });
    }
    out.push({ value: this.count, labels: { ...labels, le: '+Inf' }, metricName: `${name}_bucket` });
    out.push({ value: this.sum, labels, metricName: `${name}_sum` });
    out.push({ value: this.count, labels, metricName: `${name}_count` });
  }

  reset(): void {
    this.buckets.fill(0);
    this.count = 0;
    this.sum = 0;
  }
}

/** Base of the collectors: what the Registry reads. */
abstract class FastCollector {
  readonly aggregator = 'sum' as const;

  constructor(
    readonly name: string,
    readonly help: string,
    readonly type: 'counter' | 'histogram',
  ) {}

  protected abstract rows(): Row[];
  abstract reset(): void;

  get(): RenderedMetric {
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values: this.rows() };
  }

  /** Registers with a prom-client Registry (which only calls get() and reset()). */
  registerIn(registry: Registry): this {
    registry.registerMetric(this as unknown as Metric);
    return this;
  }
}

/** A counter without labels. */
export class FastCounter extends FastCollector {
  private value = 0;

  constructor(name: string, help: string) {
    super(name, help, 'counter');
  }

  inc(by = 1): void {
    this.value += by;
  }

  protected rows(): Row[] {
    return [{ value: this.value, labels: {} }];
  }

  reset(): void {
    this.value = 0;
  }
}

/** A histogram without labels (durations of fsyncs, commits). */
export class FastHistogram extends FastCollector {
  private readonly cells: HistogramCells;

  constructor(name: string, help: string, bounds: readonly number[]) {
    super(name, help, 'histogram');
    checkBounds(bounds);
    this.cells = new HistogramCells(bounds);
  }

  observe(value: number): void {
    this.cells.observe(value);
  }

  protected rows(): Row[] {
    const out: Row[] = [];
    this.cells.render(this.name, {}, out);
    return out;
  }

  reset(): void {
    this.cells.reset();
  }
}

interface MethodCells {
  readonly method: string;
  /** Finished calls by gRPC status code. */
  readonly codes: Float64Array;
  readonly durations: HistogramCells;
}

/**
 * Finished gRPC calls by method: a counter `{method, code}` and a duration histogram
 * `{method}` that share one state per method, so recording a call is one Map lookup.
 */
export class CallStats {
  private readonly byMethod = new Map<string, MethodCells>();
  readonly counter: FastCollector;
  readonly histogram: FastCollector;

  constructor(
    names: { counter: string; counterHelp: string; histogram: string; histogramHelp: string },
    private readonly bounds: readonly number[],
  ) {
    checkBounds(bounds);
    const self = this;
    class CounterView extends FastCollector {
      protected rows(): Row[] {
        const out: Row[] = [];
        for (const cells of self.byMethod.values()) {
          for (let code = 0; code < cells.codes.length; code++) {
            const value = cells.codes[code]!;
            if (value > 0) out.push({ value, labels: { method: cells.method, code: GRPC_CODE_NAMES[code]! } });
          }
        }
        return out;
      }
      reset(): void {
        self.byMethod.clear();
      }
    }
    class HistogramView extends FastCollector {
      protected rows(): Row[] {
        const out: Row[] = [];
        for (const cells of self.byMethod.values()) cells.durations.render(this.name, { method: cells.method }, out);
        return out;
      }
      reset(): void {
        self.byMethod.clear();
      }
    }
    this.counter = new CounterView(names.counter, names.counterHelp, 'counter');
    this.histogram = new HistogramView(names.histogram, names.histogramHelp, 'histogram');
  }

  /** Records one finished call. Shaped as the gRPC layer's call observer. */
  readonly observe = (method: string, code: number, seconds: number): void => {
    let cells = this.byMethod.get(method);
    if (cells === undefined) {
      cells = { method, codes: new Float64Array(GRPC_CODE_NAMES.length), durations: new HistogramCells(this.bounds) };
      this.byMethod.set(method, cells);
    }
    cells.codes[code >= 0 && code < GRPC_CODE_NAMES.length ? code : UNKNOWN_CODE]!++;
    cells.durations.observe(seconds);
  };
}
