/**
 * `poe-bench calibrate` and `poe-bench model ...` (issue 12): the calibrated cost model.
 *
 * - `calibrate [--out FILE] [--no-fit]`: per-operation costs measured here, fixed costs fitted
 *   from short real runs (experiments/calibrate.ts); writes the calibration file.
 * - `model validate [--calibration FILE] [--client-procs N] [--json]`: real runs against the model
 *   with `--testbed local` (experiments/validate.ts), both with N client processes (default 1);
 *   the result is also stored in the calibration file, with its N, so a model figure's report
 *   can show the validation of the calibration it used.
 * - `model costs [--json] [--batches N]`: the per-batch cost table (experiments/cost-table.ts).
 * - `model point --protocol P --replicas N [--testbed local|c5.2xlarge|FILE]`: one modelled point.
 */
import type { Command } from 'commander';
import { calibrate, MODEL_RUN_DURATION_S, MODEL_RUN_WARMUP_S } from '../experiments/calibrate.js';
import { costTable, formatCostTable } from '../experiments/cost-table.js';
import { modelPoint, pointInputOf } from '../experiments/model-point.js';
import { formatSensitivity, sensitivityBases, sensitivityOn } from '../experiments/sensitivity.js';
import { PointPool } from '../experiments/point-pool.js';
import { formatValidation, validate } from '../experiments/validate.js';
import { makeRunSpec, RUN_DEFAULTS } from '../infra/run/spec.js';
import { readCalibration, writeCalibration } from '../infra/sim/calibration.js';
import { DEFAULT_CALIBRATION, DEFAULT_TESTBED, resolveCalibration } from './model-setup.js';
import { loadTestbed } from '../infra/sim/testbed.js';
import type { ProtocolName } from '../replica/types.js';

/** A numeric flag, or a one-line error naming it (exit 2). */
function numberFlag(flag: string, text: string, min: number): number {
  const x = Number(text);
  if (!Number.isFinite(x) || x < min) {
    process.stderr.write(`poe-bench: ${flag}: must be a number >= ${min}, got '${text}'\n`);
    process.exit(2);
  }
  return x;
}

function integerFlag(flag: string, text: string, min: number): number {
  const x = numberFlag(flag, text, min);
  if (!Number.isInteger(x)) {
    process.stderr.write(`poe-bench: ${flag}: must be a whole number, got '${text}'\n`);
    process.exit(2);
  }
  return x;
}

/** A comma-separated list of numbers, each checked as numberFlag does. */
const numberList = (flag: string, text: string, min: number): number[] => text.split(',').map((t) => numberFlag(flag, t.trim(), min));

/** A calibration file, or a one-line error saying how to make one (exit 2): harness/model-setup.ts, as figure and run check it. */
function calibrationFile(path: string) {
  const read = resolveCalibration(path);
  if (!read.ok) {
    process.stderr.write(`poe-bench: ${read.message}\n`);
    process.exit(2);
  }
  return read.calibration;
}

export function registerModelCommands(program: Command): void {
  registerCalibrate(program);
  const model = program.command('model').description('the calibrated cost model in the simulator (issue 12)');
  registerValidate(model);
  registerCosts(model);
  registerSensitivity(model);
  registerPoint(model);
}

function registerCalibrate(program: Command): void {
  program
    .command('calibrate')
    .description('measure per-operation costs on this machine and fit the fixed costs from short real runs; writes a calibration file')
    .option('--out <file>', 'calibration file to write', DEFAULT_CALIBRATION)
    .option('--no-fit', 'skip the real runs (fixed costs stay 0, and the file says so)')
    .option('--reuse <file>', "reuse an earlier calibration's real fit runs: re-measure the operations, recount, refit")
    .option('--warmup <s>', "warm-up cap of each fit run, s (the window opens once throughput and the processes' memory settle)", String(MODEL_RUN_WARMUP_S))
    .option('--duration <s>', 'measured seconds of each fit run', String(MODEL_RUN_DURATION_S))
    .action(async (o: { out: string; fit: boolean; reuse?: string; warmup: string; duration: string }) => {
      const c = await calibrate({
        skipFit: !o.fit,
        ...(o.reuse ? { reuseFitPoints: readCalibration(o.reuse).fitPoints } : {}),
        warmupS: numberFlag('--warmup', o.warmup, 0),
        durationS: numberFlag('--duration', o.duration, 1),
        onProgress: (l) => process.stderr.write(`${l}\n`),
      });
      writeCalibration(o.out, c);
      process.stdout.write(`${JSON.stringify(c.costs, null, 2)}\nwrote ${o.out}\n`);
    });
}

