/**
 * `poe-bench curve`: throughput-latency curves (issue 11 item 4). The logic is
 * experiments/curve.ts and the chart plots/curve-spec.ts; this file parses flags, prints
 * progress and the summary (or JSON), and draws the chart.
 *
 *   poe-bench curve --protocol poe,pbft --replicas 4 [--json] [--out DIR]
 */
import { join } from 'node:path';
import type { Command } from 'commander';
import { z } from 'zod';
import { CURVE_RULE, runCurve, type CurveOptions, type CurvePoint, type CurveResult } from '../experiments/curve.js';
import { parseProtocol } from '../experiments/figures.js';
import { outDirProblem } from '../infra/run/results.js';
import { integer as integerFlag, positive as positiveFlag } from '../infra/param-schemas.js';
import { curveNotes, curveSpec } from '../plots/curve-spec.js';
import { writeChart } from '../plots/render.js';

export interface CurveFlags {
  readonly protocol?: string;
  readonly replicas?: string;
  readonly batch?: string;
  readonly clients?: string;
  readonly warmup?: string;
  readonly duration?: string;
  readonly start?: string;
  readonly factor?: string;
  readonly maxPoints?: string;
  readonly refine?: string;
  readonly latencyFactor?: string;
  readonly p99BoundMs?: string;
  readonly out?: string;
  readonly json?: boolean;
}

export const CURVE_DEFAULTS = {
  replicas: 4,
  batch: 100,
  /**
   * Enough in flight to saturate 4 replicas here (closed loop, issue 11: 24 clients gave 135K
   * txn/s, 48 gave 143K), few enough that past the knee the queue waits at the client, latency
   * counted, rather than at the primary, where it sets off the 2 s view-change timers: with 400,
   * PoE offered 16,875 txn/s on a loaded machine went through view changes and did not converge.
   */
  clients: 96,
  warmupS: 4,
  durationS: 8,
  startBatchesPerSec: 50,
  factor: 1.5,
  maxPoints: 16,
  refineRatio: 1.1,
  out: join('results', 'curve'),
} as const;

const schema = z.object({
  protocol: z.string({ required_error: 'is required (e.g. poe,pbft)' }).transform((s, ctx) => {
    try {
      return [...new Set(s.split(',').map((p) => parseProtocol(p.trim())))];
    } catch (err) {
      ctx.addIssue({ code: z.ZodIssueCode.custom, message: (err as Error).message });
      return z.NEVER;
    }
  }),
  replicas: integerFlag(4, 256),
  batch: integerFlag(1, 100_000),
  clients: integerFlag(1, 1_000_000),
  warmup: positiveFlag(),
  duration: positiveFlag(),
  start: positiveFlag(),
  factor: positiveFlag().refine((x) => x === undefined || x > 1, 'must be > 1'),
  maxPoints: integerFlag(1, 100),
  refine: positiveFlag(),
  latencyFactor: positiveFlag().refine((x) => x === undefined || x > 1, 'must be > 1'),
  p99BoundMs: positiveFlag(),
  out: z.string().optional(),
  json: z.boolean().optional(),
});

const FLAG_NAMES: Record<string, string> = {
  maxPoints: '--max-points',
  latencyFactor: '--latency-factor',
  p99BoundMs: '--p99-bound-ms',
};

/** Validates the flags into curve options; throws an Error naming every bad flag. */
export function parseCurveFlags(flags: CurveFlags): CurveOptions {
  const parsed = schema.safeParse(flags);
  if (!parsed.success) {
    const lines = parsed.error.issues.map((i) => {
      const key = String(i.path[0] ?? '');
      return `${FLAG_NAMES[key] ?? `--${key}`}: ${i.message}`;
    });
    throw new Error(lines.join('\n'));
  }
  const o = parsed.data;
  const d = CURVE_DEFAULTS;
  return {
    protocols: o.protocol,
    replicas: o.replicas ?? d.replicas,
    batch: o.batch ?? d.batch,
    clients: o.clients ?? d.clients,
    warmupS: o.warmup ?? d.warmupS,
    durationS: o.duration ?? d.durationS,
    startBatchesPerSec: o.start ?? d.startBatchesPerSec,
    factor: o.factor ?? d.factor,
    maxPoints: o.maxPoints ?? d.maxPoints,
    refineRatio: o.refine ?? d.refineRatio,
    rule: { ...CURVE_RULE, ...(o.latencyFactor ? { latencyFactor: o.latencyFactor } : {}), ...(o.p99BoundMs ? { p99BoundMs: o.p99BoundMs } : {}) },
    outDir: o.out ?? d.out,
  };
}

const num = (x: number): string => Math.round(x).toLocaleString('en-US');

function pointLine(p: CurvePoint, i: number): string {
  const lat = `mean ${p.latencyMs.mean.toFixed(1)} ms, p50 ${p.latencyMs.p50.toFixed(1)} ms, p99 ${p.latencyMs.p99.toFixed(1)} ms`;
  return `${p.protocol} point ${i + 1}: offered ${num(p.offeredTxnPerSec)} txn/s, achieved ${num(p.achievedTxnPerSec)} txn/s, ${lat}${p.valid ? '' : ` INVALID: ${p.reason}`}`;
}

/** What --json prints. */
export function curveJson(r: CurveResult, charts: readonly string[], runsFile: string): Record<string, unknown> {
  return {
    replicas: r.replicas,
    batch: r.batch,
    interrupted: r.interrupted,
    curves: Object.fromEntries(r.curves.map((c) => [c.protocol, { points: c.points, knee: c.knee ?? null, stoppedBecause: c.stoppedBecause }])),
    knees: Object.fromEntries(r.curves.map((c) => [c.protocol, c.knee ? c.knee.achievedTxnPerSec : null])),
    charts,
    recordedIn: runsFile,
  };
}

