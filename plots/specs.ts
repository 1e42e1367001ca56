/**
 * Vega-lite specs for the panels of the paper's figures (§5: figures 10 to 13), built from
 * aggregated runs. Each spec carries its data inline, so the .vl.json beside a chart is the
 * whole chart: open it in the vega editor and it draws the same thing.
 *
 * Labelled like the paper: series PoE, PBFT, ZYZ, HS; x "Number of replicas" or "Batch size";
 * y "Throughput (txn/s)", "Latency (s)" (seconds throughout, as the paper's 13.24 s), messages
 * per second. A point is the mean of its repetitions; its error bar is the 95% Student-t
 * confidence interval from 3 repetitions on, the min-max range below 3.
 */
import type { TopLevelSpec } from 'vega-lite';
import type { ProtocolName } from '../replica/types.js';
import { PROTOCOL_LABEL, PROTOCOL_ORDER, xOf, type FigureDef, type PanelDef } from '../experiments/figures.js';
import { metricOf, type AggregatedPoint, type FigureData, type MetricName, type Summary } from '../experiments/stats.js';

/** One plotted value: the mean of a point's repetitions with its error bar. */
export interface ChartRow {
  readonly series: string;
  readonly protocol: ProtocolName;
  readonly x: number;
  readonly mean: number;
  readonly lo: number;
  readonly hi: number;
  readonly reps: number;
  readonly interval: Summary['interval'];
  /** Latency panels with p99: "Mean" or "p99". Comparisons: the run's label. */
  readonly statistic?: string;
  readonly run?: string;
  /** Throughput-over-time panels: the facet. */
  readonly replicas?: number;
}

/** A fixed colour per protocol, the same on every chart and in comparisons. */
export const PROTOCOL_COLOR: Readonly<Record<ProtocolName, string>> = {
  poe: '#d62728',
  pbft: '#1f77b4',
  zyzzyva: '#2ca02c',
  hotstuff: '#ff7f0e',
};

export const FONT = 'DejaVu Sans, Helvetica, Arial, sans-serif';

export const Y_TITLE: Readonly<Record<PanelDef['metric'], string>> = {
  throughput: 'Throughput (txn/s)',
  latency: 'Latency (s)',
  messages: 'Messages sent (per second)',
  'throughput-over-time': 'Throughput (txn/s)',
};

export function xTitle(figure: FigureDef): string {
  return figure.x === 'replicas' ? 'Number of replicas' : 'Batch size (requests per batch)';
}

function row(p: AggregatedPoint, figure: FigureDef, s: Summary, extra: Partial<ChartRow> = {}): ChartRow {
  return {
    series: PROTOCOL_LABEL[p.point.protocol],
    protocol: p.point.protocol,
    x: xOf(figure, p.point),
    mean: s.mean,
    lo: s.lo,
    hi: s.hi,
    reps: s.n,
    interval: s.interval,
    ...extra,
  };
}

function panelMetrics(panel: PanelDef): { metric: MetricName; statistic?: string }[] {
  switch (panel.metric) {
    case 'throughput':
      return [{ metric: 'throughput' }];
    case 'messages':
      return [{ metric: 'messages' }];
    case 'latency':
      return panel.withP99 === true
        ? [
            { metric: 'latencyMean', statistic: 'Mean' },
            { metric: 'latencyP99', statistic: 'p99' },
          ]
        : [{ metric: 'latencyMean' }];
    case 'throughput-over-time':
      return [];
  }
}

/** The rows a panel plots: its protocols' points that have at least one valid repetition. */
export function panelRows(data: FigureData, panel: PanelDef, run?: string): ChartRow[] {
  const out: ChartRow[] = [];
  const points = [...data.points]
    .filter((p) => panel.protocols.includes(p.point.protocol))
    .sort(
      (a, b) => xOf(data.figure, a.point) - xOf(data.figure, b.point) || PROTOCOL_ORDER.indexOf(a.point.protocol) - PROTOCOL_ORDER.indexOf(b.point.protocol),
    );
  for (const p of points) {
    const extra = run === undefined ? {} : { run };
    if (panel.metric === 'throughput-over-time') {
      for (const b of p.throughputSeries ?? []) {
        out.push({ ...row(p, data.figure, b.txnPerSec, extra), x: b.tSec, replicas: p.point.replicas });
      }
      continue;
    }
    for (const { metric, statistic } of panelMetrics(panel)) {
      const s = metricOf(p, metric);
      if (s !== undefined) out.push(row(p, data.figure, s, statistic === undefined ? extra : { ...extra, statistic }));
    }
  }
  return out;
}

