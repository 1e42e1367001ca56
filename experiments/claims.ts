/**
 * The paper's claims about its figures (DESIGN.md "The paper's claims", from §2 and §5), each
 * as data (what is compared, the paper's value) plus the evaluation its kind defines, so the
 * report can put the paper's value, the measured value and a verdict side by side.
 *
 * Verdicts: "holds", "does not hold", or "not measured" when a figure, protocol or point the
 * claim needs is missing or failed. A measured contradiction outranks a missing point: a claim
 * with one failed condition and one unmeasured one does not hold.
 *
 * The paper's relative claims ("up to 40% more") are judged on their direction at every point
 * the protocols share, and the measured magnitude is shown beside the paper's without being
 * judged: gaps depend on hardware (the paper ran one c5.2xlarge per replica, §5). Absolute
 * claims (Zyzzyva's 13.24 s, PoE's 110K txn/s) are judged against the paper's number with the
 * tolerance each states.
 */
import type { FigureId } from '../infra/run/records.js';
import type { ProtocolName } from '../replica/types.js';
import { PROTOCOL_LABEL, PROTOCOL_ORDER, FIGURES, BATCH_SIZES, DEFAULT_BATCH, xOf } from './figures.js';
import { valueAt, xValues, protocolsIn, type AggregatedPoint, type FigureData, type MetricName } from './stats.js';
import { comparePoints, formatPercent, formatGain, xLabel, type PointComparison } from './sentences.js';

export type Verdict = 'holds' | 'does not hold' | 'not measured';

interface ClaimBase {
  readonly id: string;
  readonly figure: FigureId;
  /** The claim in the paper's words (or DESIGN.md's summary of them). */
  readonly statement: string;
  /** Where the paper says it: section and line of seeds/poe-paper.txt. */
  readonly source: string;
  /** The paper's number or relation, as printed. */
  readonly paperValue: string;
}

/** "PoE attains up to X% more throughput / Y% less latency than B" (expect 'ahead'), or "PoE has X% less throughput than ZYZ" (expect 'behind'). */
export interface AdvantageClaim extends ClaimBase {
  readonly kind: 'advantage';
  readonly subject: ProtocolName;
  readonly baseline: ProtocolName;
  readonly metric: 'throughput' | 'latency';
  readonly expect: 'ahead' | 'behind';
}

/** "When going from 16 to 32 replicas, PBFT has more severe throughput degradation (39%) in comparison to PoE (30%)." */
export interface DegradationClaim extends ClaimBase {
  readonly kind: 'degradation';
  readonly fromX: number;
  readonly toX: number;
  /** The protocol that loses more. */
  readonly worse: ProtocolName;
  readonly better: ProtocolName;
}

/** A relation between two protocols at given x values: `higher` has the larger metric at each. */
export interface OrderClaim extends ClaimBase {
  readonly kind: 'order';
  readonly metric: MetricName;
  readonly conditions: readonly { readonly x: number; readonly higher: ProtocolName; readonly lower: ProtocolName }[];
}

/** An absolute number: near the paper's (within a relative tolerance), or at least it (minus a tolerance). */
export interface ValueClaim extends ClaimBase {
  readonly kind: 'value';
  readonly protocol: ProtocolName;
  readonly x: number;
  readonly metric: MetricName;
  readonly paper: number;
  readonly mode: 'near' | 'atLeast';
  /** Relative: 0.25 is ±25% for 'near', 25% below the paper's value for 'atLeast'. */
  readonly tolerance: number;
}

/** At every x, `protocol` has the smallest (or largest) metric of all protocols measured there. */
export interface ExtremeClaim extends ClaimBase {
  readonly kind: 'extreme';
  readonly protocol: ProtocolName;
  readonly metric: MetricName;
  readonly which: 'min' | 'max';
}

/** Figure 12: a metric rises (falls) with the batch size up to `untilX` for every protocol measured. */
export interface TrendClaim extends ClaimBase {
  readonly kind: 'trend';
  readonly metric: MetricName;
  readonly direction: 'rises' | 'falls';
  readonly untilX: number;
  /** A step against the direction smaller than this (relative) is noise, not a broken trend. */
  readonly slack: number;
}

/** Figure 12: beyond `fromX`, the metrics of the protocols stay within `tolerance` of their value at `fromX`. */
export interface FlatClaim extends ClaimBase {
  readonly kind: 'flat';
  readonly protocols: readonly ProtocolName[];
  readonly metrics: readonly MetricName[];
  readonly fromX: number;
  readonly tolerance: number;
}

/** Figure 11a against figure 10: every protocol's throughput lower where the failure models differ. */
export interface LowerThanClaim extends ClaimBase {
  readonly kind: 'lowerThan';
  readonly other: FigureId;
  readonly metric: MetricName;
  /** x values at which the two figures run different configurations (at 4 and 8 replicas, n-3f = f). */
  readonly xs: readonly number[];
}

