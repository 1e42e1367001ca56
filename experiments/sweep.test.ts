/**
 * The sweep loop on fake executors: what is recorded, what a resume skips, what an abort
 * leaves, and the manifest checks that keep incomparable runs out of one directory.
 */
import { appendFileSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { FIGURES, PROFILES } from './figures.js';
import { closedLoopInput, fixtureRecord } from '../test/fixtures.js';
import { loadRuns } from './runs.js';
import {
  appendRecord,
  failedRecord,
  incompatibilities,
  planSweep,
  remainingRuns,
  runKey,
  PRIMARY_FAILURE_TIMEOUTS,
  primaryCrashAtMs,
  loadGroup,
  chosenLoadsFrom,
  runPointSaturated,
  runSweep,
  specFor,
  sweepManifest,
  unsuccessful,
  type RunExecutor,
  type SweepConfig,
  type SweepRun,
} from './sweep.js';
import type { FigureId, RunRecord } from '../infra/run/records.js';
import type { ProtocolName } from '../replica/types.js';
import { attributeBottleneck, type LoadProbe } from '../infra/run/bottleneck.js';
import type { RunResult } from '../infra/run/execute.js';
import type { SpecRunner } from './saturation.js';

const dirs: string[] = [];
function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'poe-sweep-'));
  dirs.push(d);
  return d;
}
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

const config: SweepConfig = {
  figures: ['13'],
  figureArg: '13',
  profile: PROFILES.quick,
  reps: 2,
  warmupSec: 1,
  measuredSec: 2,
  backend: 'local',
  filter: { replicas: [4, 8], protocols: ['poe', 'pbft'] },
  seed: 1,
  clients: 24,
  simBatches: 300,
  retryFailed: false,
};

/** A fake run: valid, with its throughput telling which run it was. */
function fakeRecord(run: SweepRun): RunRecord {
  return fixtureRecord(run.experiment, run.point, run.rep, { throughputTxnPerSec: 1000 * run.point.replicas + run.rep, latencyMeanMs: 10 });
}

const fakeExecutor: RunExecutor = async (run) => fakeRecord(run);

describe('planSweep', () => {
  it('keeps the figure order (repetition-major) and applies every filter', () => {
    const runs = planSweep(config);
    expect(runs.map((r) => `${r.pointId}#${r.rep}`)).toEqual([
      'poe/n=4/crashed=0/batch=100#0',
      'pbft/n=4/crashed=0/batch=100#0',
      'poe/n=8/crashed=0/batch=100#0',
      'pbft/n=8/crashed=0/batch=100#0',
      'poe/n=4/crashed=0/batch=100#1',
      'pbft/n=4/crashed=0/batch=100#1',
      'poe/n=8/crashed=0/batch=100#1',
      'pbft/n=8/crashed=0/batch=100#1',
    ]);
    expect(runs.every((r) => r.experiment === FIGURES['13'].experiment)).toBe(true);
  });

  it('runs every figure of `all`, and refuses a filter that leaves nothing', () => {
    const all = planSweep({ ...config, figures: ['10', '11a', '11b', '12', '13'], reps: 1, filter: {} });
    expect(all.length).toBe(16 + 16 + 8 + 20 + 16);
    expect(() => planSweep({ ...config, filter: { replicas: [5] } })).toThrow(/no point of figure 13 matches the filters \(--replicas 5\)/);
  });
});

