/**
 * The one table of run parameters (issue 9, item 3). Every command-line parameter of `run`,
 * `sim` and `figure` (and the names of `infra aws`'s) is one entry here: its name, its flag,
 * its type and unit, its default on each command, its help text, and which commands take it.
 * From the table come:
 *
 *   - the commander options of each command (`defineParams`), with hidden old spellings
 *     (`aliases`) so old replay lines and scripts keep working;
 *   - the zod schema of each command's flags (`paramSchema`), so a bad value gets the same
 *     message, naming its flag, whichever command it was given to (`describeParamIssues`);
 *     these two in infra/params.ts, which loads commander and zod (this module loads neither,
 *     so that the simulator, which reads its defaults here, starts without them);
 *   - the defaults (`paramDefault`), and the `replay:` lines of `run`, `sim` and `figure`
 *     (`replayArgs`): the flags that differ from the defaults, in table order;
 *   - the flag names in error messages (`flagName`), for the aws options too.
 *
 * The simulator and the real runs use the same names: RunSpec (infra/run/spec.ts) and
 * SimConfig (infra/sim/options.ts) name a parameter by its `key` here (RunSpec keeps `warmupS`,
 * `durationS` and `openLoopBatchesPerSec` for the flags `--warmup`, `--duration`,
 * `--open-loop`, as recorded in every runs.jsonl line). Where a default differs between
 * commands, `defaults` says so per command and `defaultWhy` says why.
 *
 * Adding a parameter is one entry in PARAMS: key, flag, value placeholder (none for a switch),
 * type, unit, help, commands, schema, default (or per-command defaults and why they differ).
 * Every command it names then shows it in its help, validates it and names it in errors; the
 * code that uses the value reads it from the parsed flags under `key`. If RunSpec or SimConfig
 * carries it, add the field there and one line to the flags-from-config function
 * (`runFlagValues` in infra/run/spec.ts, `simFlagValues` in infra/sim/options.ts) so replay lines
 * carry it; test/params.test.ts checks that flags stay unique, defaults parse under their own
 * schema, and replay lines round-trip. Renaming a flag: keep the old spelling in `aliases`.
 */
import type { ZodTypeAny, z } from 'zod';
import { KEY_GENERATOR_KINDS, type KeyGeneratorKind } from '../client/generators.js';
import { hasProtocol, registeredProtocols, UnknownProtocolError } from '../replica/protocols.js';
import { DEFAULT_REPLICA_OPTIONS } from '../replica/types.js';
import { DEFAULT_NETWORK } from './sim/network.js';
import { NOMINAL_WARMUP_SEC, WARMUP_CAP_SEC } from './run/steady.js';

/**
 * What a parameter's schema is built with: zod and the value schemas of infra/param-schemas.ts,
 * handed in by infra/params.ts when a command parses its flags. The table holds each schema as a
 * function of these, so that this module (which the simulator reads its defaults from) loads no
 * zod: about 10 ms of a simulation's start-up (issue 12 item 6).
 */
export type SchemaKit = typeof import('./param-schemas.js') & { readonly z: typeof z };

/** A parameter's schema, built when asked (paramSchemaOf in infra/params.ts). */
export type LazySchema = (kit: SchemaKit) => ZodTypeAny;

export type ExtraValue = string | number | boolean;

/** `--extra mode=chained`: numbers and booleans are typed, anything else stays a string. */
export function parseExtra(s: string): [string, ExtraValue] {
  const m = /^([A-Za-z_][\w.-]*)=(.*)$/.exec(s);
  if (!m) throw new RangeError(`'${s}' is not key=value`);
  const raw = m[2]!;
  const value: ExtraValue = raw === 'true' ? true : raw === 'false' ? false : raw !== '' && Number.isFinite(Number(raw)) ? Number(raw) : raw;
  return [m[1]!, value];
}

/** An integer >= min as an item of a comma list. */
const intItem =
  (min: number) =>
  (s: string): number => {
    const v = Number(s);
    if (!Number.isInteger(v) || v < min) throw new RangeError(`must be integers >= ${min}, got '${s}'`);
    return v;
  };

// The value schemas of param-schemas.ts, as the table writes them, each built when asked.
const integer =
  (min: number, max?: number): LazySchema =>
  (k) =>
    k.integer(min, max);
const positive = (): LazySchema => (k) => k.positive();
const nonNegative = (): LazySchema => (k) => k.nonNegative();
const probability = (): LazySchema => (k) => k.probability();
const parsedList =
  <T>(parse: (s: string) => T): LazySchema =>
  (k) =>
    k.parsedList(parse);
const commaList =
  <T>(parse: (s: string) => T): LazySchema =>
  (k) =>
    k.commaList(parse);

/** The commands that take parameters from this table. */
export type ParamCommand = 'run' | 'sim' | 'figure' | 'aws';

/** The backends a single run places processes with (infra/run/placement.ts). */
export const RUN_BACKENDS = ['local', 'netns', 'docker', 'ssh'] as const;

/**
 * `run --backend model` (issue 12 item 3): no processes; the calibrated cost model predicts the
 * run for --testbed (harness/run-command.ts). Not a placement backend: RunSpec never holds it.
 */