/** Figure 11a against figure 10: at every shared x, the protocols rank the same by the metric. */
export interface SameOrderClaim extends ClaimBase {
  readonly kind: 'sameOrder';
  readonly other: FigureId;
  readonly metric: MetricName;
}

export type Claim = AdvantageClaim | DegradationClaim | OrderClaim | ValueClaim | ExtremeClaim | TrendClaim | FlatClaim | LowerThanClaim | SameOrderClaim;

const L = PROTOCOL_LABEL;

function advantage(
  id: string,
  figure: FigureId,
  subject: ProtocolName,
  baseline: ProtocolName,
  metric: 'throughput' | 'latency',
  paperValue: string,
  statement: string,
  source: string,
): AdvantageClaim {
  return { id, figure, kind: 'advantage', subject, baseline, metric, expect: 'ahead', paperValue, statement, source };
}

/** The paper's names in the sentences of its text (its figures say PBFT and HS). */
const SAID: Readonly<Record<'pbft' | 'hotstuff', string>> = { pbft: 'PBFT', hotstuff: 'HotStuff' };

/**
 * PoE ahead of `baseline` in throughput and latency, as the paper states it at `source`: `more`
 * and `less` are its words ("up to 40% more", "29% less"); `printedMore` is the value as the
 * paper prints it, where that differs from the words of the statement.
 */
function poeAhead(figure: FigureId, baseline: 'pbft' | 'hotstuff', source: string, more: string, less: string, printedMore = more): AdvantageClaim[] {
  const id = `${figure}-poe-${baseline === 'hotstuff' ? 'hs' : baseline}`;
  return [
    advantage(`${id}-throughput`, figure, 'poe', baseline, 'throughput', printedMore, `PoE attains ${more} throughput than ${SAID[baseline]}`, source),
    advantage(`${id}-latency`, figure, 'poe', baseline, 'latency', less, `PoE incurs ${less} latency than ${SAID[baseline]}`, source),
  ];
}