describe('runSweep', () => {
  it('appends each run the moment it ends, and a resume skips what is recorded', async () => {
    const dir = tempDir();
    const runs = planSweep(config);
    const seenWhenRunning: number[] = [];
    const execute: RunExecutor = async (run) => {
      seenWhenRunning.push(loadRuns(dir).length);
      return fakeRecord(run);
    };
    const first = await runSweep(runs.slice(0, 3), [], { dir, backend: 'local', execute, signal: new AbortController().signal, retryFailed: false });
    expect(first).toEqual({ planned: 3, skipped: 0, ran: 3, interrupted: false });
    // Each run found the previous ones already on disk.
    expect(seenWhenRunning).toEqual([0, 1, 2]);

    const executed: string[] = [];
    const second = await runSweep(runs, loadRuns(dir), {
      dir,
      backend: 'local',
      execute: async (run) => {
        executed.push(runKey(run));
        return fakeRecord(run);
      },
      signal: new AbortController().signal,
      retryFailed: false,
    });
    expect(second).toEqual({ planned: 8, skipped: 3, ran: 5, interrupted: false });
    expect(executed).toEqual(runs.slice(3).map(runKey));
    const keys = loadRuns(dir).map(runKey);
    expect(new Set(keys).size).toBe(keys.length);
    expect(new Set(keys)).toEqual(new Set(runs.map(runKey)));
  });

  it('stops on abort without recording the run in progress, and the resume runs it', async () => {
    const dir = tempDir();
    const runs = planSweep(config);
    const controller = new AbortController();
    const execute: RunExecutor = async (run, signal) => {
      if (run === runs[2]) {
        controller.abort();
        expect(signal.aborted).toBe(true);
        return undefined; // what the real executor answers for an interrupted run
      }
      return fakeRecord(run);
    };
    const outcome = await runSweep(runs, [], { dir, backend: 'local', execute, signal: controller.signal, retryFailed: false });
    expect(outcome).toEqual({ planned: 8, skipped: 0, ran: 2, interrupted: true });
    expect(loadRuns(dir).map(runKey)).toEqual(runs.slice(0, 2).map(runKey));
    expect(remainingRuns(runs, loadRuns(dir), false)[0]).toBe(runs[2]);
  });

  it('on abort keeps the runs a pooled executor had already finished ahead, and the resume runs only the rest', async () => {
    const dir = tempDir();
    const runs = planSweep(config);
    const controller = new AbortController();
    // Runs 3 and 5 finished on the pool's workers while the sweep waited for run 2.
    const finishedAhead = new Set([runs[3], runs[5]]);
    const execute = Object.assign(
      async (run: (typeof runs)[number]) => {
        if (run === runs[2]) {
          controller.abort();
          return undefined;
        }
        return fakeRecord(run);
      },
      { finished: (run: (typeof runs)[number]) => (finishedAhead.has(run) ? fakeRecord(run) : undefined) },
    ) as RunExecutor;
    const outcome = await runSweep(runs, [], { dir, backend: 'model', execute, signal: controller.signal, retryFailed: false });
    expect(outcome).toEqual({ planned: 8, skipped: 0, ran: 4, interrupted: true });
    expect(loadRuns(dir).map(runKey)).toEqual([runs[0], runs[1], runs[3], runs[5]].map(runKey));
    expect(remainingRuns(runs, loadRuns(dir), false)).toEqual([runs[2], runs[4], runs[6], runs[7]]);
  });

  it('records a failed run with its reason and goes on; a throwing executor is a failed point', async () => {
    const dir = tempDir();
    const runs = planSweep({ ...config, reps: 1 });
    const execute: RunExecutor = async (run) => {
      if (run === runs[0]) return failedRecord(run, 'replica 2 exited with code 1', 'local');
      if (run === runs[1]) throw new Error('port taken');
      return fakeRecord(run);
    };
    const outcome = await runSweep(runs, [], { dir, backend: 'local', execute, signal: new AbortController().signal, retryFailed: false });
    expect(outcome.ran).toBe(4);
    const records = loadRuns(dir);
    expect(records.map((r) => [r.valid, r.reason])).toEqual([
      [false, 'replica 2 exited with code 1'],
      [false, 'the sweep could not run this point: port taken'],
      [true, undefined],
      [true, undefined],
    ]);
    const { bad, missing } = unsuccessful(runs, records);
    expect(bad.map((r) => r.pointId)).toEqual([runs[0]!.pointId, runs[1]!.pointId]);
    expect(missing).toEqual([]);
    // A resume skips failed runs unless asked to retry them; a retried success then counts.
    expect(remainingRuns(runs, records, false)).toEqual([]);
    expect(remainingRuns(runs, records, true)).toEqual(runs.slice(0, 2));
    await runSweep(runs, records, { dir, backend: 'local', execute: fakeExecutor, signal: new AbortController().signal, retryFailed: true });
    expect(unsuccessful(runs, loadRuns(dir)).bad).toEqual([]);
  });
});