export const MODEL_BACKEND = 'model';

type PerCommand<T> = Partial<Record<ParamCommand, T>>;

export interface ParamDef {
  /** The name: the commander attribute, the flags-object key, and the config field. */
  readonly key: string;
  readonly flag: string;
  /** The value placeholder, e.g. `<ms>` (per command where it differs); absent for a switch. */
  readonly value?: string | PerCommand<string>;
  readonly type: 'integer' | 'number' | 'string' | 'boolean' | 'list';
  readonly unit?: string;
  /** Help text; per command where the meaning differs. */
  readonly help: string | PerCommand<string>;
  readonly commands: readonly ParamCommand[];
  /** The flag's text value to its value; undefined stays undefined. Per command where it differs. */
  readonly schema?: LazySchema | PerCommand<LazySchema>;
  /** The default as a value (not text), the same on every command, or per command. */
  readonly default?: unknown;
  readonly defaults?: PerCommand<unknown>;
  /** Why the defaults differ between commands. */
  readonly defaultWhy?: string;
  /** The help says this instead of the default's value (e.g. a computed default). */
  readonly defaultText?: string | PerCommand<string>;
  /** Given more than once, it collects into a list. */
  readonly repeatable?: boolean;
  /** Old spellings, still accepted (hidden from the help) so old replay lines and scripts work. */
  readonly aliases?: readonly string[];
  /** Printed in every replay line, even at its default. */
  readonly replayAlways?: boolean;
  /** The value as flag text, for replay lines (default: String). */
  readonly format?: (value: never) => string;
}

const protocolSchema: LazySchema = ({ z }) =>
  z
    .string({ required_error: `is required (one of: ${registeredProtocols().join(', ') || 'none registered'})` })
    .refine(hasProtocol, (p) => ({ message: new UnknownProtocolError(p).message }));

/**
 * The node/V8 flags every replica and client process of a run starts with, as `--node-flags`
 * takes them: flag names without their dashes, comma-separated, or `none` (issue 10 item 4). A
 * young generation of 32 MB per semi-space instead of V8's default (it starts at 1 MB): the
 * objects a batch's messages make die young then, and scavenges are 3-4x rarer (--trace-gc).
 * In interleaved `npm run bench` runs (ABBA, one build, the 2-core machine at load 19-38 from
 * other work), CPU per accepted batch over all processes was 6.0% and 6.8% lower with it for
 * PoE and 4.9% and 2.8% for PBFT (two sets of 6 and 4 runs per arm). The main thread's CPU
 * profile shows no smaller GC share; presumably the saving is in V8's parallel scavenger
 * threads, which --cpu-prof does not sample. Recorded in every run spec, so every result says
 * which flags ran.
 *
 * And an old generation that starts at 64 MB: a replica's live heap is about 8 MB, and on a
 * heap that small V8 started a full mark-compact about every 0.4-0.8 s of a PoE run at n = 4
 * (21 in 16 s on one replica, --trace-gc; 4 with this flag), each marking the whole heap on
 * the main thread and its helpers. In `npm run bench` runs side by side (one build, perf
 * sampling every process, the machine at load 11-13), the samples in V8's collector per
 * Ed25519 sample fell from 0.23 to 0.07 and CPU per accepted batch by 7% (PoE, 2 runs per
 * arm, ABBA).
 */
export const NODE_FLAGS_DEFAULT = 'max-semi-space-size=32,initial-old-space-size=64';

const NODE_FLAG = /^[a-z][a-z0-9_-]*(=[A-Za-z0-9._:/-]+)?$/;

/** `--node-flags` text as the flags for node's command line: 'a=1,b' -> ['--a=1', '--b']; 'none' -> []. */
export function parseNodeFlags(text: string): string[] {
  if (text.trim() === 'none') return [];
  return text
    .split(',')
    .map((f) => f.trim())
    .filter((f) => f !== '')
    .map((f) => `--${f}`);
}

/** Node flags as `--node-flags` text (the inverse of parseNodeFlags). */
export function formatNodeFlags(flags: readonly string[]): string {
  return flags.length === 0 ? 'none' : flags.map((f) => f.replace(/^--/, '')).join(',');
}

const nodeFlagsSchema: LazySchema = ({ z }) =>
  z
    .string()
    .refine(
      (t) =>
        t.trim() === 'none' ||
        t
          .split(',')
          .map((f) => f.trim())
          .every((f) => NODE_FLAG.test(f)),
      (t) => ({ message: `'${t}' is not node flags without their dashes, comma-separated (e.g. max-semi-space-size=32,trace-gc), or none` }),
    )
    .optional();

const generatorSchema: LazySchema = ({ z }) =>
  z
    .string()
    .refine(
      (g) => KEY_GENERATOR_KINDS.includes(g as KeyGeneratorKind),
      (g) => ({ message: `unknown generator '${g}' (one of: ${KEY_GENERATOR_KINDS.join(', ')})` }),
    )
    .optional();

const text =
  (): LazySchema =>
  ({ z }) =>
    z.string().optional();
