/**
 * The two Zipfian key generators of DESIGN.md "Workload", both seeded from client/random.ts.
 *
 * - `ycsb`: the keys Java YCSB's CoreWorkload draws for `requestdistribution=zipfian` on a
 *   loaded table of N records and no inserts. CoreWorkload builds
 *   `new ScrambledZipfianGenerator(insertstart, insertstart + insertcount + expectednewkeys)`,
 *   which with insertstart = 0, insertcount = N and insertproportion = 0 is [0, N] (N + 1
 *   items), and `nextKeynum` redraws any key above the last loaded key N - 1. The scrambled
 *   generator draws a rank from an inner ZipfianGenerator over [0, ITEM_COUNT] with the
 *   precomputed ZETAN, hashes the rank with `Utils.fnvhash64` and takes it modulo N + 1.
 *   Sources followed: core/src/main/java/site/ycsb/generator/ZipfianGenerator.java,
 *   ScrambledZipfianGenerator.java, site/ycsb/Utils.java, workloads/CoreWorkload.java.
 * - `resilientdb`: the generator of the paper's implementation, ResilientDB's
 *   benchmarks/ycsb_query.cpp (Gray et al., "Quickly Generating Billion-Record Synthetic
 *   Databases", SIGMOD 1994): theta = ZIPF_THETA = 0.5, zeta over n = table size - 1, u
 *   quantized to multiples of 1e-7, 1-based keys, no scrambling.
 *
 * Only the uniform source differs from the originals (xoshiro128** instead of java.util.Random
 * or ResilientDB's myrand), so the distributions are the originals' and the sequences are not.
 */
import type { KeyGenerator } from './core.js';
import { Rng } from './random.js';

export type KeyGeneratorKind = 'ycsb' | 'resilientdb';
export const KEY_GENERATOR_KINDS: readonly KeyGeneratorKind[] = ['ycsb', 'resilientdb'];

// ---------------------------------------------------------------------------------------
// YCSB

/** ZipfianGenerator.ZIPFIAN_CONSTANT. */
export const YCSB_ZIPFIAN_CONSTANT = 0.99;
/**
 * ScrambledZipfianGenerator.ITEM_COUNT: the inner generator draws ranks over 10^10 items
 * whatever the table size. (One stored revision of that file reads 10^16; released YCSB and
 * the ZETAN below are for 10^10.)
 */
export const YCSB_ITEM_COUNT = 10_000_000_000;
/** ScrambledZipfianGenerator.ZETAN: zeta(ITEM_COUNT, 0.99), precomputed by YCSB. */
export const YCSB_ZETAN = 26.46902820178302;
/** Utils.FNV_OFFSET_BASIS_64 and Utils.FNV_PRIME_64. */
export const FNV_OFFSET_BASIS_64 = 0xcbf29ce484222325n;
export const FNV_PRIME_64 = 1099511628211n;

/**
 * ZipfianGenerator.zetastatic(st, n, theta, initialsum): initialsum + sum over i in [st, n)
 * of 1 / (i + 1)^theta, in YCSB's order of summation (so the result is bit-identical).
 */
export function ycsbZeta(n: number, theta: number, st = 0, initialSum = 0): number {
  let sum = initialSum;
  for (let i = st; i < n; i++) sum += 1 / Math.pow(i + 1, theta);
  return sum;
}

const MASK_64 = (1n << 64n) - 1n;

/**
 * Utils.fnvhash64, exactly as Java computes it, in BigInt: FNV-1a over the 8 octets of the
 * long, lowest first (`val >> 8` is an arithmetic shift), 64-bit wrapping multiply, then
 * Math.abs on the signed result (which leaves Long.MIN_VALUE negative). The reference the fast
 * path below is tested against.
 */
export function fnvhash64Reference(value: bigint): bigint {
  let val = BigInt.asIntN(64, value);
  let hash = FNV_OFFSET_BASIS_64;
  for (let i = 0; i < 8; i++) {
    const octet = val & 0xffn;
    val >>= 8n;
    hash ^= octet;
    hash = (hash * FNV_PRIME_64) & MASK_64;
  }
  const signed = BigInt.asIntN(64, hash);
  return signed < 0n ? BigInt.asIntN(64, -signed) : signed;
}

