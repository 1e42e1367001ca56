/**
 * `poe-bench run --backend model` (issue 12 item 3): one run's spec in the calibrated cost model,
 * marked as modelled on stdout, in --json, in runs.jsonl and in the manifest, with the same keys
 * as figure --backend model's runs; its report judges it only in the "predicted" column; a
 * missing calibration file is one line and exit 2; its replay line repeats it exactly.
 *
 * The calibration is a fixture (test/model-fixtures.ts: costs of the order `poe-bench calibrate
 * --no-fit` measures on a 2-core EPYC), so the test does not spend 10 s micro-benchmarking. The model is
 * deterministic (the simulator's seed, the cost model's arithmetic), so a replay gives the same
 * numbers to the last digit.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Command } from 'commander';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { claimContextOf } from '../experiments/claims.js';
import { loadManifest } from '../experiments/runs.js';
import { figureModelRecord, figurePointInput } from '../experiments/model-figure.js';
import { modelPoint } from '../experiments/model-point.js';
import { canonicalFlags } from '../infra/params.js';
import { pointId, type SweepPoint } from '../infra/run/records.js';
import { parseRunFlags } from '../infra/run/spec.js';
import { writeCalibration } from '../infra/sim/calibration.js';
import { loadTestbed } from '../infra/sim/testbed.js';
import { writeReport } from '../plots/report.js';
import { fixtureCalibration } from '../test/model-fixtures.js';
import { defineRunCommand, runRunCommand, type RunCommandFlags } from './run-command.js';

const root = mkdtempSync(join(tmpdir(), 'poe-run-model-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

const calibration = join(root, 'calibration.json');
writeCalibration(calibration, fixtureCalibration());

/** Runs `poe-bench run` in this process with stdout and stderr captured. */
async function run(flags: RunCommandFlags): Promise<{ exitCode: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const out = vi.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => {
    stdout += String(chunk);
    return true;
  });
  const err = vi.spyOn(process.stderr, 'write').mockImplementation((chunk: string | Uint8Array) => {
    stderr += String(chunk);
    return true;
  });
  try {
    const { exitCode } = await runRunCommand(flags);
    return { exitCode, stdout, stderr };
  } finally {
    out.mockRestore();
    err.mockRestore();
  }
}

/** A replay line's flags as commander hands them over (the values here need no shell quoting). */
function flagsOfReplay(line: string): RunCommandFlags {
  const args = line.trim().split(' ');
  expect(args.slice(0, 2)).toEqual(['poe-bench', 'run']);
  const cmd = defineRunCommand(new Command('run')).exitOverride();
  cmd.parse(args.slice(2), { from: 'user' });
  return canonicalFlags('run', cmd.opts<RunCommandFlags>());
}

const replayOf = (stderr: string): string => /^replay: (.*)$/m.exec(stderr)?.[1] ?? '';

/** Fields only a run of real processes has (infra/run/execute.ts RunResult and recordRun). */
const REAL_ONLY = ['failed', 'implausible', 'ledgerHeights', 'bottleneck', 'steady', 'pids'];
const REAL_ONLY_SPEC = ['host', 'basePort', 'link', 'infra', 'keySeed', 'clientTimeoutFixed'];

