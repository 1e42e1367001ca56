import { describe, expect, it } from 'vitest';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { aggregate, figureData, latestPerRepetition, mean, supersededFailures, sampleStdDev, summarize, tQuantile975, valueAt, xValues } from './stats.js';
import { loadRuns, parseRuns, readManifestInfo, RunsFileError, loadManifest } from './runs.js';
import { fixtureRecord } from '../test/fixtures.js';
import { FIGURES } from './figures.js';
import type { SweepPoint } from '../infra/run/records.js';

const P4: SweepPoint = { protocol: 'poe', replicas: 4, crashed: 0, batch: 100 };

describe('summaries of repetitions', () => {
  it('takes the mean and the sample standard deviation', () => {
    expect(mean([10, 12, 14])).toBe(12);
    // Σ(x - 12)² = 8, over n - 1 = 2: variance 4.
    expect(sampleStdDev([10, 12, 14])).toBeCloseTo(2, 12);
    expect(sampleStdDev([5])).toBe(0);
  });

  it('gives a Student-t 95% interval from 3 repetitions on', () => {
    // By hand: s = 2, s/√3 = 1.154701, t(0.975, 2) = 4.302653, half-width 4.968275.
    const s = summarize([10, 12, 14]);
    expect(s.interval).toBe('ci95');
    expect(s.mean).toBe(12);
    expect(s.lo).toBeCloseTo(7.031725, 5);
    expect(s.hi).toBeCloseTo(16.968275, 5);
    expect([s.min, s.max, s.n]).toEqual([10, 14, 3]);
  });

  it('uses the t quantile of n - 1 degrees of freedom', () => {
    // Four values 1, 2, 3, 4: mean 2.5, s = 1.290994, s/2 = 0.645497, t(0.975, 3) = 3.182446 -> 2.054260.
    const s = summarize([1, 2, 3, 4]);
    expect(s.hi - s.mean).toBeCloseTo(2.05426, 4);
    expect(s.mean - s.lo).toBeCloseTo(2.05426, 4);
  });

  it('falls back to min-max below 3 repetitions', () => {
    const two = summarize([100, 90]);
    expect(two).toMatchObject({ interval: 'minmax', mean: 95, lo: 90, hi: 100, n: 2 });
    const one = summarize([42]);
    expect(one).toMatchObject({ interval: 'minmax', mean: 42, lo: 42, hi: 42, stdDev: 0 });
  });

  it('knows t quantiles past the table', () => {
    expect(tQuantile975(1)).toBeCloseTo(12.7062, 4);
    expect(tQuantile975(30)).toBeCloseTo(2.04227, 5);
    // Reference values of t(0.975, df) for df = 31, 60, 120.
    expect(tQuantile975(31)).toBeCloseTo(2.03951, 4);
    expect(tQuantile975(60)).toBeCloseTo(2.0003, 4);
    expect(tQuantile975(120)).toBeCloseTo(1.97993, 4);
    expect(() => tQuantile975(0)).toThrow(RangeError);
  });

  it('refuses empty and non-finite inputs instead of printing zeros', () => {
    expect(() => summarize([])).toThrow(RangeError);
    expect(() => summarize([1, Number.NaN])).toThrow(RangeError);
  });
});

