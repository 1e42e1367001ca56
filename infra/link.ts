/**
 * Link emulation, the description half (DESIGN.md "Backends": delay, jitter, loss and rate per
 * link, for every backend): what a link is, the `lan` and `wan` profiles, the `--link` syntax,
 * and which link each pair of nodes gets. Pure: no timers, no I/O. The half that holds frames
 * is infra/process/link-shaper.ts; the half that programs `tc` is infra/netns/tc.ts.
 *
 * `--link` syntax: a profile, custom values, or a profile with overrides, comma-separated:
 *
 *   none                                   no emulation (the default)
 *   lan                                    close to the paper's AWS region (below)
 *   wan                                    four AWS regions, nodes spread round-robin
 *   wan:us-east-1+eu-west-1                the regions to spread over
 *   delay=1ms,jitter=0.2ms,loss=0.1%,rate=1gbit
 *   lan,loss=0.1%                          a profile with an override (applies to every pair)
 *
 * Units: delay and jitter in us, ms or s (a bare number is ms); loss in % (a bare number is a
 * percentage, as in netem); rate as in tc(8): bit, kbit, mbit, gbit, tbit (powers of 1000 bits
 * per second) or bps, kbps, mbps, gbps (bytes per second).
 *
 * Semantics (the same whoever applies them, the transport or tc netem): every frame a node
 * sends on a link leaves after the frames before it have been serialised at `rate`, then
 * arrives `delay` ± `jitter` later (uniform in [delay - jitter, delay + jitter], never before
 * an earlier frame on the same link: TCP delivers in order, so above TCP jitter never
 * reorders). `loss` is the probability that a frame is dropped by the sender. Above TCP, netem
 * loss would show up as a retransmission (a delay of one RTO, at least 200 ms on Linux), not as
 * a lost message; the transport instead drops the frame, so the protocol sees a lost message,
 * which is the fault its timers exist for. `lan` and `wan` have no loss; loss is a fault
 * injection knob, not a realism one.
 */
import { CLIENT_PEER_BASE, isClientPeer, type Peer } from '../replica/types.js';

/** One direction of one link. */
export interface LinkParams {
  readonly delayMs: number;
  readonly jitterMs: number;
  /** Probability in [0, 1) that the sender drops a frame. */
  readonly lossRate: number;
  /** Bits per second; 0 is unlimited. */
  readonly rateBitsPerSec: number;
}

export const NO_LINK: LinkParams = { delayMs: 0, jitterMs: 0, lossRate: 0, rateBitsPerSec: 0 };

/**
 * `lan`: one AWS region, as in the paper (§5: c5.2xlarge replicas and client machines in one
 * deployment). Measured ping RTTs between two instances of one availability zone are about
 * 0.26-0.41 ms on average, and 0.8-1.1 ms across zones (orensol.com 2009, us-east-1; Liesis
 * 2022, eu-west-1: 0.82 ms across zones). The paper does not say whether its machines shared a
 * zone, so we assume an RTT of 0.5 ms, between the two: 0.25 ms one way, ± 0.05 ms. The rate is
 * the c5.2xlarge's network bandwidth, "up to 10 Gbit/s" (AWS instance type page).
 */
export const LAN: LinkParams = { delayMs: 0.25, jitterMs: 0.05, lossRate: 0, rateBitsPerSec: 10e9 };

/**
 * `wan`: ping RTTs in ms between four AWS regions, rounded typical medians of public
 * inter-region measurements (cloudping-style; they move by a few ms from day to day, so these
 * are an assumption, not a measurement of ours). A link's one-way delay is half the RTT, its
 * jitter 1% of the delay; nodes within one region get `lan`. No rate limit: a single TCP flow
 * across regions is bounded by its window and RTT long before the links'.
 */
export const WAN_RTT_MS: Readonly<Record<string, Readonly<Record<string, number>>>> = {
  'us-east-1': { 'us-west-2': 65, 'eu-west-1': 70, 'ap-northeast-1': 150 },
  'us-west-2': { 'eu-west-1': 120, 'ap-northeast-1': 100 },
  'eu-west-1': { 'ap-northeast-1': 200 },
};
export const WAN_REGIONS: readonly string[] = ['us-east-1', 'us-west-2', 'eu-west-1', 'ap-northeast-1'];

export function wanRttMs(a: string, b: string): number {
  if (a === b) return 2 * LAN.delayMs;
  const rtt = WAN_RTT_MS[a]?.[b] ?? WAN_RTT_MS[b]?.[a];
  if (rtt === undefined) throw new LinkSpecError(`no RTT known between ${a} and ${b}`);
  return rtt;
}

/** A parsed `--link`: a profile plus overrides that apply to every pair. */
export interface LinkSpec {
  readonly profile: 'none' | 'lan' | 'wan' | 'custom';
  /** `wan` only: the regions nodes are spread over, round-robin. */
  readonly regions?: readonly string[];
  readonly overrides: Partial<LinkParams>;
}