const TWO_POW_32 = 4294967296;
/** FNV_PRIME_64 = 2^40 + 0x1b3: the multiply is a shift by 40 plus a small product. */
const FNV_PRIME_LOW = 0x1b3;
/** Largest modulus for which the 16-bit-step remainder below stays exact in doubles. */
const FNV_MODULUS_MAX = 2 ** 37;

/**
 * Java's `Utils.fnvhash64(value) % modulus` for an integer 0 <= value < 2^53 and
 * 1 <= modulus < 2^37, without BigInt: the hash runs on two 32-bit halves. The result is
 * negative only when the hash is Long.MIN_VALUE (Java's Math.abs leaves it negative and `%`
 * keeps the dividend's sign).
 */
export function fnvhash64Mod(value: number, modulus: number): number {
  if (!Number.isInteger(modulus) || modulus < 1 || modulus >= FNV_MODULUS_MAX) {
    throw new RangeError(`fnvhash64Mod: modulus ${modulus} outside [1, 2^37)`);
  }
  let valLo = value >>> 0;
  let valHi = value >= TWO_POW_32 ? Math.floor(value / TWO_POW_32) >>> 0 : 0;
  // The hash's two halves as int32 (reinterpreted as unsigned at the end): every step below is
  // 32-bit integer arithmetic, which the JIT keeps in registers. With doubles (a product of
  // up to 2^41 and a floor division for its carry) this was half of a client's key generation,
  // itself a sixth of the client process's CPU in `npm run bench` (perf).
  let hi = 0xcbf29ce4 | 0;
  let lo = 0x84222325 | 0;
  for (let i = 0; i < 8; i++) {
    lo ^= valLo & 0xff;
    valLo = (valLo >>> 8) | ((valHi & 0xff) << 24);
    valHi >>>= 8;
    // (hi:lo) * (2^40 + 0x1b3) mod 2^64: lo * 0x1b3 in 16-bit halves (each product < 2^25),
    // its upper 32 bits (below 2^9) carried into hi, and lo << 40 lands in hi as lo << 8.
    const l = (lo & 0xffff) * FNV_PRIME_LOW;
    const h = (lo >>> 16) * FNV_PRIME_LOW;
    const carry = (h + (l >>> 16)) >>> 16;
    hi = (Math.imul(hi, FNV_PRIME_LOW) + carry + (lo << 8)) | 0;
    lo = (l + (h << 16)) | 0;
  }
  hi >>>= 0;
  lo >>>= 0;
  if (hi >= 0x8000_0000) {
    // Math.abs on a negative long: two's complement negation. Long.MIN_VALUE stays as it is.
    const isLongMin = hi === 0x8000_0000 && lo === 0;
    lo = (~lo + 1) >>> 0;
    hi = (~hi + (lo === 0 ? 1 : 0)) >>> 0;
    if (isLongMin) return -remainder(hi, lo, modulus) || 0;
  }
  return remainder(hi, lo, modulus);
}

/** Moduli below this take remainder's byte steps: (r << 8) | byte stays below 2^31, an int32. */
const BYTE_STEP_MODULUS_MAX = 2 ** 23;

/**
 * (hi * 2^32 + lo) mod m. For m < 2^23 (YCSB's tables) in byte steps of int32 arithmetic;
 * otherwise in 16-bit steps, where every intermediate stays below 2^53 but is a double.
 */
function remainder(hi: number, lo: number, m: number): number {
  if (m < BYTE_STEP_MODULUS_MAX) {
    let r = hi % m;
    r = ((r << 8) | (lo >>> 24)) % m;
    r = ((r << 8) | ((lo >>> 16) & 0xff)) % m;
    r = ((r << 8) | ((lo >>> 8) & 0xff)) % m;
    return ((r << 8) | (lo & 0xff)) % m;
  }
  let r = hi % m;
  r = (r * 65536 + (lo >>> 16)) % m;
  r = (r * 65536 + (lo & 0xffff)) % m;
  return r;
}

// Correctly rounded pow, for the one power whose last bit V8 and HotSpot disagree on.

/** Fixed-point scale of exactPow's arithmetic: 2^-FRAC is far below an ulp of any double. */
const FRAC = 240n;
const ONE = 1n << FRAC;

