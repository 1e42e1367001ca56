/**
 * The table of run parameters (infra/param-table.ts) as commands use it: everything the table
 * module gives (defaults, flag names, replay lines), and what needs zod or commander besides:
 *
 *   - the zod schema of each command's flags (`paramSchema`), so a bad value gets the same
 *     message, naming its flag, whichever command it was given to (`describeParamIssues`);
 *   - the commander options of each command (`defineParams`), with hidden old spellings
 *     (`aliases`) so old replay lines and scripts keep working.
 *
 * The table itself loads neither library: the simulator reads its defaults from it and parses no
 * flags (issue 12 item 6, start-up).
 */
import { type Command, Option } from 'commander';
import { z } from 'zod';
import { defaultOf, paramHelp, paramOf, paramsFor, perCommand, flagName, type ParamCommand, type ParamDef, type SchemaKit } from './param-table.js';
import * as schemas from './param-schemas.js';

export * from './param-table.js';
export { commaList, integer, nonNegative, parsedList, positive, probability } from './param-schemas.js';

/** What the table's schemas are built with. */
const KIT: SchemaKit = { ...schemas, z };

/** The zod schema of one parameter's text value on `command`. */
export function paramSchemaOf(p: ParamDef, command: ParamCommand): z.ZodTypeAny {
  const s = perCommand(p.schema, command, (x) => typeof x !== 'function');
  return s ? s(KIT) : z.unknown();
}

/** The flags of `command` as one zod object (each flag optional; defaults come from `paramDefault`). */
export function paramSchema(command: ParamCommand): z.ZodObject<Record<string, z.ZodTypeAny>> {
  return z.object(Object.fromEntries(paramsFor(command).map((p) => [p.key, paramSchemaOf(p, command)])));
}

/** Each zod issue as `--flag: message`, one per line. */
export function describeParamIssues(command: ParamCommand, error: z.ZodError): string {
  return error.issues.map((i) => `${flagName(command, String(i.path[0] ?? ''))}: ${i.message}`).join('\n');
}

const collect = (value: string, previous: string[] | undefined): string[] => [...(previous ?? []), value];

function defaultText(p: ParamDef, command: ParamCommand): string | undefined {
  const t = perCommand(p.defaultText, command, (x) => typeof x !== 'string');
  if (t !== undefined) return t;
  if (p.type === 'boolean') return undefined;
  const d = defaultOf(p, command);
  return d === undefined ? undefined : String(d);
}

/**
 * Declares the flags of `command` in `keys`, in that order (all of the command's, in table
 * order, when omitted) on `cmd`,
 * with their old spellings as hidden aliases. Values stay text; `canonicalFlags` folds the
 * aliases in, and `paramSchema` validates.
 */
export function defineParams(cmd: Command, command: ParamCommand, keys?: readonly string[]): Command {
  const chosen = keys === undefined ? paramsFor(command) : keys.map((k) => paramOf(command, k) ?? missing(command, k));
  for (const p of chosen) {
    const d = defaultText(p, command);
    const help = `${paramHelp(p, command)}${d === undefined ? '' : ` (default ${d})`}`;
    const value = perCommand(p.value, command, (v) => typeof v !== 'string');
    const option = new Option(value ? `${p.flag} ${value}` : p.flag, help);
    if (p.repeatable) option.argParser(collect);
    cmd.addOption(option);
    for (const alias of p.aliases ?? []) {
      const hidden = new Option(value ? `${alias} ${value}` : alias).hideHelp();
      if (p.repeatable) hidden.argParser(collect);
      cmd.addOption(hidden);
    }
  }
  return cmd;
}

function missing(command: ParamCommand, key: string): never {
  throw new RangeError(`no parameter ${key} on ${command} (infra/params.ts)`);
}
