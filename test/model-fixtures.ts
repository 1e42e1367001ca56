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