/** 2 atanh(z) = ln((1 + z) / (1 - z)) for a fixed-point |z| <= 1/3, by its Taylor series. */
function twoAtanh(z: bigint): bigint {
  const z2 = (z * z) >> FRAC;
  let term = z;
  let sum = 0n;
  for (let k = 1n; term !== 0n; k += 2n) {
    sum += term / k;
    term = (term * z2) >> FRAC;
  }
  return 2n * sum;
}

const LN2 = twoAtanh(ONE / 3n);

/** A finite positive double as m * 2^e with m a 53-bit (or smaller, if subnormal) integer. */
function decompose(x: number): { m: bigint; e: number } {
  const view = new DataView(new ArrayBuffer(8));
  view.setFloat64(0, x);
  const bits = view.getBigUint64(0);
  const biased = Number((bits >> 52n) & 0x7ffn);
  const frac = bits & ((1n << 52n) - 1n);
  return biased === 0 ? { m: frac, e: -1074 } : { m: frac | (1n << 52n), e: biased - 1075 };
}

/** ln(x) in fixed point for a finite x > 0: x = t 2^k with t in [1, 2), ln t = 2 atanh((t-1)/(t+1)). */
function fixedLn(x: number): bigint {
  const { m, e } = decompose(x);
  const bitsM = m.toString(2).length;
  // t = m / 2^(bitsM - 1) in [1, 2); x = t * 2^(e + bitsM - 1).
  const t = (m << FRAC) >> BigInt(bitsM - 1);
  const z = ((t - ONE) << FRAC) / (t + ONE);
  return twoAtanh(z) + BigInt(e + bitsM - 1) * LN2;
}

/** The double nearest to v * 2^(k - FRAC) for a fixed-point v > 0 (ties to even; no subnormals). */
function roundToDouble(v: bigint, k: number): number {
  const bits = v.toString(2).length;
  const drop = bits - 53;
  let m = v >> BigInt(drop);
  const rest = v - (m << BigInt(drop));
  const half = 1n << BigInt(drop - 1);
  if (rest > half || (rest === half && (m & 1n) === 1n)) m += 1n;
  return Number(m) * 2 ** (drop + k - Number(FRAC));
}

/**
 * x^y correctly rounded (to nearest), for finite x > 0 and finite y whose result is a normal
 * double; anything else goes to Math.pow. x^y = e^(y ln x) in 240-bit fixed point: ln by the
 * atanh series, e^w = 2^k e^r with |r| < ln 2 by Taylor series. The error, some 2^-200
 * relative, could decide a rounding only for a power within that of a halfway point.
 */
export function exactPow(x: number, y: number): number {
  if (!(x > 0 && Number.isFinite(x) && Number.isFinite(y)) || y === 0 || x === 1) return Math.pow(x, y);
  const { m: my, e: ey } = decompose(Math.abs(y));
  const lnX = fixedLn(x);
  let w = lnX * my;
  w = ey >= 0 ? w << BigInt(ey) : w >> BigInt(-ey);
  if (y < 0) w = -w;
  // w = k ln 2 + r with |r| < ln 2 (BigInt division truncates).
  const k = w / LN2;
  const r = w - k * LN2;
  let term = ONE;
  let sum = 0n;
  for (let i = 1n; term !== 0n; i++) {
    sum += term;
    term = (term * r) / (ONE * i);
  }
  const kk = Number(k);
  if (kk > 1000 || kk < -1000) return Math.pow(x, y);
  return roundToDouble(sum, kk);
}

/**
 * Java YCSB's ZipfianGenerator over [min, max] with a fixed item count (the benchmark never
 * changes it, so the incremental zeta recomputation of `nextLong(itemcount)` never runs).
 * Java's constructor also draws one value to warm up; with a different uniform source that
 * draw changes nothing, so it is left out.
 */
export class YcsbZipfian {
  readonly items: number;
  readonly base: number;
  readonly alpha: number;
  readonly eta: number;
  readonly zeta2Theta: number;
  /** 0.5^theta: uz below 1 + this is the second item (Gray et al.'s special case). */
  readonly halfPowTheta: number;

