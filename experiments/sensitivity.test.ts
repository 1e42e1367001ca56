/**
 * The sensitivity's reading of its runs (issue 12 item 5): which change moves a point most
 * ("decided by") and which change to more of a resource raises it most ("relieved by"), from
 * stand-in results, so that the rule itself is checked apart from the model's numbers.
 */
import { describe, expect, it } from 'vitest';
import { c5Testbed } from '../infra/sim/testbed.js';
import type { ModelPointInput, ModelPointResult } from './model-point.js';
import { GAIN_THRESHOLD_PERCENT, sensitivityRows, sensitivityTasks, sensitivityVariants } from './sensitivity.js';

const testbed = c5Testbed(false);
const input = { protocol: 'poe', replicas: 16, testbed } as unknown as ModelPointInput;
const result = (txnPerSec: number, valid = true): ModelPointResult =>
  ({ txnPerSec, valid, latencyMs: { mean: 10, p50: 10, p99: 10, max: 10 } }) as ModelPointResult;

describe('sensitivity', () => {
  it('varies one resource at a time around the testbed, and says which are more of it', () => {
    const v = sensitivityVariants(testbed);
    expect(v.map((x) => [x.label, x.more])).toEqual([
      // c5.2xlarge runs this code's one replica thread: a pipeline on one core is no more than it.
      ['pipeline, 1 core', false],
      ['pipeline, 2 cores', true],
      ['pipeline, 4 cores', true],
      ['pipeline, 8 cores', true],
      ['bandwidth /10', false],
      ['bandwidth x10', true],
      ['round trip /10', true],
      ['round trip x10', false],
      ['CPU speed x2', true],
    ]);
    expect(v[5]!.testbed.replicaNicBitsPerSec).toBe(testbed.replicaNicBitsPerSec! * 10);
    expect(v[7]!.testbed.delay.baseMs).toBe(testbed.delay.baseMs * 10);
    expect(v[3]!.testbed.replica).toMatchObject({ cores: 8, pipeline: { inputLanes: 3, outputLanes: 2 } });
    // Everything else stays as the testbed has it.
    expect(v[5]!.testbed.delay).toEqual(testbed.delay);
    expect(v[7]!.testbed.replicaNicBitsPerSec).toBe(testbed.replicaNicBitsPerSec);
    expect(
      sensitivityVariants(c5Testbed(true))
        .map((x) => x.more)
        .slice(0, 4),
    ).toEqual([false, false, false, false]);
  });

  it('decides by the largest change either way, and relieves by the largest gain from more of a resource', () => {
    const tasks = sensitivityTasks([{ protocol: 'poe', replicas: 16, input }]);
    expect(tasks.map((t) => t.label)).toEqual(['base', ...sensitivityVariants(testbed).map((v) => v.label)]);
    // Near the bandwidth limit: a tenth of it costs 90%, ten times it gains nothing; two cores gain 25%.
    const byLabel: Record<string, number> = {
      base: 100_000,
      'pipeline, 1 core': 100_000,
      'pipeline, 2 cores': 125_000,
      'pipeline, 4 cores': 124_000,
      'pipeline, 8 cores': 124_000,
      'bandwidth /10': 10_000,
      'bandwidth x10': 101_000,
      'round trip /10': 102_000,
      'round trip x10': 60_000,
      'CPU speed x2': 124_000,
    };
    const [row] = sensitivityRows(
      tasks,
      tasks.map((t) => result(byLabel[t.label]!)),
    );
    expect(row).toMatchObject({
      protocol: 'poe',
      replicas: 16,
      baseTxnPerSec: 100_000,
      decidedBy: 'bandwidth (bandwidth /10)',
      decidedByResource: 'bandwidth',
      decidedByVariant: 'bandwidth /10',
      swingPercent: 90,
      relievedBy: 'replica threads/cores (pipeline, 2 cores)',
      gainPercent: 25,
      invalid: [],
    });
  });

  it('relieves by nothing when no more-of variant gains the threshold, and leaves invalid runs out', () => {
    const tasks = sensitivityTasks([{ protocol: 'poe', replicas: 16, input }]);
    const gainJustBelow = 100_000 * (1 + (GAIN_THRESHOLD_PERCENT - 0.1) / 100);
    const [row] = sensitivityRows(
      tasks,
      tasks.map((t) => (t.label === 'round trip x10' ? result(500_000, false) : result(t.label === 'bandwidth x10' ? gainJustBelow : 100_000))),
    );
    expect(row!.relievedBy).toBe('none');
    expect(row!.invalid).toEqual(['round trip x10']);
    // The invalid run's 5x is no change: the largest valid one is the bandwidth's.
    expect(row!.decidedByVariant).toBe('bandwidth x10');
    expect(row!.variants['round trip x10']).toBe(0);
  });
});