function registerValidate(model: Command): void {
  model
    .command('validate')
    .description('real runs on the local backend against the model with --testbed local: error per point and protocol ranking')
    .option('--calibration <file>', 'calibration file', DEFAULT_CALIBRATION)
    .option('--protocols <list>', 'comma-separated protocols', 'poe,pbft,zyzzyva,hotstuff')
    .option('--replicas <list>', 'comma-separated replica counts', '4,8,16')
    .option('--warmup <s>', "warm-up cap of each real run, s (the window opens once throughput and the processes' memory settle)", String(MODEL_RUN_WARMUP_S))
    .option('--duration <s>', 'measured seconds of each real run', String(MODEL_RUN_DURATION_S))
    .option(
      '--client-procs <n>',
      'client processes the logical clients are spread over, in every real run and modelled point (as run --client-procs)',
      String(RUN_DEFAULTS.clientProcs),
    )
    .option('--json', 'print one JSON object')
    .action(async (o: { calibration: string; protocols: string; replicas: string; warmup: string; duration: string; clientProcs: string; json?: boolean }) => {
      // Every flag before the calibration file, so a bad flag is named as such.
      const replicas = numberList('--replicas', o.replicas, 4);
      const warmupS = numberFlag('--warmup', o.warmup, 0);
      const durationS = numberFlag('--duration', o.duration, 1);
      const clientProcs = integerFlag('--client-procs', o.clientProcs, 1);
      if (clientProcs > RUN_DEFAULTS.clients) {
        process.stderr.write(
          `poe-bench: --client-procs: at most ${RUN_DEFAULTS.clients} (the runs' ${RUN_DEFAULTS.clients} logical clients, one per process at least), got ${clientProcs}\n`,
        );
        process.exit(2);
      }
      const cal = calibrationFile(o.calibration);
      const s = await validate(cal, {
        protocols: o.protocols.split(',') as ProtocolName[],
        replicas,
        warmupS,
        durationS,
        clientProcs,
        onProgress: (l) => process.stderr.write(`${l}\n`),
      });
      writeCalibration(o.calibration, { ...cal, validation: { ...s, date: new Date().toISOString() } });
      process.stdout.write(o.json ? `${JSON.stringify(s, null, 2)}\n` : `${formatValidation(s, o.calibration)}\n`);
    });
}

function registerCosts(model: Command): void {
  model
    .command('costs')
    .description('messages, bytes, signatures, verifications, MACs and digests per accepted batch, counted in the simulator')
    .option('--batches <n>', 'batches per simulation', '600')
    .option('--replicas <list>', 'comma-separated replica counts', '4,16')
    .option('--rules <list>', 'HotStuff certificate rules to show (extra hotstuffRule), if the core has them')
    .option('--json', 'print JSON')
    .action((o: { batches: string; replicas: string; rules?: string; json?: boolean }) => {
      const rows = costTable({
        batches: numberFlag('--batches', o.batches, 1),
        replicas: numberList('--replicas', o.replicas, 4),
        rules: o.rules?.split(',') ?? [],
      });
      process.stdout.write(o.json ? `${JSON.stringify(rows, null, 2)}\n` : `${formatCostTable(rows)}\n`);
    });
}