describe('runs.jsonl and manifest.json', () => {
  it('cuts an unterminated line left by a killed append before appending', () => {
    const dir = tempDir();
    const [a, b] = planSweep(config);
    appendRecord(dir, fakeRecord(a!));
    appendFileSync(join(dir, 'runs.jsonl'), '{"experiment":"figure-13","pointI');
    expect(loadRuns(dir).length).toBe(1);
    appendRecord(dir, fakeRecord(b!));
    expect(readFileSync(join(dir, 'runs.jsonl'), 'utf8').split('\n').length).toBe(3);
    expect(loadRuns(dir).map(runKey)).toEqual([runKey(a!), runKey(b!)]);
  });

  it('refuses to resume a directory of a sweep with another backend or run length', () => {
    const manifest = sweepManifest(config, {}, '2025-01-01T00:00:00Z', ['figure', '13']);
    expect(incompatibilities(manifest, config)).toEqual([]);
    expect(incompatibilities(manifest, { ...config, filter: {}, reps: 3 })).toEqual([]);
    expect(incompatibilities(manifest, { ...config, backend: 'sim' })).toEqual([
      'backend: the directory has local, this sweep asks for sim',
      'warmupCapSec: the directory has 1, this sweep asks for undefined',
      'simBatches: the directory has undefined, this sweep asks for 300',
    ]);
    expect(incompatibilities(manifest, { ...config, measuredSec: 4 })).toEqual(['measuredSec: the directory has 2, this sweep asks for 4']);
    // The profile's cap grew (real runs only): a directory measured under another cap is refused.
    expect(incompatibilities(manifest, { ...config, warmupCapSec: 40 })).toEqual(['warmupCapSec: the directory has 1, this sweep asks for 40']);
    // A directory from before the cap and the memory rule (its sweep entry has no warmupCapSec).
    const before = { ...manifest, sweep: { ...(manifest['sweep'] as Record<string, unknown>), warmupCapSec: undefined } };
    expect(incompatibilities(before, config)).toEqual([
      "warmupCapSec: the directory has none (its runs' windows opened without waiting for the processes' memory to settle), this sweep asks for 1",
    ]);
    expect(incompatibilities({ experiment: 'run' }, { ...config, backend: 'sim' })).toEqual([]);
  });

  it('labels a simulated sweep in its manifest', () => {
    const manifest = sweepManifest({ ...config, backend: 'sim' }, {}, 'now', ['figure', '13', '--backend', 'sim']);
    expect(manifest['backend']).toBe('sim');
    expect(manifest['hosts']).toEqual([]);
    expect(String((manifest['notes'] as string[])[0])).toMatch(/^SIMULATED/);
    expect((manifest['notes'] as string[]).join(' ')).toMatch(/VIRTUAL time/);
    expect(sweepManifest(config, {}, 'now', [])['notes']).toBeUndefined();
  });
});

