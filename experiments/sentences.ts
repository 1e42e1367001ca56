/**
 * Ratio sentences in the paper's own form, e.g. §5.1: "PoE attains up to 40% more throughput
 * (incurs 29% less latency) than PBFT". Both numbers are the largest gap over the points the
 * two protocols share, as the paper's "up to" reads; where the subject is behind everywhere,
 * the sentence gives the range of the deficit, as §5.3 does ("PoE has 7% (on 4 replicas) to
 * 18% (on 16 replicas) less throughput than ZYZZYVA"). Latency is the mean latency.
 */
import type { ProtocolName } from '../replica/types.js';
import { PROTOCOL_LABEL, type FigureDef } from './figures.js';
import { valueAt, xValues, type FigureData } from './stats.js';

/** Subject against baseline at one x value. */
export interface PointComparison {
  readonly x: number;
  readonly subjectTxnPerSec?: number;
  readonly baselineTxnPerSec?: number;
  /** subject / baseline - 1: 0.4 is "40% more throughput". */
  readonly throughputGain?: number;
  readonly subjectLatencySec?: number;
  readonly baselineLatencySec?: number;
  /** 1 - subject / baseline: 0.29 is "29% less latency"; negative is more latency. */
  readonly latencyReduction?: number;
}

/** The comparisons at every x value where at least one metric exists for both protocols. */
export function comparePoints(data: FigureData, subject: ProtocolName, baseline: ProtocolName): PointComparison[] {
  const out: PointComparison[] = [];
  for (const x of xValues(data)) {
    const st = valueAt(data, subject, x, 'throughput');
    const bt = valueAt(data, baseline, x, 'throughput');
    const sl = valueAt(data, subject, x, 'latencyMean');
    const bl = valueAt(data, baseline, x, 'latencyMean');
    const throughputGain = st !== undefined && bt !== undefined && bt > 0 ? st / bt - 1 : undefined;
    const latencyReduction = sl !== undefined && bl !== undefined && bl > 0 ? 1 - sl / bl : undefined;
    if (throughputGain === undefined && latencyReduction === undefined) continue;
    out.push({
      x,
      subjectTxnPerSec: st,
      baselineTxnPerSec: bt,
      throughputGain,
      subjectLatencySec: sl,
      baselineLatencySec: bl,
      latencyReduction,
    });
  }
  return out;
}

/** "4 replicas" or "batch 100": where on the figure's axis a comparison was made. */
export function xLabel(figure: FigureDef, x: number): string {
  return figure.x === 'replicas' ? `${x} replicas` : `batch ${x}`;
}

/** A percentage as the paper prints them: one decimal below 10 ("2.5%"), whole above ("40%"). */
export function formatPercent(fraction: number): string {
  const pct = Math.abs(fraction) * 100;
  const text = pct < 10 ? pct.toFixed(1).replace(/\.0$/, '') : pct.toFixed(0);
  return `${text}%`;
}

/**
 * An increase as the paper words them: percent below a tripling ("130% more", §5.1), a ratio
 * from a tripling on ("3.5× more", §5.2, where the paper means 3.5 times as much).
 */
export function formatGain(gain: number): string {
  const ratio = gain + 1;
  return ratio >= 3 ? `${ratio.toFixed(1)}× more` : `${formatPercent(gain)} more`;
}

interface Extreme {
  readonly value: number;
  readonly x: number;
}

function extremes(list: readonly PointComparison[], pick: (c: PointComparison) => number | undefined): { max: Extreme; min: Extreme } | undefined {
  let max: Extreme | undefined;
  let min: Extreme | undefined;
  for (const c of list) {
    const v = pick(c);
    if (v === undefined) continue;
    if (max === undefined || v > max.value) max = { value: v, x: c.x };
    if (min === undefined || v < min.value) min = { value: v, x: c.x };
  }
  return max === undefined || min === undefined ? undefined : { max, min };
}

/**
 * "7% (4 replicas) to 18% (16 replicas) less throughput"; two ends that print the same are one
 * value: "7% less throughput" rather than "7% to 7%".
 */
function range(figure: FigureDef, a: Extreme, b: Extreme, amount: (v: number) => string, word: string): string {
  if (amount(a.value) === amount(b.value)) return `${amount(a.value)} ${word}`;
  return `${amount(a.value)} (${xLabel(figure, a.x)}) to ${amount(b.value)} (${xLabel(figure, b.x)}) ${word}`;
}