function registerSensitivity(model: Command): void {
  model
    .command('sensitivity')
    .description('which resource decides each protocol on a testbed: vary cores, bandwidth, round trip and CPU speed one at a time')
    .option('--testbed <name>', 'local | c5.2xlarge | c5.2xlarge-pipeline | FILE', DEFAULT_TESTBED)
    .option('--calibration <file>', 'calibration file', DEFAULT_CALIBRATION)
    .option('--protocols <list>', 'comma-separated protocols', 'poe,pbft,zyzzyva,hotstuff')
    .option('--replicas <list>', 'comma-separated replica counts', '4,16,32')
    .option('--batches <n>', 'batches per modelled run', '300')
    .option('--json', 'print JSON')
    .action(async (o: { testbed: string; calibration: string; protocols: string; replicas: string; batches: string; json?: boolean }) => {
      const cal = calibrationFile(o.calibration);
      const bases = sensitivityBases(
        cal,
        loadTestbed(o.testbed),
        o.protocols.split(','),
        numberList('--replicas', o.replicas, 4),
        numberFlag('--batches', o.batches, 1),
      );
      // On every core (experiments/point-pool.ts), as figure --backend model runs it.
      const pool = new PointPool();
      try {
        const done = await sensitivityOn(pool, bases);
        const rows = done?.rows ?? [];
        process.stdout.write(o.json ? `${JSON.stringify(rows, null, 2)}\n` : `${formatSensitivity(rows, o.testbed)}\n`);
      } finally {
        await pool.terminate();
      }
    });
}

function registerPoint(model: Command): void {
  model
    .command('point')
    .description('one modelled point: PREDICTED throughput and latency on a testbed')
    .requiredOption('--protocol <name>', 'protocol')
    .requiredOption('--replicas <n>', 'replicas')
    .option('--testbed <name>', 'local | c5.2xlarge | c5.2xlarge-pipeline | FILE', 'local')
    .option('--calibration <file>', 'calibration file', DEFAULT_CALIBRATION)
    .option('--batches <n>', 'batches to simulate', '400')
    .option('--clients <c>', 'logical clients in total', '24')
    .option('--view-change-timeout-ms <ms>', "replicas' view-change timeout (default 2000, as a real run's)")
    .option('--client-timeout-ms <ms>', "clients' request timeout (default 2000, as a real run's)")
    .option('--extra <key=value>', 'protocol switch, repeatable', (v: string, prev: string[] = []) => [...prev, v])
    .action(
      (o: {
        protocol: string;
        replicas: string;
        testbed: string;
        calibration: string;
        batches: string;
        clients: string;
        viewChangeTimeoutMs?: string;
        clientTimeoutMs?: string;
        extra?: string[];
      }) => {
        const cal = calibrationFile(o.calibration);
        const spec = makeRunSpec({ protocol: o.protocol as ProtocolName, replicas: Number(o.replicas), clients: Number(o.clients) });
        const extra = Object.fromEntries((o.extra ?? []).map((kv) => kv.split('=') as [string, string]));
        // The spec's sizes, workload and seed, as run --backend model and model validate take them (pointInputOf).
        const r = modelPoint({
          ...pointInputOf({ ...spec, extra }, loadTestbed(o.testbed), cal.costs, Number(o.batches)),
          ...(o.viewChangeTimeoutMs === undefined ? {} : { viewChangeTimeoutMs: positive(o.viewChangeTimeoutMs, '--view-change-timeout-ms') }),
          ...(o.clientTimeoutMs === undefined ? {} : { clientTimeoutMs: positive(o.clientTimeoutMs, '--client-timeout-ms') }),
        });
        process.stdout.write(`${JSON.stringify({ modelled: true, testbed: o.testbed, calibration: o.calibration, ...r }, null, 2)}\n`);
      },
    );
}

function positive(v: string, flag: string): number {
  const x = Number(v);
  if (!Number.isFinite(x) || x <= 0) throw new RangeError(`${flag}: a positive number of milliseconds, got '${v}'`);
  return x;
}
