/**
 * `poe-bench report <results dir> [--baseline pbft]` and `poe-bench compare <dirA> <dirB>`
 * (issue 5): the command side of plots/report.ts and plots/compare.ts. `report` (re)renders
 * the charts of every figure found in runs.jsonl and writes report.md and report.html beside
 * it; `compare` sets two results directories of the same figure side by side.
 *
 * Exit codes: 0 written; 1 nothing to report or compare (no runs, no figure in common);
 * 2 bad arguments (no such directory, unknown baseline).
 */
import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { Command } from 'commander';
import { RunsFileError } from '../experiments/runs.js';
import { COMPARE_HTML, COMPARE_MD, DEFAULT_BASELINE, loadRuns, NothingToCompareError, parseProtocol, writeComparison, writeReport } from '../plots/index.js';
import type { ProtocolName } from '../replica/types.js';
import { outDirProblem } from '../infra/run/results.js';
import { runId } from './figure-command.js';

interface Io {
  readonly stdout?: NodeJS.WritableStream;
  readonly stderr?: NodeJS.WritableStream;
}

function resultsDirProblem(dir: string): string | undefined {
  if (!existsSync(dir)) return `${dir}: no such directory`;
  if (!statSync(dir).isDirectory()) return `${dir}: not a directory`;
  if (!existsSync(join(dir, 'runs.jsonl'))) return `${dir}: no runs.jsonl here (a results directory of poe-bench figure or run holds one)`;
  return undefined;
}

/** `poe-bench report`; returns the exit code. */
export async function runReportCommand(dir: string, flags: { readonly baseline?: string }, io: Io = {}): Promise<number> {
  const stdout = io.stdout ?? process.stdout;
  const stderr = io.stderr ?? process.stderr;
  let baseline: ProtocolName;
  try {
    baseline = flags.baseline === undefined ? DEFAULT_BASELINE : parseProtocol(flags.baseline);
  } catch (err) {
    stderr.write(`poe-bench report: --baseline: ${(err as Error).message}\n`);
    return 2;
  }
  const problem = resultsDirProblem(dir) ?? outDirProblem(dir);
  if (problem !== undefined) {
    stderr.write(`poe-bench report: ${problem}\n`);
    return 2;
  }
  try {
    if (loadRuns(dir).length === 0) {
      stderr.write(`poe-bench report: ${join(dir, 'runs.jsonl')} holds no run yet: nothing to report\n`);
      return 1;
    }
    const report = await writeReport(dir, { baseline });
    const count = (v: string): number => report.claims.filter((c) => c.verdict === v).length;
    stdout.write(
      `${[
        `poe-bench report: ${report.figures.length === 0 ? 'no figure of the paper in these runs' : report.figures.map((f) => `figure ${f}`).join(', ')} (baseline ${baseline})`,
        `  report   ${report.markdown}, ${report.html}`,
        `  charts   ${report.charts.filter((c) => c.endsWith('.svg')).length} SVG, ${report.charts.filter((c) => c.endsWith('.png')).length} PNG in ${dir}`,
        `  claims   ${count('holds')} hold, ${count('does not hold')} do not hold, ${count('not measured')} not measured (of ${report.claims.length})`,
      ].join('\n')}\n`,
    );
    return 0;
  } catch (err) {
    if (err instanceof RunsFileError) {
      stderr.write(`poe-bench report: ${dir}: ${err.message}\n`);
      return 1;
    }
    throw err;
  }
}

/** `poe-bench compare`; returns the exit code. */
export async function runCompareCommand(dirA: string, dirB: string, flags: { readonly out?: string }, io: Io = {}): Promise<number> {
  const stdout = io.stdout ?? process.stdout;
  const stderr = io.stderr ?? process.stderr;
  for (const dir of [dirA, dirB]) {
    const problem = resultsDirProblem(dir);
    if (problem !== undefined) {
      stderr.write(`poe-bench compare: ${problem}\n`);
      return 2;
    }
  }
  const out = flags.out ?? join('results', 'compare', runId());
  const outProblem = outDirProblem(out);
  if (outProblem !== undefined) {
    stderr.write(`poe-bench compare: --out: ${outProblem}\n`);
    return 2;
  }
  try {
    const written = await writeComparison(dirA, dirB, out);
    stdout.write(
      `${[
        `poe-bench compare: ${written.figures.map((f) => `figure ${f}`).join(', ')}: A = ${dirA}, B = ${dirB}`,
        `  comparison  ${join(out, COMPARE_MD)}, ${join(out, COMPARE_HTML)}`,
        `  charts      ${written.charts.filter((c) => c.endsWith('.svg')).length} SVG, ${written.charts.filter((c) => c.endsWith('.png')).length} PNG in ${out}`,
      ].join('\n')}\n`,
    );
    return 0;
  } catch (err) {
    if (err instanceof NothingToCompareError || err instanceof RunsFileError) {
      stderr.write(`poe-bench compare: ${err.message}\n`);
      return 1;
    }
    throw err;
  }
}

/** Adds `poe-bench report` and `poe-bench compare` to the program. */
export function registerReportCommand(program: Command): void {
  program
    .command('report')
    .description("write report.md and a self-contained report.html for a results directory: environment, charts, numbers, ratio sentences, the paper's claims")
    .argument('<dir>', 'results directory (holds runs.jsonl and manifest.json)')
    .option('--baseline <protocol>', `protocol every other is compared against (default ${DEFAULT_BASELINE}; names or labels: poe, pbft, zyz, hs)`)
    .addHelpText('after', '\nExit codes: 0 written, 1 nothing to report, 2 bad arguments.')
    .action(async (dir: string, flags: { baseline?: string }) => {
      process.exitCode = await runReportCommand(dir, flags);
    });
  program
    .command('compare')
    .description('set two results directories of the same figure side by side (e.g. local against AWS, before against after a change)')
    .argument('<dirA>', 'results directory A (drawn solid)')
    .argument('<dirB>', 'results directory B (drawn dashed)')
    .option('--out <dir>', 'where compare.md, compare.html and the charts go (default: results/compare/<timestamp>/)')
    .addHelpText('after', '\nExit codes: 0 written, 1 no figure in common, 2 bad arguments.')
    .action(async (dirA: string, dirB: string, flags: { out?: string }) => {
      process.exitCode = await runCompareCommand(dirA, dirB, flags);
    });
}
