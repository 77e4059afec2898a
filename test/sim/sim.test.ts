// Runs the deterministic simulator over a fixed range of seeds under vitest. A failure names
// the seed; replay it with `node --import tsx test/sim/run.ts --seed S --verbose`.

import { describe, expect, it } from 'vitest';
import { runSeed, SimFailure } from './sim.js';

const SEEDS = 200;

describe('raft simulator', () => {
  it(`${SEEDS} seeds: safety, linearizability and liveness hold`, () => {
    const failures: string[] = [];
    for (let seed = 1; seed <= SEEDS; seed++) {
      try {
        runSeed({ seed });
      } catch (e) {
        failures.push(e instanceof SimFailure ? e.message : `seed ${seed}: ${String((e as Error).stack ?? e)}`);
      }
    }
    expect(failures, failures.join('\n\n')).toEqual([]);
  }, 120_000);

  it('replays a seed exactly', () => {
    const a = runSeed({ seed: 4242 });
    const b = runSeed({ seed: 4242 });
    expect(a).toEqual(b);
  });
});
