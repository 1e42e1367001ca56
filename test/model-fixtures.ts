/**
 * A calibration file for tests of the cost model (issue 12): costs of the order `poe-bench
 * calibrate --no-fit` measures on a 2-core EPYC, so that tests do not spend 10 s
 * micro-benchmarking. Optionally with a stored validation, as `model validate` writes it.
 */
import { CALIBRATION_VERSION, type CalibrationFile, machineInfo } from '../infra/sim/calibration.js';
import type { ValidationSummary } from '../experiments/validate.js';

export function fixtureCalibration(validation?: ValidationSummary & { readonly date: string }): CalibrationFile {
  const source = { source: 'test fixture (test/model-fixtures.ts), of the order calibrate --no-fit measures' };
  return {
    version: CALIBRATION_VERSION,
    machine: machineInfo(),
    date: '2026-12-04T19:00:00.000Z',
    costs: {
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
    },
    sources: {
      ed25519Sign: source,
      ed25519Verify: source,
      hmac: source,
      sha256: source,
      encode: source,
      decode: source,
      executeTxnUs: source,
      perMessageInUs: source,
      perFrameOutUs: source,
      perStepUs: source,
      ioPerByteUs: source,
    },
    fitPoints: [],
    ...(validation === undefined ? {} : { validation }),
  };
}
