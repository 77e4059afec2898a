// Property tests of the quorum arithmetic and the inflight window against simple references.

import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { Inflights, Progress, ProgressTracker, VoteResult } from './progress.js';

describe('quorum', () => {
  it('committed() is the largest index held by a majority of voters (learners ignored)', () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.nat(50), fc.boolean()), { minLength: 1, maxLength: 9 }), (members) => {
        const t = new ProgressTracker(8);
        members.forEach(([match, learner], i) => {
          const pr = new Progress(match, match + 1, 8, learner);
          t.progress.set(BigInt(i + 1), pr);
        });
        const voters = members.filter(([, l]) => !l).map(([m]) => m);
        let want = 0;
        if (voters.length > 0) {
          const q = Math.floor(voters.length / 2) + 1;
          for (let idx = 0; idx <= 50; idx++) if (voters.filter((m) => m >= idx).length >= q) want = idx;
        }
        expect(t.committed()).toBe(want);
      }),
    );
  });

  it('a vote is won with a majority of voters and lost once a majority rejects', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 7 }), fc.array(fc.option(fc.boolean()), { minLength: 7, maxLength: 7 }), (n, votes) => {
        const t = new ProgressTracker(8);
        for (let i = 1; i <= n; i++) t.progress.set(BigInt(i), new Progress(0, 1, 8, false));
        let granted = 0;
        let rejected = 0;
        for (let i = 0; i < n; i++) {
          const v = votes[i];
          if (v === null || v === undefined) continue;
          t.recordVote(BigInt(i + 1), v);
          if (v) granted++;
          else rejected++;
        }
        const q = Math.floor(n / 2) + 1;
        const want = granted >= q ? VoteResult.Won : rejected > n - q ? VoteResult.Lost : VoteResult.Pending;
        expect(t.tallyVotes().result).toBe(want);
      }),
    );
  });
});

describe('Inflights', () => {
  it('matches a plain array model under add / freeLE / freeFirstOne', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 6 }), fc.array(fc.tuple(fc.nat(2), fc.nat(5)), { maxLength: 60 }), (size, ops) => {
        const inf = new Inflights(size);
        let model: number[] = [];
        let next = 1;
        for (const [op, arg] of ops) {
          if (op === 0) {
            if (model.length < size) {
              next += arg + 1; // indexes in flight strictly increase
              inf.add(next);
              model.push(next);
            }
          } else if (op === 1) {
            const to = next - arg;
            inf.freeLE(to);
            model = model.filter((x) => x > to);
          } else {
            inf.freeFirstOne();
            model = model.slice(1);
          }
          expect(inf.count).toBe(model.length);
          expect(inf.full()).toBe(model.length === size);
        }
      }),
    );
  });
});