const flag =
  (): LazySchema =>
  ({ z }) =>
    z.boolean().optional();

const formatExtra = (e: [string, ExtraValue]): string => `${e[0]}=${String(e[1])}`;

/** A flag of where processes run that `run` takes and `figure` passes on to its runs, as text (infra/run/placement.ts reads it). */
const placementText = (key: string, flag: string, value: string, help: string, more: Partial<ParamDef> = {}): ParamDef => ({
  key,
  flag,
  value,
  type: 'string',
  help,
  commands: ['run', 'figure'],
  schema: text(),
  ...more,
});

/** An EC2 flag of `infra aws` that `figure --backend aws` passes on as text (infra/aws/options.ts validates it); figure's help says "aws: ". */
const ec2 = (key: string, flag: string, value: string, help: string, more: Partial<ParamDef> = {}): ParamDef => ({
  key,
  flag,
  value,
  type: 'string',
  help: `aws: ${help}`,
  commands: ['figure', 'aws'],
  schema: text(),
  ...more,
});

// ---------------------------------------------------------------------------------------
// The table

const SIM_SMALL_TABLE =
  "the simulator's small table (1000 records of 16 bytes) keeps thousands of simulated runs fast; a real run uses YCSB's table as the paper does (§5)";

export const PARAMS: readonly ParamDef[] = [
  // What runs
  {
    key: 'protocol',
    flag: '--protocol',
    value: '<name>',
    type: 'string',
    help: `protocol: ${registeredProtocols().join(' | ') || 'none registered'}`,
    commands: ['run', 'sim'],
    schema: protocolSchema,
    replayAlways: true,
  },
  {
    key: 'replicas',
    flag: '--replicas',
    value: '<n>',
    type: 'integer',
    help: 'replicas, n >= 4 (n = 3f + 1)',
    commands: ['run', 'sim'],
    schema: {
      run: ({ num }) =>
        num()
          .refine((x) => Number.isInteger(x), 'must be an integer')
          .refine(
            (x) => x >= 4,
            (x) => ({ message: `must be >= 4: BFT needs n = 3f + 1 with f >= 1 (got ${x})` }),
          )
          .refine((x) => x <= 256, 'must be <= 256 on the local backend')
          .optional(),
      sim: integer(4, 1024),
    },
    default: 4,
    replayAlways: true,
  },
  {
    key: 'batches',
    flag: '--batches',
    value: '<m>',
    type: 'integer',
    unit: 'batches',
    help: 'batches the clients issue in total',
    commands: ['sim'],
    schema: integer(1),
    default: 1000,
    replayAlways: true,
  },
  {
    key: 'seed',
    flag: '--seed',
    value: '<s>',
    type: 'integer',
    help: {
      run: 'seed of the key generators (client process o uses seed + o) and of the key material',
      sim: 'the seed every random choice derives from',
      figure: 'base seed: repetition r uses seed + r',
    },
    commands: ['run', 'sim', 'figure'],
    schema: integer(0, 0xffff_ffff),
    default: 1,
    replayAlways: true,
  },
  {
    key: 'seeds',
    flag: '--seeds',
    value: '<count>',
    type: 'integer',
    help: 'run this many seeds: s, s+1, ...',
    commands: ['sim'],
    schema: integer(1, 100_000),
    default: 1,
  },
  // Faults
  {
    key: 'crashed',
    flag: '--crashed',
    value: '<k>',
    type: 'integer',
    help: 'backups that never take part: the highest ids, never the view-0 primary (at most f unless --force)',
    commands: ['run', 'sim'],
    schema: integer(0),
    default: 0,
  },
  {
    key: 'force',
    flag: '--force',
    type: 'boolean',
    help: 'allow --crashed, --faults (and sim: --crash) above what the protocol tolerates',
    commands: ['run', 'sim'],
    schema: flag(),
  },
  {
    key: 'faults',
    flag: '--faults',
    value: '<replica=fault>',
    type: 'list',
    help: 'a replica that misbehaves, repeatable: REPLICA (an id; run: also primary, the view-0 primary) = silent | stopAfter:K (batches executed) | crashAt:MS | slow:MS | inTheDark:IDS | equivocate; several on one replica compose in order',
    commands: ['run', 'sim'],
    schema: ({ z }) => z.array(z.string()).optional(),
    repeatable: true,
    aliases: ['--fault'],
  },
  // Workload
  {
    key: 'batch',
    flag: '--batch',
    value: '<b>',
    type: 'integer',
    unit: 'writes',
    help: 'writes per client batch',
    commands: ['run', 'sim'],
    schema: integer(1, 100_000),
    defaults: { run: 100, sim: 10 },
    defaultWhy:
      'the paper batches 100 writes (§5); the simulator uses 10 so that its many runs stay fast (virtual time does not charge for batch size, so the protocols behave the same)',
  },
  {
    key: 'clients',
    flag: '--clients',
    value: '<c>',
    type: 'integer',
    help: {
      run: 'logical closed-loop clients in total',
      figure: 'batch-level closed loop: logical clients per run, one batch outstanding each, at least one per replica; given, no saturation probe',
      sim: 'logical clients per client process (one batch outstanding each)',
    },
    commands: ['run', 'sim', 'figure'],
    schema: integer(1, 1_000_000),
    defaults: { run: 24, figure: 24, sim: 8 },
    defaultWhy:
      "a real run needs enough clients to keep the replicas busy; the simulator's virtual network needs fewer. On sim, --clients counts per client process",
  },
  {
    key: 'loadTxns',
    flag: '--load-txns',
    value: '<t>',
    type: 'integer',
    unit: 'transactions',
    help: {
      run: 'closed loop counted as the paper counts it: this many transactions outstanding in all, batched into requests of --batch (instead of --clients)',
      figure:
        'closed loop in transactions outstanding, the same at every batch size; given, no saturation probe (default: start at FIGURE_LOAD_TXNS, experiments/sweep.ts, and probe at double load until it gains < 5%)',
    },
    commands: ['run', 'figure'],
    schema: integer(1, 100_000_000),
  },
  {
    key: 'fixedClientTimeout',
    flag: '--fixed-client-timeout',
    type: 'boolean',
    help: 'every client request times out after exactly --client-timeout-ms (default: the timeout follows the observed latency, unless --client-timeout-ms, --faults or zyzzyva)',
    commands: ['run'],
  },
  {
    key: 'clientProcs',
    flag: '--client-procs',
    value: '<p>',
    type: 'integer',
    help: 'client processes (client machines) the logical clients are spread over',
    commands: ['run', 'sim'],
    schema: { run: integer(1, 64), sim: integer(1, 1000) },
    default: 1,
    aliases: ['--client-machines'],
  },
  {
    key: 'warmup',
    flag: '--warmup',
    value: '<s>',
    type: 'number',
    unit: 's',
    commands: ['run', 'figure'],
    schema: nonNegative(),
    defaults: { run: WARMUP_CAP_SEC },
    defaultText: { run: `${WARMUP_CAP_SEC}; --backend model: ${NOMINAL_WARMUP_SEC}`, figure: "the profile's" },
    help: {
      run: "warm-up seconds, not measured: a cap; the window opens as soon as the clients' 1-second throughput has settled and the processes' memory has stopped growing (infra/run/steady.ts), else at the cap (see --fixed-warmup); --backend model: the share of its batches left out, --warmup over --warmup + --duration",
      figure:
        "warm-up seconds, not measured: a cap; each run's window opens as soon as its 1-second throughput has settled and its processes' memory has stopped growing, else at the cap",
    },
  },
  {
    key: 'fixedWarmup',
    flag: '--fixed-warmup',
    type: 'boolean',
    help: "the warm-up lasts exactly --warmup seconds and the window exactly --duration. Without it --warmup is a cap: the window opens once throughput has settled and the processes' memory has stopped growing, and is extended up to 3x when shorter than 20 mean latencies; always fixed when --faults has a crashAt, whose time counts from the start",
    commands: ['run'],
  },
  {
    key: 'duration',
    flag: '--duration',
    value: '<s>',
    type: 'number',
    unit: 's',
    help: 'measured seconds',
    commands: ['run', 'figure'],
    schema: positive(),
    defaults: { run: 20 },
    defaultText: { figure: "the profile's" },
  },
  {
    key: 'generator',
    flag: '--generator',
    value: '<kind>',
    type: 'string',
    help: `key generator: ${KEY_GENERATOR_KINDS.join(' | ')}`,
    commands: ['run', 'sim'],
    schema: generatorSchema,
    default: 'ycsb',
    aliases: ['--keys'],
  },
  {
    key: 'records',
    flag: '--records',
    value: '<count>',
    type: 'integer',
    unit: 'records',
    help: 'YCSB table size',
    commands: ['run', 'sim'],
    schema: { run: integer(2, 2 ** 32), sim: integer(1, 100_000_000) },
    defaults: { run: DEFAULT_REPLICA_OPTIONS.records, sim: 1000 },
    defaultWhy: SIM_SMALL_TABLE,
  },
  {
    key: 'valueBytes',
    flag: '--value-bytes',
    value: '<bytes>',
    type: 'integer',
    unit: 'bytes',
    help: 'bytes per written value',
    commands: ['run', 'sim'],
    schema: integer(8, 65_536),
    defaults: { run: DEFAULT_REPLICA_OPTIONS.valueBytes, sim: 16 },
    defaultWhy: SIM_SMALL_TABLE,
  },
  {
    key: 'openLoop',
    flag: '--open-loop',
    value: '<batchesPerSec>',
    type: 'number',
    unit: 'batches/s',
    help: 'open loop at this many batches per second in total (latency from the intended send time)',
    commands: ['run'],
    schema: positive(),
  },
  // Protocol settings
  {
    key: 'clientTimeoutMs',
    flag: '--client-timeout-ms',
    value: '<ms>',
    type: 'number',
    unit: 'ms',
    help: 'client request timeout',
    commands: ['run', 'sim'],
    schema: positive(),
    defaults: { run: 2000, sim: 200 },
    defaultWhy:
      "virtual latency is a few hops of about 1.5 ms, so 200 ms leaves ample slack in the simulator while keeping runs with crashes short in virtual time (Zyzzyva's slow path waits one client timeout per batch); a real run on a loaded machine needs seconds",
  },
  {
    key: 'viewChangeTimeoutMs',
    flag: '--view-change-timeout-ms',
    value: '<ms>',
    type: 'number',
    unit: 'ms',
    help: 'replica view-change timeout',
    commands: ['run', 'sim'],
    schema: positive(),
    defaults: { run: DEFAULT_REPLICA_OPTIONS.viewChangeTimeoutMs, sim: 500 },
    defaultWhy: 'short in the simulator for the same reason as --client-timeout-ms',
  },
  {
    key: 'checkpointInterval',
    flag: '--checkpoint-interval',
    value: '<k>',
    type: 'integer',
    unit: 'sequence numbers',
    help: 'checkpoint every k sequence numbers',
    commands: ['run', 'sim'],
    schema: integer(1),
    defaults: { run: DEFAULT_REPLICA_OPTIONS.checkpointIntervalK, sim: 50 },
    defaultWhy: "small in the simulator, so that the compliance suite's runs of 1000-2000 batches cross many checkpoints",
  },
  {
    key: 'window',
    flag: '--window',
    value: '<k>',
    type: 'integer',
    unit: 'sequence numbers',
    help: 'watermark window (at least one checkpoint interval)',
    commands: ['run', 'sim'],
    schema: integer(1),
    defaults: { run: DEFAULT_REPLICA_OPTIONS.windowK, sim: 200 },
    defaultWhy: "four of the simulator's checkpoint intervals",
  },
  {
    key: 'extra',
    flag: '--extra',
    value: '<key=value>',
    type: 'list',
    help: 'protocol switch passed to replicas and clients (e.g. mode=chained); repeatable',
    commands: ['run', 'sim'],
    schema: parsedList<[string, ExtraValue]>(parseExtra),
    repeatable: true,
    format: formatExtra,
  },
  // Where processes run
  {
    key: 'backend',
    flag: '--backend',
    value: '<name>',
    type: 'string',
    help: {
      run: `where processes run: ${RUN_BACKENDS.join(' | ')} (docs/backends.md); ${MODEL_BACKEND}: no processes, a PREDICTION of the calibrated cost model for --testbed`,
      figure:
        'local: processes on this machine; netns | docker: one namespace or container per node; ssh: the hosts of --hosts; aws: fresh EC2 machines for the whole sweep, terminated at its end; sim: the deterministic simulator (virtual time, a preview); model: the calibrated cost model (predictions for --testbed)',
    },
    commands: ['run', 'figure'],
    schema: {
      run: ({ z }) =>
        z
          .string()
          .refine(
            (b) => (RUN_BACKENDS as readonly string[]).includes(b) || b === MODEL_BACKEND,
            (b) => ({ message: `unknown backend '${b}' (available: ${[...RUN_BACKENDS, MODEL_BACKEND].join(', ')})` }),
          )
          .optional(),
      figure: text(),
    },
    default: 'local',
  },
  {
    key: 'nodeFlags',
    flag: '--node-flags',
    value: '<flags>',
    type: 'string',
    help: 'node/V8 flags of every replica and client process, without their dashes, comma-separated, or none (recorded in the run spec)',
    commands: ['run'],
    schema: nodeFlagsSchema,
    default: NODE_FLAGS_DEFAULT,
  },
  {
    key: 'basePort',
    flag: '--base-port',
    value: '<p>',
    type: 'integer',
    help: 'replica i listens on p + i (0: free ports chosen by the OS)',
    commands: ['run'],
    schema: integer(0, 65_535),
    default: 0,
  },
  placementText(
    'link',
    '--link',
    '<profile>',
    'emulated links: none | lan | wan[:region+region...] | delay=1ms,jitter=0.2ms,loss=0.1%,rate=1gbit | lan,loss=1%',
    { default: 'none' },
  ),
  placementText('hosts', '--hosts', '<file>', 'ssh backend: hosts file (YAML or JSON: user, host, port, key, role replica|client)'),
  placementText('pin', '--pin', '<cpus>', 'local, netns, docker: pin node k to CPU k mod len of this list (e.g. 0,1 or 0-3), or auto'),
  placementText('cpus', '--cpus', '<n>', 'docker backend: CPU limit per container', { type: 'number' }),
  {
    key: 'subnet',
    flag: '--subnet',
    value: { run: '<cidr>', figure: '<cidr|id>', aws: '<id>' },
    type: 'string',
    help: {
      run: 'netns, docker backends: private subnet of the nodes (default 10.222.0.0/16 netns, 10.223.0.0/16 docker)',
      figure: 'netns, docker backends: private subnet of the nodes; aws: the EC2 subnet id to launch in',
      aws: 'the subnet to launch in (its zone must offer both types)',
    },
    commands: ['run', 'figure', 'aws'],
    schema: text(),
  },
  placementText('baseImage', '--base-image', '<image>', "docker backend: base image with Node.js >= 20 (default: imported from this machine's Node)"),
  // The simulated network and run
  {
    key: 'scenario',
    flag: '--scenario',
    value: '<family|all|twins>',
    type: 'string',
    help: 'run --seeds seeds (from --seed) of a scenario family of infra/sim/scenarios.ts, of all of them, or of the lying-replica families (twins); prints failures with replay lines',
    commands: ['sim'],
    schema: ({ z }) => z.string().min(1).optional(),
  },
  {
    key: 'drop',
    flag: '--drop',
    value: '<p>',
    type: 'number',
    help: 'probability that a message copy is lost',
    commands: ['sim'],
    schema: probability(),
    default: 0,
  },
  {
    key: 'dup',
    flag: '--dup',
    value: '<p>',
    type: 'number',
    help: 'probability that a message copy is delivered twice',
    commands: ['sim'],
    schema: probability(),
    default: 0,
  },
  {
    key: 'delayMs',
    flag: '--delay-ms',
    value: '<ms>',
    type: 'number',
    unit: 'ms',
    help: 'one-way base delay',
    commands: ['sim'],
    schema: nonNegative(),
    default: DEFAULT_NETWORK.delay.baseMs,
  },
  {
    key: 'jitterMs',
    flag: '--jitter-ms',
    value: '<ms>',
    type: 'number',
    unit: 'ms',
    help: 'uniform jitter added to the delay; reorders messages',
    commands: ['sim'],
    schema: nonNegative(),
    default: DEFAULT_NETWORK.delay.jitterMs,
  },
  {
    key: 'tailMs',
    flag: '--tail-ms',
    value: '<ms>',
    type: 'number',
    unit: 'ms',
    help: 'mean of an exponential delay tail (0: none)',
    commands: ['sim'],
    schema: nonNegative(),
    default: DEFAULT_NETWORK.delay.tailMeanMs,
  },
  {
    key: 'partition',
    flag: '--partition',
    value: '<nodes@from-to>',
    type: 'list',
    help: 'cut nodes (replica numbers, c<origin> for client processes) off during [from, to) ms; repeatable',
    commands: ['sim'],
    schema: ({ z }) => z.array(z.string()).optional(),
    repeatable: true,
  },
  {
    key: 'healAtMs',
    flag: '--heal-at-ms',
    value: '<ms>',
    type: 'number',
    unit: 'ms',
    help: 'from this virtual time on, no message is lost or duplicated',
    defaultText: 'only once the clients are done',
    commands: ['sim'],
    schema: nonNegative(),
  },
  {
    key: 'crash',
    flag: '--crash',
    value: '<replica@ms>',
    type: 'list',
    help: 'crash a replica at a virtual time; repeatable',
    commands: ['sim'],
    schema: ({ z }) => z.array(z.string()).optional(),
    repeatable: true,
  },
  {
    key: 'maxTimeMs',
    flag: '--max-time-ms',
    value: '<ms>',
    type: 'number',
    unit: 'ms',
    help: 'stop at this virtual time',
    commands: ['sim'],
    schema: nonNegative(),
    default: 3_600_000,
  },
  {
    key: 'maxEvents',
    flag: '--max-events',
    value: '<count>',
    type: 'integer',
    help: 'stop after this many events',
    commands: ['sim'],
    schema: integer(1),
    default: 50_000_000,
  },
  {
    key: 'drain',
    flag: '--no-drain',
    type: 'boolean',
    help: 'do not deliver in-flight messages after the clients are done',
    commands: ['sim'],
    schema: flag(),
    default: true,
  },
  {
    key: 'settleMs',
    flag: '--settle-ms',
    value: '<ms>',
    type: 'number',
    unit: 'ms',
    help: 'after the clients are done and the network healed, run on until the non-faulty replicas agree, for at most this much virtual time; 0: off',
    commands: ['sim'],
    schema: nonNegative(),
    default: 60_000,
  },
  // Figure sweeps
  { key: 'quick', flag: '--quick', type: 'boolean', help: 'profile quick (few points, short runs)', commands: ['figure'], schema: flag() },
  { key: 'paper', flag: '--paper', type: 'boolean', help: "profile paper (the paper's points and durations)", commands: ['figure'], schema: flag() },
  {
    key: 'reps',
    flag: '--reps',
    value: '<n>',
    type: 'integer',
    help: 'repetitions per point',
    defaultText: "the profile's",
    commands: ['figure'],
    schema: integer(1),
  },
  {
    key: 'replicas',
    flag: '--replicas',
    value: '<list>',
    type: 'list',
    help: 'only these replica counts, e.g. 4,8',
    commands: ['figure'],
    schema: commaList(intItem(4)),
  },
  {
    key: 'protocols',
    flag: '--protocols',
    value: '<list>',
    type: 'list',
    help: 'only these protocols, e.g. poe,pbft (names or the paper labels PoE, PBFT, ZYZ, HS)',
    commands: ['figure'],
    schema: text(),
  },
  {
    key: 'batches',
    flag: '--batches',
    value: '<list>',
    type: 'list',
    help: 'only these batch sizes (figure 12), e.g. 10,100',
    commands: ['figure'],
    schema: commaList(intItem(1)),
  },
  {
    key: 'simBatches',
    flag: '--sim-batches',
    value: '<m>',
    type: 'integer',
    help: {
      figure: 'sim backend: batches per run',
      run: 'model backend: batches the clients issue in all (the model runs a fixed amount of work, not --duration seconds)',
    },
    defaultText: { figure: 'by profile' },
    commands: ['figure', 'run'],
    schema: integer(1),
    defaults: { run: 400 },
  },
  {
    key: 'testbed',
    flag: '--testbed',
    value: '<name|file>',
    type: 'string',
    help: 'model backend: the testbed to predict: local | c5.2xlarge | c5.2xlarge-pipeline | a JSON profile (infra/sim/testbed.ts)',
    defaultText: 'c5.2xlarge',
    commands: ['run', 'figure'],
    schema: ({ z }) => z.string().min(1).optional(),
  },
  {
    key: 'calibration',
    flag: '--calibration',
    value: '<file>',
    type: 'string',
    help: 'model backend: the calibration file written by `poe-bench calibrate`',
    defaultText: 'results/calibration.json',
    commands: ['run', 'figure'],
    schema: ({ z }) => z.string().min(1).optional(),
  },
  {
    key: 'retryFailed',
    flag: '--retry-failed',
    type: 'boolean',
    help: 'on resume, run again the repetitions recorded as failed or invalid',
    commands: ['figure'],
    schema: flag(),
  },
  {
    key: 'baseline',
    flag: '--baseline',
    value: '<protocol>',
    type: 'string',
    help: 'protocol the report compares against',
    commands: ['figure'],
    schema: text(),
  },
  { key: 'logs', flag: '--logs', type: 'boolean', help: 'keep every process stderr under <out>/logs/', commands: ['figure'], schema: flag() },
  {
    key: 'curves',
    flag: '--curves',
    type: 'boolean',
    help: 'figure 13: also measure throughput-latency curves at its replica counts (poe-bench curve; local backend); always in the default and paper profiles, with this flag in quick',
    commands: ['figure'],
    schema: flag(),
  },
  {
    key: 'clientMachines',
    flag: '--client-machines',
    value: '<m>',
    type: 'integer',
    help: 'client processes per run, each on its own client host (ssh: default the client hosts of --hosts; aws: the machines to provision, default 10 as the paper)',
    commands: ['figure'],
    schema: integer(1),
    defaultText: '1',
  },
  // Output
  {
    key: 'out',
    flag: '--out',
    value: '<dir>',
    type: 'string',
    help: { run: 'results directory: appends runs.jsonl, writes manifest.json', figure: 'results directory; an existing one is resumed' },
    defaultText: { run: 'results/run; --backend model: results/run-model', figure: 'results/figure-<figure>/<timestamp>/' },
    commands: ['run', 'figure'],
    schema: text(),
  },
  {
    key: 'logDir',
    flag: '--log-dir',
    value: '<dir>',
    type: 'string',
    help: 'also write every process stderr to files here',
    commands: ['run'],
    schema: text(),
  },
  {
    key: 'json',
    flag: '--json',
    type: 'boolean',
    help: { run: 'print one JSON object on stdout', sim: 'print one JSON object' },
    commands: ['run', 'sim'],
    schema: flag(),
  },
  // EC2 machines (infra aws up; figure --backend aws passes them on). infra/aws/options.ts validates them.
  ec2('region', '--region', '<region>', 'region', { defaultText: 'AWS_REGION, AWS_DEFAULT_REGION, us-east-1' }),
  ec2('instanceType', '--instance-type', '<type>', 'replica machines', { defaultText: 'c5.2xlarge, as in the paper' }),
  ec2('clientType', '--client-type', '<type>', 'client machines', { defaultText: 'c5.xlarge' }),
  ec2('myIp', '--my-ip', '<cidr>', 'your address; SSH and the harness ports open only to it and the run (or POE_BENCH_MY_IP)'),
  ec2('ttlHours', '--ttl-hours', '<h>', 'the instances power off (and terminate) after this long', {
    type: 'number',
    unit: 'h',
    defaultText: { figure: '1.5 x the predicted sweep time + 1 h, at least 4', aws: '4' },
  }),
  ec2('os', '--os', '<os>', 'image family debian12 (default) or al2023'),
  ec2('ami', '--ami', '<id>', 'this image instead of the newest of --os'),
  ec2('sshUser', '--ssh-user', '<user>', 'login user (default: that of --os)'),
  ec2('vpc', '--vpc', '<id>', 'a VPC other than the default (with --subnet, an EC2 subnet id there)'),
  ec2('stateDir', '--state-dir', '<dir>', 'where the run directory (private key, hosts.json) lives while the machines do', { defaultText: '~/.poe-bench/aws' }),
  {
    key: 'yes',
    flag: '--yes',
    type: 'boolean',
    help: { figure: 'aws: do not ask before creating the machines', aws: 'do not ask before creating machines (up) or removing several runs (down)' },
    commands: ['figure', 'aws'],
    schema: flag(),
  },
  {
    key: 'dryRun',
    flag: '--dry-run',
    type: 'boolean',
    help: 'aws: print the plan and the cost, ask EC2 (DryRun) whether it would work; create nothing',
    commands: ['figure', 'aws'],
    schema: flag(),
  },
  { key: 'replicas', flag: '--replicas', value: '<n>', type: 'integer', help: 'replica machines', commands: ['aws'] },
  { key: 'clients', flag: '--clients', value: '<m>', type: 'integer', help: 'client machines', commands: ['aws'] },
  {
    key: 'hours',
    flag: '--hours',
    value: '<h>',
    type: 'number',
    defaultText: '1',
    unit: 'h',
    help: 'how long you expect to need them, for the cost estimate',
    commands: ['aws'],
  },
  { key: 'run', flag: '--run', value: '<id>', type: 'string', help: 'the run id to remove', commands: ['aws'] },
  { key: 'expired', flag: '--expired', type: 'boolean', help: 'only runs past their expiry', commands: ['aws'] },
];

