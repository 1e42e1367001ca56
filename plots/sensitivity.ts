/**
 * The sensitivity section of a model figure's report (issue 12 item 5): which resource decides
 * each protocol's figure-13 curve on the modelled testbed, from the runs that `figure 13
 * --backend model` made with one resource changed at a time (experiments/sensitivity.ts, written
 * beside runs.jsonl by experiments/model-figure.ts), and, for every claim of the paper that the
 * model predicts does not hold, what those runs blame: the resources deciding the points the
 * claim reads, and the one-resource changes under which the model predicts it would hold.
 */
import { claimProtocols, evaluateClaims, type Claim, type ClaimResult } from '../experiments/claims.js';
import { FIGURES, PROTOCOL_LABEL } from '../experiments/figures.js';
import { readSensitivity, type SensitivityFile } from '../experiments/model-figure.js';
import type { ManifestInfo } from '../experiments/runs.js';
import type { SensitivityRow } from '../experiments/sensitivity.js';
import { summarize, type AggregatedPoint, type FigureData } from '../experiments/stats.js';
import { pointId, type SweepPoint } from '../infra/run/records.js';
import type { ProtocolName } from '../replica/types.js';
import type { Block, Cell } from './document.js';
import { formatChange, formatNumber } from './format.js';

const label = (p: string): string => PROTOCOL_LABEL[p as ProtocolName] ?? p;

/** Figure 13's data as one sensitivity column gives it: each point's throughput and mean latency at the base or under one variant. */
export function variantFigureData(rows: readonly SensitivityRow[], variant: string): FigureData {
  const points: AggregatedPoint[] = [];
  for (const r of rows) {
    const txn = variant === 'base' ? r.baseTxnPerSec : r.variants[variant];
    const latencyMs = variant === 'base' ? r.baseLatencyMs : r.variantLatencyMs[variant];
    if (txn === undefined || latencyMs === undefined || txn <= 0) continue;
    const point: SweepPoint = { protocol: r.protocol as ProtocolName, replicas: r.replicas, crashed: 0, batch: 100 };
    points.push({
      experiment: FIGURES['13'].experiment,
      pointId: pointId(point),
      point,
      reps: 1,
      failed: 0,
      reasons: [],
      throughputTxnPerSec: summarize([txn]),
      latencyMeanSec: summarize([latencyMs / 1000]),
      notSteady: [],
      noisy: false,
    });
  }
  return { figure: FIGURES['13'], points };
}

/** The replica counts a claim reads: those it names, or every one of the figure. */
function claimReplicas(claim: Claim, all: readonly number[]): number[] {
  if (claim.kind === 'order') return [...new Set(claim.conditions.map((c) => c.x))];
  if (claim.kind === 'value') return [claim.x];
  if (claim.kind === 'degradation') return [claim.fromX, claim.toX];
  return [...all];
}

/** "PoE at 16: bandwidth (bandwidth /10: −90%); more of it: replica threads/cores (pipeline, 8 cores) +12%" */
function pointBlame(r: SensitivityRow): string {
  const v = r.decidedByVariant;
  const moved = v === undefined ? undefined : r.variants[v];
  const decided =
    v === undefined || moved === undefined || r.baseTxnPerSec <= 0
      ? 'no variant moves it'
      : `${r.decidedByResource} (${v}: ${formatChange(moved / r.baseTxnPerSec - 1)})`;
  const relieved = r.relievedBy === 'none' ? 'no change to more of a resource gains 5%' : `more of: ${r.relievedBy} +${r.gainPercent}%`;
  return `${label(r.protocol)} at ${r.replicas}: ${decided}; ${relieved}`;
}

/** For each figure-13 claim the model predicts does not hold: the points it reads and what decides them, and the variants under which it would hold. */
export function claimBlame(claims: readonly ClaimResult[], s: SensitivityFile): string[] {
  const all = [...new Set(s.rows.map((r) => r.replicas))].sort((a, b) => a - b);
  const items: string[] = [];
  for (const c of claims) {
    if (c.claim.figure !== '13' || c.predicted?.verdict !== 'does not hold') continue;
    const protocols = claimProtocols(c.claim);
    const xs = claimReplicas(c.claim, all);
    const rows = s.rows.filter((r) => protocols.includes(r.protocol as ProtocolName) && xs.includes(r.replicas));
    const base = evaluateClaims({ '13': variantFigureData(s.rows, 'base') }, [c.claim])[0]!;
    const holdsUnder = s.variants.filter((v) => evaluateClaims({ '13': variantFigureData(s.rows, v.label) }, [c.claim])[0]!.verdict === 'holds');
    const direction = (more: boolean): string => {
      const vs = holdsUnder.filter((v) => v.more === more);
      const resources = [...new Set(vs.map((v) => v.resource))];
      return resources
        .map(
          (r) =>
            `${r} (${vs
              .filter((v) => v.resource === r)
              .map((v) => v.label)
              .join(', ')})`,
        )
        .join(', ');
    };
    const blamed = [...(direction(true) ? [`with more of ${direction(true)}`] : []), ...(direction(false) ? [`with less of ${direction(false)}`] : [])];
    const verdictAtBase =
      base.verdict === 'does not hold'
        ? `The sensitivity's base runs agree (${base.measured})`
        : `The sensitivity's base runs judge it "${base.verdict}" (${base.measured}): read the blame with care`;
    const would =
      holdsUnder.length === 0
        ? `With none of the ${s.variants.length} one-resource changes does the model predict it holds: no single resource of the testbed is to blame.`
        : `The model predicts it holds ${blamed.join('; and ')}: the sensitivity blames ${[...new Set(holdsUnder.map((v) => v.resource))].join(' and ')}.`;
    items.push(
      `"${c.claim.statement}" (${c.claim.source}; predicted: ${c.predicted.value}). ${verdictAtBase}. What decides its points: ${rows.map(pointBlame).join('; ')}. ${would}`,
    );
  }
  return items;
}

