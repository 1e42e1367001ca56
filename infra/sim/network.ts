/**
 * The simulated network: per-link delay, loss, duplication and partitions, all drawn from one
 * seeded Rng so a seed replays every decision (DESIGN.md "One protocol core, many worlds").
 *
 * Reordering is not a separate knob: two messages on the same link swap when the second
 * draws a shorter delay, so it follows from the delay distribution's variance (jitter, tail).
 */
import type { Rng } from '../../client/random.js';
import type { Peer } from '../../replica/types.js';

/**
 * One-way delay: baseMs + uniform[0, jitterMs) + (tailMeanMs > 0 ? an exponential tail with
 * that mean : 0). Constant links set jitterMs = tailMeanMs = 0.
 */
export interface DelaySpec {
  readonly baseMs: number;
  readonly jitterMs: number;
  readonly tailMeanMs: number;
}

/** Nodes in `nodes` are cut off from every node outside it during [fromMs, toMs), then heal. */
export interface Partition {
  readonly nodes: readonly Peer[];
  readonly fromMs: number;
  readonly toMs: number;
}

/** A delay that applies to links from any of `from` to any of `to` (omitted: every node). */
export interface LinkOverride {
  readonly from?: readonly Peer[];
  readonly to?: readonly Peer[];
  readonly delay: DelaySpec;
}

export interface NetworkOptions {
  readonly delay: DelaySpec;
  /** Later entries win over earlier ones and over `delay`. */
  readonly links: readonly LinkOverride[];
  /** Each copy of a message is lost with this probability. */
  readonly dropProbability: number;
  /** A delivered message is delivered a second time (with its own delay) with this probability. */
  readonly duplicateProbability: number;
  readonly partitions: readonly Partition[];
  /** From this virtual time on, no copy is lost or duplicated (the network heals); default never. */
  readonly healAtMs?: number;
}

export const DEFAULT_DELAY: DelaySpec = { baseMs: 1, jitterMs: 1, tailMeanMs: 0 };

export const DEFAULT_NETWORK: NetworkOptions = {
  delay: DEFAULT_DELAY,
  links: [],
  dropProbability: 0,
  duplicateProbability: 0,
  partitions: [],
};

/** What happened to the messages handed to the network, for reports and for the model's tests. */
export interface NetworkStats {
  /** Copies handed to the network (a broadcast to n-1 replicas is n-1 copies). */
  sent: number;
  delivered: number;
  dropped: number;
  duplicated: number;
  /** Lost because the link was cut by a partition when sent or when due. */
  partitioned: number;
  /** Arrived at a crashed node. */
  toCrashed: number;
}

export function validateDelay(d: DelaySpec, what: string): void {
  for (const [k, v] of Object.entries(d)) {
    if (!Number.isFinite(v) || v < 0) throw new RangeError(`${what}.${k} must be a finite number >= 0, got ${v}`);
  }
}

/**
 * Checks a partition list that may come from untyped input (JSON, a harness spec): a clear
 * RangeError naming the bad entry instead of a TypeError deep inside a run.
 */
export function validatePartitions(partitions: unknown): asserts partitions is readonly Partition[] {
  if (!Array.isArray(partitions)) throw new RangeError(`partitions must be an array of { nodes, fromMs, toMs }, got ${describe(partitions)}`);
  partitions.forEach((p: unknown, i) => {
    const what = `partitions[${i}]`;
    if (typeof p !== 'object' || p === null) throw new RangeError(`${what} must be an object { nodes, fromMs, toMs }, got ${describe(p)}`);
    const { nodes, fromMs, toMs } = p as Record<string, unknown>;
    if (!Array.isArray(nodes) || nodes.some((x) => !Number.isInteger(x) || (x as number) < 0)) {
      throw new RangeError(
        `${what}.nodes must be an array of node numbers (replicas, or client machines as CLIENT_PEER_BASE + origin), got ${describe(nodes)}`,
      );
    }
    if (typeof fromMs !== 'number' || typeof toMs !== 'number' || !(fromMs >= 0) || !(toMs >= fromMs) || !Number.isFinite(toMs)) {
      throw new RangeError(`${what}: [${describe(fromMs)}, ${describe(toMs)}) is not an interval of virtual time (0 <= fromMs <= toMs, finite)`);
    }
  });
}

function describe(x: unknown): string {
  if (x === undefined) return 'undefined';
  try {
    return JSON.stringify(x) ?? String(x);
  } catch {
    return String(x);
  }
}

export class Network {
  readonly stats: NetworkStats = { sent: 0, delivered: 0, dropped: 0, duplicated: 0, partitioned: 0, toCrashed: 0 };
  /** After heal(): no more drops or duplicates (partitions still end as scheduled). */
  private healed = false;
  /**
   * Every copy is delivered once, after a delay drawn from `options.delay`: no loss, no
   * duplication, no partition, no link override (the default network). Then `arrival` gives
   * what transmitInto would, with the same draws, for any link.
   */
  readonly plain: boolean;

