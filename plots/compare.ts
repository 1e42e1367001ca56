/**
 * `poe-bench compare <dirA> <dirB>`: two results directories of the same figure side by side,
 * e.g. local against AWS, or before against after a change. Writes compare.md and a
 * self-contained compare.html with charts that draw both runs (solid A, dashed B), a table of
 * each point's numbers in A and B with B's change against A, and the paper's claims judged on
 * each.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { claimContextOf, evaluateClaims, type ClaimInputs, type ClaimResult } from '../experiments/claims.js';
import { FIGURES, PROTOCOL_LABEL, PROTOCOL_ORDER, xOf } from '../experiments/figures.js';
import { loadManifest, loadRuns, type ManifestInfo } from '../experiments/runs.js';
import { aggregate, figureData, type FigureData, type Summary } from '../experiments/stats.js';
import type { FigureId } from '../infra/run/records.js';
import { toHtml, toMarkdown, type Block, type Cell } from './document.js';
import { writeChart } from './render.js';
import { formatChange, formatNumber } from './format.js';
import { figuresIn, formatSec, formatSummary } from './report.js';
import { errorBarNote, panelRows, panelSpec } from './specs.js';

export const COMPARE_MD = 'compare.md';
export const COMPARE_HTML = 'compare.html';

export class NothingToCompareError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'NothingToCompareError';
  }
}

interface Side {
  readonly dir: string;
  /** Short label for legends: "A (local-1)". */
  readonly label: string;
  readonly manifest: ManifestInfo;
  readonly figures: readonly FigureId[];
  readonly data: Partial<Record<FigureId, FigureData>>;
}

const LABEL_MAX_CHARS = 24;

function side(letter: 'A' | 'B', dir: string): Side {
  const records = loadRuns(dir);
  const manifest = loadManifest(dir);
  const aggregated = aggregate(records);
  const figures = figuresIn(records);
  const data: Partial<Record<FigureId, FigureData>> = {};
  for (const id of figures) data[id] = figureData(FIGURES[id], aggregated);
  let name = basename(resolve(dir));
  if (name.length > LABEL_MAX_CHARS) name = `${name.slice(0, LABEL_MAX_CHARS - 1)}…`;
  return { dir, label: `${letter} (${name})`, manifest, figures, data };
}

function change(a: Summary | undefined, b: Summary | undefined): string {
  return a === undefined || b === undefined || a.mean <= 0 ? '' : formatChange(b.mean / a.mean - 1);
}

function environmentTable(a: Side, b: Side): Block {
  const u = 'unknown';
  const field = (m: ManifestInfo): string[] => [
    m.figure ?? u,
    m.profile ?? u,
    m.commit === undefined ? u : `${m.commit}${m.dirty === true ? ' (dirty)' : ''}`,
    m.nodeVersion ?? u,
    m.os ?? u,
    m.cpuModel === undefined && m.cpuCores === undefined ? u : `${m.cpuModel ?? 'unknown model'}${m.cpuCores === undefined ? '' : `, ${m.cpuCores} cores`}`,
    m.backend ?? u,
    m.hosts === undefined ? u : m.hosts.join(', ') || 'none',
    m.startedAt ?? u,
  ];
  const names = ['Experiment', 'Profile', 'Commit', 'Node.js', 'OS', 'CPU', 'Backend', 'Hosts', 'Started'];
  const fa = field(a.manifest);
  const fb = field(b.manifest);
  return {
    kind: 'table',
    header: ['', a.label, b.label],
    rows: [
      ['Directory', a.dir, b.dir],
      ['Figures', a.figures.join(', ') || 'none', b.figures.join(', ') || 'none'],
      ...names.map((n, i) => [n, fa[i]!, fb[i]!]),
    ],
  };
}

function numbersTable(a: FigureData, b: FigureData, la: string, lb: string): Block {
  const fig = a.figure;
  const keys = new Map<string, { protocol: (typeof PROTOCOL_ORDER)[number]; x: number }>();
  for (const p of [...a.points, ...b.points]) keys.set(`${p.point.protocol}/${xOf(fig, p.point)}`, { protocol: p.point.protocol, x: xOf(fig, p.point) });
  const sorted = [...keys.values()].sort((p, q) => PROTOCOL_ORDER.indexOf(p.protocol) - PROTOCOL_ORDER.indexOf(q.protocol) || p.x - q.x);
  const find = (d: FigureData, protocol: string, x: number) => d.points.find((p) => p.point.protocol === protocol && xOf(fig, p.point) === x);
  const rows = sorted.map(({ protocol, x }): Cell[] => {
    const pa = find(a, protocol, x);
    const pb = find(b, protocol, x);
    return [
      PROTOCOL_LABEL[protocol],
      String(x),
      formatSummary(pa?.throughputTxnPerSec, formatNumber),
      formatSummary(pb?.throughputTxnPerSec, formatNumber),
      change(pa?.throughputTxnPerSec, pb?.throughputTxnPerSec),
      formatSummary(pa?.latencyMeanSec, formatSec),
      formatSummary(pb?.latencyMeanSec, formatSec),
      change(pa?.latencyMeanSec, pb?.latencyMeanSec),
    ];
  });
  const xName = fig.x === 'replicas' ? 'Replicas' : 'Batch size';
  return {
    kind: 'table',
    header: ['Protocol', xName, `Throughput ${la} (txn/s)`, `Throughput ${lb} (txn/s)`, 'B vs A', `Mean latency ${la} (s)`, `Mean latency ${lb} (s)`, 'B vs A'],
    rows,
  };
}