  constructor(
    private readonly rng: Rng,
    min: number,
    max: number,
    readonly theta: number = YCSB_ZIPFIAN_CONSTANT,
    readonly zetan: number = ycsbZeta(max - min + 1, theta),
  ) {
    if (!Number.isSafeInteger(min) || !Number.isSafeInteger(max) || max < min) {
      throw new RangeError(`zipfian range [${min}, ${max}] is not a range of safe integers`);
    }
    if (!(theta > 0 && theta < 1)) throw new RangeError(`zipfian theta ${theta} outside (0, 1)`);
    this.items = max - min + 1;
    this.base = min;
    this.zeta2Theta = ycsbZeta(2, theta);
    this.alpha = 1.0 / (1.0 - theta);
    // Java: (1 - Math.pow(2.0 / items, 1 - theta)) / (1 - zeta2theta / zetan). HotSpot's
    // Math.pow returns the correctly rounded power for YCSB's inputs and V8's is one ulp low
    // (which makes eta 4 ulp off), so the power is rounded correctly here (exactPow).
    this.eta = (1 - exactPow(2.0 / this.items, 1 - theta)) / (1 - this.zeta2Theta / this.zetan);
    this.halfPowTheta = Math.pow(0.5, theta);
  }

  /** ZipfianGenerator.nextLong(items). */
  nextLong(): number {
    const u = this.rng.nextDouble();
    const uz = u * this.zetan;
    if (uz < 1.0) return this.base;
    if (uz < 1.0 + this.halfPowTheta) return this.base + 1;
    // Java: base + (long) (itemcount * Math.pow(eta * u - eta + 1, alpha)); the product is
    // non-negative, so truncation is floor.
    return this.base + Math.floor(this.items * Math.pow(this.eta * u - this.eta + 1, this.alpha));
  }
}

/**
 * Java YCSB's ScrambledZipfianGenerator(min, max) with the default constant 0.99: ranks from
 * a Zipfian over [0, ITEM_COUNT] with ZETAN, scattered by min + fnvhash64(rank) % itemcount.
 */
export class YcsbScrambledZipfian {
  readonly itemcount: number;
  readonly inner: YcsbZipfian;

  constructor(
    rng: Rng,
    readonly min: number,
    readonly max: number,
  ) {
    this.itemcount = max - min + 1;
    if (!Number.isSafeInteger(min) || !(this.itemcount >= 1 && this.itemcount < FNV_MODULUS_MAX)) {
      throw new RangeError(`scrambled zipfian range [${min}, ${max}] unsupported`);
    }
    this.inner = new YcsbZipfian(rng, 0, YCSB_ITEM_COUNT, YCSB_ZIPFIAN_CONSTANT, YCSB_ZETAN);
  }

  /** ScrambledZipfianGenerator.nextValue(). */
  nextValue(): number {
    return this.scramble(this.inner.nextLong());
  }

  /** min + Utils.fnvhash64(rank) % itemcount. */
  scramble(rank: number): number {
    return this.min + fnvhash64Mod(rank, this.itemcount);
  }
}

/**
 * Draws before giving up on finding a key inside the table. Only a key equal to N (or the
 * negative key of a hash equal to Long.MIN_VALUE) is redrawn, which has probability far below
 * one half for any table, so this bound is never reached; it keeps the loop bounded.
 */
const REDRAWS_MAX = 10_000;

/** CoreWorkload's keys for requestdistribution=zipfian on a loaded table of `records` rows. */
export class YcsbKeyGenerator implements KeyGenerator {
  readonly scrambled: YcsbScrambledZipfian;

  constructor(
    rng: Rng,
    readonly records: number,
  ) {
    checkRecords(records, 1);
    // CoreWorkload: ScrambledZipfianGenerator(insertstart, insertstart + insertcount +
    // expectednewkeys) = [0, N] for a write-only (update) workload without inserts.
    this.scrambled = new YcsbScrambledZipfian(rng, 0, records);
  }

  /**
   * CoreWorkload.nextKeynum: `do { keynum = keychooser.nextValue() } while (keynum >
   * transactioninsertkeysequence.lastValue())`, and lastValue() is N - 1 after the load.
   * Java would pass the negative key of the Long.MIN_VALUE hash through; it is redrawn here
   * because the table has no such row (no rank in [0, 10^10] is known to produce it).
   */
  nextKey(): number {
    for (let i = 0; i < REDRAWS_MAX; i++) {
      const key = this.scrambled.nextValue();
      if (key >= 0 && key < this.records) return key;
    }
    throw new Error(`ycsb key generator: no key below ${this.records} in ${REDRAWS_MAX} draws`);
  }
}

