/**
 * `poe-bench report <results dir> [--baseline pbft]`: report.md and a self-contained
 * report.html beside runs.jsonl, with the environment and spec (manifest.json), the charts of
 * every figure found in runs.jsonl, a table per figure of each protocol's numbers, ratio
 * sentences in the paper's form against the baseline, and the table of the paper's claims
 * with the paper's value, the measured value and a verdict.
 */
import { writeFileSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import type { ProtocolName } from '../replica/types.js';
import { CLAIMS, claimContextOf, evaluateClaims, type ClaimInputs, type ClaimResult, type Verdict } from '../experiments/claims.js';
import { FIGURE_IDS, FIGURES, PROFILES, PROTOCOL_LABEL, PROTOCOL_ORDER, belongsTo, xOf, type FigureDef } from '../experiments/figures.js';
import { loadManifest, loadRuns, type ManifestInfo } from '../experiments/runs.js';
import { procsPerRun, realWarmup, type ValidationSummary } from '../experiments/validate.js';
import { type CalibrationFile, readCalibration } from '../infra/sim/calibration.js';
import { ratioSentences } from '../experiments/sentences.js';
import {
  aggregate,
  figureData,
  latestPerRepetition,
  protocolsIn,
  supersededFailures,
  type AggregatedPoint,
  type FigureData,
  type Summary,
} from '../experiments/stats.js';
import type { FigureId, RunRecord } from '../infra/run/records.js';
import { MEMORY_GROWTH_PERCENT, SETTLED_PERCENT, WARMUP_TAIL_SEC, WINDOW_OVER_LATENCY } from '../infra/run/steady.js';
import { toHtml, toMarkdown, type Block, type Cell } from './document.js';
import { curvesPanel } from './curves-panel.js';
import { renderFigureData, type RenderedChart } from './render.js';
import { formatChange, formatNumber } from './format.js';
import { sensitivityBlocks } from './sensitivity.js';

export const REPORT_MD = 'report.md';
export const REPORT_HTML = 'report.html';
export const DEFAULT_BASELINE: ProtocolName = 'pbft';

export interface ReportOptions {
  /** The protocol every other is compared against in the ratio sentences; PBFT by default, as the paper's sentences. */
  readonly baseline?: ProtocolName;
}

export interface WrittenReport {
  readonly markdown: string;
  readonly html: string;
  readonly charts: readonly string[];
  readonly figures: readonly FigureId[];
  readonly claims: readonly ClaimResult[];
}

/** Seconds with 3 significant digits, the unit of every latency in reports and charts. */
export function formatSec(v: number): string {
  return String(Number(v.toPrecision(3)));
}

/** A mean with its interval when there is one: "12,346 [11,900–12,800]". */
export function formatSummary(s: Summary | undefined, format: (v: number) => string): string {
  if (s === undefined) return '—';
  if (s.n < 2) return format(s.mean);
  return `${format(s.mean)} [${format(s.lo)}–${format(s.hi)}]`;
}

/** The figures with at least one record in these runs, in the paper's order. */
export function figuresIn(records: readonly RunRecord[]): FigureId[] {
  return FIGURE_IDS.filter((id) => records.some((r) => belongsTo(FIGURES[id], r)));
}

function verdictCell(v: Verdict): Cell {
  return { text: v, tone: v === 'holds' ? 'good' : v === 'does not hold' ? 'bad' : 'muted' };
}

function environmentBlocks(dir: string, m: ManifestInfo, records: readonly RunRecord[]): Block[] {
  const unknown = 'unknown';
  const latest = latestPerRepetition(records);
  const valid = latest.filter((r) => r.valid && r.metrics !== undefined).length;
  const profile =
    m.profile === undefined ? unknown : m.profile in PROFILES ? `${m.profile}: ${PROFILES[m.profile as keyof typeof PROFILES].description}` : m.profile;
  const rows: Cell[][] = [
    ['Results', basename(resolve(dir))],
    ['Experiment', m.figure ?? unknown],
    ['Profile', profile],
    [
      'Commit',
      m.commit === undefined
        ? unknown
        : `${m.commit}${m.dirty === true ? ` (dirty: uncommitted changes${m.dirtyFiles?.length ? ` in ${m.dirtyFiles.join(', ')}` : ''})` : ''}`,
    ],
    ['Node.js', m.nodeVersion ?? unknown],
    ['OS', m.os ?? unknown],
    [
      'CPU',
      m.cpuModel === undefined && m.cpuCores === undefined
        ? unknown
        : `${m.cpuModel ?? 'unknown model'}${m.cpuCores === undefined ? '' : `, ${m.cpuCores} cores`}`,
    ],
    ['Backend', m.backend ?? unknown],
    ['Hosts', m.hosts === undefined ? unknown : m.hosts.length === 0 ? 'none' : m.hosts.join(', ')],
    ['Started', m.startedAt ?? unknown],
    ['Runs', `${records.length} lines in runs.jsonl; ${latest.length} repetitions, ${valid} valid, ${latest.length - valid} failed or invalid`],
  ];
  const blocks: Block[] = [{ kind: 'heading', level: 2, text: 'Environment and spec' }];
  // What the writer of the manifest wants every reader to see first, e.g. that a sweep ran in the simulator.
  const notes = m.raw?.['notes'];
  if (Array.isArray(notes)) for (const note of notes) if (typeof note === 'string' && note !== '') blocks.push({ kind: 'paragraph', text: note });
  blocks.push({ kind: 'table', header: ['Field', 'Value'], rows });
  if (m.raw === undefined) blocks.push({ kind: 'paragraph', text: 'No readable manifest.json in this directory: environment unknown.' });
  if (m.seeds !== undefined) blocks.push({ kind: 'code', summary: 'Seeds', text: JSON.stringify(m.seeds, null, 2) });
  if (m.spec !== undefined) blocks.push({ kind: 'code', summary: 'Full spec (manifest.json)', text: JSON.stringify(m.spec, null, 2) });
  return blocks;
}

function extrasOf(p: AggregatedPoint): string {
  const parts: string[] = [];
  if (p.viewChanges !== undefined) parts.push(`view changes ${formatSummary(p.viewChanges, (v) => v.toFixed(1).replace(/\.0$/, ''))}`);
  if (p.viewChangeSec !== undefined) parts.push(`view change ${formatSummary(p.viewChangeSec, formatSec)} s`);
  if (p.rollbacks !== undefined && p.rollbacks.max > 0) parts.push(`rollbacks ${formatSummary(p.rollbacks, formatNumber)}`);
  if (p.clientTimeouts !== undefined && p.clientTimeouts.max > 0) parts.push(`client timeouts ${formatSummary(p.clientTimeouts, formatNumber)}`);
  if (p.failed > 0) parts.push(`${p.failed} failed: ${[...new Set(p.reasons)].join('; ')}`);
  if (p.eventMissing !== undefined) parts.push(`FLAGGED, not judged: ${p.eventMissing}`);
  if (p.noisy) parts.push('NOISY: the 95% interval is wider than 10% of the mean');
  if (p.saturation !== undefined) parts.push(`load: ${p.saturation.note}`);
  if (p.warmup !== undefined) parts.push(p.warmup);
  if (p.notSteady.length > 0) parts.push(`not steady: ${p.notSteady.join('; ')}`);
  return parts.join('; ');
}

/** The point's bottleneck, in a few words (the detail is in the notes of the claims it fails). */
function boundCell(p: AggregatedPoint): Cell {
  const b = p.bottleneck;
  if (b === undefined) return '';
  const share = b.of > 1 ? ` (${b.count} of ${b.of} runs)` : '';
  return { text: `${b.kind}${share}: ${b.detail}`, ...(b.kind === 'cpu' ? { tone: 'bad' as const } : {}) };
}

/** One row per (protocol, x): the means with their intervals, and the change against the baseline at the same x. */
export function numbersTable(data: FigureData, baseline: ProtocolName): Block {
  const fig = data.figure;
  const baseLabel = PROTOCOL_LABEL[baseline];
  const header = [
    'Protocol',
    fig.x === 'replicas' ? 'Replicas' : 'Batch size',
    'Runs',
    'Throughput (txn/s)',
    'Mean latency (s)',
    'p99 latency (s)',
    'Messages/s',
    `Throughput vs ${baseLabel}`,
    `Latency vs ${baseLabel}`,
    'Load (txns outstanding)',
    'Bound by',
    'Notes',
  ];
  const sorted = [...data.points].sort(
    (a, b) => PROTOCOL_ORDER.indexOf(a.point.protocol) - PROTOCOL_ORDER.indexOf(b.point.protocol) || xOf(fig, a.point) - xOf(fig, b.point),
  );
  const rows = sorted.map((p): Cell[] => {
    const x = xOf(fig, p.point);
    const base = data.points.find((q) => q.point.protocol === baseline && xOf(fig, q.point) === x);
    const ratio = (a: Summary | undefined, b: Summary | undefined): string =>
      p.point.protocol === baseline || a === undefined || b === undefined || b.mean <= 0 ? '' : formatChange(a.mean / b.mean - 1);
    return [
      PROTOCOL_LABEL[p.point.protocol],
      String(x),
      p.reps === 0 ? { text: `0 of ${p.failed}`, tone: 'bad' } : p.failed > 0 ? `${p.reps} of ${p.reps + p.failed}` : String(p.reps),
      formatSummary(p.throughputTxnPerSec, formatNumber),
      formatSummary(p.latencyMeanSec, formatSec),
      formatSummary(p.latencyP99Sec, formatSec),
      formatSummary(p.messagesPerSec, formatNumber),
      ratio(p.throughputTxnPerSec, base?.throughputTxnPerSec),
      ratio(p.latencyMeanSec, base?.latencyMeanSec),
      p.loadTxns === undefined ? '' : p.loadTxns.map(formatNumber).join(', '),
      boundCell(p),
      extrasOf(p),
    ];
  });
  return { kind: 'table', header, rows };
}

function figureHeading(fig: FigureDef): string {
  return `Figure ${fig.id}: ${fig.section}`;
}

function chartBlocks(charts: readonly RenderedChart[], fileOf: (c: RenderedChart) => string): Block[] {
  return charts.map((c) => ({ kind: 'chart', title: c.panel.title, svg: c.svg, file: fileOf(c), notes: c.notes }));
}

function sentenceBlocks(data: FigureData, baseline: ProtocolName): Block[] {
  const present = protocolsIn(data);
  const blocks: Block[] = [{ kind: 'heading', level: 3, text: `Compared with ${PROTOCOL_LABEL[baseline]}` }];
  if (!present.includes(baseline)) {
    blocks.push({ kind: 'paragraph', text: `${PROTOCOL_LABEL[baseline]} has no valid run in figure ${data.figure.id}: no comparison against it.` });
    return blocks;
  }
  const sentences = ratioSentences(data, baseline, present);
  if (sentences.length === 0) {
    blocks.push({ kind: 'paragraph', text: `No other protocol shares a measured point with ${PROTOCOL_LABEL[baseline]}.` });
    return blocks;
  }
  blocks.push({ kind: 'list', items: sentences.map((s) => `${s.text} ${s.detail}`) });
  return blocks;
}

function failureList(data: FigureData): Block[] {
  const failed = data.points.filter((p) => p.failed > 0);
  if (failed.length === 0) return [];
  return [
    { kind: 'heading', level: 3, text: 'Failed or invalid runs' },
    { kind: 'list', items: failed.map((p) => `${p.pointId}: ${p.failed} run(s): ${[...new Set(p.reasons)].join('; ')}`) },
  ];
}

export function claimsTable(results: readonly ClaimResult[]): Block[] {
  const count = (v: Verdict): number => results.filter((r) => r.verdict === v).length;
  const predicted = results.find((r) => r.predicted)?.predicted?.testbed;
  if (predicted !== undefined) {
    const pcount = (v: Verdict): number => results.filter((r) => r.predicted?.verdict === v).length;
    return [
      { kind: 'heading', level: 2, text: "The paper's claims" },
      {
        kind: 'paragraph',
        text: `These runs are PREDICTIONS of the calibrated cost model for the testbed ${predicted}, not measurements: no claim is judged as measured. In the predicted column, ${pcount('holds')} hold, ${pcount('does not hold')} do not hold and ${pcount('not measured')} have no modelled point, of ${results.length} claims.`,
      },
      {
        kind: 'table',
        header: ['Figure', 'Claim (the paper)', 'Source', 'Paper', 'Measured', `Predicted for ${predicted}`, 'Predicted verdict', 'How it is judged'],
        rows: results.map((r) => [
          r.claim.figure,
          r.claim.statement,
          r.claim.source,
          r.claim.paperValue,
          r.measured,
          r.predicted?.value ?? '',
          verdictCell(r.predicted?.verdict ?? 'not measured'),
          r.criterion,
        ]),
      },
    ];
  }
  return [
    { kind: 'heading', level: 2, text: "The paper's claims" },
    {
      kind: 'paragraph',
      text: `${count('holds')} hold, ${count('does not hold')} do not hold, ${count('not measured')} not measured here, of the ${results.length} claims the paper states about figures 10 to 13 (§2, §5). A relative claim ("up to X% more") is judged on its direction at every point measured; its size is shown beside the paper's, since gaps depend on the hardware (the paper used one 8-core c5.2xlarge per replica).`,
    },
    {
      kind: 'table',
      header: ['Figure', 'Claim (the paper)', 'Source', 'Paper', 'Measured', 'Verdict', 'Why (what bound the points)', 'How it is judged'],
      rows: results.map((r) => [
        r.claim.figure,
        r.claim.statement,
        r.claim.source,
        r.claim.paperValue,
        r.measured,
        verdictCell(r.verdict),
        r.reason ?? '',
        r.criterion,
      ]),
    },
  ];
}

/**
 * A model figure's report shows how far the model it used was from real runs (issue 12 item 4):
 * the validation stored in its calibration file by `poe-bench model validate`.
 */
export function modelValidationBlocks(manifest: ManifestInfo): Block[] {
  if (manifest.backend !== 'model') return [];
  const path = manifest.raw?.['calibration'];
  const head: Block = { kind: 'heading', level: 2, text: 'How far the model is from real runs (validation of its calibration)' };
  if (typeof path !== 'string') return [head, { kind: 'paragraph', text: 'The manifest names no calibration file: the model cannot be judged.' }];
  let cal: CalibrationFile;
  try {
    cal = readCalibration(path);
  } catch (err) {
    return [head, { kind: 'paragraph', text: `The calibration ${path} cannot be read (${(err as Error).message}).` }];
  }
  const v = cal.validation as ValidationSummary | undefined;
  const machine = `calibration ${path}: ${cal.machine.cpuModel}, ${cal.machine.cores} cores, Node ${cal.machine.node}, ${cal.date}`;
  if (!v || !Array.isArray(v.points)) {
    return [
      head,
      {
        kind: 'paragraph',
        text: `${machine}. NOT VALIDATED: run \`poe-bench model validate --calibration ${path}\`; until then these predictions have no measured error.`,
      },
    ];
  }
  return [
    head,
    {
      kind: 'paragraph',
      text: `${machine}. Real runs on the local backend against the model with --testbed local, ${procsWords(v)}, at points the calibration was not fitted to: throughput median |error| ${v.medianAbsErrorPercent}%, max ${v.maxAbsErrorPercent}%; the model ${v.rankingAgrees ? 'orders' : 'does NOT order'} the protocols as the real runs do wherever they differ by more than 10%.`,
    },
    {
      kind: 'table',
      header: [
        'Protocol',
        'n',
        'Client processes',
        'Real warm-up s',
        'Real txn/s',
        'Model txn/s',
        'Error',
        'Real mean latency ms',
        'Model mean latency ms',
        'Latency error',
        'Real CPU ms/batch',
        'Model CPU ms/batch',
      ],
      rows: v.points.map((p) => [
        `${p.protocol}${p.realValid ? '' : ' (real run invalid)'}`,
        String(p.replicas),
        String(p.clientProcs ?? 1),
        realWarmup(p),
        String(p.realTxnPerSec),
        String(p.modelTxnPerSec),
        `${p.errorPercent}%`,
        String(p.realLatencyMs),
        String(p.modelLatencyMs),
        `${p.latencyErrorPercent}%`,
        p.realCpuMsPerBatch === undefined ? '' : String(p.realCpuMsPerBatch),
        p.modelCpuMsPerBatch === undefined ? '' : String(p.modelCpuMsPerBatch),
      ]),
    },
  ];
}

/** A stored validation's client processes per run, in words (1 where not recorded: validations before `--client-procs` always ran one). */
function procsWords(v: ValidationSummary): string {
  const recorded = v.clientProcs === undefined ? ' (not recorded: validations then always ran one)' : '';
  return `${procsPerRun(v.clientProcs ?? 1)}${recorded} (model validate --client-procs)`;
}

const METHOD: Block[] = [
  { kind: 'heading', level: 2, text: 'How the numbers are computed' },
  {
    kind: 'list',
    items: [
      'Each point is the mean of its valid repetitions. Error bars and the bracketed ranges are the 95% confidence interval of the mean (Student t, n-1 degrees of freedom) from 3 repetitions on, and the minimum and maximum below 3; a single run has none.',
      "Throughput: transactions in batches the clients accepted by the protocol's own rule inside the measurement window, per second. Latency: acceptance time minus first send time per transaction, in seconds. Messages/s: messages sent by all replicas inside the window.",
      'A failed or invalid run is never averaged in; it is listed with its reason. When a repetition was run again after a failure, its last valid run counts.',
      "Load: the closed loop keeps a number of transactions outstanding (the paper: 200K clients with one transaction each), batched by the client machines into requests of the batch size. Each point starts at the sweep's load and is doubled while a short probe at double load gains 5% or more (up to the profile's cap); the load used and the probes are recorded with the run. A load given with --clients or --load-txns is used as given.",
      "Bound by: what limited each run, from the machine's CPU over the measured window (/proc/stat, 100% per core, whoever used it), each process's CPU, the emulated links and the client timeouts (infra/run/bottleneck.ts): cpu (the machine or one process at 90% or more), network (a link at 70% of its emulated rate), clients (with CPU to spare and nothing waiting: the offered load when a probe at double load gained 5% or more; not the load when it gained less, most likely the client process(es) as a serial stage, which more client processes spread (measured at 4 replicas); not told apart when the run was not probed), latency (requests waited on links or timers). A claim that does not hold gives the bottlenecks of the points it reads.",
      `Steady state: a run is flagged when its warm-up had not levelled off, when its processes' resident memory was still growing (more than ${MEMORY_GROWTH_PERCENT}% over the warm-up's last ${WARMUP_TAIL_SEC} s) when the window opened, when its throughput drifted more than ${SETTLED_PERCENT}% across the window, or when the window is shorter than ${WINDOW_OVER_LATENCY} mean latencies. A point whose 95% interval is wider than 10% of its mean is flagged noisy.`,
      'Ratio sentences follow the paper\'s form: "up to" is the largest gap over the points both protocols were measured at; where the subject is behind everywhere the range of its deficit is given. From a tripling on a gap is a ratio, as the paper writes it: "3.5× more" means 3.5 times as much (§5.2).',
    ],
  },
];

/** Figure 11b: how the primary's failure was placed, and what the paper's "900 transactions" was taken to mean (the manifest's note). */
function primaryFailureBlocks(id: FigureId, manifest: ManifestInfo): Block[] {
  if (id !== '11b') return [];
  const note = (manifest.spec as { primaryFailure?: Record<string, unknown> } | undefined)?.primaryFailure;
  if (note === undefined) return [];
  const parts = [note['fault'], note['paper900'], note['why'], note['how']].filter((x): x is string => typeof x === 'string');
  const flagged = 'A point whose repetitions had no view change beginning inside the measured window is flagged in its notes and left out of the claims.';
  return [{ kind: 'paragraph', text: `The primary failure: ${parts.join('; ')}. ${flagged}` }];
}

/** The blocks of a report on the given records and manifest; pure apart from rendering the charts into `dir`. */
export async function buildReport(
  dir: string,
  records: readonly RunRecord[],
  manifest: ManifestInfo,
  baseline: ProtocolName,
): Promise<{ blocks: Block[]; charts: string[]; figures: FigureId[]; claims: ClaimResult[] }> {
  const aggregated = aggregate(records);
  const figures = figuresIn(records);
  const inputs: ClaimInputs = {};
  const blocks: Block[] = [
    { kind: 'heading', level: 1, text: `poe-bench report: ${figures.length === 0 ? 'no figure' : figures.map((f) => `figure ${f}`).join(', ')}` },
    {
      kind: 'paragraph',
      text: 'Reproduction of the evaluation of "Proof-of-Execution: Reaching Consensus through Fault-Tolerant Speculation" (EDBT 2021, §5), compared protocol by protocol and claim by claim.',
    },
    ...environmentBlocks(dir, manifest, records),
  ];
  const charts: string[] = [];
  for (const id of figures) {
    const fig = FIGURES[id];
    const data = figureData(fig, aggregated);
    inputs[id] = data;
    const rendered = await renderFigureData(data, dir);
    charts.push(...rendered.flatMap((c) => [...c.files]));
    blocks.push(
      { kind: 'heading', level: 2, text: figureHeading(fig) },
      { kind: 'paragraph', text: `${fig.caption} Faults: ${fig.faults}. Protocols: ${fig.protocols.map((p) => PROTOCOL_LABEL[p]).join(', ')}.` },
      ...chartBlocks(rendered, (c) => `${c.stem}.svg`),
      ...primaryFailureBlocks(id, manifest),
    );
    if (rendered.length === 0) blocks.push({ kind: 'paragraph', text: 'No valid run: nothing to chart.' });
    blocks.push({ kind: 'heading', level: 3, text: 'Numbers' }, numbersTable(data, baseline), ...sentenceBlocks(data, baseline), ...failureList(data));
    if (id === '13') {
      // The figure's own mean throughput at the point (its aggregation: one record per repetition).
      const panel = await curvesPanel(
        dir,
        (protocol, replicas) => data.points.find((q) => q.point.protocol === protocol && q.point.replicas === replicas)?.throughputTxnPerSec?.mean,
      );
      charts.push(...panel.charts);
      blocks.push(...panel.blocks);
    }
  }
  const strays = records.filter((r) => !FIGURE_IDS.some((id) => belongsTo(FIGURES[id], r)));
  if (strays.length > 0) {
    blocks.push({
      kind: 'paragraph',
      text: `${strays.length} runs belong to no figure of the paper (experiments: ${[...new Set(strays.map((r) => r.experiment))].join(', ')}) and are not shown.`,
    });
  }
  const retried = supersededFailures(records);
  if (retried.length > 0) {
    blocks.push(
      { kind: 'heading', level: 3, text: 'Failed attempts that a retry replaced' },
      {
        kind: 'list',
        items: retried.map(
          (r) => `${r.experiment} ${r.pointId} repetition ${r.rep}: ${r.reason ?? 'invalid'} (retried with --retry-failed; the valid retry is the one counted)`,
        ),
      },
    );
  }
  const claims = evaluateClaims(inputs, CLAIMS, claimContextOf(manifest));
  blocks.push(...claimsTable(claims), ...sensitivityBlocks(dir, manifest, claims, inputs['13']), ...modelValidationBlocks(manifest), ...METHOD);
  return { blocks, charts, figures, claims };
}

/** Reads `dir`'s runs.jsonl and manifest.json, renders the charts into `dir`, and writes report.md and report.html there. */
export async function writeReport(dir: string, options: ReportOptions = {}): Promise<WrittenReport> {
  const baseline = options.baseline ?? DEFAULT_BASELINE;
  const records = loadRuns(dir);
  const manifest = loadManifest(dir);
  const { blocks, charts, figures, claims } = await buildReport(dir, records, manifest, baseline);
  const title = blocks[0]?.kind === 'heading' ? blocks[0].text : 'poe-bench report';
  const markdown = join(dir, REPORT_MD);
  const html = join(dir, REPORT_HTML);
  writeFileSync(markdown, toMarkdown(blocks));
  writeFileSync(html, toHtml(title, blocks));
  return { markdown, html, charts, figures, claims };
}