describe('aggregate', () => {
  it('groups repetitions by point, converts latency to seconds, and keeps failures apart', () => {
    const recs = [
      fixtureRecord('figure-13', P4, 0, { throughputTxnPerSec: 1000, latencyMeanMs: 20, latencyP99Ms: 50 }),
      fixtureRecord('figure-13', P4, 1, { throughputTxnPerSec: 1100, latencyMeanMs: 30, latencyP99Ms: 70 }),
      fixtureRecord('figure-13', P4, 2, { failed: 'clients accepted nothing' }),
      fixtureRecord('figure-13', { ...P4, protocol: 'pbft' }, 0, { throughputTxnPerSec: 800, latencyMeanMs: 40 }),
    ];
    const agg = aggregate(recs);
    expect(agg).toHaveLength(2);
    const poe = agg[0]!;
    expect(poe.reps).toBe(2);
    expect(poe.failed).toBe(1);
    expect(poe.reasons).toEqual(['clients accepted nothing']);
    expect(poe.throughputTxnPerSec).toMatchObject({ mean: 1050, lo: 1000, hi: 1100, interval: 'minmax' });
    expect(poe.latencyMeanSec!.mean).toBeCloseTo(0.025, 12);
    expect(poe.latencyP99Sec!.mean).toBeCloseTo(0.06, 12);
  });

  it('counts the last valid record of a repetition that a resumed sweep wrote twice', () => {
    const recs = [
      fixtureRecord('figure-13', P4, 0, { failed: 'timeout' }),
      fixtureRecord('figure-13', P4, 0, { throughputTxnPerSec: 500, latencyMeanMs: 10 }),
      fixtureRecord('figure-13', P4, 0, { failed: 'later failure' }),
    ];
    expect(latestPerRepetition(recs)).toHaveLength(1);
    const [p] = aggregate(recs);
    expect(p!.reps).toBe(1);
    expect(p!.failed).toBe(0);
    expect(p!.throughputTxnPerSec!.mean).toBe(500);
    // The failures the retry replaced are still there for the report to list.
    expect(supersededFailures(recs).map((r) => r.reason)).toEqual(['timeout', 'later failure']);
  });

  it('counts every line of an experiment that is not a figure sweep as its own run', () => {
    const recs = [
      fixtureRecord('run', P4, 0, { throughputTxnPerSec: 500, latencyMeanMs: 10 }),
      fixtureRecord('run', P4, 0, { throughputTxnPerSec: 700, latencyMeanMs: 10 }),
    ];
    const [p] = aggregate(recs);
    expect(p!.reps).toBe(2);
    expect(p!.throughputTxnPerSec!.mean).toBe(600);
  });

  it('keeps a point whose every repetition failed, with no summaries', () => {
    const [p] = aggregate([fixtureRecord('figure-13', P4, 0, { failed: 'safety check: ledgers diverge' })]);
    expect(p!.reps).toBe(0);
    expect(p!.throughputTxnPerSec).toBeUndefined();
    expect(p!.reasons).toEqual(['safety check: ledgers diverge']);
  });

  it('averages the throughput series bucket by bucket', () => {
    const stop: SweepPoint = { ...P4, primaryStopsAfter: 900 };
    const recs = [
      fixtureRecord('figure-11b', stop, 0, {
        throughputTxnPerSec: 1,
        latencyMeanMs: 1,
        throughputSeries: [
          { tSec: 0, txnPerSec: 10 },
          { tSec: 1, txnPerSec: 0 },
        ],
      }),
      fixtureRecord('figure-11b', stop, 1, {
        throughputTxnPerSec: 1,
        latencyMeanMs: 1,
        throughputSeries: [
          { tSec: 1, txnPerSec: 4 },
          { tSec: 0, txnPerSec: 20 },
        ],
      }),
    ];
    const [p] = aggregate(recs);
    expect(p!.throughputSeries!.map((b) => [b.tSec, b.txnPerSec.mean])).toEqual([
      [0, 15],
      [1, 2],
    ]);
  });

  it('selects a figure by experiment name and looks values up by x', () => {
    const recs = [
      fixtureRecord('figure-13', P4, 0, { throughputTxnPerSec: 1000, latencyMeanMs: 20 }),
      fixtureRecord('figure-10', { ...P4, crashed: 1 }, 0, { throughputTxnPerSec: 900, latencyMeanMs: 20 }),
      // A foreign experiment name: matched by the point's shape (no crash, batch 100: figure 13).
      fixtureRecord('my-sweep', { ...P4, replicas: 8 }, 0, { throughputTxnPerSec: 700, latencyMeanMs: 20 }),
    ];
    const data = figureData(FIGURES['13'], aggregate(recs));
    expect(xValues(data)).toEqual([4, 8]);
    expect(valueAt(data, 'poe', 4, 'throughput')).toBe(1000);
    expect(valueAt(data, 'poe', 8, 'throughput')).toBe(700);
    expect(valueAt(data, 'pbft', 4, 'throughput')).toBeUndefined();
  });
});