describe('run --backend model', () => {
  const out = join(root, 'model');
  const base: RunCommandFlags = { protocol: 'poe', replicas: '4', backend: 'model', testbed: 'local', calibration, simBatches: '120', out };
  let first: { exitCode: number; stdout: string; stderr: string };

  it('prints one JSON object marked as modelled, without the fields only real runs have', async () => {
    first = await run({ ...base, json: true });
    expect(first.exitCode, first.stderr).toBe(0);
    const json = JSON.parse(first.stdout) as Record<string, unknown>;
    expect(json['modelled']).toMatchObject({ testbed: 'local', calibration });
    expect(json['valid']).toBe(true);
    expect(json['throughputTxnPerSec']).toBeGreaterThan(0);
    for (const key of REAL_ONLY) expect(json, key).not.toHaveProperty(key);
    const spec = json['spec'] as Record<string, unknown>;
    expect(spec).toMatchObject({ backend: 'model', testbed: 'local', calibration, simBatches: 120, protocol: 'poe', replicas: 4 });
    for (const key of REAL_ONLY_SPEC) expect(spec, key).not.toHaveProperty(key);
    expect((json['model'] as { acceptedBatches: number }).acceptedBatches).toBe(120);
  });

  it('appends a runs.jsonl line with the marking of figure --backend model, and writes a model manifest', () => {
    const lines = readFileSync(join(out, 'runs.jsonl'), 'utf8').trim().split('\n');
    expect(lines).toHaveLength(1);
    const line = JSON.parse(lines[0]!) as Record<string, unknown>;
    // The marking keys exactly as a figure --backend model record has them (experiments/model-figure.ts).
    const point: SweepPoint = { protocol: 'poe', replicas: 4, crashed: 0, batch: 100 };
    const sweepRun = { figure: '13' as const, experiment: 'figure-13', point, pointId: pointId(point), rep: 0 };
    const setup = { testbed: loadTestbed('local'), costs: fixtureCalibration().costs, calibration };
    const input = figurePointInput(sweepRun, { warmupSec: 1, measuredSec: 2, seed: 1, clients: 24, simBatches: 20 }, setup);
    const figureRecord = figureModelRecord(sweepRun, input, modelPoint(input), setup, new Date().toISOString());
    const marking = ['backend', 'modelled', 'testbed', 'calibration', 'virtualTime'] as const;
    expect(Object.fromEntries(marking.map((k) => [k, line[k]]))).toEqual(Object.fromEntries(marking.map((k) => [k, figureRecord[k]])));
    expect(line).toMatchObject({ experiment: 'run', pointId: 'poe/n=4/crashed=0/batch=100', valid: true });
    expect((line['metrics'] as { throughputTxnPerSec: number }).throughputTxnPerSec).toBeGreaterThan(0);
    for (const key of REAL_ONLY) expect(line, key).not.toHaveProperty(key);
    const manifest = JSON.parse(readFileSync(join(out, 'manifest.json'), 'utf8')) as Record<string, unknown>;
    expect(manifest).toMatchObject({ backend: 'model', modelled: true, testbed: 'local', calibration, hosts: [], replay: replayOf(first.stderr) });
    expect(manifest['seeds']).not.toHaveProperty('keySeed');
    expect(String((manifest['notes'] as string[])[0])).toMatch(/^MODELLED/);
  });

  it('is judged only in the predicted column of the claims, and its report says MODELLED', async () => {
    const context = claimContextOf(loadManifest(out));
    expect(context.modelledFor).toBe('local');
    const report = await writeReport(out);
    expect(report.figures.length).toBeGreaterThan(0);
    expect(report.claims.every((c) => c.verdict === 'not measured' && c.predicted?.testbed === 'local')).toBe(true);
    const md = readFileSync(report.markdown, 'utf8');
    expect(md).toContain('MODELLED: this run ran in the calibrated cost model');
    expect(md).toContain('Predicted for local');
  });

  it('says in its text output that it is modelled, for which testbed and calibration, and not measured', async () => {
    const text = await run({ ...base });
    expect(text.exitCode, text.stderr).toBe(0);
    expect(text.stdout).toMatch(
      new RegExp(`modelled for testbed local with calibration ${calibration.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}, not measured`, 'i'),
    );
    expect(text.stdout).toContain(`replay: ${replayOf(first.stderr)}`);
  });

  it('repeats itself from its replay line: the same spec and the same predicted numbers', async () => {
    const line = replayOf(first.stderr);
    expect(line).toContain('--backend model');
    expect(line).toContain('--testbed local');
    expect(line).toContain(`--calibration ${calibration}`);
    const flags = flagsOfReplay(line);
    const again = await run({ ...flags, out: join(root, 'replayed'), json: true });
    expect(again.exitCode, again.stderr).toBe(0);
    const a = JSON.parse(first.stdout) as Record<string, unknown>;
    const b = JSON.parse(again.stdout) as Record<string, unknown>;
    expect(b['spec']).toEqual(a['spec']);
    expect(b['throughputTxnPerSec']).toBe(a['throughputTxnPerSec']);
    expect(b['latencyMs']).toEqual(a['latencyMs']);
    expect(replayOf(again.stderr)).toBe(line);
  });

  it('without a calibration file: one line naming it and saying to run calibrate, exit 2, nothing written', async () => {
    const missing = join(root, 'no-such-calibration.json');
    const r = await run({ ...base, calibration: missing, out: join(root, 'never') });
    expect(r.exitCode).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toContain(missing);
    expect(r.stderr).toContain('poe-bench calibrate');
  });

  it('refuses the model flags without --backend model, and the real-process flags with it', async () => {
    const r1 = await run({ protocol: 'poe', testbed: 'local', out: join(root, 'never') });
    expect(r1.exitCode).toBe(2);
    expect(r1.stderr).toContain('--testbed: only for --backend model');
    const r2 = await run({ ...base, link: 'lan', basePort: '20000', openLoop: '10', out: join(root, 'never') });
    expect(r2.exitCode).toBe(2);
    for (const flag of ['--link', '--base-port', '--open-loop']) expect(r2.stderr).toContain(`${flag}: `);
    // A RunSpec always places real processes: no code path can hand a model spec to executeRun.
    expect(() => parseRunFlags({ protocol: 'poe', backend: 'model' })).toThrow(/--backend: model starts no process/);
  });

  it('keeps one kind per results directory: a measured run or another testbed cannot join modelled runs', async () => {
    const real = await run({ protocol: 'poe', out });
    expect(real.exitCode).toBe(2);
    expect(real.stderr).toContain('holds runs modelled for testbed local');
    const other = await run({ ...base, testbed: 'c5.2xlarge' });
    expect(other.exitCode).toBe(2);
    expect(readFileSync(join(out, 'runs.jsonl'), 'utf8').trim().split('\n')).toHaveLength(2);
  });
});