// ---------------------------------------------------------------------------------------
// Derived

/** The entries a command takes, in table order. */
export function paramsFor(command: ParamCommand): ParamDef[] {
  return PARAMS.filter((p) => p.commands.includes(command));
}

export function paramOf(command: ParamCommand, key: string): ParamDef | undefined {
  return PARAMS.find((p) => p.key === key && p.commands.includes(command));
}

export const perCommand = <T>(x: T | PerCommand<T> | undefined, command: ParamCommand, isPer: (x: T | PerCommand<T>) => boolean): T | undefined =>
  x === undefined ? undefined : isPer(x) ? (x as PerCommand<T>)[command] : (x as T);

export function paramHelp(p: ParamDef, command: ParamCommand): string {
  const help = perCommand(p.help, command, (h) => typeof h !== 'string') ?? '';
  // The EC2 flags say "aws: ..." among figure's; on `infra aws` itself that goes without saying.
  return command === 'aws' ? help.replace(/^aws: /, '') : help;
}

/** The default of `key` on `command` (a value, not text), or undefined when it has none. */
export function paramDefault(command: ParamCommand, key: string): unknown {
  const p = paramOf(command, key);
  if (p === undefined) throw new RangeError(`no parameter ${key} on ${command}`);
  return defaultOf(p, command);
}

