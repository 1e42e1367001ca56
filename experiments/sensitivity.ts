/**
 * Sensitivity (issue 12 item 5): which resource decides a protocol's modelled throughput on a
 * testbed, found by varying one at a time around the testbed (cores per replica 1/2/4/8 with the
 * paper's pipeline, since a single-threaded replica uses one core whatever it has; egress
 * bandwidth /10 and x10; round trip /10 and x10; CPU speed x2) and seeing which change moves
 * throughput most.
 *
 * One set of tasks (a base and every variant per protocol and replica count), run on the point
 * pool (experiments/point-pool.ts) by `model sensitivity` and by `figure 13 --backend model`
 * (experiments/model-figure.ts), whose report shows it (plots/sensitivity.ts).
 */
import type { CalibrationFile } from '../infra/sim/calibration.js';
import type { Testbed } from '../infra/sim/testbed.js';
import type { ModelPointInput, ModelPointResult } from './model-point.js';
import type { PointPool } from './point-pool.js';

/** A resource varied, as the report names it. */
export type SensitivityResource = 'replica threads/cores' | 'bandwidth' | 'round trip' | 'replica CPU speed';

export interface SensitivityVariant {
  readonly label: string;
  readonly resource: SensitivityResource;
  /** More of the resource than the testbed has (x10 bandwidth, /10 round trip, the pipeline's 8 cores, x2 CPU speed), or less. */
  readonly more: boolean;
  readonly testbed: Testbed;
}

/** The paper's §4 pipeline (lines 358-381): three input lanes, two output lanes, beside the protocol's own thread. */
const PIPELINE = { inputLanes: 3, outputLanes: 2 };

/** The testbed with one resource changed, for every resource the sensitivity varies, in the report's order. */
export function sensitivityVariants(t: Testbed): SensitivityVariant[] {
  const out: SensitivityVariant[] = [];
  // A single-threaded replica uses one of its cores, however many it has.
  const coresUsed = t.replica.pipeline === undefined ? 1 : t.replica.cores;
  for (const cores of [1, 2, 4, 8])
    out.push({
      label: `pipeline, ${cores} core${cores > 1 ? 's' : ''}`,
      resource: 'replica threads/cores',
      more: cores > coresUsed,
      testbed: { ...t, replica: { ...t.replica, cores, pipeline: PIPELINE } },
    });
  const bw = t.replicaNicBitsPerSec ?? Infinity;
  const cbw = t.clientNicBitsPerSec ?? Infinity;
  out.push(
    { label: 'bandwidth /10', resource: 'bandwidth', more: false, testbed: { ...t, replicaNicBitsPerSec: bw / 10, clientNicBitsPerSec: cbw / 10 } },
    { label: 'bandwidth x10', resource: 'bandwidth', more: true, testbed: { ...t, replicaNicBitsPerSec: bw * 10, clientNicBitsPerSec: cbw * 10 } },
    {
      label: 'round trip /10',
      resource: 'round trip',
      more: true,
      testbed: { ...t, delay: { ...t.delay, baseMs: t.delay.baseMs / 10, jitterMs: t.delay.jitterMs / 10 } },
    },
    {
      label: 'round trip x10',
      resource: 'round trip',
      more: false,
      testbed: { ...t, delay: { ...t.delay, baseMs: t.delay.baseMs * 10, jitterMs: t.delay.jitterMs * 10 } },
    },
    { label: 'CPU speed x2', resource: 'replica CPU speed', more: true, testbed: { ...t, replica: { ...t.replica, speed: t.replica.speed * 2 } } },
  );
  return out;
}

/** One modelled point of the sensitivity: a protocol and replica count, at the base testbed or one variant. */
export interface SensitivityTask {
  readonly protocol: string;
  readonly replicas: number;
  /** 'base', or a variant's label. */
  readonly label: string;
  readonly input: ModelPointInput;
}

