/**
 * A small seeded PRNG (xoshiro128**, Blackman and Vigna) shared by the key generators and the
 * simulator. Everything random in poe-bench is drawn from one of these, created from a seed
 * that is printed and recorded, so any run or simulation can be replayed.
 */
export class Rng {
  /**
   * The 128-bit state, words a, b, c, d. In a Uint32Array rather than four number fields: a
   * field holding a u32 above 2^30 is no small integer to V8, so every update of one boxed a
   * fresh heap number (a fifth of the client process's allocations in `npm run bench`).
   */
  private readonly s = new Uint32Array(4);

  constructor(readonly seed: number) {
    // splitmix32 expands the seed into the 128-bit state (never all zero).
    let s = seed >>> 0;
    const next = (): number => {
      s = (s + 0x9e3779b9) >>> 0;
      let z = s;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
      return (z ^ (z >>> 16)) >>> 0;
    };
    this.s[0] = next();
    this.s[1] = next();
    this.s[2] = next();
    this.s[3] = next() | 1;
  }

  /** A uniform 32-bit unsigned integer. */
  nextU32(): number {
    const s = this.s;
    const b = s[1]!;
    const result = Math.imul(rotl(Math.imul(b, 5) >>> 0, 7), 9) >>> 0;
    const t = (b << 9) >>> 0;
    s[2] = s[2]! ^ s[0]!;
    s[3] = s[3]! ^ b;
    s[1] = b ^ s[2]!;
    s[0] = s[0]! ^ s[3]!;
    s[2] = s[2]! ^ t;
    s[3] = rotl(s[3]!, 11);
    return result;
  }

  /** A uniform double in [0, 1) with 53 random bits. */
  nextDouble(): number {
    const hi = this.nextU32() >>> 5; // 27 bits
    const lo = this.nextU32() >>> 6; // 26 bits
    return (hi * 67108864 + lo) / 9007199254740992;
  }

  /** A uniform integer in [0, bound). */
  nextInt(bound: number): number {
    if (!(bound > 0)) throw new RangeError(`bound must be > 0, got ${bound}`);
    return Math.floor(this.nextDouble() * bound);
  }

  /** True with probability p. */
  chance(p: number): boolean {
    return p > 0 && this.nextDouble() < p;
  }

  /** An independent generator derived from this one (for per-node or per-link streams). */
  fork(): Rng {
    return new Rng(this.nextU32());
  }
}

function rotl(x: number, k: number): number {
  return ((x << k) | (x >>> (32 - k))) >>> 0;
}
