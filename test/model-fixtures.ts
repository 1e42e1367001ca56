/**
 * Cost tables and calibration files for tests of the cost model (issue 12), built in one place
 * so that the tests state only their numbers: `fixtureCosts` (every cost 0 unless given) and
 * `fixtureCalibrationFile` (a file around such a table, every cost with the same source).
 * `fixtureCalibration` is the file whose costs are of the order `poe-bench calibrate --no-fit`
 * measures on a 2-core EPYC, so that tests do not spend 10 s micro-benchmarking; optionally
 * with a stored validation, as `model validate` writes it.
 */
import { CALIBRATION_VERSION, type CalibrationFile, type CostSource, machineInfo } from '../infra/sim/calibration.js';
import type { OpCosts } from '../infra/sim/cost-model.js';
import type { ValidationSummary } from '../experiments/validate.js';

const ZERO_LINEAR = { fixedUs: 0, perByteUs: 0 };

/** A cost table with every cost 0 except those in `over` (a test charges what it names). */
export function fixtureCosts(over: Partial<OpCosts> = {}): OpCosts {
  return {
    ed25519Sign: ZERO_LINEAR,
    ed25519Verify: ZERO_LINEAR,
    hmac: ZERO_LINEAR,
    sha256: ZERO_LINEAR,
    encode: ZERO_LINEAR,
    decode: ZERO_LINEAR,
    executeTxnUs: 0,
    perMessageInUs: 0,
    perFrameOutUs: 0,
    perStepUs: 0,
    ioPerByteUs: 0,
    ...over,
  };
}

/**
 * The per-operation costs a calibration of this machine measured (`poe-bench calibrate`, a 2-core
 * AMD EPYC, 2026-12-04), unrounded, for tests that need realistic proportions between the steps
 * of a run (and, in infra/sim/hotstuff-owners.test.ts, the exact timings that once stalled).
 */
export const MACHINE_COSTS_2026_12_04: OpCosts = fixtureCosts({
  ed25519Sign: { fixedUs: 21.272730263157893, perByteUs: 0.0016708072474533112 },
  ed25519Verify: { fixedUs: 60.91476315789473, perByteUs: 0.0007674747260379683 },
  hmac: { fixedUs: 2.3165031534291147, perByteUs: 0.0003765643825632363 },
  sha256: { fixedUs: 1.7475943348288916, perByteUs: 0.00031928277746127656 },
  encode: { fixedUs: 0.22961265532094677, perByteUs: 0.00024203911803165928 },
  decode: { fixedUs: 0.16594499711433236, perByteUs: 0.00017213075550229917 },
  executeTxnUs: 0.199475,
  ioPerByteUs: 0.0033838068180208057,
  perReadUs: 114.51810020159878,
});

export interface FixtureFileOptions {
  /** Every cost's source. */
  readonly source: CostSource;
  readonly date: string;
  readonly validation?: ValidationSummary & { readonly date: string };
}

/** A calibration file of this machine holding `costs`, each with `options.source`, fitted to no runs. */
export function fixtureCalibrationFile(costs: OpCosts, options: FixtureFileOptions): CalibrationFile {
  // Every key of an OpCosts, the required ones included, gets a source.
  const sources = Object.fromEntries(Object.keys(costs).map((k) => [k, options.source])) as CalibrationFile['sources'];
  return {
    version: CALIBRATION_VERSION,
    machine: machineInfo(),
    date: options.date,
    costs,
    sources,
    fitPoints: [],
    ...(options.validation === undefined ? {} : { validation: options.validation }),
  };
}

export function fixtureCalibration(validation?: ValidationSummary & { readonly date: string }): CalibrationFile {
  const costs = fixtureCosts({
    ed25519Sign: { fixedUs: 21.5, perByteUs: 0.0017 },
    ed25519Verify: { fixedUs: 62.3, perByteUs: 0.0007 },
    hmac: { fixedUs: 2.5, perByteUs: 0.0004 },
    sha256: { fixedUs: 1.9, perByteUs: 0.0005 },
    encode: { fixedUs: 0.4, perByteUs: 0.0003 },
    decode: { fixedUs: 0, perByteUs: 0.0045 },
    executeTxnUs: 0.39,
    perMessageInUs: 5,
    perFrameOutUs: 5,
    perStepUs: 1,
    ioPerByteUs: 0.001,
  });
  return fixtureCalibrationFile(costs, {
    source: { source: 'test fixture (test/model-fixtures.ts), of the order calibrate --no-fit measures' },
    date: '2026-12-04T19:00:00.000Z',
    ...(validation === undefined ? {} : { validation }),
  });
}