export const NO_LINK_SPEC: LinkSpec = { profile: 'none', overrides: {} };

export class LinkSpecError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'LinkSpecError';
  }
}

const TIME_UNITS_MS: Record<string, number> = { '': 1, us: 0.001, ms: 1, s: 1000 };
const RATE_UNITS_BITS: Record<string, number> = {
  bit: 1,
  kbit: 1e3,
  mbit: 1e6,
  gbit: 1e9,
  tbit: 1e12,
  bps: 8,
  kbps: 8e3,
  mbps: 8e6,
  gbps: 8e9,
};

function parseNumber(raw: string, what: string): [number, string] {
  const m = /^([0-9]*\.?[0-9]+(?:e[+-]?[0-9]+)?)([a-z%]*)$/i.exec(raw.trim());
  if (!m) throw new LinkSpecError(`${what}: '${raw}' is not a number with a unit`);
  return [Number(m[1]), m[2]!.toLowerCase()];
}

export function parseTimeMs(raw: string, what: string): number {
  const [x, unit] = parseNumber(raw, what);
  const scale = TIME_UNITS_MS[unit];
  if (scale === undefined) throw new LinkSpecError(`${what}: unknown unit '${unit}' in '${raw}' (us, ms or s)`);
  return x * scale;
}

export function parseRateBits(raw: string, what = 'rate'): number {
  const [x, unit] = parseNumber(raw, what);
  const scale = RATE_UNITS_BITS[unit];
  if (scale === undefined) throw new LinkSpecError(`${what}: unknown unit '${unit}' in '${raw}' (${Object.keys(RATE_UNITS_BITS).join(', ')})`);
  return x * scale;
}

export function parseLossRate(raw: string): number {
  const [x, unit] = parseNumber(raw, 'loss');
  if (unit !== '' && unit !== '%') throw new LinkSpecError(`loss: '${raw}' must be a percentage (e.g. 0.1%)`);
  if (x >= 100) throw new LinkSpecError(`loss: ${raw} would drop every frame`);
  return x / 100;
}

/** Parses `--link`; throws LinkSpecError naming the bad part. */
export function parseLinkSpec(text: string | undefined): LinkSpec {
  const raw = (text ?? 'none').trim();
  if (raw === '') throw new LinkSpecError('--link is empty');
  let profile: LinkSpec['profile'] = 'custom';
  let regions: string[] | undefined;
  const overrides: { -readonly [K in keyof LinkParams]?: LinkParams[K] } = {};
  const parts = raw.split(',').map((p) => p.trim());
  for (const [i, part] of parts.entries()) {
    const eq = part.indexOf('=');
    if (eq < 0) {
      if (i !== 0) throw new LinkSpecError(`'${part}': a profile (none, lan, wan) must come first`);
      const [name, list] = part.split(':', 2) as [string, string | undefined];
      if (name !== 'none' && name !== 'lan' && name !== 'wan')
        throw new LinkSpecError(`unknown link profile '${name}' (none, lan, wan, or key=value pairs: delay, jitter, loss, rate)`);
      profile = name;
      if (list !== undefined) {
        if (name !== 'wan') throw new LinkSpecError(`'${part}': only wan takes a list of regions`);
        regions = list.split('+').map((r) => r.trim());
        for (const r of regions) if (!WAN_REGIONS.includes(r)) throw new LinkSpecError(`unknown region '${r}' (known: ${WAN_REGIONS.join(', ')})`);
        if (new Set(regions).size !== regions.length) throw new LinkSpecError(`'${part}': a region is listed twice`);
      }
      continue;
    }
    const key = part.slice(0, eq).trim();
    const value = part.slice(eq + 1).trim();
    switch (key) {
      case 'delay':
        overrides.delayMs = parseTimeMs(value, 'delay');
        break;
      case 'jitter':
        overrides.jitterMs = parseTimeMs(value, 'jitter');
        break;
      case 'loss':
        overrides.lossRate = parseLossRate(value);
        break;
      case 'rate':
        overrides.rateBitsPerSec = parseRateBits(value);
        break;
      default:
        throw new LinkSpecError(`unknown link setting '${key}' (delay, jitter, loss, rate)`);
    }
  }
  if (profile === 'none' && Object.keys(overrides).length > 0) throw new LinkSpecError(`'none' takes no settings; drop 'none' to give custom values`);
  const spec: LinkSpec = { profile, ...(profile === 'wan' ? { regions: regions ?? WAN_REGIONS } : {}), overrides };
  // Check the combination once, with any pair's values.
  const sample = linkBetween(spec, 0, 1);
  if (sample.jitterMs > sample.delayMs) throw new LinkSpecError(`jitter (${sample.jitterMs} ms) must not exceed the delay (${sample.delayMs} ms)`);
  return spec;
}