/** The base point of every protocol and replica count; each is run as it is and with every variant's testbed. */
export function sensitivityTasks(
  bases: readonly { readonly protocol: string; readonly replicas: number; readonly input: ModelPointInput }[],
): SensitivityTask[] {
  const tasks: SensitivityTask[] = [];
  for (const b of bases) {
    tasks.push({ protocol: b.protocol, replicas: b.replicas, label: 'base', input: b.input });
    for (const v of sensitivityVariants(b.input.testbed))
      tasks.push({ protocol: b.protocol, replicas: b.replicas, label: v.label, input: { ...b.input, testbed: v.testbed } });
  }
  return tasks;
}

export interface SensitivityRow {
  readonly protocol: string;
  readonly replicas: number;
  readonly baseTxnPerSec: number;
  readonly baseLatencyMs: number;
  /** Variant label -> throughput (0 where the run was invalid: see `invalid`). */
  readonly variants: Record<string, number>;
  /** Variant label -> mean latency, ms. */
  readonly variantLatencyMs: Record<string, number>;
  /** The variant whose change moved throughput most, with its resource, and by how much (percent of the base). */
  readonly decidedBy: string;
  readonly decidedByResource: SensitivityResource | 'none';
  /** The variant's label, or undefined when no variant moved it. */
  readonly decidedByVariant?: string;
  readonly swingPercent: number;
  /** The variant of more of a resource that raised throughput most, and by how much (percent); 'none' when none raised it by 5% or more. */
  readonly relievedBy: string;
  readonly gainPercent: number;
  /** Runs (base or variant labels) whose result the simulator's safety checks rejected, or that accepted nothing. */
  readonly invalid: readonly string[];
}

/** Below this gain (percent) more of a resource is said not to help. */
export const GAIN_THRESHOLD_PERCENT = 5;

const r1 = (x: number): number => Math.round(x * 10) / 10;

/** The rows of the sensitivity from its tasks and their results (in the tasks' order). */
export function sensitivityRows(tasks: readonly SensitivityTask[], results: readonly ModelPointResult[]): SensitivityRow[] {
  if (results.length !== tasks.length) throw new RangeError(`sensitivity: ${results.length} results for ${tasks.length} tasks`);
  const rows: SensitivityRow[] = [];
  const groups = new Map<string, { task: SensitivityTask; result: ModelPointResult }[]>();
  tasks.forEach((task, i) => {
    const key = `${task.protocol}/${task.replicas}`;
    groups.set(key, [...(groups.get(key) ?? []), { task, result: results[i]! }]);
  });
  for (const group of groups.values()) {
    const base = group.find((g) => g.task.label === 'base');
    if (base === undefined) continue;
    const variantsByLabel = new Map(sensitivityVariants(base.task.input.testbed).map((v) => [v.label, v]));
    const ok = (r: ModelPointResult): boolean => r.valid && r.txnPerSec > 0;
    const baseTxn = ok(base.result) ? base.result.txnPerSec : 0;
    const variants: Record<string, number> = {};
    const latency: Record<string, number> = {};
    const invalid = ok(base.result) ? [] : ['base'];
    let decided: { label: string; resource: SensitivityResource; swing: number } | undefined;
    let relieved: { label: string; gain: number } | undefined;
    for (const { task, result } of group) {
      if (task.label === 'base') continue;
      const v = variantsByLabel.get(task.label);
      if (v === undefined) continue;
      if (!ok(result)) invalid.push(task.label);
      const txn = ok(result) ? result.txnPerSec : 0;
      variants[task.label] = txn;
      latency[task.label] = result.latencyMs.mean;
      if (baseTxn <= 0 || !ok(result)) continue;
      const swing = (Math.abs(txn - baseTxn) / baseTxn) * 100;
      if (decided === undefined || swing > decided.swing) decided = { label: task.label, resource: v.resource, swing };
      const gain = ((txn - baseTxn) / baseTxn) * 100;
      if (v.more && gain >= GAIN_THRESHOLD_PERCENT && (relieved === undefined || gain > relieved.gain)) relieved = { label: task.label, gain };
    }
    rows.push({
      protocol: base.task.protocol,
      replicas: base.task.replicas,
      baseTxnPerSec: baseTxn,
      baseLatencyMs: base.result.latencyMs.mean,
      variants,
      variantLatencyMs: latency,
      decidedBy: decided === undefined ? 'none' : `${decided.resource} (${decided.label})`,
      decidedByResource: decided?.resource ?? 'none',
      ...(decided === undefined ? {} : { decidedByVariant: decided.label }),
      swingPercent: r1(decided?.swing ?? 0),
      relievedBy: relieved === undefined ? 'none' : `${variantsByLabel.get(relieved.label)!.resource} (${relieved.label})`,
      gainPercent: r1(relieved?.gain ?? 0),
      invalid,
    });
  }
  return rows;
}

