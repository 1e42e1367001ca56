/**
 * zod schemas for numeric command-line flags, shared by every command (run, sim, figure), so a
 * bad value gets the same message whichever command it was given to.
 */
import { z } from 'zod';

/** An optional integer flag in [min, max]. */
export const integerFlag = (min: number, max = Number.MAX_SAFE_INTEGER) =>
  z.coerce
    .number({ invalid_type_error: 'must be a number' })
    .refine((x) => Number.isInteger(x), 'must be an integer')
    .refine((x) => x >= min && x <= max, max === Number.MAX_SAFE_INTEGER ? `must be >= ${min}` : `must be in [${min}, ${max}]`)
    .optional();

/** An optional finite number > 0. */
export const positiveFlag = () =>
  z.coerce
    .number({ invalid_type_error: 'must be a number' })
    .refine((x) => Number.isFinite(x) && x > 0, 'must be a number > 0')
    .optional();

/** An optional finite number >= 0. */
export const nonNegativeFlag = () =>
  z.coerce
    .number({ invalid_type_error: 'must be a number' })
    .refine((x) => Number.isFinite(x) && x >= 0, 'must be a number >= 0')
    .optional();

export type ExtraValue = string | number | boolean;

/** `--extra mode=chained`: numbers and booleans are typed, anything else stays a string. */
export function parseExtra(s: string): [string, ExtraValue] {
  const m = /^([A-Za-z_][\w.-]*)=(.*)$/.exec(s);
  if (!m) throw new RangeError(`'${s}' is not key=value`);
  const raw = m[2]!;
  const value: ExtraValue = raw === 'true' ? true : raw === 'false' ? false : raw !== '' && Number.isFinite(Number(raw)) ? Number(raw) : raw;
  return [m[1]!, value];
}
