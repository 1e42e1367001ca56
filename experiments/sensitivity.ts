/**
 * Sensitivity (issue 12 item 5): which resource decides a protocol's modelled throughput on a
 * testbed, found by varying one at a time around the testbed (cores per replica 1/2/4/8 with the
 * paper's pipeline, since a single-threaded replica uses one core whatever it has; egress
 * bandwidth /10 and x10; round trip /10 and x10) and seeing which change moves throughput most.
 */
import type { CalibrationFile } from '../infra/sim/calibration.js';
import type { Testbed } from '../infra/sim/testbed.js';
import { modelPoint } from './model-point.js';

export interface SensitivityRow {
  readonly protocol: string;
  readonly replicas: number;
  readonly baseTxnPerSec: number;
  /** Variant label -> throughput. */
  readonly variants: Record<string, number>;
  /** The resource whose change moved throughput most, and by how much (percent of the base). */
  readonly decidedBy: string;
  readonly swingPercent: number;
}

function variantsOf(t: Testbed): Record<string, Testbed> {
  const pipeline = { inputLanes: 3, outputLanes: 2 };
  const out: Record<string, Testbed> = {};
  for (const cores of [1, 2, 4, 8]) out[`pipeline, ${cores} cores`] = { ...t, replica: { ...t.replica, cores, pipeline } };
  const bw = t.replicaNicBitsPerSec ?? Infinity;
  out['bandwidth /10'] = { ...t, replicaNicBitsPerSec: bw / 10, clientNicBitsPerSec: (t.clientNicBitsPerSec ?? Infinity) / 10 };
  out['bandwidth x10'] = { ...t, replicaNicBitsPerSec: bw * 10, clientNicBitsPerSec: (t.clientNicBitsPerSec ?? Infinity) * 10 };
  out['round trip /10'] = { ...t, delay: { ...t.delay, baseMs: t.delay.baseMs / 10, jitterMs: t.delay.jitterMs / 10 } };
  out['round trip x10'] = { ...t, delay: { ...t.delay, baseMs: t.delay.baseMs * 10, jitterMs: t.delay.jitterMs * 10 } };
  out['CPU speed x2'] = { ...t, replica: { ...t.replica, speed: t.replica.speed * 2 } };
  return out;
}

const resourceOf = (label: string): string =>
  label.startsWith('pipeline')
    ? 'replica threads/cores'
    : label.startsWith('bandwidth')
      ? 'bandwidth'
      : label.startsWith('round')
        ? 'round trip'
        : 'replica CPU speed';

export function sensitivity(
  cal: CalibrationFile,
  testbed: Testbed,
  protocols: readonly string[],
  replicas: readonly number[],
  batches = 300,
  clients = 24,
): SensitivityRow[] {
  const rows: SensitivityRow[] = [];
  const point = (protocol: string, n: number, t: Testbed): number =>
    modelPoint({
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
      testbed: t,
      costs: cal.costs,
    }).txnPerSec;
  for (const n of replicas) {
    for (const protocol of protocols) {
      const base = point(protocol, n, testbed);
      const variants: Record<string, number> = {};
      for (const [label, t] of Object.entries(variantsOf(testbed))) variants[label] = point(protocol, n, t);
      let decidedBy = 'none';
      let swing = 0;
      for (const [label, v] of Object.entries(variants)) {
        const s = base > 0 ? (Math.abs(v - base) / base) * 100 : 0;
        if (s > swing) {
          swing = s;
          decidedBy = `${resourceOf(label)} (${label})`;
        }
      }
      rows.push({ protocol, replicas: n, baseTxnPerSec: base, variants, decidedBy, swingPercent: Math.round(swing * 10) / 10 });
    }
  }
  return rows;
}

export function formatSensitivity(rows: readonly SensitivityRow[], testbed: string): string {
  const labels = Object.keys(rows[0]?.variants ?? {});
  const lines = [
    `Sensitivity on ${testbed} (modelled, one resource varied at a time; txn/s):`,
    '',
    `| protocol | n | base | ${labels.join(' | ')} | decided by |`,
    `|---|---|---|${labels.map(() => '---').join('|')}|---|`,
  ];
  for (const r of rows)
    lines.push(`| ${r.protocol} | ${r.replicas} | ${r.baseTxnPerSec} | ${labels.map((l) => r.variants[l]).join(' | ')} | ${r.decidedBy}, ${r.swingPercent}% |`);
  return lines.join('\n');
}
