/**
 * The throughput-latency chart of `poe-bench curve` (experiments/curve.ts), in the report's
 * style (plots/specs.ts: same fonts, sizes, protocol colours and labels): achieved throughput
 * on x, latency on y, one line per protocol and statistic (mean solid, p99 dashed), a point
 * per offered load, and each protocol's knee ringed. The y axis is logarithmic: the curve's
 * point is the latency exploding by an order of magnitude past the knee.
 */
import type { TopLevelSpec } from 'vega-lite';
import { PROTOCOL_LABEL, PROTOCOL_ORDER } from '../experiments/figures.js';
import type { CurveResult } from '../experiments/curve.js';
import { CONFIG, HEIGHT_PX, PROTOCOL_COLOR, WIDTH_PX } from './specs.js';

/** One plotted value of a curve. */
export interface CurveRow {
  readonly series: string;
  readonly statistic: 'Mean' | 'p99';
  readonly offeredTxnPerSec: number;
  readonly achievedTxnPerSec: number;
  readonly latencyS: number;
  readonly knee: boolean;
}

/** The rows of a curve chart: every valid point, mean and p99 latency, in seconds. */
export function curveRows(result: CurveResult): CurveRow[] {
  const rows: CurveRow[] = [];
  for (const c of result.curves) {
    for (const p of c.points) {
      if (!p.valid) continue;
      const knee = c.knee === p;
      const base = { series: PROTOCOL_LABEL[c.protocol], offeredTxnPerSec: p.offeredTxnPerSec, achievedTxnPerSec: p.achievedTxnPerSec, knee };
      rows.push({ ...base, statistic: 'Mean', latencyS: p.latencyMs.mean / 1000 });
      rows.push({ ...base, statistic: 'p99', latencyS: p.latencyMs.p99 / 1000 });
    }
  }
  return rows;
}

/** The vega-lite spec of a throughput-latency chart. */
export function curveSpec(result: CurveResult, subtitle: readonly string[] = []): TopLevelSpec {
  const rows = curveRows(result);
  const present = PROTOCOL_ORDER.filter((p) => result.curves.some((c) => c.protocol === p));
  const scale = { domain: present.map((p) => PROTOCOL_LABEL[p]), range: present.map((p) => PROTOCOL_COLOR[p]) };
  const color = { field: 'series', type: 'nominal' as const, title: 'Protocol', scale, sort: scale.domain, legend: { symbolOpacity: 1 } };
  const x = { field: 'achievedTxnPerSec', type: 'quantitative' as const, title: 'Throughput (txn/s)' };
  const y = { field: 'latencyS', type: 'quantitative' as const, title: 'Latency (s)', scale: { type: 'log' as const } };
  const detail = [{ field: 'statistic', type: 'nominal' as const }];
  // Lines join the points in order of offered load, not of achieved throughput (which can fall past the knee).
  const order = { field: 'offeredTxnPerSec', type: 'quantitative' as const };
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
    title: {
      text: `Throughput and latency under rising open-loop load, ${result.replicas} replicas, batch ${result.batch}`,
      ...(subtitle.length === 0 ? {} : { subtitle: [...subtitle] }),
    },
    data: { values: rows.map((r) => ({ ...r })) },
    config: CONFIG,
    width: WIDTH_PX,
    height: HEIGHT_PX,
    encoding: { x, y },
    layer: [
      {
        mark: { type: 'line', strokeWidth: 2 },
        encoding: { color, strokeDash: { field: 'statistic', type: 'nominal', title: 'Latency' }, detail, order },
      },
      { mark: { type: 'point', filled: true, opacity: 1, size: 40 }, encoding: { color, detail } },
      {
        transform: [{ filter: "datum.knee && datum.statistic === 'Mean'" }],
        mark: { type: 'point', filled: false, opacity: 1, size: 220, strokeWidth: 2 },
        encoding: { color },
      },
    ],
  } as TopLevelSpec;
}

/** The subtitle lines: what the ring marks and each protocol's knee. */
export function curveNotes(result: CurveResult): string[] {
  const knees = result.curves.map((c) =>
    c.knee
      ? `${PROTOCOL_LABEL[c.protocol]} ${Math.round(c.knee.achievedTxnPerSec).toLocaleString('en-US')} txn/s at ${c.knee.latencyMs.mean.toFixed(1)} ms mean`
      : `${PROTOCOL_LABEL[c.protocol]} none`,
  );
  return [
    'One open-loop run per point; ringed: the knee (the highest throughput carried: offered load followed, p99 within bound, a window of 20 mean latencies).',
    `Knees: ${knees.join('; ')}.`,
  ];
}