/** A parameter's default on `command`: its per-command one where it has those, else its one default. */
export function defaultOf(p: ParamDef, command: ParamCommand): unknown {
  return p.defaults !== undefined ? p.defaults[command] : p.default;
}

/** `--client-timeout-ms` for `clientTimeoutMs` on `command` (the key itself when unknown). */
export function flagName(command: ParamCommand, key: string): string {
  return paramOf(command, key)?.flag ?? key;
}

/** Every flag of `command`, by key (for error messages). */
export function flagNames(command: ParamCommand): Record<string, string> {
  return Object.fromEntries(paramsFor(command).map((p) => [p.key, p.flag]));
}

const camel = (flag: string): string => flag.replace(/^--(no-)?/, '').replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());

/** Flags as commander hands them over, with every old spelling folded into its parameter's key. */
export function canonicalFlags<T extends object>(command: ParamCommand, flags: T): T {
  const out: Record<string, unknown> = { ...(flags as Record<string, unknown>) };
  for (const p of paramsFor(command)) {
    for (const alias of p.aliases ?? []) {
      const a = camel(alias);
      const v = out[a];
      if (v === undefined) continue;
      delete out[a];
      const current = out[p.key];
      out[p.key] = p.repeatable && Array.isArray(current) && Array.isArray(v) ? [...current, ...v] : (current ?? v);
    }
  }
  return out as T;
}