/** Every claim of DESIGN.md's list, in its order. */
export const CLAIMS: readonly Claim[] = [
  // Figure 10, §5.1 (1), paper line 433.
  ...poeAhead('10', 'pbft', '§5.1, line 433', 'up to 40% more', '29% less'),
  ...poeAhead('10', 'hotstuff', '§5.1, line 433', 'up to 130% more', '58% less'),
  {
    id: '10-degradation-16-32',
    figure: '10',
    kind: 'degradation',
    fromX: 16,
    toX: 32,
    worse: 'pbft',
    better: 'poe',
    paperValue: 'PBFT −39%, PoE −30%',
    statement: 'From 16 to 32 replicas PBFT loses more throughput (39%) than PoE (30%)',
    source: '§5.1, line 433',
  },
  {
    id: '10-hs-pbft-crossover',
    figure: '10',
    kind: 'order',
    metric: 'throughput',
    conditions: [
      { x: 4, higher: 'pbft', lower: 'hotstuff' },
      { x: 8, higher: 'pbft', lower: 'hotstuff' },
      { x: 16, higher: 'pbft', lower: 'hotstuff' },
      { x: 32, higher: 'hotstuff', lower: 'pbft' },
    ],
    paperValue: 'HS < PBFT at 4–16, HS > PBFT at 32',
    statement: 'HotStuff has less throughput than PBFT up to 16 replicas and more at 32',
    source: '§5.1, lines 431 and 433',
  },
  {
    id: '10-zyz-latency-4',
    figure: '10',
    kind: 'value',
    protocol: 'zyzzyva',
    x: 4,
    metric: 'latencyMean',
    paper: 13.24,
    mode: 'near',
    tolerance: 0.25,
    paperValue: '13.24 s',
    statement: "Zyzzyva's mean latency is 13.24 s at 4 replicas (its clients wait for their timeout)",
    source: '§5.1, line 431',
  },
  {
    id: '10-zyz-latency-32',
    figure: '10',
    kind: 'value',
    protocol: 'zyzzyva',
    x: 32,
    metric: 'latencyMean',
    paper: 13.88,
    mode: 'near',
    tolerance: 0.25,
    paperValue: '13.88 s',
    statement: "Zyzzyva's mean latency is 13.88 s at 32 replicas",
    source: '§5.1, line 431',
  },
  {
    id: '10c-hs-fewest-messages',
    figure: '10',
    kind: 'extreme',
    protocol: 'hotstuff',
    metric: 'messages',
    which: 'min',
    paperValue: 'fewest',
    statement: 'HotStuff sends the fewest messages',
    source: '§5.1, line 452',
  },
  {
    id: '10c-pbft-most-messages',
    figure: '10',
    kind: 'extreme',
    protocol: 'pbft',
    metric: 'messages',
    which: 'max',
    paperValue: 'most',
    statement: 'PBFT sends the most messages',
    source: '§5.1, line 452',
  },
  // Figure 11, §5.1 (2) and (3).
  {
    id: '11a-lower-than-10',
    figure: '11a',
    kind: 'lowerThan',
    other: '10',
    metric: 'throughput',
    xs: [16, 32],
    paperValue: 'lower for all',
    statement: 'With f backups crashed every protocol has less throughput than with n-3f crashed (figure 10)',
    source: '§5.1, lines 454-456',
  },
  {
    id: '11a-same-trends',
    figure: '11a',
    kind: 'sameOrder',
    other: '10',
    metric: 'throughput',
    paperValue: 'same trends',
    statement: 'The trends of figure 10 remain the same with f failures',
    source: '§5.1, line 456',
  },
  advantage(
    '11b-poe-pbft-throughput',
    '11b',
    'poe',
    'pbft',
    'throughput',
    'up to 49% more',
    'Under a primary failure PoE attains up to 49% more throughput than PBFT',
    '§5.1, line 458',
  ),
  // Figure 12, §5.2, paper line 464.
  {
    id: '12-throughput-rises',
    figure: '12',
    kind: 'trend',
    metric: 'throughput',
    direction: 'rises',
    untilX: DEFAULT_BATCH,
    slack: 0.05,
    paperValue: 'rises',
    statement: 'For each protocol, increasing the batch size increases throughput',
    source: '§5.2, line 464',
  },
  {
    id: '12-latency-falls',
    figure: '12',
    kind: 'trend',
    metric: 'latencyMean',
    direction: 'falls',
    untilX: DEFAULT_BATCH,
    slack: 0.05,
    paperValue: 'falls',
    statement: 'For each protocol, increasing the batch size decreases latency',
    source: '§5.2, line 464',
  },
  {
    id: '12-flat-beyond-100',
    figure: '12',
    kind: 'flat',
    protocols: ['poe', 'pbft'],
    metrics: ['throughput', 'latencyMean'],
    fromX: DEFAULT_BATCH,
    tolerance: 0.15,
    paperValue: 'minimal impact',
    statement: 'Increasing the batch size beyond 100 has minimal impact on PoE and PBFT',
    source: '§5.2, line 464',
  },
  ...poeAhead('12', 'pbft', '§5.2, line 464', 'up to 86% more', '44% less'),
  ...poeAhead('12', 'hotstuff', '§5.2, line 464', 'up to 3.5× more', '74% less', 'up to 3.5×'),
  // Figure 13, §5.3, paper line 471, and §2 line 62.
  ...poeAhead('13', 'pbft', '§5.3, line 471', 'up to 47% more', '32% less'),
  ...poeAhead('13', 'hotstuff', '§5.3, line 471', '2.5% more', '61% less', '2.5% more (as printed)'),
  {
    id: '13-zyz-above-poe',
    figure: '13',
    kind: 'advantage',
    subject: 'poe',
    baseline: 'zyzzyva',
    metric: 'throughput',
    expect: 'behind',
    paperValue: 'PoE 7% (4) to 18% (16) less',
    statement: 'PoE has 7% (on 4 replicas) to 18% (on 16 replicas) less throughput than Zyzzyva',
    source: '§5.3, line 471',
  },
  {
    id: '13-hs-above-pbft-32',
    figure: '13',
    kind: 'order',
    metric: 'throughput',
    conditions: [{ x: 32, higher: 'hotstuff', lower: 'pbft' }],
    paperValue: 'HS > PBFT at 32',
    statement: 'On 32 replicas HotStuff outperforms PBFT',
    source: '§5.3, line 471',
  },
  {
    id: '13-zyz-latency-above-poe-32',
    figure: '13',
    kind: 'order',
    metric: 'latencyMean',
    conditions: [{ x: 32, higher: 'zyzzyva', lower: 'poe' }],
    paperValue: 'ZYZ > PoE at 32',
    statement: 'On 32 replicas Zyzzyva incurs higher latency than PoE',
    source: '§5.3, line 471',
  },
  {
    id: '13-poe-110k-16',
    figure: '13',
    kind: 'value',
    protocol: 'poe',
    x: 16,
    metric: 'throughput',
    paper: 110_000,
    mode: 'atLeast',
    tolerance: 0.1,
    paperValue: '110K txn/s',
    statement: 'PoE reaches 110K txn/s on 16 replicas',
    source: '§2, line 62',
  },
  {
    id: '13-poe-70k-32',
    figure: '13',
    kind: 'value',
    protocol: 'poe',
    x: 32,
    metric: 'throughput',
    paper: 70_000,
    mode: 'atLeast',
    tolerance: 0.1,
    paperValue: '70K txn/s',
    statement: 'PoE reaches 70K txn/s on 32 replicas',
    source: '§2, line 62',
  },
];

/** The figures' data a claim may read; a claim about a missing figure is not measured. */
export type ClaimInputs = Partial<Record<FigureId, FigureData>>;