  constructor(
    readonly options: NetworkOptions,
    private readonly rng: Rng,
  ) {
    validateDelay(options.delay, 'delay');
    options.links.forEach((l, i) => validateDelay(l.delay, `links[${i}].delay`));
    for (const [name, p] of [
      ['dropProbability', options.dropProbability],
      ['duplicateProbability', options.duplicateProbability],
    ] as const) {
      if (!(p >= 0 && p <= 1)) throw new RangeError(`${name} must be in [0, 1], got ${p}`);
    }
    validatePartitions(options.partitions);
    if (options.healAtMs !== undefined && !(options.healAtMs >= 0)) throw new RangeError(`healAtMs must be a number >= 0, got ${options.healAtMs}`);
    this.plain = options.dropProbability === 0 && options.duplicateProbability === 0 && options.partitions.length === 0 && options.links.length === 0;
  }

  /**
   * The network becomes reliable: every later copy is delivered once (the simulator's settle
   * phase, "once the network heals"). Loss and duplication are still drawn, so the random
   * stream does not depend on when this happens.
   */
  heal(): void {
    this.healed = true;
  }

  /** True if a partition separates `a` and `b` at `timeMs`. */
  isCut(a: Peer, b: Peer, timeMs: number): boolean {
    // Checked for every copy sent and delivered: no iterator when there is nothing to iterate.
    if (this.options.partitions.length === 0) return false;
    for (const p of this.options.partitions) {
      if (timeMs < p.fromMs || timeMs >= p.toMs) continue;
      if (p.nodes.includes(a) !== p.nodes.includes(b)) return true;
    }
    return false;
  }

  delayFor(from: Peer, to: Peer): DelaySpec {
    let d = this.options.delay;
    if (this.options.links.length === 0) return d;
    for (const l of this.options.links) {
      if ((l.from === undefined || l.from.includes(from)) && (l.to === undefined || l.to.includes(to))) d = l.delay;
    }
    return d;
  }

  private drawDelayMs(d: DelaySpec): number {
    let ms = d.baseMs;
    if (d.jitterMs > 0) ms += this.rng.nextDouble() * d.jitterMs;
    // Inverse-CDF exponential; 1 - u is in (0, 1], so the log is finite.
    if (d.tailMeanMs > 0) ms += -Math.log(1 - this.rng.nextDouble()) * d.tailMeanMs;
    return ms;
  }

  /**
   * Decides the fate of one copy sent from `from` to `to` at `nowMs`: the arrival times of
   * the copies that will be delivered (none if lost, two if duplicated). Loss and duplication
   * are drawn for every copy, also for one a partition cuts, so healing a partition does not
   * change the random stream of the rest of the run.
   */
  transmit(from: Peer, to: Peer, nowMs: number): number[] {
    const out: number[] = [];
    out.length = this.transmitInto(from, to, nowMs, out);
    return out;
  }

  /**
   * transmitInto on a `plain` network: the arrival time of the one copy. transmitInto draws
   * nothing for loss or duplication of probability 0 (Rng.chance), so the draws are the same.
   */
  arrival(nowMs: number): number {
    this.stats.sent++;
    return nowMs + this.drawDelayMs(this.options.delay);
  }

  /**
   * `count` copies on a `plain` network, sent at `nowMs`: their arrival times into
   * out[0, count), the draws `arrival` would make for them one by one (a broadcast's copies,
   * without a number boxed per copy to return it).
   */
  arrivalsInto(nowMs: number, count: number, out: Float64Array): void {
    this.stats.sent += count;
    const d = this.options.delay;
    for (let i = 0; i < count; i++) out[i] = nowMs + this.drawDelayMs(d);
  }

  /** `transmit` without an array per copy: writes the arrival times into `out`, returns how many. */
  transmitInto(from: Peer, to: Peer, nowMs: number, out: number[]): number {
    this.stats.sent++;
    const lost = this.rng.chance(this.options.dropProbability);
    const duplicate = this.rng.chance(this.options.duplicateProbability);
    const d = this.delayFor(from, to);
    const first = nowMs + this.drawDelayMs(d);
    const second = duplicate ? nowMs + this.drawDelayMs(d) : undefined;
    if (this.isCut(from, to, nowMs)) {
      this.stats.partitioned++;
      return 0;
    }
    const healed = this.healed || nowMs >= (this.options.healAtMs ?? Infinity);
    if (lost && !healed) {
      this.stats.dropped++;
      return 0;
    }
    out[0] = first;
    if (second === undefined || healed) return 1;
    this.stats.duplicated++;
    out[1] = second;
    return 2;
  }
}