// ---------------------------------------------------------------------------------------
// ResilientDB

/** ResilientDB config.h ZIPF_THETA. */
export const RESILIENTDB_ZIPF_THETA = 0.5;
/** ycsb_query.cpp draws u = (rand % 10000000) / 10000000. */
export const RESILIENTDB_U_STEPS = 10_000_000;

const resilientDbZetaCache = new Map<string, number>();

/**
 * YCSBQueryGenerator::zeta(n, theta): sum over i in [1, n] of pow(1.0 / i, theta), in its
 * order and form (pow of the reciprocal, which rounds differently from 1 / pow). Cached per
 * (n, theta): every client of a run builds a generator over the same table.
 */
export function resilientDbZeta(n: number, theta: number): number {
  const key = `${n}:${theta}`;
  let sum = resilientDbZetaCache.get(key);
  if (sum === undefined) {
    sum = 0;
    for (let i = 1; i <= n; i++) sum += Math.pow(1.0 / i, theta);
    resilientDbZetaCache.set(key, sum);
  }
  return sum;
}

/**
 * ResilientDB's YCSBQueryGenerator::zipf(table size - 1, ZIPF_THETA). It returns 1-based keys
 * in [1, n] with n = N - 1 (u < 1 keeps the formula below n + 1), and ResilientDB uses them as
 * row ids directly, so its row 0 is never written. Our table is [0, N): `nextKey` returns
 * zipf() - 1, the same ranks shifted down by one, so the hottest key is 0 and row N - 1 is
 * never drawn (just as ResilientDB never draws its row 0).
 */
export class ResilientDbZipfian implements KeyGenerator {
  /** ResilientDB's the_n: table size - 1. */
  readonly n: number;
  readonly zetan: number;
  readonly zeta2Theta: number;
  readonly alpha: number;
  readonly eta: number;
  readonly halfPowTheta: number;

  constructor(
    private readonly rng: Rng,
    readonly records: number,
    readonly theta: number = RESILIENTDB_ZIPF_THETA,
  ) {
    // ResilientDB asserts the_n != 0; with one record there is nothing to skew.
    checkRecords(records, 2);
    if (!(theta > 0 && theta < 1)) throw new RangeError(`zipfian theta ${theta} outside (0, 1)`);
    this.n = records - 1;
    this.zeta2Theta = resilientDbZeta(2, theta);
    this.zetan = resilientDbZeta(this.n, theta);
    this.alpha = 1 / (1 - theta);
    this.eta = (1 - Math.pow(2.0 / this.n, 1 - theta)) / (1 - this.zeta2Theta / this.zetan);
    this.halfPowTheta = Math.pow(0.5, theta);
  }

  /** ResilientDB's 1-based key in [1, N - 1]. */
  zipf(): number {
    const u = this.rng.nextInt(RESILIENTDB_U_STEPS) / RESILIENTDB_U_STEPS;
    return this.keyAt(u);
  }

  /** The key ResilientDB's formula gives for a quantized u (exposed for the exact test). */
  keyAt(u: number): number {
    const uz = u * this.zetan;
    if (uz < 1) return 1;
    if (uz < 1 + this.halfPowTheta) return 2;
    return 1 + Math.floor(this.n * Math.pow(this.eta * u - this.eta + 1, this.alpha));
  }

  nextKey(): number {
    return this.zipf() - 1;
  }
}

// ---------------------------------------------------------------------------------------

/** Keys travel as u32 on the wire (replica/messages.ts). */
const RECORDS_MAX = 2 ** 32;

function checkRecords(records: number, min: number): void {
  if (!Number.isInteger(records) || records < min || records > RECORDS_MAX) {
    throw new RangeError(`records must be an integer in [${min}, 2^32], got ${records}`);
  }
}

/** The key generator a client machine uses, seeded so a run can be replayed. */
export function createKeyGenerator(kind: KeyGeneratorKind, records: number, seed: number): KeyGenerator {
  const rng = new Rng(seed);
  switch (kind) {
    case 'ycsb':
      return new YcsbKeyGenerator(rng, records);
    case 'resilientdb':
      return new ResilientDbZipfian(rng, records);
  }
}