export interface ClaimResult {
  readonly claim: Claim;
  readonly verdict: Verdict;
  /** The measured counterpart of paperValue, or why nothing was measured. */
  readonly measured: string;
  /** How the verdict is decided, in one sentence. */
  readonly criterion: string;
  /** Modelled runs (--backend model): the verdict on the model's PREDICTION for a testbed, never a measurement. */
  readonly predicted?: { readonly testbed: string; readonly verdict: Verdict; readonly value: string };
  /**
   * Why a claim does not hold here, or was not judged (issue 11 item 3): what bound the points it
   * reads (the CPU of this machine, the clients, latency, the network), points not shown
   * saturated or not steady, and points left out because they lack their defining event.
   */
  readonly reason?: string;
}

const METRIC_WORD: Readonly<Record<MetricName, string>> = {
  throughput: 'throughput',
  latencyMean: 'mean latency',
  latencyP99: 'p99 latency',
  messages: 'messages/s',
};

function formatValue(metric: MetricName, v: number): string {
  switch (metric) {
    case 'throughput':
      return `${formatCount(v)} txn/s`;
    case 'messages':
      return `${formatCount(v)} msg/s`;
    case 'latencyMean':
    case 'latencyP99':
      return formatSeconds(v);
  }
}

/** 110000 -> "110K", 950 -> "950": the paper's way of printing throughput (§2). */
export function formatCount(v: number): string {
  if (Math.abs(v) >= 10_000) return `${(v / 1000).toFixed(0)}K`;
  if (Math.abs(v) >= 1000) return `${(v / 1000).toFixed(1)}K`;
  return v.toFixed(0);
}

/** Seconds with three significant digits: "13.2 s", "0.0213 s". */
export function formatSeconds(v: number): string {
  return `${Number(v.toPrecision(3))} s`;
}

function notMeasured(claim: Claim, criterion: string, why: string): ClaimResult {
  return { claim, verdict: 'not measured', measured: why, criterion };
}

function missingFigure(claim: Claim, criterion: string, figure: FigureId): ClaimResult {
  return notMeasured(claim, criterion, `figure ${figure} is not in these results`);
}

/** Combines per-condition outcomes: any failure → does not hold; else any missing → not measured; else holds. */
function combine(outcomes: readonly (boolean | undefined)[]): Verdict {
  if (outcomes.some((o) => o === false)) return 'does not hold';
  if (outcomes.length === 0 || outcomes.some((o) => o === undefined)) return 'not measured';
  return 'holds';
}

function evaluateAdvantage(claim: AdvantageClaim, data: FigureData): ClaimResult {
  const s = L[claim.subject];
  const b = L[claim.baseline];
  const better = claim.metric === 'throughput' ? 'more throughput' : 'less latency';
  const criterion =
    claim.expect === 'ahead'
      ? `${s} has ${better} than ${b} at every ${data.figure.x === 'replicas' ? 'replica count' : 'batch size'} both were measured at; the size of the gap is shown, not judged.`
      : `${s} has ${claim.metric === 'throughput' ? 'less throughput' : 'more latency'} than ${b} at every point both were measured at; the size of the gap is shown, not judged.`;
  const list = comparePoints(data, claim.subject, claim.baseline);
  const gap = (c: PointComparison): number | undefined => (claim.metric === 'throughput' ? c.throughputGain : c.latencyReduction);
  const measuredList = list.filter((c) => gap(c) !== undefined);
  if (measuredList.length === 0) return notMeasured(claim, criterion, `no point with both ${s} and ${b} measured`);
  const best = measuredList.reduce((a, c) => (gap(c)! > gap(a)! ? c : a));
  const worst = measuredList.reduce((a, c) => (gap(c)! < gap(a)! ? c : a));
  const fig = data.figure;
  const describe = (c: PointComparison): string => {
    const g = gap(c)!;
    if (claim.metric === 'throughput') return g >= 0 ? `${formatGain(g)} throughput` : `${formatPercent(g)} less throughput`;
    return g >= 0 ? `${formatPercent(g)} less latency` : `${formatGain(-g)} latency`;
  };
  const ahead = measuredList.map((c) => gap(c)! > 0);
  const holds = claim.expect === 'ahead' ? ahead.every(Boolean) : ahead.every((a) => !a);
  const headline = claim.expect === 'ahead' ? best : worst;
  const other = claim.expect === 'ahead' ? worst : best;
  const range =
    measuredList.length === 1
      ? `${describe(headline)} (${xLabel(fig, headline.x)})`
      : describe(headline) === describe(other)
        ? `${describe(headline)} at all ${measuredList.length} points`
        : `${claim.expect === 'ahead' ? 'up to ' : ''}${describe(headline)} (${xLabel(fig, headline.x)}); least: ${describe(other)} (${xLabel(fig, other.x)})`;
  return { claim, verdict: holds ? 'holds' : 'does not hold', measured: range, criterion };
}