/** The canonical text of a spec (recorded with results; parses back to the same spec). */
export function formatLinkSpec(spec: LinkSpec): string {
  const parts: string[] = [];
  if (spec.profile !== 'custom')
    parts.push(spec.profile === 'wan' && spec.regions && spec.regions.join('+') !== WAN_REGIONS.join('+') ? `wan:${spec.regions.join('+')}` : spec.profile);
  const o = spec.overrides;
  if (o.delayMs !== undefined) parts.push(`delay=${o.delayMs}ms`);
  if (o.jitterMs !== undefined) parts.push(`jitter=${o.jitterMs}ms`);
  if (o.lossRate !== undefined) parts.push(`loss=${+(o.lossRate * 100).toPrecision(12)}%`);
  if (o.rateBitsPerSec !== undefined) parts.push(`rate=${o.rateBitsPerSec}bit`);
  return parts.join(',') || 'none';
}

export function isLinkEmulated(spec: LinkSpec): boolean {
  return spec.profile !== 'none';
}

/** The region a node is placed in under `wan`: replicas and client machines round-robin. */
export function regionOf(spec: LinkSpec, peer: Peer): string | undefined {
  if (spec.profile !== 'wan') return undefined;
  const regions = spec.regions ?? WAN_REGIONS;
  const index = isClientPeer(peer) ? peer - CLIENT_PEER_BASE : peer;
  return regions[index % regions.length];
}

/** The link from `from` to `to` (symmetric for every profile we have). */
export function linkBetween(spec: LinkSpec, from: Peer, to: Peer): LinkParams {
  let base: LinkParams;
  switch (spec.profile) {
    case 'none':
      return NO_LINK;
    case 'custom':
      base = NO_LINK;
      break;
    case 'lan':
      base = LAN;
      break;
    case 'wan': {
      const a = regionOf(spec, from)!;
      const b = regionOf(spec, to)!;
      if (a === b) base = LAN;
      else {
        const delayMs = wanRttMs(a, b) / 2;
        base = { delayMs, jitterMs: delayMs / 100, lossRate: 0, rateBitsPerSec: 0 };
      }
      break;
    }
  }
  return { ...base, ...spec.overrides };
}

/** Which knobs a process's transport applies; the rest are applied below it (tc), or nowhere. */
export interface LinkApply {
  readonly delay: boolean;
  readonly loss: boolean;
  readonly rate: boolean;
}

/**
 * What one process needs to shape its own sends: its links to every other node. Passed in the
 * POE_BENCH_LINK environment variable, so it reaches a process however it is started (a
 * namespace, a container, a remote shell) without a change to the control protocol.
 */
export interface NodeLinkConfig {
  readonly v: 1;
  readonly seed: number;
  readonly apply: LinkApply;
  /** [peer, params] for every peer this node may send to. */
  readonly peers: readonly (readonly [Peer, LinkParams])[];
}

export const LINK_ENV = 'POE_BENCH_LINK';

/** The config for `self` among `nodes`, or undefined when nothing is left for the transport. */
export function nodeLinkConfig(spec: LinkSpec, self: Peer, nodes: readonly Peer[], apply: LinkApply, seed: number): NodeLinkConfig | undefined {
  if (!isLinkEmulated(spec) || (!apply.delay && !apply.loss && !apply.rate)) return undefined;
  const peers = nodes.filter((p) => p !== self).map((p) => [p, linkBetween(spec, self, p)] as const);
  return { v: 1, seed: (seed ^ Math.imul(self + 1, 0x9e37_79b1)) >>> 0, apply, peers };
}

/** Environment entries for a process (empty when its transport has nothing to do). */
export function linkEnv(config: NodeLinkConfig | undefined): Record<string, string> {
  return config ? { [LINK_ENV]: JSON.stringify(config) } : {};
}

const finite = (x: unknown, min: number, max = Number.POSITIVE_INFINITY): x is number => typeof x === 'number' && Number.isFinite(x) && x >= min && x <= max;

/** Parses POE_BENCH_LINK; throws with the reason (a process must not run with a link it misread). */
export function parseNodeLinkConfig(text: string): NodeLinkConfig {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    throw new Error(`${LINK_ENV} is not JSON`);
  }
  const c = raw as Partial<NodeLinkConfig>;
  if (c === null || typeof c !== 'object' || c.v !== 1) throw new Error(`${LINK_ENV}: unknown version`);
  if (!finite(c.seed, 0) || typeof c.apply !== 'object' || c.apply === null || !Array.isArray(c.peers)) throw new Error(`${LINK_ENV}: malformed`);
  for (const entry of c.peers) {
    const [peer, p] = entry as [unknown, Partial<LinkParams>];
    if (!finite(peer, 0) || typeof p !== 'object' || p === null) throw new Error(`${LINK_ENV}: malformed peer entry`);
    if (!finite(p.delayMs, 0) || !finite(p.jitterMs, 0, p.delayMs) || !finite(p.lossRate, 0, 0.999_999) || !finite(p.rateBitsPerSec, 0)) {
      throw new Error(`${LINK_ENV}: bad link to peer ${peer}`);
    }
  }
  return c as NodeLinkConfig;
}