/** The base points of `model sensitivity`: the protocols at the replica counts, batch 100, `clients` clients, `batches` batches. */
export function sensitivityBases(
  cal: CalibrationFile,
  testbed: Testbed,
  protocols: readonly string[],
  replicas: readonly number[],
  batches = 300,
  clients = 24,
): { protocol: string; replicas: number; input: ModelPointInput }[] {
  const bases: { protocol: string; replicas: number; input: ModelPointInput }[] = [];
  for (const n of replicas)
    for (const protocol of protocols)
      bases.push({
        protocol,
        replicas: n,
        input: {
          protocol,
          replicas: n,
          batch: 100,
          clients,
          clientProcs: 1,
          batches,
          records: 600_000,
          valueBytes: 64,
          checkpointInterval: 600,
          window: 1200,
          seed: 1,
          testbed,
          costs: cal.costs,
        },
      });
  return bases;
}

/**
 * The sensitivity of these base points on a pool of worker threads (experiments/point-pool.ts),
 * every run queued at once; undefined if the pool is terminated first. Also the seconds the runs
 * took, summed over the workers.
 */
export async function sensitivityOn(
  pool: PointPool,
  bases: readonly { readonly protocol: string; readonly replicas: number; readonly input: ModelPointInput }[],
): Promise<{ rows: SensitivityRow[]; runSec: number } | undefined> {
  const tasks = sensitivityTasks(bases);
  // The largest points first, so that the pool's last tasks are short and no worker idles long at the end.
  const order = tasks.map((_, i) => i).sort((a, b) => tasks[b]!.replicas - tasks[a]!.replicas);
  const byOrder = await Promise.all(order.map((i) => pool.run({ kind: 'model', input: tasks[i]!.input })));
  if (byOrder.some((r) => r === undefined)) return undefined;
  const done: ModelPointResult[] = [];
  order.forEach((i, k) => {
    done[i] = byOrder[k]!;
  });
  return { rows: sensitivityRows(tasks, done), runSec: Math.round(done.reduce((s, r) => s + r.wallMs, 0)) / 1000 };
}

export function formatSensitivity(rows: readonly SensitivityRow[], testbed: string): string {
  const labels = Object.keys(rows[0]?.variants ?? {});
  const lines = [
    `Sensitivity on ${testbed} (modelled, one resource varied at a time; txn/s):`,
    '',
    `| protocol | n | base | ${labels.join(' | ')} | decided by (largest change) | relieved by (largest gain from more) |`,
    `|---|---|---|${labels.map(() => '---').join('|')}|---|---|`,
  ];
  for (const r of rows)
    lines.push(
      `| ${r.protocol} | ${r.replicas} | ${r.baseTxnPerSec} | ${labels.map((l) => r.variants[l]).join(' | ')} | ${r.decidedBy}, ${r.swingPercent}% | ${r.relievedBy}${r.relievedBy === 'none' ? '' : `, +${r.gainPercent}%`} |`,
    );
  return lines.join('\n');
}