function evaluateDegradation(claim: DegradationClaim, data: FigureData): ClaimResult {
  const w = L[claim.worse];
  const b = L[claim.better];
  const criterion = `From ${claim.fromX} to ${claim.toX} replicas ${w}'s throughput falls by a larger fraction than ${b}'s.`;
  const drop = (p: ProtocolName): number | undefined => {
    const from = valueAt(data, p, claim.fromX, 'throughput');
    const to = valueAt(data, p, claim.toX, 'throughput');
    return from === undefined || to === undefined || from <= 0 ? undefined : 1 - to / from;
  };
  const dw = drop(claim.worse);
  const db = drop(claim.better);
  const show = (label: string, d: number | undefined): string =>
    d === undefined ? `${label} not measured` : `${label} ${d >= 0 ? '−' : '+'}${formatPercent(d)}`;
  const measured = `${show(w, dw)}, ${show(b, db)}`;
  if (dw === undefined || db === undefined) return notMeasured(claim, criterion, measured);
  return { claim, verdict: dw > db ? 'holds' : 'does not hold', measured, criterion };
}

function evaluateOrder(claim: OrderClaim, data: FigureData): ClaimResult {
  const word = METRIC_WORD[claim.metric];
  const criterion = `${claim.conditions.map((c) => `${L[c.higher]} > ${L[c.lower]} at ${xLabel(data.figure, c.x)}`).join(', ')} (${word}).`;
  const parts: string[] = [];
  const outcomes = claim.conditions.map((c) => {
    const hi = valueAt(data, c.higher, c.x, claim.metric);
    const lo = valueAt(data, c.lower, c.x, claim.metric);
    if (hi === undefined || lo === undefined) {
      parts.push(`${xLabel(data.figure, c.x)}: not measured`);
      return undefined;
    }
    parts.push(`${xLabel(data.figure, c.x)}: ${L[c.higher]} ${formatValue(claim.metric, hi)} vs ${L[c.lower]} ${formatValue(claim.metric, lo)}`);
    return hi > lo;
  });
  return { claim, verdict: combine(outcomes), measured: parts.join('; '), criterion };
}

function evaluateValue(claim: ValueClaim, data: FigureData): ClaimResult {
  const paperText = formatValue(claim.metric, claim.paper);
  const criterion =
    claim.mode === 'near'
      ? `${L[claim.protocol]}'s ${METRIC_WORD[claim.metric]} at ${xLabel(data.figure, claim.x)} within ±${formatPercent(claim.tolerance)} of ${paperText}.`
      : `${L[claim.protocol]}'s ${METRIC_WORD[claim.metric]} at ${xLabel(data.figure, claim.x)} at least ${formatPercent(1 - claim.tolerance)} of ${paperText} (absolute numbers depend on the hardware).`;
  const v = valueAt(data, claim.protocol, claim.x, claim.metric);
  if (v === undefined) return notMeasured(claim, criterion, `${L[claim.protocol]} at ${xLabel(data.figure, claim.x)} not measured`);
  const holds = claim.mode === 'near' ? Math.abs(v - claim.paper) <= claim.tolerance * claim.paper : v >= (1 - claim.tolerance) * claim.paper;
  return { claim, verdict: holds ? 'holds' : 'does not hold', measured: formatValue(claim.metric, v), criterion };
}

function evaluateExtreme(claim: ExtremeClaim, data: FigureData): ClaimResult {
  const word = claim.which === 'min' ? 'smallest' : 'largest';
  const criterion = `At every point, ${L[claim.protocol]} has the ${word} ${METRIC_WORD[claim.metric]} of the protocols measured there (at least two).`;
  const parts: string[] = [];
  const outcomes: (boolean | undefined)[] = [];
  for (const x of xValues(data)) {
    const values = protocolsIn(data)
      .map((p) => ({ p, v: valueAt(data, p, x, claim.metric) }))
      .filter((e): e is { p: ProtocolName; v: number } => e.v !== undefined);
    const own = values.find((e) => e.p === claim.protocol);
    if (own === undefined || values.length < 2) continue;
    const extreme = values.reduce((a, e) => ((claim.which === 'min' ? e.v < a.v : e.v > a.v) ? e : a));
    outcomes.push(extreme.p === claim.protocol);
    parts.push(`${xLabel(data.figure, x)}: ${L[extreme.p]} ${word}`);
  }
  if (outcomes.length === 0) return notMeasured(claim, criterion, `${L[claim.protocol]} not measured beside another protocol`);
  return { claim, verdict: combine(outcomes), measured: parts.join('; '), criterion };
}