function claimsBlocks(ra: readonly ClaimResult[], rb: readonly ClaimResult[], la: string, lb: string): Block[] {
  const tone = (v: string): Cell => ({ text: v, tone: v === 'holds' ? 'good' : v === 'does not hold' ? 'bad' : 'muted' });
  return [
    { kind: 'heading', level: 2, text: "The paper's claims in each run" },
    {
      kind: 'table',
      header: ['Figure', 'Claim (the paper)', 'Paper', `Measured ${la}`, `Verdict ${la}`, `Measured ${lb}`, `Verdict ${lb}`],
      rows: ra.map((r, i) => [r.claim.figure, r.claim.statement, r.claim.paperValue, r.measured, tone(r.verdict), rb[i]!.measured, tone(rb[i]!.verdict)]),
    },
  ];
}

export interface WrittenComparison {
  readonly markdown: string;
  readonly html: string;
  readonly charts: readonly string[];
  readonly figures: readonly FigureId[];
}

/**
 * Compares the figures present in both directories; fails with NothingToCompareError when they
 * share none (comparing figure 10 with figure 13 would say nothing).
 */
export async function writeComparison(dirA: string, dirB: string, outDir: string): Promise<WrittenComparison> {
  const a = side('A', dirA);
  const b = side('B', dirB);
  const shared = a.figures.filter((f) => b.figures.includes(f));
  if (shared.length === 0) {
    throw new NothingToCompareError(
      `no figure in common: ${dirA} has ${a.figures.join(', ') || 'no figure'}, ${dirB} has ${b.figures.join(', ') || 'no figure'}`,
    );
  }
  mkdirSync(outDir, { recursive: true });
  const blocks: Block[] = [
    { kind: 'heading', level: 1, text: `poe-bench comparison: ${shared.map((f) => `figure ${f}`).join(', ')}` },
    { kind: 'paragraph', text: `${a.label} is ${dirA}; ${b.label} is ${dirB}. Charts draw A solid and B dashed; "B vs A" is B's change relative to A.` },
    environmentTable(a, b),
  ];
  const charts: string[] = [];
  for (const id of shared) {
    const da = a.data[id]!;
    const db = b.data[id]!;
    const fig = FIGURES[id];
    blocks.push({ kind: 'heading', level: 2, text: `Figure ${id}: ${fig.section}` });
    for (const panel of fig.panels) {
      // One dash style per run leaves none for p99: comparisons draw mean latency only.
      const plotted = { ...panel, withP99: false };
      const rows = [...panelRows(da, plotted, a.label), ...panelRows(db, plotted, b.label)];
      if (rows.length === 0) continue;
      const notes = [errorBarNote(rows), ...(panel.note === undefined ? [] : [panel.note])].filter((n) => n !== '');
      const spec = panelSpec(fig, { ...plotted, title: `${panel.title}: ${a.label} vs ${b.label}` }, rows, notes);
      const stem = `compare-fig${panel.id}`;
      const written = await writeChart(spec, outDir, stem);
      charts.push(...written.files);
      blocks.push({ kind: 'chart', title: `${panel.title}: ${a.label} vs ${b.label}`, svg: written.svg, file: `${stem}.svg`, notes });
    }
    blocks.push(numbersTable(da, db, 'A', 'B'));
  }
  const inputsA: ClaimInputs = {};
  const inputsB: ClaimInputs = {};
  for (const id of shared) {
    inputsA[id] = a.data[id];
    inputsB[id] = b.data[id];
  }
  blocks.push(
    ...claimsBlocks(evaluateClaims(inputsA, undefined, claimContextOf(a.manifest)), evaluateClaims(inputsB, undefined, claimContextOf(b.manifest)), 'A', 'B'),
  );
  const markdown = join(outDir, COMPARE_MD);
  const html = join(outDir, COMPARE_HTML);
  writeFileSync(markdown, toMarkdown(blocks));
  writeFileSync(html, toHtml(blocks[0]!.kind === 'heading' ? blocks[0].text : 'poe-bench comparison', blocks));
  return { markdown, html, charts, figures: shared };
}