const same = (a: unknown, b: unknown): boolean => JSON.stringify(a) === JSON.stringify(b);

/**
 * The flags that reproduce `values` (parameter values by key, as the parsed flags hold them):
 * in table order, only where they differ from the command's default (and the `replayAlways`
 * ones always), so replay lines stay short.
 */
export function replayArgs(command: ParamCommand, values: Readonly<Record<string, unknown>>): string[] {
  const args: string[] = [];
  for (const p of paramsFor(command)) {
    const v = values[p.key];
    if (v === undefined) continue;
    const def = defaultOf(p, command);
    if (!p.replayAlways && def !== undefined && same(v, def)) continue;
    const format = (p.format ?? String) as (x: unknown) => string;
    if (p.type === 'boolean') {
      // A --no-x switch is printed when its value is false; a plain one when true.
      if (p.flag.startsWith('--no-') ? v === false : v === true) args.push(p.flag);
    } else if (p.repeatable) for (const item of v as unknown[]) args.push(p.flag, format(item));
    else if (Array.isArray(v)) args.push(p.flag, v.map((x) => format(x)).join(','));
    else args.push(p.flag, format(v));
  }
  return args;
}

const shellQuote = (s: string): string => (/^[\w@%+=:,./-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`);

/** `poe-bench <command words> <args>`, shell-quoted. */
export function replayLine(words: readonly string[], args: readonly string[]): string {
  return `poe-bench ${[...words, ...args].map(shellQuote).join(' ')}`;
}