function evaluateTrend(claim: TrendClaim, data: FigureData): ClaimResult {
  const xs = BATCH_SIZES.filter((x) => x <= claim.untilX);
  const word = METRIC_WORD[claim.metric];
  const criterion = `For every protocol measured, ${word} ${claim.direction} from batch ${xs[0]} to ${claim.untilX}, no step between batch sizes going the other way by more than ${formatPercent(claim.slack)}.`;
  const sign = claim.direction === 'rises' ? 1 : -1;
  const parts: string[] = [];
  const outcomes: boolean[] = [];
  for (const p of protocolsIn(data)) {
    const values = xs.map((x) => valueAt(data, p, x, claim.metric));
    const first = values[0];
    const last = values[values.length - 1];
    if (first === undefined || last === undefined || first <= 0) continue;
    let ok = sign * (last - first) > 0;
    for (let i = 1; i < values.length; i++) {
      const prev = values[i - 1];
      const cur = values[i];
      if (prev === undefined || cur === undefined || prev <= 0) continue;
      if (sign * (cur / prev - 1) < -claim.slack) ok = false;
    }
    outcomes.push(ok);
    const change = last / first - 1;
    parts.push(`${L[p]} ${change >= 0 ? '+' : '−'}${formatPercent(change)}${ok ? '' : ' (not monotone)'}`);
  }
  if (outcomes.length === 0) return notMeasured(claim, criterion, `no protocol measured at batch ${xs[0]} and ${claim.untilX}`);
  return { claim, verdict: combine(outcomes), measured: `batch ${xs[0]} → ${claim.untilX}: ${parts.join(', ')}`, criterion };
}

function evaluateFlat(claim: FlatClaim, data: FigureData): ClaimResult {
  const beyond = BATCH_SIZES.filter((x) => x > claim.fromX);
  const criterion = `For ${claim.protocols.map((p) => L[p]).join(' and ')}, ${claim.metrics.map((m) => METRIC_WORD[m]).join(' and ')} at batch ${beyond.join(' and ')} within ±${formatPercent(claim.tolerance)} of batch ${claim.fromX}.`;
  const parts: string[] = [];
  const outcomes: (boolean | undefined)[] = [];
  for (const p of claim.protocols) {
    for (const m of claim.metrics) {
      const base = valueAt(data, p, claim.fromX, m);
      const changes = beyond.map((x) => {
        const v = valueAt(data, p, x, m);
        return v === undefined || base === undefined || base <= 0 ? undefined : v / base - 1;
      });
      if (changes.some((c) => c === undefined)) {
        outcomes.push(undefined);
        continue;
      }
      const worst = changes.reduce((a, c) => (Math.abs(c!) > Math.abs(a!) ? c : a))!;
      outcomes.push(Math.abs(worst) <= claim.tolerance);
      parts.push(`${L[p]} ${METRIC_WORD[m]} at most ${worst >= 0 ? '+' : '−'}${formatPercent(worst)}`);
    }
  }
  const verdict = combine(outcomes);
  if (parts.length === 0)
    return notMeasured(claim, criterion, `batch ${claim.fromX} and beyond not measured for ${claim.protocols.map((p) => L[p]).join(', ')}`);
  return { claim, verdict, measured: parts.join('; '), criterion };
}

function evaluateLowerThan(claim: LowerThanClaim, data: FigureData, other: FigureData): ClaimResult {
  const criterion = `Every protocol's ${METRIC_WORD[claim.metric]} lower than in figure ${claim.other} at ${claim.xs.join(' and ')} replicas (at 4 and 8 replicas both figures crash the same backups).`;
  const parts: string[] = [];
  const outcomes: boolean[] = [];
  for (const p of protocolsIn(data)) {
    for (const x of claim.xs) {
      const here = valueAt(data, p, x, claim.metric);
      const there = valueAt(other, p, x, claim.metric);
      if (here === undefined || there === undefined || there <= 0) continue;
      outcomes.push(here < there);
      parts.push(`${L[p]} at ${x}: ${here < there ? '−' : '+'}${formatPercent(here / there - 1)}`);
    }
  }
  if (outcomes.length === 0) return notMeasured(claim, criterion, `no protocol measured at ${claim.xs.join(' or ')} replicas in both figures`);
  return { claim, verdict: combine(outcomes), measured: parts.join('; '), criterion };
}

function rankAt(data: FigureData, x: number, metric: MetricName, among: readonly ProtocolName[]): ProtocolName[] | undefined {
  const values = among.map((p) => ({ p, v: valueAt(data, p, x, metric) }));
  if (values.some((e) => e.v === undefined)) return undefined;
  return [...values].sort((a, b) => b.v! - a.v!).map((e) => e.p);
}