describe('figure 11b on real processes', () => {
  const c11b: SweepConfig = { ...config, warmupSec: 4, figures: ['11b'], figureArg: '11b', filter: { replicas: [4] } };

  it('runs its points with the view-0 primary crashing 2 s before the window, checkpoints every 600 and the recorded timeouts', () => {
    const runs = planSweep(c11b);
    expect(runs.map((r) => r.point.protocol)).toEqual(['poe', 'pbft', 'poe', 'pbft']);
    for (const run of runs) {
      const spec = specFor(run, c11b);
      // Placed by time so the view change falls in the window whatever the throughput (issue 11 item 7).
      expect(spec.faults).toEqual([{ replica: 0, fault: { kind: 'crashAt', atMs: c11b.warmupSec * 1000 - 2000 } }]);
      expect(spec.clientTimeoutFixed).toBe(true);
      expect(spec.checkpointInterval).toBe(600);
      expect(spec.clientTimeoutMs).toBe(PRIMARY_FAILURE_TIMEOUTS.clientTimeoutMs);
      expect(spec.viewChangeTimeoutMs).toBe(PRIMARY_FAILURE_TIMEOUTS.viewChangeTimeoutMs);
    }
    // Other figures run without faults.
    expect(specFor(planSweep(config)[0]!, config).faults).toEqual([]);
    const manifest = sweepManifest(c11b, {}, 'now', ['figure', '11b']) as { spec: { primaryFailure: Record<string, unknown> } };
    expect(manifest.spec.primaryFailure).toMatchObject({
      faults: [`0=crashAt:${c11b.warmupSec * 1000 - 2000}`],
      checkpointIntervalK: 600,
      ...PRIMARY_FAILURE_TIMEOUTS,
    });
    expect(String(manifest.spec.primaryFailure['paper900'])).toMatch(/900 transactions.*after the first checkpoint/);
    // A warm-up shorter than 2 s: the primary crashes at the start.
    expect(primaryCrashAtMs(1)).toBe(0);
  });
});

describe('the load each point runs at (issue 11 items 1 and 6)', () => {
  it('figure 12 holds one load per protocol across batch sizes; other figures one per point', () => {
    const at = (figure: FigureId, protocol: ProtocolName, batch: number) => ({
      figure,
      experiment: `figure-${figure}`,
      point: { protocol, replicas: 16, crashed: 1, batch },
      pointId: `${protocol}/n=16/crashed=1/batch=${batch}`,
    });
    expect(loadGroup(at('12', 'poe', 10))).toBe(loadGroup(at('12', 'poe', 300)));
    expect(loadGroup(at('12', 'poe', 10))).not.toBe(loadGroup(at('12', 'pbft', 10)));
    expect(loadGroup(at('13', 'poe', 100))).toBe('poe/n=16/crashed=1/batch=100');
  });

  it('a resumed sweep keeps the loads probed before, never a given or unprobed one', () => {
    const rec = (pointId: string, batch: number, how: string, loadTxns: number) => ({
      experiment: 'figure-12',
      pointId,
      point: { protocol: 'poe' as const, replicas: 16, crashed: 1, batch },
      rep: 0,
      valid: true,
      startedAt: 'fixture',
      saturation: { loadTxns, how, saturated: true, probes: [], note: '' },
    });
    expect([...chosenLoadsFrom([rec('a', 10, 'probed', 9600)])]).toEqual([['figure-12/poe', 9600]]);
    expect(chosenLoadsFrom([rec('a', 10, 'given', 9600), rec('b', 50, 'unprobed', 4800)]).size).toBe(0);
  });

  it('a resumed sweep probes again a load an older record took as saturated without a probe (cpu-full, before issue 10)', () => {
    const rec = (how: string) => ({
      experiment: 'figure-13',
      pointId: 'pbft/n=16/crashed=0/batch=100',
      point: { protocol: 'pbft' as const, replicas: 16, crashed: 0, batch: 100 },
      rep: 0,
      valid: true,
      startedAt: 'fixture',
      saturation: { loadTxns: 2400, how, saturated: true, probes: [], note: '' },
    });
    expect(chosenLoadsFrom([rec('cpu-full')]).size).toBe(0);
    // Its later repetitions reused the unprobed load: not kept either.
    expect(chosenLoadsFrom([rec('cpu-full'), rec('reused'), rec('reused')]).size).toBe(0);
    expect([...chosenLoadsFrom([rec('probed')])]).toEqual([['pbft/n=16/crashed=0/batch=100', 2400]]);
  });
});