/** The base runs of the sensitivity against the figure's own means: how far fewer batches moved them. */
function baseAgreement(s: SensitivityFile, figure: FigureData | undefined): string {
  if (figure === undefined) return '';
  const diffs: { r: SensitivityRow; d: number }[] = [];
  for (const r of s.rows) {
    const p = figure.points.find((q) => q.point.protocol === r.protocol && q.point.replicas === r.replicas);
    const mean = p?.throughputTxnPerSec?.mean;
    if (mean !== undefined && mean > 0 && r.baseTxnPerSec > 0) diffs.push({ r, d: r.baseTxnPerSec / mean - 1 });
  }
  if (diffs.length === 0) return '';
  const worst = diffs.reduce((a, b) => (Math.abs(b.d) > Math.abs(a.d) ? b : a));
  return ` Its base runs are within ${formatChange(Math.abs(worst.d)).replace('+', '')} of the figure's means (largest at ${label(worst.r.protocol)} ${worst.r.replicas}: ${formatChange(worst.d)}).`;
}

/** "300 batches for PoE, PBFT, ZYZ and 1000 batches for HS (as the figure's runs)" */
function batchesText(batches: Readonly<Record<string, number>>, figureBatches: number | undefined): string {
  const counts = [...new Set(Object.values(batches))].sort((a, b) => a - b);
  const whose = (n: number): string =>
    Object.keys(batches)
      .filter((p) => batches[p] === n)
      .map(label)
      .join(', ');
  const figure = (n: number): string => (n === figureBatches ? " (as the figure's runs)" : '');
  if (counts.length === 1) return `${counts[0]} batches${figure(counts[0]!)}`;
  return counts.map((n) => `${n} batches for ${whose(n)}${figure(n)}`).join(' and ');
}

/** The section: a table per protocol and replica count, and the blame for each claim the model predicts does not hold. */
export function sensitivityBlocks(dir: string, manifest: ManifestInfo, claims: readonly ClaimResult[], figure13?: FigureData): Block[] {
  if (manifest.backend !== 'model') return [];
  let s: SensitivityFile | undefined;
  try {
    s = readSensitivity(dir);
  } catch (err) {
    return [
      { kind: 'heading', level: 2, text: 'What decides each protocol on the modelled testbed (sensitivity)' },
      { kind: 'paragraph', text: `The sensitivity file cannot be read (${(err as Error).message}).` },
    ];
  }
  if (s === undefined) return [];
  const sweep = manifest.raw?.['sweep'] as { simBatches?: unknown } | undefined;
  const figureBatches = typeof sweep?.simBatches === 'number' ? sweep.simBatches : undefined;
  const labels = s.variants.map((v) => v.label);
  const rows: Cell[][] = s.rows.map((r) => [
    label(r.protocol),
    String(r.replicas),
    r.baseTxnPerSec > 0 ? formatNumber(r.baseTxnPerSec) : { text: 'invalid', tone: 'bad' },
    ...labels.map((l): Cell => {
      const v = r.variants[l];
      if (v === undefined) return '';
      if (v <= 0 || r.invalid.includes(l)) return { text: 'invalid', tone: 'bad' };
      return r.baseTxnPerSec > 0 ? `${formatNumber(v)} (${formatChange(v / r.baseTxnPerSec - 1)})` : formatNumber(v);
    }),
    r.decidedBy === 'none' ? 'none' : `${r.decidedBy}, ${r.swingPercent}%`,
    r.relievedBy === 'none' ? 'none gains 5%' : `${r.relievedBy}, +${r.gainPercent}%`,
  ]);
  const blame = claimBlame(claims, s);
  const predictedNot = claims.filter((c) => c.claim.figure === '13' && c.predicted?.verdict === 'does not hold').length;
  return [
    { kind: 'heading', level: 2, text: `What decides each protocol on ${s.testbed} (sensitivity, modelled)` },
    {
      kind: 'paragraph',
      text:
        `PREDICTIONS, not measurements. Each point of figure 13 was modelled again with one resource of the testbed ${s.testbed} changed at a time: ` +
        'the replica as the paper\u2019s §4 pipeline (three input lanes, two output lanes, the protocol\u2019s own thread) on 1, 2, 4 or 8 cores, where this code\u2019s replica is one thread; ' +
        'egress bandwidth of every node /10 and x10; round trip /10 and x10; replica CPU speed x2. ' +
        `Each run has the figure's load (${s.clients} clients), the seed of its first repetition (${s.seed}), ${batchesText(s.batches, figureBatches)}; one repetition, on a table of ${formatNumber(s.records)} records (the model's numbers do not depend on the table's size, and filling the paper's 600,000 is most of a modelled run's CPU).${baseAgreement(s, figure13)} ` +
        '"Decided by" is the change that moves throughput most either way; "relieved by" is the change to more of a resource that raises it most, by 5% or more: the resource that binds at the base. They differ where a resource is close to binding without binding (less of it costs much, more of it gains nothing).',
    },
    {
      kind: 'table',
      header: ['Protocol', 'n', 'Base txn/s', ...labels.map((l) => `${l} txn/s`), 'Decided by (largest change)', 'Relieved by (largest gain from more)'],
      rows,
    },
    { kind: 'heading', level: 3, text: 'The claims the model predicts do not hold, and what the sensitivity blames' },
    blame.length === 0
      ? {
          kind: 'paragraph',
          text: predictedNot === 0 ? 'The model predicts every figure-13 claim it has points for to hold.' : 'No figure-13 claim was judged.',
        }
      : { kind: 'list', items: blame },
  ];
}
