/**
 * Figure 13's curves panel (issue 11 item 4): the throughput-latency curves a figure-13 sweep
 * measured at its replica counts (`figure 13` on the local backend, in the default and paper
 * profiles or with --curves; harness/figure-command.ts), read back from
 * `<dir>/curves/n<N>/runs.jsonl`, drawn into `<dir>` as `fig13-curves-n<N>` and set beside the
 * figure's own closed-loop points: a knee far from the closed loop's saturated throughput says
 * one of the two did not measure what the protocol can carry.
 */
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { curvesFromRecords } from '../experiments/curve.js';
import { PROTOCOL_LABEL } from '../experiments/figures.js';
import { loadRuns } from '../experiments/runs.js';
import type { ProtocolName } from '../replica/types.js';
import { curveNotes, curveSpec } from './curve-spec.js';
import type { Block, Cell } from './document.js';
import { writeChart } from './render.js';
import { formatNumber } from './format.js';

/** Where a figure's curves are kept, one directory per replica count. */
export const CURVES_DIR = 'curves';

export const curvesDirFor = (dir: string, replicas: number): string => join(dir, CURVES_DIR, `n${replicas}`);

/** The replica counts with recorded curves under `dir`. */
export function curveReplicaCounts(dir: string): number[] {
  const root = join(dir, CURVES_DIR);
  if (!existsSync(root)) return [];
  return readdirSync(root)
    .map((name) => /^n(\d+)$/.exec(name)?.[1])
    .filter((n): n is string => n !== undefined && existsSync(join(root, `n${n}`, 'runs.jsonl')))
    .map(Number)
    .sort((a, b) => a - b);
}

/**
 * The panel's blocks and chart files; none when `dir` has no curves. `closedLoop` gives the
 * figure's mean throughput of a protocol at a replica count (undefined: not measured there).
 */
export async function curvesPanel(
  dir: string,
  closedLoop: (protocol: ProtocolName, replicas: number) => number | undefined,
): Promise<{ blocks: Block[]; charts: string[] }> {
  const counts = curveReplicaCounts(dir);
  if (counts.length === 0) return { blocks: [], charts: [] };
  const blocks: Block[] = [
    { kind: 'heading', level: 3, text: 'Throughput-latency curves' },
    {
      kind: 'paragraph',
      text: 'Each protocol in open loop at rising offered load, one run per point (poe-bench curve), at the replica counts of this figure. The knee is the highest throughput the protocol carried: achieved within 10% of the offered load, p99 within 2 s, a window of at least 20 mean latencies. Beside it, the figure\u2019s closed-loop throughput at the same point.',
    },
  ];
  const charts: string[] = [];
  const rows: Cell[][] = [];
  for (const n of counts) {
    for (const result of curvesFromRecords(loadRuns(curvesDirFor(dir, n)))) {
      const stem = `fig13-curves-n${result.replicas}`;
      const notes = curveNotes(result);
      const written = await writeChart(curveSpec(result, notes), dir, stem);
      charts.push(...written.files);
      blocks.push({
        kind: 'chart',
        title: `Latency against throughput, ${result.replicas} replicas`,
        svg: written.svg,
        file: `${stem}.svg`,
        notes,
      });
      for (const c of result.curves) {
        const closed = closedLoop(c.protocol, result.replicas);
        const k = c.knee;
        rows.push([
          PROTOCOL_LABEL[c.protocol],
          String(result.replicas),
          String(c.points.length),
          k ? formatNumber(k.achievedTxnPerSec) : 'none',
          k ? `${k.latencyMs.mean.toFixed(1)} ms` : '',
          closed === undefined ? 'not measured' : formatNumber(closed),
          k && closed !== undefined && closed > 0 ? `${(k.achievedTxnPerSec / closed).toFixed(2)}x` : '',
        ]);
      }
    }
  }
  blocks.push({
    kind: 'table',
    header: ['Protocol', 'Replicas', 'Points', 'Knee (txn/s)', 'Knee mean latency', 'Closed loop (txn/s)', 'Knee / closed loop'],
    rows,
  });
  return { blocks, charts };
}