function evaluateSameOrder(claim: SameOrderClaim, data: FigureData, other: FigureData): ClaimResult {
  const criterion = `At every replica count measured in both figures, the protocols rank the same by ${METRIC_WORD[claim.metric]} as in figure ${claim.other}.`;
  const shared = protocolsIn(data).filter((p) => protocolsIn(other).includes(p));
  const parts: string[] = [];
  const outcomes: boolean[] = [];
  if (shared.length >= 2) {
    for (const x of xValues(data)) {
      const here = rankAt(data, x, claim.metric, shared);
      const there = rankAt(other, x, claim.metric, shared);
      if (here === undefined || there === undefined) continue;
      const same = here.join() === there.join();
      outcomes.push(same);
      parts.push(`${x}: ${here.map((p) => L[p]).join(' > ')}${same ? '' : ` (figure ${claim.other}: ${there.map((p) => L[p]).join(' > ')})`}`);
    }
  }
  if (outcomes.length === 0) return notMeasured(claim, criterion, 'no replica count with two or more protocols in both figures');
  return { claim, verdict: combine(outcomes), measured: parts.join('; '), criterion };
}

function criterionForMissing(claim: Claim): string {
  // The criterion text needs the figure's axis; the figure definitions give it without data.
  const empty: FigureData = { figure: FIGURES[claim.figure], points: [] };
  const other = 'other' in claim ? { figure: FIGURES[claim.other], points: [] } : empty;
  return evaluateWith(claim, empty, other).criterion;
}

function evaluateWith(claim: Claim, data: FigureData, other: FigureData): ClaimResult {
  switch (claim.kind) {
    case 'advantage':
      return evaluateAdvantage(claim, data);
    case 'degradation':
      return evaluateDegradation(claim, data);
    case 'order':
      return evaluateOrder(claim, data);
    case 'value':
      return evaluateValue(claim, data);
    case 'extreme':
      return evaluateExtreme(claim, data);
    case 'trend':
      return evaluateTrend(claim, data);
    case 'flat':
      return evaluateFlat(claim, data);
    case 'lowerThan':
      return evaluateLowerThan(claim, data, other);
    case 'sameOrder':
      return evaluateSameOrder(claim, data, other);
  }
}

/** A figure's points that can be judged: figure 11b's points without a view change in their window are left out. */
function judgeable(data: FigureData): FigureData {
  return { ...data, points: data.points.filter((p) => p.eventMissing === undefined) };
}

/** The verdict of one claim on the figures given. */
export function evaluateClaim(claim: Claim, inputs: ClaimInputs): ClaimResult {
  const all = inputs[claim.figure];
  if (all === undefined) return missingFigure(claim, criterionForMissing(claim), claim.figure);
  const data = judgeable(all);
  let other = data;
  if (claim.kind === 'lowerThan' || claim.kind === 'sameOrder') {
    const o = inputs[claim.other];
    if (o === undefined) return missingFigure(claim, criterionForMissing(claim), claim.other);
    other = judgeable(o);
  }
  const result = evaluateWith(claim, data, other);
  const left = all.points.filter((p) => p.eventMissing !== undefined && claimProtocols(claim).includes(p.point.protocol));
  if (left.length === 0) return result;
  const why = `left out, no view change in the window: ${left.map((p) => `${L[p.point.protocol]} at ${xLabel(all.figure, xOf(all.figure, p.point))}`).join(', ')}`;
  return { ...result, measured: `${result.measured} (${why})`, ...(result.verdict === 'holds' ? {} : { reason: why }) };
}

/** The protocols whose points a claim reads. */
export function claimProtocols(claim: Claim): ProtocolName[] {
  switch (claim.kind) {
    case 'advantage':
      return [claim.subject, claim.baseline];
    case 'degradation':
      return [claim.worse, claim.better];
    case 'order':
      return [...new Set(claim.conditions.flatMap((c) => [c.higher, c.lower]))];
    case 'value':
    case 'extreme':
      return claim.kind === 'value' ? [claim.protocol] : [...PROTOCOL_ORDER];
    case 'flat':
      return [...claim.protocols];
    case 'trend':
    case 'lowerThan':
    case 'sameOrder':
      return [...PROTOCOL_ORDER];
  }
}

/**
 * Why the points a claim reads may not show what the paper's did: their bottlenecks, grouped
 * by kind, with one example each; points not shown saturated; points not in steady state. The
 * paper's replicas each had an 8-core c5.2xlarge (§5, line 407).
 */