/** Runs `poe-bench curve`; returns the exit code. */
export async function runCurveCommand(flags: CurveFlags, signal?: AbortSignal): Promise<number> {
  let options: CurveOptions;
  try {
    options = parseCurveFlags(flags);
  } catch (err) {
    process.stderr.write(`poe-bench curve: invalid flags\n${(err as Error).message}\n`);
    return 2;
  }
  const dirProblem = outDirProblem(options.outDir);
  if (dirProblem) {
    process.stderr.write(`poe-bench curve: --out: ${dirProblem}\n`);
    return 2;
  }
  const tty = process.stderr.isTTY === true;
  const log = (line: string): void => void process.stderr.write(`${tty ? '\r\x1b[2K' : ''}${line}\n`);
  log(
    `poe-bench curve: ${options.protocols.join(', ')} on ${options.replicas} replicas, batch ${options.batch}, open loop from ${options.startBatchesPerSec} batches/s (x${options.factor} per point, ` +
      `${options.clients} logical clients), ${options.warmupS} s warm-up + ${options.durationS} s measured per point`,
  );
  const result = await runCurve(options, {
    ...(signal ? { signal } : {}),
    ...(tty ? { onProgress: (line: string) => void process.stderr.write(`\r\x1b[2K${line}`) } : {}),
    onPoint: (p, i) => log(pointLine(p, i)),
  });
  if (result.interrupted) {
    log('poe-bench curve: interrupted; the points measured so far are recorded');
    return 130;
  }
  const runsFile = join(options.outDir, 'runs.jsonl');
  const drawable = result.curves.some((c) => c.points.some((p) => p.valid));
  const charts = drawable ? (await writeChart(curveSpec(result, curveNotes(result)), options.outDir, 'curve')).files : [];
  if (flags.json) {
    process.stdout.write(`${JSON.stringify(curveJson(result, charts, runsFile))}\n`);
  } else {
    const out: string[] = [];
    for (const c of result.curves) {
      out.push(
        `${c.protocol}: ${c.points.length} points; knee ${c.knee ? `${num(c.knee.achievedTxnPerSec)} txn/s (offered ${num(c.knee.offeredTxnPerSec)}, mean ${c.knee.latencyMs.mean.toFixed(1)} ms, p99 ${c.knee.latencyMs.p99.toFixed(1)} ms)` : 'none'}; stopped: ${c.stoppedBecause}`,
      );
    }
    out.push(`recorded in ${runsFile}`);
    if (charts.length > 0) out.push(`chart: ${charts.join(', ')}`);
    process.stdout.write(`${out.join('\n')}\n`);
  }
  return result.curves.every((c) => c.knee !== undefined) ? 0 : 1;
}

/** Adds `poe-bench curve` to the program. */
export function registerCurveCommand(program: Command): void {
  program
    .command('curve')
    .description(
      'throughput-latency curves: open-loop runs at rising offered load until latency explodes or throughput stops following; reports each protocol knee',
    )
    .option('--protocol <list>', 'protocols, comma-separated (e.g. poe,pbft)')
    .option('--replicas <n>', `replicas (default ${CURVE_DEFAULTS.replicas})`)
    .option('--batch <b>', `writes per batch (default ${CURVE_DEFAULTS.batch})`)
    .option(
      '--clients <c>',
      `logical clients the open loop draws from: at most this many batches in flight, the rest wait at the client with their latency counted (default ${CURVE_DEFAULTS.clients})`,
    )
    .option('--warmup <s>', `warm-up seconds per point (default ${CURVE_DEFAULTS.warmupS})`)
    .option('--duration <s>', `measured seconds per point (default ${CURVE_DEFAULTS.durationS})`)
    .option('--start <batchesPerSec>', `offered load of the first point (default ${CURVE_DEFAULTS.startBatchesPerSec})`)
    .option('--factor <x>', `each point offers x times the previous load (default ${CURVE_DEFAULTS.factor})`)
    .option('--max-points <k>', `at most k points per protocol (default ${CURVE_DEFAULTS.maxPoints})`)
    .option(
      '--refine <ratio>',
      `then add points between the highest load carried and the lowest not carried until they are within this ratio; 1 = none (default ${CURVE_DEFAULTS.refineRatio})`,
    )
    .option(
      '--latency-factor <x>',
      "a latency objective: a point whose mean latency is above x times the curve's lowest does not count as carried (default: none; the knee is the highest throughput sustained)",
    )
    .option('--p99-bound-ms <ms>', `a point whose p99 latency is above this does not count as carried (default ${CURVE_RULE.p99BoundMs})`)
    .option('--out <dir>', `results directory: appends runs.jsonl, writes manifest.json and curve.{vl.json,svg,png} (default ${CURVE_DEFAULTS.out})`)
    .option('--json', 'print one JSON object on stdout: the points per protocol and the knees')
    .addHelpText('after', '\nExit codes: 0 every protocol has a knee, 1 some protocol has none, 2 invalid flags, 130 interrupted.')
    .action(async (flags: CurveFlags) => {
      const controller = new AbortController();
      const onSignal = (): void => controller.abort();
      process.on('SIGINT', onSignal);
      process.on('SIGTERM', onSignal);
      try {
        process.exitCode = await runCurveCommand(flags, controller.signal);
      } finally {
        process.off('SIGINT', onSignal);
        process.off('SIGTERM', onSignal);
      }
    });
}
