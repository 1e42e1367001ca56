/**
 * The one place the model's commands (`figure --backend model`, `run --backend model`,
 * `model ...`) resolve --testbed and --calibration: their defaults (as infra/params.ts shows
 * them in --help), the check that the calibration file exists (with the one-line hint to run
 * `poe-bench calibrate`), and the testbed as modelled (local takes the calibration's cores).
 */
import { existsSync } from 'node:fs';
import { readCalibration, type CalibrationFile } from '../infra/sim/calibration.js';
import { loadTestbed, type Testbed } from '../infra/sim/testbed.js';

export const DEFAULT_CALIBRATION = 'results/calibration.json';
/** The paper's testbed (poe-paper.txt line 411): what a model run predicts unless told otherwise. */
export const DEFAULT_TESTBED = 'c5.2xlarge';

export interface ModelSetupOk {
  readonly ok: true;
  /** --testbed and --calibration as given (or their defaults): recorded with every modelled result. */
  readonly testbedName: string;
  readonly calibrationPath: string;
  readonly testbed: Testbed;
  readonly calibration: CalibrationFile;
}

export interface ModelSetupError {
  readonly ok: false;
  /** One line saying what is wrong, naming the flag. */
  readonly message: string;
  /** No calibration file at all (the user has to run `poe-bench calibrate`), rather than a bad one. */
  readonly missing: boolean;
}

/** The calibration file of a model command, or what is wrong with it (missing: run `poe-bench calibrate`). */
export function resolveCalibration(calibrationPath: string): { readonly ok: true; readonly calibration: CalibrationFile } | ModelSetupError {
  if (!existsSync(calibrationPath)) {
    return {
      ok: false,
      missing: true,
      message: `no calibration file ${calibrationPath}: run \`poe-bench calibrate\` first (or give --calibration FILE)`,
    };
  }
  try {
    return { ok: true, calibration: readCalibration(calibrationPath) };
  } catch (err) {
    return { ok: false, missing: false, message: `--calibration: ${(err as Error).message}` };
  }
}

/** The testbed and calibration of a model command, or what is wrong with its flags. */
export function resolveModelSetup(
  flags: { readonly testbed?: string; readonly calibration?: string },
  defaultTestbed = DEFAULT_TESTBED,
): ModelSetupOk | ModelSetupError {
  const testbedName = flags.testbed ?? defaultTestbed;
  const calibrationPath = flags.calibration ?? DEFAULT_CALIBRATION;
  const read = resolveCalibration(calibrationPath);
  if (!read.ok) return read;
  const { calibration } = read;
  try {
    return { ok: true, testbedName, calibrationPath, testbed: loadTestbed(testbedName), calibration };
  } catch (err) {
    return { ok: false, missing: false, message: `--testbed: ${(err as Error).message}` };
  }
}
