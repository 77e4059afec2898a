// Seeded pseudo-random numbers for the pure cores and the simulator. Determinism is the point:
// the same seed yields the same sequence on every machine, so a failing simulation replays
// exactly. Not for cryptography. Generator: sfc32 seeded through splitmix32.

export interface Random {
  /** Uniform integer in [0, bound); bound must be a positive safe integer below 2^32. */
  int(bound: number): number;
  /** Uniform float in [0, 1). */
  float(): number;
}

export class SeededRandom implements Random {
  private a: number;
  private b: number;
  private c: number;
  private d: number;

  constructor(seed: number) {
    let s = seed >>> 0;
    const next = (): number => {
      s = (s + 0x9e3779b9) >>> 0;
      let z = s;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
      return (z ^ (z >>> 16)) >>> 0;
    };
    this.a = next();
    this.b = next();
    this.c = next();
    this.d = next();
    for (let i = 0; i < 12; i++) this.u32();
  }

  u32(): number {
    const t = (((this.a + this.b) >>> 0) + this.d) >>> 0;
    this.d = (this.d + 1) >>> 0;
    this.a = this.b ^ (this.b >>> 9);
    this.b = (this.c + (this.c << 3)) >>> 0;
    this.c = (this.c << 21) | (this.c >>> 11);
    this.c = (this.c + t) >>> 0;
    return t;
  }

  float(): number {
    return this.u32() / 4294967296;
  }

  int(bound: number): number {
    if (!(bound > 0 && bound <= 4294967296 && Number.isInteger(bound))) {
      throw new Error(`bad random bound ${bound}`);
    }
    return Math.floor(this.float() * bound);
  }
}