export function pointsReason(claim: Claim, data: FigureData): string | undefined {
  const points = data.points.filter((p) => claimProtocols(claim).includes(p.point.protocol) && p.reps > 0);
  if (points.length === 0) return undefined;
  const where = (p: AggregatedPoint): string => `${L[p.point.protocol]} at ${xLabel(data.figure, xOf(data.figure, p.point))}`;
  const parts: string[] = [];
  const byLabel = new Map<string, AggregatedPoint[]>();
  for (const p of points) {
    if (!p.bottleneck) continue;
    const label = boundLabel(p.bottleneck);
    byLabel.set(label, [...(byLabel.get(label) ?? []), p]);
  }
  for (const [label, list] of [...byLabel.entries()].sort((a, b) => b[1].length - a[1].length)) {
    const ex = list[list.length - 1]!;
    const paper = ex.bottleneck!.kind === 'cpu' ? '; the paper gave every replica its own 8-core machine' : '';
    const detail = ex.bottleneck!.detail.startsWith(`${label}: `) ? ex.bottleneck!.detail.slice(label.length + 2) : ex.bottleneck!.detail;
    parts.push(`${label} at ${list.length} of ${points.length} points (e.g. ${where(ex)}: ${detail})${paper}`);
  }
  const unsaturated = points.filter((p) => p.saturation?.saturated === false);
  if (unsaturated.length > 0) parts.push(`not shown saturated: ${unsaturated.map(where).join(', ')}`);
  const unsteady = points.filter((p) => p.notSteady.length > 0);
  if (unsteady.length > 0) parts.push(`not in steady state: ${unsteady.map(where).join(', ')}`);
  const noisy = points.filter((p) => p.noisy);
  if (noisy.length > 0) parts.push(`noisy (95% interval > 10% of the mean): ${noisy.map(where).join(', ')}`);
  return parts.length === 0 ? undefined : parts.join('. ');
}

const KIND_WORD: Readonly<Record<string, string>> = { cpu: 'CPU-bound', clients: 'client-bound', latency: 'latency-bound', network: 'network-bound' };

/**
 * The verdict's own label, the words before its first colon (infra/run/bottleneck.ts: e.g.
 * "client-bound, not load-bound" or "client-bound, not probed", which one kind,
 * clients, covers), so that points the probe set apart are not counted as one; the kind's word
 * when the detail has none.
 */
function boundLabel(b: { readonly kind: string; readonly detail: string }): string {
  const label = /^([\w-]+-bound(?:, [^:]+)?): /.exec(b.detail)?.[1];
  return label ?? KIND_WORD[b.kind] ?? b.kind;
}

/** What a report knows about how its numbers were made, beyond the runs themselves. */
export interface ClaimContext {
  /** The runs were simulated: throughput and latency are in virtual time, not measurements. */
  readonly simulated?: boolean;
  /** The client request timeout used: Zyzzyva's latency under a failure is set by it. */
  readonly clientTimeoutMs?: number;
  /** The runs are the cost model's predictions for this testbed (--backend model): judged in a column of their own. */
  readonly modelledFor?: string;
}

/** The context a results directory's manifest gives (backend and client timeout). */
export function claimContextOf(manifest: { readonly backend?: string; readonly spec?: unknown; readonly raw?: Record<string, unknown> }): ClaimContext {
  const spec = (manifest.spec ?? {}) as { clientTimeoutMs?: unknown };
  const testbed = manifest.raw?.['testbed'];
  return {
    simulated: manifest.backend === 'sim',
    ...(manifest.backend === 'model' ? { modelledFor: typeof testbed === 'string' ? testbed : 'an unnamed testbed' } : {}),
    clientTimeoutMs: typeof spec.clientTimeoutMs === 'number' ? spec.clientTimeoutMs : undefined,
  };
}

/** Claims whose measured value is fixed by a harness parameter rather than by the protocol. */
const TIMEOUT_BOUND_CLAIMS = new Set(['10-zyz-latency-4', '10-zyz-latency-32']);

/**
 * Every claim of the paper, evaluated: the claims table of a report. Simulated numbers are
 * shown but never judged (virtual time has no CPU model); Zyzzyva's failure-case latency is
 * judged but labelled with the client timeout that produces it.
 */
export function evaluateClaims(inputs: ClaimInputs, claims: readonly Claim[] = CLAIMS, context: ClaimContext = {}): ClaimResult[] {
  return claims.map((c) => {
    const judged = evaluateClaim(c, inputs);
    const data = inputs[c.figure];
    const why = judged.verdict === 'does not hold' && data !== undefined ? pointsReason(c, data) : undefined;
    const r = why === undefined ? judged : { ...judged, reason: judged.reason === undefined ? why : `${judged.reason}. ${why}` };
    if (context.modelledFor !== undefined) {
      return {
        ...r,
        verdict: 'not measured',
        measured: 'not measured (modelled runs)',
        predicted: { testbed: context.modelledFor, verdict: r.verdict, value: r.measured },
      };
    }
    if (context.simulated && r.verdict !== 'not measured') {
      return { ...r, verdict: 'not measured', measured: `${r.measured} (simulated in virtual time: shown, not judged)` };
    }
    if (TIMEOUT_BOUND_CLAIMS.has(c.id) && r.verdict !== 'not measured') {
      const timeout = context.clientTimeoutMs === undefined ? 'the client timeout' : `a client timeout of ${context.clientTimeoutMs} ms`;
      return { ...r, measured: `${r.measured} (with ${timeout}: under a failure Zyzzyva's latency is set by it)` };
    }
    return r;
  });
}