describe("a repetition's bottleneck reads its point's probe (issue 11 item 3)", () => {
  it("repetition 2 reuses the load and the verdict quotes repetition 1's probe; figure 12 does not carry it across batch sizes", async () => {
    const input = closedLoopInput({ machineCpuPercent: 150, replicaCpuPercent: 35, clientCpuPercent: 20, throughputTxnPerSec: 100_000, meanLatencyMs: 24 });
    // Every load gives the same throughput: the probe at double load gains 0%.
    const runSpec: SpecRunner = async (spec) =>
      ({
        valid: true,
        interrupted: false,
        throughputTxnPerSec: 100_000,
        latencyMs: { mean: spec.loadTxns! / 100, p50: 0, p99: 0, max: 0 },
        spec,
        bottleneckInput: input,
        bottleneck: attributeBottleneck(input),
      }) as unknown as RunResult;
    const c13: SweepConfig = { ...config, loadTxns: 2400 };
    const [rep0, rep1] = planSweep(c13).filter((r) => r.pointId === 'poe/n=4/crashed=0/batch=100');
    const chosen = new Map<string, number>();
    const probed = new Map<string, LoadProbe>();
    const first = await runPointSaturated(rep0!, c13, runSpec, chosen, probed);
    expect(first!.result.bottleneck!.detail).toMatch(/^client-bound, not load-bound: a probe at 2x/);
    const second = await runPointSaturated(rep1!, c13, runSpec, chosen, probed);
    expect(second!.saturation.how).toBe('reused');
    expect(second!.result.bottleneck!.detail).toMatch(
      /^client-bound, not load-bound: repetition 1's probe at 2x the outstanding transactions: double load gained 0%/,
    );
    // A resumed sweep has the load but not the probe: the verdict says it was not probed.
    const resumed = await runPointSaturated(rep1!, c13, runSpec, chosen, new Map());
    expect(resumed!.result.bottleneck!.detail).toMatch(/^client-bound, not probed: /);
  });
});

describe('figure 12 in transactions (issue 11 item 6)', () => {
  it('runs every batch size at the same load, at least one request of the largest batch per replica', () => {
    const c12: SweepConfig = { ...config, figures: ['12'], figureArg: '12', filter: {}, loadTxns: 2400 };
    const runs = planSweep(c12).filter((r) => r.point.protocol === 'poe' && r.rep === 0);
    const loads = runs.map((r) => specFor(r, c12).loadTxns);
    expect(runs.map((r) => r.point.batch)).toEqual([10, 50, 100, 200, 300]);
    // 16 replicas x 300 writes: 4,800 transactions outstanding at every batch size.
    expect(new Set(loads)).toEqual(new Set([4800]));
    expect(runs.map((r) => specFor(r, c12).clients)).toEqual([480, 96, 48, 24, 16]);
  });
});

describe('HotStuff leaders start with a full pipeline (issue 10 item 2)', () => {
  it('figure 13 starts HotStuff at eight requests per leader, at most 2048 / n in all, and the others at the sweep load', () => {
    const c13: SweepConfig = { ...config, figures: ['13'], figureArg: '13', filter: {}, loadTxns: 2400 };
    const load = (protocol: ProtocolName, n: number): number | undefined => {
      const r = planSweep(c13).find((x) => x.point.protocol === protocol && x.point.replicas === n && x.rep === 0);
      return r ? specFor(r, c13).loadTxns : undefined;
    };
    // 4 x 100 x 8 = 3,200; 16 x 8 = 128 requests = 2048 / 16; n = 32: 2048 / 32 = 64 requests, two per leader.
    expect(load('hotstuff', 4)).toBe(3200);
    expect(load('hotstuff', 16)).toBe(12800);
    expect(load('hotstuff', 32)).toBe(6400);
    expect(load('pbft', 16)).toBe(2400);
    expect(load('poe', 32)).toBe(3200);
  });

  it('figure 12 keeps one load for every protocol: one request of the largest batch per replica', () => {
    const c12: SweepConfig = { ...config, figures: ['12'], figureArg: '12', filter: {}, loadTxns: 2400 };
    const loads = planSweep(c12)
      .filter((r) => r.rep === 0)
      .map((r) => specFor(r, c12).loadTxns);
    expect(new Set(loads)).toEqual(new Set([4800]));
  });
});