/** "Mean of 3 runs; error bars: 95% confidence interval (Student t)" for the rows drawn. */
export function errorBarNote(rows: readonly ChartRow[]): string {
  if (rows.length === 0) return '';
  const reps = [...new Set(rows.map((r) => r.reps))].sort((a, b) => a - b);
  const repsText = reps.length === 1 ? `${reps[0]}` : `${reps[0]}–${reps[reps.length - 1]}`;
  const kinds = new Set(rows.map((r) => r.interval));
  if (reps[reps.length - 1] === 1) return 'Single run per point: no error bars.';
  const bars =
    kinds.size === 2
      ? '95% confidence interval (Student t) where 3 or more runs, min–max below'
      : kinds.has('ci95')
        ? '95% confidence interval (Student t)'
        : 'min–max of the runs';
  return `Mean of ${repsText} runs per point; error bars: ${bars}.`;
}

function colorScale(rows: readonly ChartRow[]): { domain: string[]; range: string[] } {
  const present = PROTOCOL_ORDER.filter((p) => rows.some((r) => r.protocol === p));
  return { domain: present.map((p) => PROTOCOL_LABEL[p]), range: present.map((p) => PROTOCOL_COLOR[p]) };
}

export const WIDTH_PX = 360;
export const HEIGHT_PX = 240;

export const CONFIG = {
  font: FONT,
  axis: { labelFontSize: 11, titleFontSize: 12, grid: true },
  legend: { labelFontSize: 11, titleFontSize: 11 },
  title: { fontSize: 13, subtitleFontSize: 10, anchor: 'start' as const },
  background: 'white',
};

/** Which field splits the lines of one series, when a chart draws two lines per protocol. */
function dashField(rows: readonly ChartRow[]): 'statistic' | 'run' | undefined {
  if (rows.some((r) => r.run !== undefined)) return 'run';
  if (rows.some((r) => r.statistic !== undefined)) return 'statistic';
  return undefined;
}

/**
 * The vega-lite spec of one panel. `subtitle` lines go under the title (error bars, notes).
 * Lines join the means; error bars are rules with caps from lo to hi.
 */
export function panelSpec(figure: FigureDef, panel: PanelDef, rows: readonly ChartRow[], subtitle: readonly string[] = []): TopLevelSpec {
  const colors = colorScale(rows);
  const dash = dashField(rows);
  const overTime = panel.metric === 'throughput-over-time';
  // Every field that splits a protocol's rows into separate lines, dashed or not, so no line joins two of them.
  const detail = (['statistic', 'run'] as const).filter((f) => rows.some((r) => r[f] !== undefined)).map((field) => ({ field, type: 'nominal' as const }));
  // symbolOpacity: the legend merges every layer's marks, and a translucent band would pale its swatches.
  const color = { field: 'series', type: 'nominal' as const, title: 'Protocol', scale: colors, sort: colors.domain, legend: { symbolOpacity: 1 } };
  const x = overTime
    ? { field: 'x', type: 'quantitative' as const, title: 'Time since the start of the measurement (s)' }
    : { field: 'x', type: 'ordinal' as const, title: xTitle(figure), axis: { labelAngle: 0 }, sort: 'ascending' as const };
  const y = { field: 'mean', type: 'quantitative' as const, title: Y_TITLE[panel.metric] };
  const line = {
    mark: { type: 'line' as const, strokeWidth: 2 },
    encoding: {
      y,
      color,
      ...(dash === undefined ? {} : { strokeDash: { field: dash, type: 'nominal' as const, title: dash === 'run' ? 'Run' : 'Latency' } }),
      detail,
    },
  };
  // Points in their own layer: on the line mark they would turn the dash legend's symbols into dots.
  const points = { mark: { type: 'point' as const, filled: true, opacity: 1, size: 40 }, encoding: { y, color, detail } };
  const spread = {
    // A single run has no spread to draw: its bar would be a stray tick on the point.
    transform: [{ filter: 'datum.reps > 1' }],
    ...(overTime
      ? {
          mark: { type: 'area' as const, opacity: 0.15 },
          encoding: { y: { ...y, field: 'lo' }, y2: { field: 'hi' }, color, detail },
        }
      : {
          mark: { type: 'errorbar' as const, ticks: { size: 8 } },
          encoding: { y: { ...y, field: 'lo' }, y2: { field: 'hi' }, color, detail },
        }),
  };
  const layers = { layer: overTime ? [line, spread] : [line, points, spread] };
  const title = { text: panel.title, ...(subtitle.length === 0 ? {} : { subtitle: [...subtitle] }) };
  const base = {
    $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
    title,
    data: { values: rows.map((r) => ({ ...r })) },
    config: CONFIG,
  };
  if (overTime) {
    return {
      ...base,
      facet: { column: { field: 'replicas', type: 'ordinal' as const, title: 'Number of replicas', sort: 'ascending' as const } },
      spec: { width: 220, height: 180, encoding: { x }, ...layers },
      resolve: { scale: { y: 'independent' as const } },
    } as TopLevelSpec;
  }
  return { ...base, width: WIDTH_PX, height: HEIGHT_PX, encoding: { x }, ...layers } as TopLevelSpec;
}
