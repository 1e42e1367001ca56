/**
 * The value schemas of the table of run parameters (infra/param-table.ts, parsed through
 * infra/params.ts): a flag's text (from commander) or a number (from code) to its value, each
 * failure a message the command prefixes with the flag, so a bad value reads the same whichever
 * command it was given to.
 */
import { z } from 'zod';

export const num = () => z.coerce.number({ invalid_type_error: 'must be a number' });

/** An optional integer in [min, max]. */
export const integer = (min: number, max = Number.MAX_SAFE_INTEGER) =>
  num()
    .refine((x) => Number.isInteger(x), 'must be an integer')
    .refine((x) => x >= min && x <= max, max === Number.MAX_SAFE_INTEGER ? `must be >= ${min}` : `must be in [${min}, ${max}]`)
    .optional();

/** An optional finite number > 0. */
export const positive = () =>
  num()
    .refine((x) => Number.isFinite(x) && x > 0, 'must be a number > 0')
    .optional();

/** An optional finite number >= 0. */
export const nonNegative = () =>
  num()
    .refine((x) => Number.isFinite(x) && x >= 0, 'must be a number >= 0')
    .optional();

export const probability = () =>
  num()
    .refine((x) => x >= 0 && x <= 1, 'must be a probability in [0, 1]')
    .optional();

/** A repeatable flag whose every value goes through `parse`; a parse error names the flag. */
export const parsedList = <T>(parse: (s: string) => T) =>
  z
    .array(z.string())
    .optional()
    .transform((xs, ctx) => {
      const out: T[] = [];
      for (const x of xs ?? []) {
        try {
          out.push(parse(x));
        } catch (err) {
          ctx.addIssue({ code: z.ZodIssueCode.custom, message: (err as Error).message });
          return z.NEVER;
        }
      }
      return out;
    });

/** A comma-separated list whose every item goes through `parse` (figure's filters). */
export const commaList = <T>(parse: (s: string) => T) =>
  z
    .string()
    .transform((text, ctx) => {
      const items = text
        .split(',')
        .map((s) => s.trim())
        .filter((s) => s !== '');
      if (items.length === 0) {
        ctx.addIssue({ code: z.ZodIssueCode.custom, message: 'give a comma-separated list' });
        return z.NEVER;
      }
      const out: T[] = [];
      for (const s of items) {
        try {
          out.push(parse(s));
        } catch (err) {
          ctx.addIssue({ code: z.ZodIssueCode.custom, message: (err as Error).message });
          return z.NEVER;
        }
      }
      return out;
    })
    .optional();