describe('runs.jsonl', () => {
  const line = (rep: number): string => JSON.stringify(fixtureRecord('figure-13', P4, rep, { throughputTxnPerSec: 1, latencyMeanMs: 1 }));

  it('drops an unterminated last line left by an interrupted append', () => {
    const text = `${line(0)}\n${line(1)}\n${line(2).slice(0, 40)}`;
    const parsed = parseRuns(text);
    expect(parsed.records.map((r) => r.rep)).toEqual([0, 1]);
    expect(parsed.droppedTruncatedTail).toBe(true);
  });

  it('fails loudly, with the line number, on a broken line that is not the tail', () => {
    expect(() => parseRuns(`${line(0)}\n{"broken\n${line(1)}\n`)).toThrow(/line 2/);
    expect(() => parseRuns(`${line(0)}\n{"experiment": 1}\n`)).toThrow(RunsFileError);
  });

  it('drops malformed metrics of a run recorded as invalid instead of failing the file', () => {
    const bad = { ...JSON.parse(line(0)), valid: false, reason: 'clients accepted nothing', metrics: { throughputTxnPerSec: null } };
    const [r] = parseRuns(`${JSON.stringify(bad)}\n`).records;
    expect(r).toMatchObject({ valid: false, reason: 'clients accepted nothing' });
    expect(r!.metrics).toBeUndefined();
    expect(() => parseRuns(`${JSON.stringify({ ...bad, valid: true })}\n`)).toThrow(/line 1/);
  });

  it('keeps fields that newer writers add', () => {
    const rec = { ...JSON.parse(line(0)), extraField: 'kept' };
    const [r] = parseRuns(`${JSON.stringify(rec)}\n`).records;
    expect((r as unknown as { extraField: string }).extraField).toBe('kept');
  });

  it('loads a results directory, and an empty one as no runs', () => {
    const dir = mkdtempSync(join(tmpdir(), 'poe-bench-runs-'));
    try {
      expect(loadRuns(dir)).toEqual([]);
      writeFileSync(join(dir, 'runs.jsonl'), `${line(0)}\n${line(1).slice(0, 10)}`);
      expect(loadRuns(dir)).toHaveLength(1);
      expect(loadManifest(dir)).toEqual({});
      writeFileSync(join(dir, 'manifest.json'), '{"commit": "abc"');
      expect(loadManifest(dir)).toEqual({});
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('manifest.json', () => {
  it('reads the fields it knows in their accepted spellings and tolerates the rest', () => {
    const info = readManifestInfo({
      git: { commit: 'abc123', dirty: true },
      env: { node: 'v20.20.2', os: 'linux 6.1', cpu: { model: 'Xeon', cores: 2 } },
      spec: { backend: 'local', replicas: 4 },
      seeds: [1, 2],
    });
    expect(info).toMatchObject({
      commit: 'abc123',
      dirty: true,
      nodeVersion: 'v20.20.2',
      os: 'linux 6.1',
      cpuModel: 'Xeon',
      cpuCores: 2,
      backend: 'local',
      seeds: [1, 2],
    });
    expect(readManifestInfo({ cores: 'eight', commit: 7 })).toMatchObject({ cpuCores: undefined, commit: undefined });
    expect(readManifestInfo(null)).toEqual({});
  });
});

describe('how each number was made (issue 11)', () => {
  const point11b: SweepPoint = { protocol: 'poe', replicas: 32, crashed: 0, batch: 100, primaryStopsAfter: 900 };
  const withVc = (rep: number, viewChanges: number, viewChangeStartSec?: number) => ({
    ...fixtureRecord('figure-11b', point11b, rep, { throughputTxnPerSec: 1000, latencyMeanMs: 10 }),
    metrics: { ...fixtureRecord('figure-11b', point11b, rep, { throughputTxnPerSec: 1000, latencyMeanMs: 10 }).metrics!, viewChanges },
    windowSec: 6,
    ...(viewChangeStartSec === undefined ? {} : { viewChangeStartSec }),
  });

  it('figure 11b: a point without a view change beginning in its window is flagged', () => {
    expect(aggregate([withVc(0, 1, 2.5)])[0]!.eventMissing).toBeUndefined();
    expect(aggregate([withVc(0, 0)])[0]!.eventMissing).toMatch(/1 of 1 repetition\(s\) had no view change/);
    // A view change that began in the warm-up is not the point's event either.
    expect(aggregate([withVc(0, 1, -1.2)])[0]!.eventMissing).toMatch(/no view change beginning inside/);
  });

  it('noisy: a 95% interval wider than 10% of the mean', () => {
    const p: SweepPoint = { protocol: 'poe', replicas: 4, crashed: 0, batch: 100 };
    const runs = (xs: number[]) => xs.map((t, rep) => fixtureRecord('figure-13', p, rep, { throughputTxnPerSec: t, latencyMeanMs: 10 }));
    expect(aggregate(runs([100, 101, 99]))[0]!.noisy).toBe(false);
    // mean 100, sd 10: half-width 4.30 * 10 / sqrt(3) = 24.8, far above 10% of the mean.
    expect(aggregate(runs([90, 100, 110]))[0]!.noisy).toBe(true);
    // One or two runs have no 95% interval: never flagged noisy, whatever their spread.
    expect(aggregate(runs([50, 150]))[0]!.noisy).toBe(false);
  });

  it('bottleneck: the kind most repetitions got, with one of their sentences', () => {
    const p: SweepPoint = { protocol: 'poe', replicas: 4, crashed: 0, batch: 100 };
    const bn = (kind: string) => ({ kind, machineCpuPercent: 190, cores: 2, busiestProcess: 'replica 0', busiestCpuPercent: 80, detail: `${kind} detail` });
    const recs = ['cpu', 'clients', 'cpu'].map((k, rep) => ({
      ...fixtureRecord('figure-13', p, rep, { throughputTxnPerSec: 100, latencyMeanMs: 10 }),
      bottleneck: bn(k),
      load: { closedLoopTxns: 4800 },
    }));
    expect(aggregate(recs)[0]).toMatchObject({ bottleneck: { kind: 'cpu', count: 2, of: 3, detail: 'cpu detail' }, loadTxns: [4800] });
  });

  it('warm-up: each repetition says the warm-up it used, how it ended, and its window (issue 11 item 2)', () => {
    const p: SweepPoint = { protocol: 'poe', replicas: 4, crashed: 0, batch: 100 };
    const steady = (warmupSec: number, warmupEndedBy: string, windowSec: number) => ({
      settled: warmupEndedBy === 'settled',
      trendPercent: 0,
      warmupSettled: warmupEndedBy === 'settled',
      warmupSec,
      warmupEndedBy,
      warmupCapSec: 8,
      windowSec,
      plannedWindowSec: 6,
      windowExtended: windowSec > 6,
      windowOverLatency: 50,
      windowLongEnough: true,
      flags: [],
    });
    const recs = [steady(3.2, 'settled', 6), steady(8, 'cap', 18)].map((st, rep) => ({
      ...fixtureRecord('figure-13', p, rep, { throughputTxnPerSec: 100, latencyMeanMs: 10 }),
      steady: st,
    }));
    expect(aggregate(recs)[0]!.warmup).toBe('warm-up 3.2 s (settled), window 6 s | warm-up 8.0 s (cap 8 s, not settled), window 18 s (extended from 6 s)');
  });
});