/** A latency increase from a (negative) reduction: "25%", or "32.5×" from a tripling on. */
function increaseAmount(reduction: number): string {
  return formatGain(-reduction).replace(/ more$/, '');
}

export interface RatioSentence {
  readonly subject: ProtocolName;
  readonly baseline: ProtocolName;
  /** The sentence in the paper's form. */
  readonly text: string;
  /** Where the gaps were largest and where the subject was behind, so "up to" hides nothing. */
  readonly detail: string;
  readonly comparisons: readonly PointComparison[];
}

function throughputClause(figure: FigureDef, list: readonly PointComparison[]): string | undefined {
  const e = extremes(list, (c) => c.throughputGain);
  if (e === undefined) return undefined;
  if (e.max.value > 0) return `attains up to ${formatGain(e.max.value)} throughput`;
  if (e.min.value === 0) return 'attains the same throughput';
  // Behind everywhere: the smallest deficit first, as §5.3 does.
  return `attains ${range(figure, e.max, e.min, formatPercent, 'less throughput')}`;
}

function latencyClause(figure: FigureDef, list: readonly PointComparison[]): string | undefined {
  const e = extremes(list, (c) => c.latencyReduction);
  if (e === undefined) return undefined;
  if (e.max.value > 0) return `incurs ${formatPercent(e.max.value)} less latency`;
  if (e.min.value === 0) return 'incurs the same latency';
  return `incurs ${range(figure, e.max, e.min, increaseAmount, 'more latency')}`;
}

function detailOf(figure: FigureDef, list: readonly PointComparison[], baseline: string): string {
  const parts: string[] = [];
  const t = extremes(list, (c) => c.throughputGain);
  const l = extremes(list, (c) => c.latencyReduction);
  if (t !== undefined && t.max.value > 0) parts.push(`largest throughput gap at ${xLabel(figure, t.max.x)}`);
  if (l !== undefined && l.max.value > 0) parts.push(`largest latency gap at ${xLabel(figure, l.max.x)}`);
  const behindTput = list.filter((c) => c.throughputGain !== undefined && c.throughputGain < 0).map((c) => xLabel(figure, c.x));
  const behindLat = list.filter((c) => c.latencyReduction !== undefined && c.latencyReduction < 0).map((c) => xLabel(figure, c.x));
  if (t !== undefined && t.max.value > 0 && behindTput.length > 0) parts.push(`${baseline} has more throughput at ${behindTput.join(', ')}`);
  if (l !== undefined && l.max.value > 0 && behindLat.length > 0) parts.push(`${baseline} has less latency at ${behindLat.join(', ')}`);
  parts.push(`compared at ${list.map((c) => xLabel(figure, c.x)).join(', ')}`);
  const text = parts.join('; ');
  return `${text.charAt(0).toUpperCase()}${text.slice(1)}.`;
}

/**
 * "PoE attains up to 40% more throughput (incurs 29% less latency) than PBFT." Undefined when
 * the two protocols share no point with a valid measurement.
 */
export function ratioSentence(data: FigureData, subject: ProtocolName, baseline: ProtocolName): RatioSentence | undefined {
  const list = comparePoints(data, subject, baseline);
  if (list.length === 0) return undefined;
  const s = PROTOCOL_LABEL[subject];
  const b = PROTOCOL_LABEL[baseline];
  const tput = throughputClause(data.figure, list);
  const lat = latencyClause(data.figure, list);
  const main = tput ?? lat!;
  const aside = tput !== undefined && lat !== undefined ? ` (${lat})` : '';
  // "the same throughput than" reads wrong: equality takes "as".
  const than = main.includes('the same') ? 'as' : 'than';
  const text = `${s} ${main}${aside} ${than} ${b}.`;
  return { subject, baseline, text, detail: detailOf(data.figure, list, b), comparisons: list };
}

/**
 * The sentences of a report: every protocol present other than the baseline, against the
 * baseline (`poe-bench report --baseline pbft`), the paper's protocol first.
 */
export function ratioSentences(data: FigureData, baseline: ProtocolName, present: readonly ProtocolName[]): RatioSentence[] {
  const out: RatioSentence[] = [];
  for (const subject of present) {
    if (subject === baseline) continue;
    const sentence = ratioSentence(data, subject, baseline);
    if (sentence !== undefined) out.push(sentence);
  }
  return out;
}
